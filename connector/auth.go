package connector

import (
	"strings"

	"golang.org/x/oauth2"
)

// AuthRequest is one authorization attempt: the values the portal keeps in
// the session between sending the browser to Microsoft and the callback.
// Each is single use.
type AuthRequest struct {
	State    string `json:"state"`
	Nonce    string `json:"nonce"`
	Verifier string `json:"verifier"` // PKCE code verifier (S256)
}

// Consent is what a completed authorization code flow yields.
type Consent struct {
	TenantID string   // tid of the consenting account
	ObjectID string   // oid of the consenting account
	Username string   // preferred_username (UPN)
	Name     string   // display name
	Groups   []string // group object ids from the id_token, if any
	// DirectoryRoles are the role template ids of the account's active
	// Microsoft Entra directory roles (the id_token's wids claim, present
	// when the app registration emits directory roles in its tokens).
	DirectoryRoles []string
	RefreshToken   string // to be sealed before it is stored
	Token          *oauth2.Token
}

// Directory role template ids that may grant tenant-wide admin consent to
// Microsoft Graph application permissions.
const (
	RoleGlobalAdministrator         = "62e90394-69f5-4237-9190-012177145e10"
	RolePrivilegedRoleAdministrator = "e8611ab8-c189-46e8-94e1-60213ab1f814"
)

// CanGrantAdminConsent reports whether the account holds a directory role
// that may grant mailgate's application permissions for its tenant.
func (c Consent) CanGrantAdminConsent() bool {
	for _, r := range c.DirectoryRoles {
		if strings.EqualFold(r, RoleGlobalAdministrator) || strings.EqualFold(r, RolePrivilegedRoleAdministrator) {
			return true
		}
	}
	return false
}
