package graphtest

import (
	"context"
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

func TestCodeFlowPKCE(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tests := []struct {
		name       string
		mutate     func(f url.Values)
		status     int
		code       string
		aadsts     int
		redeemTwic bool
	}{
		{name: "right verifier", status: 200},
		{name: "wrong verifier", mutate: func(f url.Values) { f.Set("code_verifier", randToken(32)) }, status: 400, code: "invalid_grant", aadsts: 501481},
		{name: "other redirect uri", mutate: func(f url.Values) { f.Set("redirect_uri", "http://localhost:9999/connect/callback") }, status: 400, code: "invalid_grant", aadsts: 70000},
		{name: "unknown code", mutate: func(f url.Values) { f.Set("code", "1.Anot-a-code") }, status: 400, code: "invalid_grant", aadsts: 9002313},
		{name: "wrong secret", mutate: func(f url.Values) { f.Set("client_secret", "nope") }, status: 401, code: "invalid_client", aadsts: 7000215},
		{name: "missing secret", mutate: func(f url.Values) { f.Del("client_secret") }, status: 401, code: "invalid_client", aadsts: 7000218},
		{name: "code reused", status: 400, code: "invalid_grant", aadsts: 54005, redeemTwic: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, verifier := signIn(t, s, DefaultUser)
			form := url.Values{
				"grant_type": {"authorization_code"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
				"code": {code}, "redirect_uri": {DefaultRedirectURI}, "code_verifier": {verifier},
			}
			if tt.mutate != nil {
				tt.mutate(form)
			}
			if tt.redeemTwic {
				if st, _ := tokenCall(t, s, "organizations", form); st != 200 {
					t.Fatalf("first redemption %d", st)
				}
			}
			st, body := tokenCall(t, s, "organizations", form)
			if tt.status != 200 {
				wantTokenError(t, st, body, tt.status, tt.code, tt.aadsts)
				return
			}
			if st != 200 {
				t.Fatalf("%d %v", st, body)
			}
			for _, k := range []string{"access_token", "refresh_token", "id_token", "scope", "token_type"} {
				if body[k] == nil {
					t.Errorf("missing %s", k)
				}
			}
			if body["expires_in"].(float64) < 3000 || body["token_type"] != "Bearer" {
				t.Errorf("expires_in %v token_type %v", body["expires_in"], body["token_type"])
			}
			id := jwtClaims(t, body["id_token"].(string))
			want := map[string]any{"aud": DefaultClientID, "tid": DefaultTenantID, "oid": DefaultUserID, "preferred_username": DefaultUser,
				"nonce": "n-1", "iss": s.LoginURL() + "/" + DefaultTenantID + "/v2.0"}
			for k, v := range want {
				if id[k] != v {
					t.Errorf("id_token %s = %v, want %v", k, id[k], v)
				}
			}
			if g, _ := id["groups"].([]any); len(g) != 1 || g[0] != DefaultGroupID {
				t.Errorf("groups %v", id["groups"])
			}
			at := jwtClaims(t, body["access_token"].(string))
			if !strings.Contains(at["scp"].(string), "Mail.ReadWrite.Shared") || at["aud"] != graphResource {
				t.Errorf("access token %v", at)
			}
		})
	}
}

func TestAuthorizeRequests(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddTenant(Tenant{ID: "22222222-3333-4444-8555-666666666666", Domain: "strict.example", DisplayName: "Strict", UserConsentDisabled: true})
	s.AddUser(User{UPN: "bob@strict.example", Password: DefaultPassword, TenantID: "22222222-3333-4444-8555-666666666666"})
	_, challenge := pkcePair()
	pk := map[string]string{"code_challenge": challenge, "code_challenge_method": "S256"}
	with := func(extra map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range pk {
			m[k] = v
		}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	tests := []struct {
		name      string
		tenant    string
		q         map[string]string
		user      string
		password  string
		accept    bool
		wantErr   string // error from Authorize (page shown, no redirect)
		wantQuery string // OAuth error in the redirect
		wantDesc  string
		wantRedir string
	}{
		{name: "accept", tenant: "organizations", q: pk, user: DefaultUser, accept: true},
		{name: "tenant by domain", tenant: DefaultTenantDomain, q: pk, user: DefaultUser, accept: true},
		{name: "loopback redirect on any port", tenant: "common", q: with(map[string]string{"redirect_uri": "http://127.0.0.1:53124/connect/callback"}),
			user: DefaultUser, accept: true, wantRedir: "http://127.0.0.1:53124/connect/callback"},
		{name: "cancel", tenant: "organizations", q: pk, user: DefaultUser, accept: false, wantQuery: "access_denied", wantDesc: "AADSTS65004"},
		{name: "wrong password", tenant: "organizations", q: pk, user: DefaultUser, password: "nope", accept: true, wantErr: "AADSTS50126"},
		{name: "unknown user", tenant: "organizations", q: pk, user: "ghost@firma.example", accept: true, wantErr: "AADSTS50034"},
		{name: "unknown client", tenant: "organizations", q: with(map[string]string{"client_id": "99999999-9999-4999-8999-999999999999"}), user: DefaultUser, wantErr: "AADSTS700016"},
		{name: "unregistered redirect", tenant: "organizations", q: with(map[string]string{"redirect_uri": "https://evil.example/cb"}), user: DefaultUser, wantErr: "AADSTS50011"},
		{name: "no PKCE", tenant: "organizations", q: nil, user: DefaultUser, wantQuery: "invalid_request", wantDesc: "AADSTS9002325"},
		{name: "bad scope", tenant: "organizations", q: with(map[string]string{"scope": "openid https://graph.microsoft.com/Everything.All"}), user: DefaultUser, wantQuery: "invalid_scope", wantDesc: "AADSTS70011"},
		{name: "user consent disabled", tenant: "organizations", q: pk, user: "bob@strict.example", accept: true, wantQuery: "consent_required", wantDesc: "AADSTS65001"},
		{name: "user from another tenant", tenant: DefaultTenantID, q: pk, user: "bob@strict.example", accept: true, wantErr: "AADSTS50020"},
		{name: "unknown tenant", tenant: "nowhere.example", q: pk, user: DefaultUser, wantErr: "AADSTS90002"},
		{name: "prompt none", tenant: "organizations", q: with(map[string]string{"prompt": "none"}), user: DefaultUser, wantQuery: "login_required", wantDesc: "AADSTS50058"},
		{name: "login_hint alone", tenant: "organizations", q: with(map[string]string{"login_hint": DefaultUser}), user: DefaultUser, accept: true},
		{name: "select_account alone", tenant: "organizations", q: with(map[string]string{"prompt": "select_account"}), user: DefaultUser, accept: true},
		{name: "login_hint with select_account", tenant: "organizations", q: with(map[string]string{"login_hint": DefaultUser, "prompt": "select_account"}),
			user: DefaultUser, accept: true, wantErr: "AADSTS90005"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pw := tt.password
			if pw == "" {
				pw = DefaultPassword
			}
			u, err := Authorize(context.Background(), nil, authorizeURL(s, tt.tenant, tt.q), tt.user, pw, tt.accept)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err %v, want %s", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("state") != "st-1" {
				t.Errorf("state %q", q.Get("state"))
			}
			if tt.wantQuery != "" {
				if q.Get("error") != tt.wantQuery || !strings.HasPrefix(q.Get("error_description"), tt.wantDesc+": ") {
					t.Errorf("redirect %s", u)
				}
				return
			}
			if q.Get("code") == "" {
				t.Errorf("no code: %s", u)
			}
			want := DefaultRedirectURI
			if tt.wantRedir != "" {
				want = tt.wantRedir
			}
			if got := u.Scheme + "://" + u.Host + u.Path; got != want {
				t.Errorf("redirected to %s, want %s", got, want)
			}
		})
	}
}

func TestRefreshTokens(t *testing.T) {
	s := NewServer()
	defer s.Close()
	refresh := func(rt string) (int, map[string]any) {
		return tokenCall(t, s, "organizations", url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID},
			"client_secret": {DefaultClientSecret}, "refresh_token": {rt}})
	}
	clock := &fakeClock{}
	s.SetNow(clock.now)
	tests := []struct {
		name   string
		run    func(t *testing.T, rt string) (int, map[string]any)
		status int
		aadsts int
	}{
		{name: "rotation", status: 200, run: func(t *testing.T, rt string) (int, map[string]any) {
			st, body := refresh(rt)
			if st != 200 || body["refresh_token"] == rt || body["refresh_token"] == nil {
				t.Fatalf("rotation: %d %v", st, body)
			}
			st2, body2 := refresh(body["refresh_token"].(string))
			if st2 != 200 {
				t.Fatalf("new token refused: %d %v", st2, body2)
			}
			return st, body
		}},
		{name: "old token after rotation refused", status: 400, aadsts: 70008, run: func(t *testing.T, rt string) (int, map[string]any) {
			if st, _ := refresh(rt); st != 200 {
				t.Fatal("first refresh failed")
			}
			return refresh(rt)
		}},
		{name: "revoked", status: 400, aadsts: 50173, run: func(t *testing.T, rt string) (int, map[string]any) {
			s.RevokeRefreshTokens(DefaultUser)
			clock.add(time.Second)
			return refresh(rt)
		}},
		{name: "inactive for 90 days", status: 400, aadsts: 700082, run: func(t *testing.T, rt string) (int, map[string]any) {
			clock.add(91 * 24 * time.Hour)
			return refresh(rt)
		}},
		{name: "expired secret", status: 401, aadsts: 7000222, run: func(t *testing.T, rt string) (int, map[string]any) {
			s.ExpireClientSecret(DefaultClientID)
			defer s.AddApp(App{ClientID: DefaultClientID, ClientSecret: DefaultClientSecret, RedirectURIs: []string{DefaultRedirectURI}, RequirePKCE: true, GroupClaims: true})
			return refresh(rt)
		}},
		{name: "unconsented scope", status: 400, aadsts: 65001, run: func(t *testing.T, rt string) (int, map[string]any) {
			return tokenCall(t, s, "organizations", url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID},
				"client_secret": {DefaultClientSecret}, "refresh_token": {rt}, "scope": {"https://graph.microsoft.com/Mail.Send"}})
		}},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock.mu.Lock()
			clock.t = time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC).Add(time.Duration(i) * time.Minute)
			clock.mu.Unlock()
			_, rt := userToken(t, s, DefaultUser)
			clock.add(time.Second)
			st, body := tt.run(t, rt)
			if tt.status == 200 {
				return
			}
			code := "invalid_grant"
			if tt.status == 401 {
				code = "invalid_client"
			}
			wantTokenError(t, st, body, tt.status, code, tt.aadsts)
		})
	}
}

func TestClientCredentials(t *testing.T) {
	s := NewServer()
	defer s.Close()
	form := func(mut func(url.Values)) url.Values {
		f := url.Values{"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
			"scope": {"https://graph.microsoft.com/.default"}}
		if mut != nil {
			mut(f)
		}
		return f
	}
	tests := []struct {
		name   string
		tenant string
		form   url.Values
		before func()
		status int
		code   string
		aadsts int
	}{
		{name: "graph resource", tenant: DefaultTenantID, form: form(nil), status: 200},
		{name: "simulator resource", tenant: DefaultTenantDomain, form: form(func(f url.Values) { f.Set("scope", s.URL+"/.default") }), status: 200},
		{name: "scope without .default", tenant: DefaultTenantID, form: form(func(f url.Values) { f.Set("scope", "https://graph.microsoft.com/Mail.Read") }), status: 400, code: "invalid_scope", aadsts: 1002012},
		{name: "unknown resource", tenant: DefaultTenantID, form: form(func(f url.Values) { f.Set("scope", "https://vault.example/.default") }), status: 400, code: "invalid_resource", aadsts: 500011},
		{name: "wrong secret", tenant: DefaultTenantID, form: form(func(f url.Values) { f.Set("client_secret", "x") }), status: 401, code: "invalid_client", aadsts: 7000215},
		{name: "unknown client", tenant: DefaultTenantID, form: form(func(f url.Values) { f.Set("client_id", "99999999-9999-4999-8999-999999999999") }), status: 400, code: "unauthorized_client", aadsts: 700016},
		{name: "unknown tenant", tenant: "nowhere.example", form: form(nil), status: 400, code: "invalid_request", aadsts: 90002},
		{name: "expired secret", tenant: DefaultTenantID, form: form(nil), before: func() { s.ExpireClientSecret(DefaultClientID) }, status: 401, code: "invalid_client", aadsts: 7000222},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.before != nil {
				tt.before()
			}
			st, body := tokenCall(t, s, tt.tenant, tt.form)
			if tt.status != 200 {
				wantTokenError(t, st, body, tt.status, tt.code, tt.aadsts)
				return
			}
			if st != 200 {
				t.Fatalf("%d %v", st, body)
			}
			if body["refresh_token"] != nil || body["id_token"] != nil {
				t.Errorf("client credentials must not return refresh or id token")
			}
			c := jwtClaims(t, body["access_token"].(string))
			roles, _ := c["roles"].([]any)
			if c["idtyp"] != "app" || c["tid"] != DefaultTenantID || len(roles) == 0 || roles[0] != "Mail.ReadWrite" {
				t.Errorf("claims %v", c)
			}
		})
	}
}

func TestDiscoveryAndKeys(t *testing.T) {
	s := NewServer()
	defer s.Close()
	a := do(t, s, "GET", "/"+DefaultTenantID+"/v2.0/.well-known/openid-configuration", "", nil, nil)
	if a.status != 200 {
		t.Fatalf("%d", a.status)
	}
	d := a.json(t)
	if d["issuer"] != s.LoginURL()+"/"+DefaultTenantID+"/v2.0" || d["token_endpoint"] != s.LoginURL()+"/"+DefaultTenantID+"/oauth2/v2.0/token" {
		t.Errorf("discovery %v", d)
	}
	if c := do(t, s, "GET", "/common/v2.0/.well-known/openid-configuration", "", nil, nil).json(t); c["issuer"] != s.LoginURL()+"/{tenantid}/v2.0" {
		t.Errorf("common issuer %v", c["issuer"])
	}
	// An id_token verifies against the published key.
	access, _ := userToken(t, s, DefaultUser)
	_ = access
	code, verifier := signIn(t, s, DefaultUser)
	_, tok := redeem(t, s, code, verifier)
	idt := tok["id_token"].(string)
	keys := do(t, s, "GET", strings.TrimPrefix(d["jwks_uri"].(string), s.URL), "", nil, nil).json(t)["keys"].([]any)
	k := keys[0].(map[string]any)
	n, _ := base64.RawURLEncoding.DecodeString(k["n"].(string))
	e, _ := base64.RawURLEncoding.DecodeString(k["e"].(string))
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
	parts := strings.Split(idt, ".")
	hdr, _ := base64.RawURLEncoding.DecodeString(parts[0])
	var h map[string]string
	_ = json.Unmarshal(hdr, &h)
	if h["kid"] != k["kid"] || h["alg"] != "RS256" {
		t.Errorf("header %v, key %v", h, k["kid"])
	}
	sum := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	sig, _ := base64.RawURLEncoding.DecodeString(parts[2])
	if err := rsa.VerifyPKCS1v15(pub, crypto.SHA256, sum[:], sig); err != nil {
		t.Errorf("id_token does not verify with JWKS: %v", err)
	}
}

func TestGroupsOverage(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.AddUser(User{UPN: "many@firma.example", Password: DefaultPassword})
	for i := range 201 {
		s.AddGroup(Group{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), DisplayName: fmt.Sprint("g", i), Members: []string{"many@firma.example"}})
	}
	code, verifier := signIn(t, s, "many@firma.example")
	_, tok := redeem(t, s, code, verifier)
	c := jwtClaims(t, tok["id_token"].(string))
	if c["groups"] != nil || c["_claim_names"] == nil || c["_claim_sources"] == nil {
		t.Fatalf("want overage marker instead of groups: %v", c)
	}
	access := tok["access_token"].(string)
	a := do(t, s, "POST", "/v1.0/me/getMemberGroups", access, jsonBody(map[string]bool{"securityEnabledOnly": false}), nil)
	if n := len(a.json(t)["value"].([]any)); n != 201 {
		t.Errorf("getMemberGroups: %d", n)
	}
	total := 0
	next := "/v1.0/me/memberOf"
	for next != "" {
		b := do(t, s, "GET", next, access, nil, nil).json(t)
		total += len(b["value"].([]any))
		next, _ = b["@odata.nextLink"].(string)
	}
	if total != 201 {
		t.Errorf("memberOf paged total %d", total)
	}
}

func TestAdminConsent(t *testing.T) {
	s := NewServer()
	defer s.Close()
	const other = "44444444-5555-4666-8777-888888888888"
	s.AddApp(App{ClientID: other, ClientSecret: "s3cret", DisplayName: "customer app", RedirectURIs: []string{"http://localhost:8080/connect/admin"}})
	consentURL := s.LoginURL() + "/organizations/v2.0/adminconsent?" + url.Values{"client_id": {other},
		"redirect_uri": {"http://localhost:8080/connect/admin"}, "state": {"a-1"}, "scope": {"https://graph.microsoft.com/.default"}}.Encode()
	before := appToken(t, s, other, "s3cret")
	if do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages", before, nil, nil).status != 403 {
		t.Fatal("app-only without admin consent must be refused")
	}
	if _, err := Authorize(context.Background(), nil, consentURL, DefaultOtherUser, DefaultPassword, true); err == nil || !strings.Contains(err.Error(), "AADSTS90094") {
		t.Errorf("non-admin consent: %v", err)
	}
	u, err := Authorize(context.Background(), nil, consentURL, DefaultUser, DefaultPassword, false)
	if err != nil || u.Query().Get("error") != "access_denied" {
		t.Errorf("cancel: %v %v", u, err)
	}
	u, err = Authorize(context.Background(), nil, consentURL, DefaultUser, DefaultPassword, true)
	if err != nil {
		t.Fatal(err)
	}
	if q := u.Query(); q.Get("admin_consent") != "True" || q.Get("tenant") != DefaultTenantID || q.Get("state") != "a-1" {
		t.Errorf("redirect %s", u)
	}
	after := appToken(t, s, other, "s3cret")
	if a := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages", after, nil, nil); a.status != 200 {
		t.Errorf("after consent: %d %s", a.status, a.body)
	}
	_ = http.StatusOK
}

// TestTokenFaultAADSTS makes the token endpoint refuse refresh tokens with
// an AADSTS code of the test's choosing, in the body Microsoft documents,
// through the Go API and the /_sim/ control API.
func TestTokenFaultAADSTS(t *testing.T) {
	s := NewServer()
	defer s.Close()
	_, rt := userToken(t, s, DefaultUser)
	refresh := url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret}, "refresh_token": {rt}}

	s.Inject(Fault{PathContains: "/oauth2/v2.0/token", Token: TokenFault{Grant: "refresh_token", AADSTS: 99999, Suberror: "token_expired"}, Count: 1})
	// Another grant passes the fault by.
	appToken(t, s, DefaultClientID, DefaultClientSecret)
	st, body := tokenCall(t, s, "organizations", refresh)
	wantTokenError(t, st, body, http.StatusBadRequest, "invalid_grant", 99999)
	if body["suberror"] != "token_expired" {
		t.Errorf("suberror = %v, want token_expired", body["suberror"])
	}
	// Count 1: the refresh token itself was not spent by the refusal.
	if st, body := tokenCall(t, s, "organizations", refresh); st != http.StatusOK {
		t.Fatalf("after the fault: %d %v", st, body)
	}

	// The same through the control API, with the OAuth error and status
	// of an expired secret.
	resp, err := http.Post(s.URL+"/_sim/faults", "application/json", jsonBody(map[string]any{
		"pathContains": "/oauth2/v2.0/token", "grant": "client_credentials", "status": 401, "code": "invalid_client",
		"aadsts": 7000222, "description": "The provided client secret keys for app are expired.",
	}))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	st, body = tokenCall(t, s, DefaultTenantID, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"scope": {"https://graph.microsoft.com/.default"},
	})
	wantTokenError(t, st, body, http.StatusUnauthorized, "invalid_client", 7000222)
	if _, ok := body["suberror"]; ok {
		t.Errorf("suberror sent though none was asked for: %v", body["suberror"])
	}
	if d, _ := body["error_description"].(string); !strings.HasPrefix(d, "AADSTS7000222: The provided client secret keys for app are expired.\r\n") {
		t.Errorf("error_description %q", d)
	}
	if n := s.Counters().Requests["token"][http.StatusUnauthorized]; n != 1 {
		t.Errorf("counters show %d token answers 401, want 1", n)
	}
}

// TestAdminSignIn: an administrator's id_token carries the Global
// Administrator role in wids, a member's none; and an administrator may
// sign in where user consent is disabled (Entra offers admins the consent
// prompt), a member may not.
func TestAdminSignIn(t *testing.T) {
	s := NewServer()
	defer s.Close()
	for user, admin := range map[string]bool{DefaultUser: true, DefaultOtherUser: false} {
		code, verifier := signIn(t, s, user)
		status, body := redeem(t, s, code, verifier)
		if status != 200 {
			t.Fatalf("%s: %d %v", user, status, body)
		}
		claims := jwtClaims(t, body["id_token"].(string))
		wids, _ := claims["wids"].([]any)
		if got := len(wids) == 1 && wids[0] == globalAdministratorRole; got != admin {
			t.Errorf("%s: wids %v, admin %v", user, claims["wids"], admin)
		}
	}

	const strict = "22222222-3333-4444-8555-666666666666"
	s.AddTenant(Tenant{ID: strict, Domain: "strict.example", DisplayName: "Strict", UserConsentDisabled: true})
	s.AddUser(User{UPN: "bob@strict.example", Password: DefaultPassword, TenantID: strict})
	s.AddUser(User{UPN: "root@strict.example", Password: DefaultPassword, TenantID: strict, Admin: true})
	_, challenge := pkcePair()
	q := map[string]string{"code_challenge": challenge, "code_challenge_method": "S256", "scope": "openid profile email"}
	for user, ok := range map[string]bool{"root@strict.example": true, "bob@strict.example": false} {
		u, err := Authorize(t.Context(), nil, authorizeURL(s, strict, q), user, DefaultPassword, true)
		if err != nil {
			t.Fatal(err)
		}
		if got := u.Query().Get("code") != ""; got != ok {
			t.Errorf("%s signing in where user consent is disabled: %s", user, u)
		}
	}
}
