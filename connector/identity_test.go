package connector

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

func TestAuthCodeURL(t *testing.T) {
	id, err := NewIdentity(IdentityConfig{ClientID: "cid", ClientSecret: "s", RedirectURL: "https://mg.example/connect/callback"})
	if err != nil {
		t.Fatal(err)
	}
	req := NewAuthRequest()
	if req.State == "" || req.Nonce == "" || len(req.Verifier) < 43 || req.State == req.Nonce {
		t.Fatalf("NewAuthRequest = %+v", req)
	}
	if other := NewAuthRequest(); other.State == req.State || other.Verifier == req.Verifier {
		t.Fatal("two auth requests share values")
	}
	u, err := url.Parse(id.AuthCodeURL(req, "anna@firma.example"))
	if err != nil {
		t.Fatal(err)
	}
	if got := u.Scheme + "://" + u.Host + u.Path; got != "https://login.microsoftonline.com/organizations/oauth2/v2.0/authorize" {
		t.Fatalf("authorize endpoint = %s", got)
	}
	q := u.Query()
	want := map[string]string{
		"client_id":             "cid",
		"response_type":         "code",
		"redirect_uri":          "https://mg.example/connect/callback",
		"state":                 req.State,
		"nonce":                 req.Nonce,
		"login_hint":            "anna@firma.example",
		"code_challenge_method": "S256",
		"code_challenge":        oauth2.S256ChallengeFromVerifier(req.Verifier),
		"scope":                 "openid profile email offline_access User.Read Mail.ReadWrite.Shared",
	}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
	if q.Has("code_verifier") || strings.Contains(u.String(), req.Verifier) {
		t.Error("the PKCE verifier leaks into the authorization URL")
	}
	if q.Has("prompt") {
		t.Errorf("prompt=%s sent with login_hint; Microsoft says send one or the other", q.Get("prompt"))
	}
	u2, _ := url.Parse(id.AuthCodeURL(req, ""))
	if q2 := u2.Query(); q2.Has("login_hint") || q2.Get("prompt") != "select_account" {
		t.Errorf("without a hint: login_hint %q, prompt %q; want no login_hint and prompt=select_account", q2.Get("login_hint"), q2.Get("prompt"))
	}
}

func TestAdminConsentURL(t *testing.T) {
	id, err := NewIdentity(IdentityConfig{ClientID: "cid", LoginURL: "http://127.0.0.1:9/", GraphURL: "http://127.0.0.1:9/v1.0", RedirectURL: "https://mg.example/connect/callback"})
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(id.AdminConsentURL("firma.example", "st4te", ""))
	if err != nil {
		t.Fatal(err)
	}
	if u.Path != "/firma.example/v2.0/adminconsent" {
		t.Fatalf("path = %s", u.Path)
	}
	q := u.Query()
	for k, v := range map[string]string{"client_id": "cid", "state": "st4te", "redirect_uri": "https://mg.example/connect/callback", "scope": "http://127.0.0.1:9/.default"} {
		if q.Get(k) != v {
			t.Errorf("%s = %q, want %q", k, q.Get(k), v)
		}
	}
}

func TestNewIdentityRefusesBadConfig(t *testing.T) {
	for _, cfg := range []IdentityConfig{{}, {ClientID: "x", GraphURL: "graph.microsoft.com"}} {
		if _, err := NewIdentity(cfg); err == nil {
			t.Errorf("NewIdentity(%+v) accepted", cfg)
		}
	}
}

func TestExchangePKCE(t *testing.T) {
	ctx := context.Background()
	idp := newFakeIDP(t)
	id := idp.identity(t)

	req := NewAuthRequest()
	code := idp.authorize(id.AuthCodeURL(req, ""), "anna.admin@firma.example")
	consent, err := id.Exchange(ctx, code, req)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if consent.TenantID != idp.tenant || consent.Username != "anna.admin@firma.example" || consent.ObjectID == "" ||
		consent.RefreshToken == "" || consent.Token == nil || consent.Token.AccessToken == "" || len(consent.Groups) != 1 {
		t.Fatalf("consent = %+v", consent)
	}

	// Wrong verifier: the token endpoint refuses the code.
	req2 := NewAuthRequest()
	code2 := idp.authorize(id.AuthCodeURL(req2, ""), "anna.admin@firma.example")
	wrong := req2
	wrong.Verifier = NewAuthRequest().Verifier
	_, err = id.Exchange(ctx, code2, wrong)
	var e *Error
	if !errors.As(err, &e) || e.Code != "AADSTS501481" || e.Kind == NeedsConsent {
		t.Fatalf("wrong verifier: err = %v", err)
	}
	// A code is single use.
	if _, err := id.Exchange(ctx, code, req); err == nil {
		t.Fatal("a used code was accepted again")
	}
}

func TestExchangeVerifiesIDToken(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name  string
		setup func(f *fakeIDP, req *AuthRequest)
	}{
		{"nonce of another request", func(f *fakeIDP, req *AuthRequest) { req.Nonce = "other" }},
		{"issuer of another tenant", func(f *fakeIDP, req *AuthRequest) { f.issuerTenant = "11111111-2222-3333-4444-555555555555" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			idp := newFakeIDP(t)
			id := idp.identity(t)
			req := NewAuthRequest()
			code := idp.authorize(id.AuthCodeURL(req, ""), "anna.admin@firma.example")
			tt.setup(idp, &req)
			if _, err := id.Exchange(ctx, code, req); KindOf(err) != Invalid {
				t.Fatalf("Exchange: err = %v, want Kind Invalid", err)
			}
		})
	}
}

func TestAppTokenSource(t *testing.T) {
	ctx := context.Background()
	idp := newFakeIDP(t)
	id := idp.identity(t)
	tok, err := id.AppTokenSource(ctx, idp.tenant, idp.clientID, idp.clientSecret).Token()
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("client credentials: %v", err)
	}
	_, err = id.AppTokenSource(ctx, idp.tenant, idp.clientID, "wrong").Token()
	if KindOf(err) != NeedsConsent || strings.Contains(err.Error(), "wrong") {
		t.Fatalf("wrong secret: err = %v", err)
	}
	idp.expireSecret()
	_, err = id.AppTokenSource(ctx, idp.tenant, idp.clientID, idp.clientSecret).Token()
	var e *Error
	if !errors.As(err, &e) || e.Kind != NeedsConsent || e.Code != "AADSTS7000222" {
		t.Fatalf("expired secret: err = %v", err)
	}
	if n := idp.count("client_credentials"); n != 3 {
		t.Fatalf("client_credentials requests = %d, want 3 (no retries, no auth style probing)", n)
	}
}

func retrieveError(status int, code, desc string, header http.Header) *oauth2.RetrieveError {
	return &oauth2.RetrieveError{
		Response:         &http.Response{StatusCode: status, Header: header},
		Body:             []byte(`{"error":"` + code + `","refresh_token":"SECRET-IN-BODY"}`),
		ErrorCode:        code,
		ErrorDescription: desc + "\r\nTrace ID: 1\r\nCorrelation ID: 2",
	}
}

func TestClassifyTokenError(t *testing.T) {
	const refresh, exchange = false, true
	tests := []struct {
		name       string
		exchange   bool
		err        error
		kind       Kind
		code       string
		retryAfter time.Duration
	}{
		{"revoked", refresh, retrieveError(400, "invalid_grant", "AADSTS50173: The provided grant has expired due to it being revoked", nil), NeedsConsent, "AADSTS50173", 0},
		{"expired", refresh, retrieveError(400, "invalid_grant", "AADSTS70008: expired", nil), NeedsConsent, "AADSTS70008", 0},
		{"inactive 90 days", refresh, retrieveError(400, "invalid_grant", "AADSTS700082: expired due to inactivity", nil), NeedsConsent, "AADSTS700082", 0},
		{"sign-in frequency", refresh, retrieveError(400, "invalid_grant", "AADSTS70043: The refresh token has expired or is invalid due to sign-in frequency checks by conditional access", nil), NeedsConsent, "AADSTS70043", 0},
		{"unknown code on refresh", refresh, retrieveError(400, "invalid_grant", "AADSTS99999: something new", nil), NeedsConsent, "AADSTS99999", 0},
		{"malformed grant on refresh", refresh, retrieveError(400, "invalid_grant", "AADSTS9002313: Invalid request", nil), NeedsConsent, "AADSTS9002313", 0},
		{"grant error on exchange", exchange, retrieveError(400, "invalid_grant", "AADSTS9002313: Invalid request", nil), Other, "AADSTS9002313", 0},
		{"code expired on exchange", exchange, retrieveError(400, "invalid_grant", "AADSTS70008: expired", nil), Other, "AADSTS70008", 0},
		{"consent on exchange", exchange, retrieveError(400, "invalid_grant", "AADSTS65001: The user or administrator has not consented", nil), NeedsConsent, "AADSTS65001", 0},
		{"mfa", refresh, retrieveError(400, "invalid_grant", "AADSTS50076: you must use multi-factor authentication", nil), NeedsConsent, "AADSTS50076", 0},
		{"mfa as interaction_required", exchange, retrieveError(400, "interaction_required", "AADSTS50076: mfa", nil), NeedsConsent, "AADSTS50076", 0},
		{"interaction_required unknown code", exchange, retrieveError(400, "interaction_required", "AADSTS99998: new policy", nil), NeedsConsent, "AADSTS99998", 0},
		{"consent_required without code", exchange, retrieveError(400, "consent_required", "", nil), NeedsConsent, "consent_required", 0},
		{"conditional access", refresh, retrieveError(400, "invalid_grant", "AADSTS50158: External security challenge not satisfied", nil), NeedsConsent, "AADSTS50158", 0},
		{"consent", refresh, retrieveError(400, "invalid_grant", "AADSTS65001: The user or administrator has not consented", nil), NeedsConsent, "AADSTS65001", 0},
		{"secret expired", exchange, retrieveError(401, "invalid_client", "AADSTS7000222: The provided client secret keys are expired", nil), NeedsConsent, "AADSTS7000222", 0},
		{"secret invalid", exchange, retrieveError(401, "invalid_client", "AADSTS7000215: Invalid client secret provided", nil), NeedsConsent, "AADSTS7000215", 0},
		{"client unknown code", exchange, retrieveError(401, "invalid_client", "AADSTS99997: new credential rule", nil), NeedsConsent, "AADSTS99997", 0},
		{"app disabled", exchange, retrieveError(400, "unauthorized_client", "AADSTS7000112: Application is disabled", nil), NeedsConsent, "AADSTS7000112", 0},
		{"throttled", refresh, retrieveError(429, "temporarily_unavailable", "AADSTS50196: loop detected", http.Header{"Retry-After": {"7"}}), Throttled, "AADSTS50196", 7 * time.Second},
		{"server error", refresh, retrieveError(503, "temporarily_unavailable", "AADSTS90033: service unavailable", nil), Transient, "AADSTS90033", 0},
		{"invalid_grant with 5xx", refresh, retrieveError(503, "invalid_grant", "AADSTS90033: service unavailable", nil), Transient, "AADSTS90033", 0},
		{"no description", refresh, retrieveError(400, "invalid_request", "", nil), Other, "invalid_request", 0},
		{"code from error_codes", refresh, &oauth2.RetrieveError{Response: &http.Response{StatusCode: 400},
			Body: []byte(`{"error":"invalid_grant","error_description":"no number here","error_codes":[70043],"suberror":"token_expired"}`), ErrorCode: "invalid_grant", ErrorDescription: "no number here"},
			NeedsConsent, "AADSTS70043", 0},
		{"network", refresh, &url.Error{Op: "Post", URL: "https://login.example/token", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}, Transient, "", 0},
		{"canceled", refresh, fmt.Errorf("post: %w", context.Canceled), Other, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := classifyToken("op", tt.exchange, tt.err)
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("not an *Error: %v", err)
			}
			if e.Kind != tt.kind || e.Code != tt.code || e.RetryAfter != tt.retryAfter {
				t.Fatalf("got kind %v code %q retry %v; want %v %q %v", e.Kind, e.Code, e.RetryAfter, tt.kind, tt.code, tt.retryAfter)
			}
			if strings.Contains(err.Error(), "SECRET-IN-BODY") || strings.Contains(err.Error(), "Trace ID") {
				t.Fatalf("error carries the response body: %v", err)
			}
		})
	}
	if ClassifyTokenError("op", nil) != nil {
		t.Fatal("nil error classified")
	}
	if !errors.Is(ClassifyTokenError("op", context.Canceled), context.Canceled) {
		t.Fatal("context.Canceled lost")
	}
}
