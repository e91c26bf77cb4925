package graphtest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

const testScopes = "openid profile email offline_access https://graph.microsoft.com/Mail.ReadWrite.Shared https://graph.microsoft.com/User.Read"

func pkcePair() (verifier, challenge string) {
	verifier = randToken(32)
	sum := sha256.Sum256([]byte(verifier))
	return verifier, base64.RawURLEncoding.EncodeToString(sum[:])
}

func authorizeURL(s *Server, tenant string, q map[string]string) string {
	v := url.Values{
		"client_id": {DefaultClientID}, "response_type": {"code"}, "redirect_uri": {DefaultRedirectURI},
		"scope": {testScopes}, "state": {"st-1"}, "nonce": {"n-1"},
	}
	for k, val := range q {
		if val == "" {
			v.Del(k)
			continue
		}
		v.Set(k, val)
	}
	return s.LoginURL() + "/" + tenant + "/oauth2/v2.0/authorize?" + v.Encode()
}

// signIn runs the code flow up to the code.
func signIn(t *testing.T, s *Server, user string) (code, verifier string) {
	t.Helper()
	verifier, challenge := pkcePair()
	u, err := Authorize(context.Background(), nil, authorizeURL(s, "organizations", map[string]string{
		"code_challenge": challenge, "code_challenge_method": "S256"}), user, DefaultPassword, true)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	code = u.Query().Get("code")
	if code == "" || u.Query().Get("state") != "st-1" {
		t.Fatalf("redirect %s: want code and state", u)
	}
	return code, verifier
}

// tokenCall posts to the token endpoint and decodes the JSON answer.
func tokenCall(t *testing.T, s *Server, tenant string, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(s.LoginURL()+"/"+tenant+"/oauth2/v2.0/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := map[string]any{}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("token answer: %v", err)
	}
	return resp.StatusCode, out
}

func redeem(t *testing.T, s *Server, code, verifier string) (int, map[string]any) {
	return tokenCall(t, s, "organizations", url.Values{
		"grant_type": {"authorization_code"}, "client_id": {DefaultClientID}, "client_secret": {DefaultClientSecret},
		"code": {code}, "redirect_uri": {DefaultRedirectURI}, "code_verifier": {verifier},
	})
}

// userToken runs the whole code flow and returns access and refresh token.
func userToken(t *testing.T, s *Server, user string) (access, refresh string) {
	t.Helper()
	code, verifier := signIn(t, s, user)
	st, tok := redeem(t, s, code, verifier)
	if st != http.StatusOK {
		t.Fatalf("redeem: %d %v", st, tok)
	}
	return tok["access_token"].(string), tok["refresh_token"].(string)
}

func appToken(t *testing.T, s *Server, clientID, secret string) string {
	t.Helper()
	st, tok := tokenCall(t, s, DefaultTenantID, url.Values{
		"grant_type": {"client_credentials"}, "client_id": {clientID}, "client_secret": {secret},
		"scope": {"https://graph.microsoft.com/.default"},
	})
	if st != http.StatusOK {
		t.Fatalf("client credentials: %d %v", st, tok)
	}
	return tok["access_token"].(string)
}

type answer struct {
	status int
	header http.Header
	body   []byte
}

func (a answer) json(t *testing.T) map[string]any {
	t.Helper()
	out := map[string]any{}
	if err := json.Unmarshal(a.body, &out); err != nil {
		t.Fatalf("decode %q: %v", truncate(a.body), err)
	}
	return out
}

func truncate(b []byte) string {
	if len(b) > 300 {
		return string(b[:300]) + "…"
	}
	return string(b)
}

// do sends a request; rawURL may be relative to the server.
func do(t *testing.T, s *Server, method, rawURL, token string, body io.Reader, hdr map[string]string) answer {
	t.Helper()
	return callCtx(context.Background(), t, s, method, rawURL, token, body, hdr)
}

func callCtx(ctx context.Context, t *testing.T, s *Server, method, rawURL, token string, body io.Reader, hdr map[string]string) answer {
	t.Helper()
	if strings.HasPrefix(rawURL, "/") {
		rawURL = s.URL + rawURL
	}
	req, err := http.NewRequestWithContext(ctx, method, rawURL, body)
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return answer{status: -1, body: []byte(err.Error())}
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return answer{status: -2, header: resp.Header, body: []byte(err.Error())}
	}
	return answer{status: resp.StatusCode, header: resp.Header, body: b}
}

// wantGraphError checks status and Graph's full error shape.
func wantGraphError(t *testing.T, a answer, status int, code string) {
	t.Helper()
	if a.status != status {
		t.Fatalf("status %d, want %d: %s", a.status, status, truncate(a.body))
	}
	e, _ := a.json(t)["error"].(map[string]any)
	if e == nil {
		t.Fatalf("no error object: %s", a.body)
	}
	if e["code"] != code {
		t.Errorf("code %v, want %s", e["code"], code)
	}
	if m, _ := e["message"].(string); m == "" {
		t.Errorf("error without message: %s", a.body)
	}
	inner, _ := e["innerError"].(map[string]any)
	if inner == nil || inner["request-id"] == "" || inner["date"] == "" || inner["client-request-id"] == "" {
		t.Errorf("innerError incomplete: %s", a.body)
	}
}

// wantTokenError checks the identity platform's error JSON.
func wantTokenError(t *testing.T, status int, body map[string]any, wantStatus int, code string, aadsts int) {
	t.Helper()
	if status != wantStatus || body["error"] != code {
		t.Fatalf("got %d %v, want %d %s", status, body["error"], wantStatus, code)
	}
	codes, _ := body["error_codes"].([]any)
	if len(codes) != 1 || int(codes[0].(float64)) != aadsts {
		t.Errorf("error_codes %v, want [%d]", body["error_codes"], aadsts)
	}
	desc, _ := body["error_description"].(string)
	if !strings.HasPrefix(desc, "AADSTS"+itoaTest(aadsts)+": ") || !strings.Contains(desc, "\r\nTrace ID: ") ||
		!strings.Contains(desc, "\r\nCorrelation ID: ") || !strings.Contains(desc, "\r\nTimestamp: ") {
		t.Errorf("error_description %q not in Microsoft's shape", desc)
	}
	for _, k := range []string{"timestamp", "trace_id", "correlation_id", "error_uri"} {
		if v, _ := body[k].(string); v == "" {
			t.Errorf("missing %s", k)
		}
	}
}

func itoaTest(n int) string { b, _ := json.Marshal(n); return string(b) }

func jsonBody(v any) io.Reader {
	b, _ := json.Marshal(v)
	return bytes.NewReader(b)
}

// jwtClaims decodes a JWT's claims without verifying it.
func jwtClaims(t *testing.T, tok string) map[string]any {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", tok)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]any{}
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

func decodeJSON(r io.Reader, v any) error { return json.NewDecoder(r).Decode(v) }
