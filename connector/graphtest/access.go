package graphtest

import (
	"net/http"
	"strings"
)

// principal is the caller named by a validated access token.
type principal struct {
	tid, oid, upn, clientID string
	scopes, roles           map[string]bool
	appOnly                 bool
}

func (s *Server) authenticate(c *call) (*principal, bool) {
	h := c.r.Header.Get("Authorization")
	deny := func(msg string) (*principal, bool) {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="`+graphResourceID+`"`)
		graphError(c.w, c.r, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		return nil, false
	}
	if h == "" {
		return deny("Access token is empty.")
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return deny("Access token is empty.")
	}
	claims, err := s.verifyJWT(strings.TrimSpace(tok), s.clock())
	if err != nil {
		return deny(err.Error())
	}
	if aud := claimString(claims, "aud"); aud != graphResource && aud != graphResource+"/" && aud != graphResourceID {
		return deny("Invalid audience.")
	}
	p := &principal{
		tid: claimString(claims, "tid"), oid: claimString(claims, "oid"), upn: claimString(claims, "upn"),
		clientID: claimString(claims, "appid"), scopes: map[string]bool{}, roles: map[string]bool{},
		appOnly: claimString(claims, "idtyp") == "app",
	}
	for _, sc := range strings.Fields(claimString(claims, "scp")) {
		p.scopes[sc] = true
	}
	if rs, ok := claims["roles"].([]any); ok {
		for _, r := range rs {
			if v, ok := r.(string); ok {
				p.roles[v] = true
			}
		}
	}
	c.clientID = p.clientID
	return p, true
}

// resolveMailbox finds the mailbox a Graph request names and why p may not
// use it ("" when it may); a mailbox of another tenant is no mailbox.
func (s *Server) resolveMailbox(p *principal, who string, write bool) (mb *mailbox, denied string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	mb = s.mailboxByAddress(who)
	if mb == nil || mb.TenantID != p.tid {
		return nil, ""
	}
	return mb, s.accessDenied(p, mb, write)
}

// accessDenied returns why p may not use mb, or ""; s.mu held.
func (s *Server) accessDenied(p *principal, mb *mailbox, write bool) string {
	const msg = "Access is denied. Check credentials and try again."
	if p.appOnly {
		if !p.roles["Mail.ReadWrite"] && (write || !p.roles["Mail.Read"]) {
			return msg
		}
		if pol := s.grants.appPolicy[p.clientID]; pol != nil && !pol[mb.ID] {
			return "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
		}
		return ""
	}
	own := mb.ID == p.oid
	ok := p.scopes["Mail.ReadWrite.Shared"] || (!write && p.scopes["Mail.Read.Shared"])
	if own {
		ok = ok || p.scopes["Mail.ReadWrite"] || (!write && p.scopes["Mail.Read"])
	} else {
		ok = ok && s.grants.fullAccess[mb.ID][p.oid]
	}
	if !ok {
		return msg
	}
	return ""
}
