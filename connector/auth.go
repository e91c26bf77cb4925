package connector

import "golang.org/x/oauth2"

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
	TenantID     string   // tid of the consenting account
	ObjectID     string   // oid of the consenting account
	Username     string   // preferred_username (UPN)
	Name         string   // display name
	Groups       []string // group object ids from the id_token, if any
	RefreshToken string   // to be sealed before it is stored
	Token        *oauth2.Token
}
