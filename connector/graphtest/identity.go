package graphtest

import (
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"fmt"
	"html/template"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strings"
	"time"
)

const (
	// globalAdministratorRole is the Global Administrator role's template id.
	globalAdministratorRole = "62e90394-69f5-4237-9190-012177145e10"

	codeLifetime       = 10 * time.Minute
	refreshInactivity  = 90 * 24 * time.Hour
	groupsOverageLimit = 200
)

// oidcScopes are the OpenID Connect scopes; everything else is a Graph permission.
var oidcScopes = map[string]bool{"openid": true, "profile": true, "email": true, "offline_access": true}

// graphScopes are the delegated Graph permissions the simulator knows.
var graphScopes = map[string]string{
	"User.Read":             "Sign you in and read your profile",
	"User.ReadBasic.All":    "Read all users' basic profiles",
	"Mail.Read":             "Read your mail",
	"Mail.ReadWrite":        "Read and write access to your mail",
	"Mail.Read.Shared":      "Read mail you can access",
	"Mail.ReadWrite.Shared": "Read and write mail you can access",
	"Mail.Send":             "Send mail as you",
	"GroupMember.Read.All":  "Read group memberships",
}

type authCode struct {
	clientID, redirectURI string
	challenge, method     string
	oid, tid, nonce       string
	scopes                []string
	issued                time.Time
	used                  bool
}

type refreshToken struct {
	clientID, oid, tid string
	scopes             []string
	issued, lastUsed   time.Time
	used               bool
}

const pageTemplate = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{{.Title}}</title></head>
<body>
<h1>{{.Title}}</h1>
{{if .Error}}<p class="error" role="alert">{{.Error}}</p>{{end}}
<p><strong>{{.AppName}}</strong> ({{.ClientID}}) wants to:</p>
<ul class="permissions">{{range .Permissions}}<li>{{.}}</li>{{end}}</ul>
{{if .Admin}}<p>Accepting grants these permissions for your whole organization.</p>{{end}}
<form method="post" action="{{.Action}}">
{{range $k, $v := .Hidden}}<input type="hidden" name="{{$k}}" value="{{$v}}">
{{end}}<label>Email, phone, or Skype <input type="email" name="login" id="i0116" value="{{.Login}}" autocomplete="username"></label>
<label>Password <input type="password" name="passwd" id="i0118" autocomplete="current-password"></label>
<button type="submit" name="action" value="accept" id="accept">Accept</button>
<button type="submit" name="action" value="cancel" id="cancel">Cancel</button>
</form>
</body></html>
`

const errorTemplate = `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to your account</title></head>
<body><h1>Sorry, but we're having trouble signing you in.</h1><p id="error">{{.}}</p></body></html>
`

type pageData struct {
	Title, Error, AppName, ClientID, Action, Login string
	Permissions                                    []string
	Hidden                                         map[string]string
	Admin                                          bool
}

func (s *Server) serveIdentity(c *call, segs []string) {
	if strings.Join(segs, "/") == "oidc/userinfo" {
		c.endpoint = "userinfo"
		s.userinfo(c)
		return
	}
	if len(segs) < 2 {
		c.endpoint = "unknown"
		http.NotFound(c.w, c.r)
		return
	}
	rest := strings.Join(segs[1:], "/")
	switch rest {
	case "oauth2/v2.0/authorize":
		c.endpoint = "authorize"
	case "oauth2/v2.0/token":
		c.endpoint = "token"
	case "v2.0/adminconsent":
		c.endpoint = "adminconsent"
	case "v2.0/.well-known/openid-configuration":
		c.endpoint = "discovery"
	case "discovery/v2.0/keys", "discovery/keys":
		c.endpoint = "keys"
	case "oauth2/v2.0/logout":
		c.endpoint = "logout"
	default:
		c.endpoint = "unknown"
		http.NotFound(c.w, c.r)
		return
	}
	answered, finish := s.applyFault(c)
	if answered {
		return
	}
	defer finish()
	switch c.endpoint {
	case "authorize":
		s.authorize(c, segs[0], false)
	case "adminconsent":
		s.authorize(c, segs[0], true)
	case "token":
		s.token(c, segs[0])
	case "discovery":
		s.discovery(c, segs[0])
	case "keys":
		writeJSON(c.w, http.StatusOK, s.jwks(baseURL(c.r)+"/{tenantid}/v2.0"))
	case "logout":
		if u := c.r.URL.Query().Get("post_logout_redirect_uri"); u != "" {
			http.Redirect(c.w, c.r, u, http.StatusFound)
			return
		}
		c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(c.w, "<!DOCTYPE html><title>Signed out</title><p>You signed out of your account.</p>")
	}
}

// tenantFor resolves a tenant path segment; "common" and "organizations"
// return nil with ok true.
func (s *Server) tenantFor(seg string) (t *Tenant, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch strings.ToLower(seg) {
	case "common", "organizations":
		return nil, true
	}
	if t := s.dir.tenants[strings.ToLower(seg)]; t != nil {
		return t, true
	}
	for _, t := range s.dir.tenants {
		if strings.EqualFold(t.Domain, seg) || strings.EqualFold(t.ID, seg) {
			return t, true
		}
	}
	return nil, false
}

func (s *Server) discovery(c *call, tenant string) {
	t, ok := s.tenantFor(tenant)
	if !ok {
		aadError(c.w, http.StatusBadRequest, "invalid_tenant", 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenant))
		return
	}
	base := baseURL(c.r)
	tid := "{tenantid}"
	if t != nil {
		tid = t.ID
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"token_endpoint":                        base + "/" + tenant + "/oauth2/v2.0/token",
		"token_endpoint_auth_methods_supported": []string{"client_secret_post", "private_key_jwt", "client_secret_basic"},
		"jwks_uri":                              base + "/" + tenant + "/discovery/v2.0/keys",
		"response_modes_supported":              []string{"query", "fragment", "form_post"},
		"subject_types_supported":               []string{"pairwise"},
		"id_token_signing_alg_values_supported": []string{"RS256"},
		"response_types_supported":              []string{"code", "id_token", "code id_token", "id_token token"},
		"scopes_supported":                      []string{"openid", "profile", "email", "offline_access"},
		"issuer":                                base + "/" + tid + "/v2.0",
		"request_uri_parameter_supported":       false,
		"userinfo_endpoint":                     base + "/oidc/userinfo",
		"authorization_endpoint":                base + "/" + tenant + "/oauth2/v2.0/authorize",
		"device_authorization_endpoint":         base + "/" + tenant + "/oauth2/v2.0/devicecode",
		"http_logout_supported":                 true,
		"frontchannel_logout_supported":         true,
		"end_session_endpoint":                  base + "/" + tenant + "/oauth2/v2.0/logout",
		"claims_supported": []string{"sub", "iss", "cloud_instance_name", "cloud_instance_host_name", "cloud_graph_host_name",
			"msgraph_host", "aud", "exp", "iat", "auth_time", "acr", "nonce", "preferred_username", "name", "tid", "ver",
			"at_hash", "c_hash", "email"},
		"kerberos_endpoint":                base + "/" + tenant + "/kerberos",
		"tenant_region_scope":              "EU",
		"cloud_instance_name":              "microsoftonline.com",
		"cloud_graph_host_name":            "graph.windows.net",
		"msgraph_host":                     strings.TrimPrefix(strings.TrimPrefix(base, "http://"), "https://"),
		"rbac_url":                         "https://pas.windows.net",
		"code_challenge_methods_supported": []string{"plain", "S256"},
	})
}

// redirectAllowed applies Microsoft's rules: an exact match, or for
// loopback redirects the same scheme, host kind and path on any port.
func redirectAllowed(app *App, redirect string) bool {
	for _, r := range app.RedirectURIs {
		if r == redirect {
			return true
		}
	}
	u, err := url.Parse(redirect)
	if err != nil || u.Scheme != "http" || !isLoopback(u.Hostname()) {
		return false
	}
	for _, r := range app.RedirectURIs {
		ru, err := url.Parse(r)
		if err == nil && ru.Scheme == "http" && isLoopback(ru.Hostname()) && ru.Path == u.Path {
			return true
		}
	}
	return false
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// authParams is a validated authorize or admin consent request.
type authParams struct {
	app      *App
	tenant   *Tenant // nil for common/organizations
	redirect string
	state    string
	scopes   []string // normalized: OIDC names and Graph permission names
	hidden   map[string]string
}

// parseScopes normalizes requested scopes; resource prefixes of Graph (or
// of the simulator itself) are removed.
func parseScopes(raw, host string, defaults []string) ([]string, string) {
	var out []string
	seen := map[string]bool{}
	for _, sc := range strings.Fields(raw) {
		name := sc
		if i := strings.LastIndex(sc, "/"); i >= 0 {
			res := sc[:i]
			name = sc[i+1:]
			if !graphLikeResource(res, host) {
				return nil, sc
			}
		}
		if name == ".default" {
			for _, d := range defaults {
				if !seen[d] {
					seen[d] = true
					out = append(out, d)
				}
			}
			continue
		}
		if !oidcScopes[name] {
			if _, ok := graphScopes[name]; !ok {
				return nil, sc
			}
		}
		if !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	return out, ""
}

func graphLikeResource(res, host string) bool {
	res = strings.TrimSuffix(res, "/")
	if res == graphResource || res == graphResourceID {
		return true
	}
	u, err := url.Parse(res)
	return err == nil && (u.Scheme == "http" || u.Scheme == "https") && u.Host == host
}

// errorPage is what the identity platform shows when it cannot redirect.
func (s *Server) errorPage(c *call, aadsts int, msg string) {
	t := template.Must(template.New("error").Parse(errorTemplate))
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.WriteHeader(http.StatusBadRequest)
	_ = t.Execute(c.w, fmt.Sprintf("AADSTS%d: %s", aadsts, msg))
}

// redirectError sends the browser back to the app with an OAuth error.
func redirectError(c *call, redirect, state, code string, aadsts int, msg string) {
	q := url.Values{}
	q.Set("error", code)
	q.Set("error_description", fmt.Sprintf("AADSTS%d: %s Trace ID: %s Correlation ID: %s Timestamp: %s",
		aadsts, msg, newGUID(), newGUID(), time.Now().UTC().Format("2006-01-02 15:04:05Z")))
	q.Set("error_uri", fmt.Sprintf("https://login.microsoftonline.com/error?code=%d", aadsts))
	if state != "" {
		q.Set("state", state)
	}
	redirectTo(c, redirect, q)
}

func redirectTo(c *call, redirect string, q url.Values) {
	u, _ := url.Parse(redirect)
	uq := u.Query()
	for k, v := range q {
		uq[k] = v
	}
	u.RawQuery = uq.Encode()
	http.Redirect(c.w, c.r, u.String(), http.StatusFound)
}

// authorize serves the authorize endpoint (admin=false) and the admin
// consent endpoint (admin=true): the sign-in and consent page, and its form.
func (s *Server) authorize(c *call, tenantSeg string, admin bool) {
	if err := c.r.ParseForm(); err != nil {
		s.errorPage(c, 900144, "The request is malformed.")
		return
	}
	form := c.r.Form
	tenant, ok := s.tenantFor(tenantSeg)
	if !ok {
		s.errorPage(c, 90002, fmt.Sprintf("Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenantSeg))
		return
	}
	clientID := form.Get("client_id")
	s.mu.Lock()
	app := s.dir.apps[clientID]
	s.mu.Unlock()
	if app == nil {
		s.errorPage(c, 700016, fmt.Sprintf("Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenantSeg))
		return
	}
	redirect := form.Get("redirect_uri")
	if redirect == "" && len(app.RedirectURIs) > 0 {
		redirect = app.RedirectURIs[0]
	}
	if !redirectAllowed(app, redirect) {
		s.errorPage(c, 50011, fmt.Sprintf("The redirect URI '%s' specified in the request does not match the redirect URIs configured for the application '%s'. Make sure the redirect URI sent in the request matches one added to your application in the Azure portal.", redirect, clientID))
		return
	}
	state := form.Get("state")
	p := authParams{app: app, tenant: tenant, redirect: redirect, state: state, hidden: map[string]string{}}
	keep := []string{"client_id", "response_type", "redirect_uri", "scope", "state", "nonce", "code_challenge", "code_challenge_method", "response_mode", "prompt", "login_hint"}
	for _, k := range keep {
		if v := form.Get(k); v != "" {
			p.hidden[k] = v
		}
	}
	rawScope := form.Get("scope")
	if !admin {
		if rt := form.Get("response_type"); rt != "code" {
			redirectError(c, redirect, state, "unsupported_response_type", 700054, fmt.Sprintf("response_type '%s' is not enabled for the application.", rt))
			return
		}
		if rawScope == "" {
			redirectError(c, redirect, state, "invalid_request", 900144, "The request body must contain the following parameter: 'scope'.")
			return
		}
		ch, method := form.Get("code_challenge"), form.Get("code_challenge_method")
		if app.RequirePKCE && ch == "" {
			redirectError(c, redirect, state, "invalid_request", 9002325, "Proof Key for Code Exchange is required for cross-origin authorization code redemption.")
			return
		}
		if ch != "" && method != "S256" && (app.RequirePKCE || method != "plain" && method != "") {
			redirectError(c, redirect, state, "invalid_request", 501491, "Invalid code_challenge_method. The application requires 'S256'.")
			return
		}
	}
	if rawScope == "" {
		rawScope = graphResource + "/.default"
	}
	scopes, bad := parseScopes(rawScope, c.r.Host, app.Scopes)
	if bad != "" {
		redirectError(c, redirect, state, "invalid_scope", 70011, fmt.Sprintf("The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid.", bad))
		return
	}
	p.scopes = scopes
	if form.Get("login_hint") != "" && slices.Contains(strings.Fields(form.Get("prompt")), "select_account") {
		// Microsoft's documentation: send login_hint or
		// prompt=select_account, not both; the service refuses conflicting
		// hints on its error page (AADSTS90005 is its answer to sid with
		// login_hint, and the one the simulator gives for this pair).
		s.errorPage(c, 90005, "Unable to complete request. The request was invalid since login_hint and prompt=select_account cannot be used together.")
		return
	}
	if form.Get("prompt") == "none" {
		// The simulator keeps no browser session, so silent sign-in always fails.
		redirectError(c, redirect, state, "login_required", 50058, "A silent sign-in request was sent but no user is signed in.")
		return
	}
	if c.r.Method == http.MethodGet {
		s.renderConsent(c, p, admin, form.Get("login_hint"), "")
		return
	}
	if c.r.Method != http.MethodPost {
		s.errorPage(c, 900561, "The endpoint only accepts GET and POST requests.")
		return
	}
	if c.r.PostForm.Get("action") == "cancel" {
		if admin {
			redirectTo(c, redirect, url.Values{"error": {"access_denied"}, "error_subcode": {"cancel"}, "state": {state},
				"error_description": {"AADSTS65004: User declined to consent to access the app."}})
			return
		}
		redirectError(c, redirect, state, "access_denied", 65004, "User declined to consent to access the app.")
		return
	}
	login, passwd := c.r.PostForm.Get("login"), c.r.PostForm.Get("passwd")
	s.mu.Lock()
	u := s.dir.users[strings.ToLower(login)]
	var ut *Tenant
	if u != nil {
		ut = s.dir.tenants[u.TenantID]
	}
	s.mu.Unlock()
	switch {
	case u == nil || ut == nil:
		s.renderConsent(c, p, admin, login, "AADSTS50034: The user account does not exist in the directory. To sign into this application, the account must be added to the directory.")
		return
	case subtle.ConstantTimeCompare([]byte(u.Password), []byte(passwd)) != 1:
		s.renderConsent(c, p, admin, login, "AADSTS50126: Error validating credentials due to invalid username or password.")
		return
	case tenant != nil && tenant.ID != ut.ID:
		s.renderConsent(c, p, admin, login, fmt.Sprintf("AADSTS50020: User account '%s' from identity provider does not exist in tenant '%s' and cannot access the application '%s'(%s) in that tenant.", login, tenant.DisplayName, app.ClientID, app.DisplayName))
		return
	}
	if admin {
		if !u.Admin {
			s.renderConsent(c, p, admin, login, "AADSTS90094: Admin consent is required for the permissions requested by this application. An admin consent request may be sent to the admin.")
			return
		}
		s.GrantAdminConsent(ut.ID, app.ClientID)
		redirectTo(c, redirect, url.Values{"admin_consent": {"True"}, "tenant": {ut.ID}, "state": {state}, "scope": {rawScope}})
		return
	}
	s.mu.Lock()
	consentKey := ut.ID + "|" + app.ClientID + "|" + u.ID
	covered := s.grants.adminOK[ut.ID+"|"+app.ClientID]
	for _, sc := range scopes {
		covered = covered && (oidcScopes[sc] || containsFold(app.Scopes, sc))
	}
	// An administrator may always consent for themselves, so their
	// sign-in works where user consent is disabled (as Microsoft Entra
	// offers admins the consent prompt instead of "Need admin approval").
	if ut.UserConsentDisabled && !covered && !u.Admin {
		s.mu.Unlock()
		redirectError(c, redirect, state, "consent_required", 65001, fmt.Sprintf("The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", app.ClientID, app.DisplayName))
		return
	}
	if s.grants.userOK[consentKey] == nil {
		s.grants.userOK[consentKey] = map[string]bool{}
	}
	for _, sc := range scopes {
		s.grants.userOK[consentKey][sc] = true
	}
	code := "1.A" + randToken(48)
	s.tokens.codes[code] = &authCode{
		clientID: app.ClientID, redirectURI: form.Get("redirect_uri"), challenge: form.Get("code_challenge"),
		method: form.Get("code_challenge_method"), oid: u.ID, tid: ut.ID, nonce: form.Get("nonce"),
		scopes: scopes, issued: s.now(),
	}
	s.mu.Unlock()
	q := url.Values{"code": {code}, "session_state": {newGUID()}}
	if state != "" {
		q.Set("state", state)
	}
	redirectTo(c, redirect, q)
}

func (s *Server) renderConsent(c *call, p authParams, admin bool, login, errMsg string) {
	t := template.Must(template.New("page").Parse(pageTemplate))
	var perms []string
	for _, sc := range p.scopes {
		switch {
		case graphScopes[sc] != "":
			perms = append(perms, sc+": "+graphScopes[sc])
		case sc == "offline_access":
			perms = append(perms, "offline_access: Maintain access to data you have given it access to")
		case sc == "openid" || sc == "profile" || sc == "email":
			perms = append(perms, sc+": View your basic profile")
		}
	}
	title := "Permissions requested"
	if admin {
		title = "Permissions requested — Accept for your organization"
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.Header().Set("Cache-Control", "no-store")
	c.w.WriteHeader(http.StatusOK)
	_ = t.Execute(c.w, pageData{
		Title: title, Error: errMsg, AppName: p.app.DisplayName, ClientID: p.app.ClientID,
		Action: c.r.URL.Path, Login: login, Permissions: perms, Hidden: p.hidden, Admin: admin,
	})
}

// token serves the token endpoint.
func (s *Server) token(c *call, tenantSeg string) {
	if c.r.Method != http.MethodPost {
		aadError(c.w, http.StatusBadRequest, "invalid_request", 900561, "The endpoint only accepts POST requests. Received a "+c.r.Method+" request.")
		return
	}
	if err := c.r.ParseForm(); err != nil {
		aadError(c.w, http.StatusBadRequest, "invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
		return
	}
	resp, terr := s.tokenResponse(c, tenantSeg)
	if terr != nil {
		aadError(c.w, terr.status, terr.code, terr.aadsts, terr.desc)
		return
	}
	c.w.Header().Set("Cache-Control", "no-store, no-cache")
	c.w.Header().Set("Pragma", "no-cache")
	writeJSON(c.w, http.StatusOK, resp)
}

func badRequest(code string, aadsts int, format string, a ...any) *tokenErr {
	return &tokenErr{status: http.StatusBadRequest, code: code, aadsts: aadsts, desc: fmt.Sprintf(format, a...)}
}

func (s *Server) tokenResponse(c *call, tenantSeg string) (map[string]any, *tokenErr) {
	f := c.r.PostForm
	clientID, secret := f.Get("client_id"), f.Get("client_secret")
	if id, sec, ok := c.r.BasicAuth(); ok {
		clientID, _ = url.QueryUnescape(id)
		secret, _ = url.QueryUnescape(sec)
	}
	grant := f.Get("grant_type")
	if grant == "" {
		return nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'grant_type'.")
	}
	if clientID == "" {
		return nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'client_id'.")
	}
	tenant, ok := s.tenantFor(tenantSeg)
	if !ok {
		return nil, badRequest("invalid_request", 90002, "Tenant '%s' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.", tenantSeg)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	app := s.dir.apps[clientID]
	if app == nil {
		return nil, badRequest("unauthorized_client", 700016, "Application with identifier '%s' was not found in the directory '%s'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You may have sent your authentication request to the wrong tenant.", clientID, tenantSeg)
	}
	if app.ClientSecret != "" || grant == "client_credentials" {
		switch {
		case secret == "":
			return nil, &tokenErr{http.StatusUnauthorized, "invalid_client", 7000218, "The request body must contain the following parameter: 'client_assertion' or 'client_secret'."}
		case subtle.ConstantTimeCompare([]byte(secret), []byte(app.ClientSecret)) != 1:
			return nil, &tokenErr{http.StatusUnauthorized, "invalid_client", 7000215, fmt.Sprintf("Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '%s'.", clientID)}
		case s.grants.expired[clientID]:
			return nil, &tokenErr{http.StatusUnauthorized, "invalid_client", 7000222, fmt.Sprintf("The provided client secret keys for app '%s' are expired. Visit the Azure portal to create new keys for your app: https://aka.ms/NewClientSecret, or consider using certificate credentials for added security: https://aka.ms/certCreds.", clientID)}
		}
	}
	now := s.now()
	switch grant {
	case "authorization_code":
		return s.redeemCode(c, app, now)
	case "refresh_token":
		return s.redeemRefresh(c, app, now)
	case "client_credentials":
		if tenant == nil {
			return nil, badRequest("invalid_request", 90002, "Tenant '%s' is not a valid tenant for the client credentials flow. Use a tenant id or domain.", tenantSeg)
		}
		scope := f.Get("scope")
		if !strings.HasSuffix(scope, "/.default") || len(strings.Fields(scope)) != 1 {
			return nil, badRequest("invalid_scope", 1002012, "The provided value for scope %s is not valid. Client credential flows must have a scope value with /.default suffixed to the resource identifier (application ID URI).", scope)
		}
		if !graphLikeResource(strings.TrimSuffix(scope, "/.default"), c.r.Host) {
			return nil, badRequest("invalid_resource", 500011, "The resource principal named %s was not found in the tenant named %s. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant. You might have sent your authentication request to the wrong tenant.", strings.TrimSuffix(scope, "/.default"), tenant.DisplayName)
		}
		claims := s.baseAccessClaims(c, tenant.ID, app.ClientID, now)
		claims["idtyp"] = "app"
		spID := servicePrincipalID(tenant.ID, app.ClientID)
		claims["oid"], claims["sub"] = spID, spID
		if s.grants.adminOK[tenant.ID+"|"+app.ClientID] {
			claims["roles"] = app.Roles
		}
		return map[string]any{
			"token_type": "Bearer", "expires_in": int(s.tokens.tokenTTL.Seconds()), "ext_expires_in": int(s.tokens.tokenTTL.Seconds()),
			"access_token": s.signJWT(claims),
		}, nil
	}
	return nil, badRequest("unsupported_grant_type", 70003, "The app requested an unsupported grant type '%s'.", grant)
}

// redeemCode exchanges an authorization code; s.mu held.
func (s *Server) redeemCode(c *call, app *App, now time.Time) (map[string]any, *tokenErr) {
	f := c.r.PostForm
	raw := f.Get("code")
	if raw == "" {
		return nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'code'.")
	}
	code := s.tokens.codes[raw]
	switch {
	case code == nil:
		return nil, badRequest("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	case code.used:
		return nil, badRequest("invalid_grant", 54005, "OAuth2 Authorization code was already redeemed, please retry with a new valid code or use an existing refresh token.")
	case now.Sub(code.issued) > codeLifetime:
		return nil, badRequest("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	case code.clientID != app.ClientID:
		return nil, badRequest("invalid_grant", 70000, "The provided value for the 'code' parameter is not valid. The code was issued to a different client.")
	}
	code.used = true // single use, also when the redemption fails below
	if f.Get("redirect_uri") != code.redirectURI {
		return nil, badRequest("invalid_grant", 70000, "The provided value for the 'redirect_uri' is not valid. The value must exactly match the redirect URI used to obtain the authorization code.")
	}
	if code.challenge != "" {
		v := f.Get("code_verifier")
		if v == "" {
			return nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'code_verifier'.")
		}
		want := code.challenge
		got := v
		if code.method == "S256" {
			sum := sha256.Sum256([]byte(v))
			got = base64.RawURLEncoding.EncodeToString(sum[:])
		}
		if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
			return nil, badRequest("invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
		}
	}
	u := s.userByID(code.oid)
	if u == nil {
		return nil, badRequest("invalid_grant", 50034, "The user account does not exist in the directory.")
	}
	return s.userTokens(c, app, u, code.tid, code.scopes, code.nonce, now), nil
}

// redeemRefresh rotates a refresh token; s.mu held.
func (s *Server) redeemRefresh(c *call, app *App, now time.Time) (map[string]any, *tokenErr) {
	f := c.r.PostForm
	raw := f.Get("refresh_token")
	if raw == "" {
		return nil, badRequest("invalid_request", 900144, "The request body must contain the following parameter: 'refresh_token'.")
	}
	rt := s.tokens.refresh[raw]
	if rt == nil {
		return nil, badRequest("invalid_grant", 9002313, "Invalid request. Request is malformed or invalid.")
	}
	if rt.clientID != app.ClientID {
		return nil, badRequest("invalid_grant", 70000, "The provided value for the 'refresh_token' parameter is not valid. The token was issued to a different client.")
	}
	if at, ok := s.tokens.revokedAt[rt.oid]; ok && !rt.issued.After(at) {
		return nil, badRequest("invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed. The user might have changed or reset their password. The grant was issued on '%s' and the TokensValidFrom date (before which tokens are not valid) for this user is '%s'.",
			rt.issued.UTC().Format("2006-01-02T15:04:05.0000000Z"), at.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	}
	if rt.used {
		return nil, badRequest("invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity. Send a new interactive authorization request for this user and resource.")
	}
	if now.Sub(rt.lastUsed) > refreshInactivity {
		return nil, badRequest("invalid_grant", 700082, "The refresh token has expired due to inactivity. The token was issued on %s and was inactive for 90.00:00:00.",
			rt.issued.UTC().Format("2006-01-02T15:04:05.0000000Z"))
	}
	u := s.userByID(rt.oid)
	if u == nil {
		return nil, badRequest("invalid_grant", 50034, "The user account does not exist in the directory.")
	}
	scopes := rt.scopes
	if req := f.Get("scope"); req != "" {
		want, bad := parseScopes(req, c.r.Host, app.Scopes)
		if bad != "" {
			return nil, badRequest("invalid_scope", 70011, "The provided value for the input parameter 'scope' is not valid. The scope '%s' is not valid.", bad)
		}
		consented := s.grants.userOK[rt.tid+"|"+app.ClientID+"|"+u.ID]
		admin := s.grants.adminOK[rt.tid+"|"+app.ClientID]
		for _, sc := range want {
			if !oidcScopes[sc] && !consented[sc] && !(admin && containsFold(app.Scopes, sc)) {
				return nil, badRequest("invalid_grant", 65001, "The user or administrator has not consented to use the application with ID '%s' named '%s'. Send an interactive authorization request for this user and resource.", app.ClientID, app.DisplayName)
			}
		}
		scopes = want
		if !containsFold(scopes, "offline_access") {
			scopes = append(scopes, "offline_access")
		}
	}
	rt.used = true
	return s.userTokens(c, app, u, rt.tid, scopes, "", now), nil
}

// userTokens issues delegated tokens; s.mu held.
func (s *Server) userTokens(c *call, app *App, u *user, tid string, scopes []string, nonce string, now time.Time) map[string]any {
	var graph, granted []string
	has := map[string]bool{}
	for _, sc := range scopes {
		has[sc] = true
		if !oidcScopes[sc] {
			graph = append(graph, sc)
		}
	}
	sort.Strings(graph)
	granted = append(granted, graph...)
	for _, sc := range []string{"profile", "openid", "email"} {
		if has[sc] {
			granted = append(granted, sc)
		}
	}
	claims := s.baseAccessClaims(c, tid, app.ClientID, now)
	claims["idtyp"] = "user"
	claims["oid"], claims["sub"] = u.ID, pairwiseSub(u.ID, app.ClientID)
	claims["upn"], claims["unique_name"], claims["name"] = u.UPN, u.UPN, u.DisplayName
	claims["scp"] = strings.Join(graph, " ")
	resp := map[string]any{
		"token_type": "Bearer", "scope": strings.Join(granted, " "),
		"expires_in": int(s.tokens.tokenTTL.Seconds()), "ext_expires_in": int(s.tokens.tokenTTL.Seconds()),
		"access_token": s.signJWT(claims),
	}
	if has["offline_access"] {
		tok := "1.A" + randToken(96)
		s.tokens.refresh[tok] = &refreshToken{clientID: app.ClientID, oid: u.ID, tid: tid, scopes: scopes, issued: now, lastUsed: now}
		resp["refresh_token"] = tok
	}
	if has["openid"] {
		resp["id_token"] = s.idToken(c, app, u, tid, nonce, now)
	}
	return resp
}

func (s *Server) baseAccessClaims(c *call, tid, clientID string, now time.Time) map[string]any {
	return map[string]any{
		"aud": graphResource, "iss": "https://sts.windows.net/" + tid + "/",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(s.tokens.tokenTTL).Unix(),
		"appid": clientID, "appidacr": "1", "tid": tid, "ver": "1.0", "uti": randToken(16),
		"xms_sim_host": c.r.Host,
	}
}

// idToken builds the OIDC id_token; s.mu held.
func (s *Server) idToken(c *call, app *App, u *user, tid, nonce string, now time.Time) string {
	claims := map[string]any{
		"iss": baseURL(c.r) + "/" + tid + "/v2.0", "aud": app.ClientID, "tid": tid, "oid": u.ID,
		"sub": pairwiseSub(u.ID, app.ClientID), "preferred_username": u.UPN, "name": u.DisplayName, "email": u.UPN,
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(), "ver": "2.0", "uti": randToken(16),
	}
	if nonce != "" {
		claims["nonce"] = nonce
	}
	if app.GroupClaims {
		groups := s.groupsOf(u)
		if len(groups) > groupsOverageLimit {
			claims["_claim_names"] = map[string]string{"groups": "src1"}
			claims["_claim_sources"] = map[string]any{"src1": map[string]string{
				"endpoint": baseURL(c.r) + "/v1.0/users/" + u.ID + "/getMemberObjects"}}
		} else {
			ids := make([]string, 0, len(groups))
			for _, g := range groups {
				ids = append(ids, g.ID)
			}
			claims["groups"] = ids
		}
		// With directory roles in the app's group claims (All or
		// DirectoryRole), Entra emits the active roles' template ids as
		// wids; an admin here is a Global Administrator.
		if u.Admin {
			claims["wids"] = []string{globalAdministratorRole}
		}
	}
	return s.signJWT(claims)
}

func pairwiseSub(oid, clientID string) string {
	sum := sha256.Sum256([]byte(oid + "|" + clientID))
	return base64.RawURLEncoding.EncodeToString(sum[:])[:43]
}

// servicePrincipalID is a stable object id for the app in a tenant.
func servicePrincipalID(tid, clientID string) string {
	sum := sha256.Sum256([]byte(tid + "|" + clientID))
	b := sum[:16]
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// userinfo serves the OIDC userinfo endpoint (a Graph-audience token).
func (s *Server) userinfo(c *call) {
	c.graph = true
	p, ok := s.authenticate(c)
	if !ok {
		return
	}
	s.mu.Lock()
	u := s.userByID(p.oid)
	s.mu.Unlock()
	if u == nil || p.appOnly {
		graphError(c.w, c.r, http.StatusUnauthorized, "InvalidAuthenticationToken", "The token has no user.")
		return
	}
	writeJSON(c.w, http.StatusOK, map[string]any{
		"sub": pairwiseSub(u.ID, p.clientID), "name": u.DisplayName, "email": u.UPN,
		"family_name": nil, "given_name": nil, "picture": baseURL(c.r) + "/v1.0/me/photo/$value",
	})
}
