package connector

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"math/big"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeIDP is a small Microsoft identity platform for unit tests: discovery,
// keys and the token endpoint (authorization code with PKCE, rotating
// refresh tokens, client credentials), with request counters. Flow tests
// against the full simulator live in the graphtest-based tests.
type fakeIDP struct {
	t      testing.TB
	srv    *httptest.Server
	key    *rsa.PrivateKey
	tenant string // the accounts' tenant id

	clientID, clientSecret string

	mu            sync.Mutex
	codes         map[string]pendingCode // authorization code → its request
	refresh       map[string]string      // valid refresh token → user
	secretExpired bool
	keepRefresh   bool            // answer refreshes without a new refresh token
	revoked       map[string]bool // users whose refresh tokens were revoked
	requests      map[string]int  // by grant_type
	issuerTenant  string          // override the tid in iss (to test the issuer check)
	gate          chan struct{}   // if set, token requests wait for it to close
	seq           int
}

type pendingCode struct {
	challenge, nonce, user, redirect string
}

func newFakeIDP(t testing.TB) *fakeIDP {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeIDP{
		t: t, key: key, tenant: "8f1c2a34-5b6d-4e7f-9a0b-1c2d3e4f5a6b",
		clientID: "3c5e7a91-2b4d-4f60-8e1a-9b0c2d4e6f81", clientSecret: "fake~secret",
		codes: map[string]pendingCode{}, refresh: map[string]string{}, revoked: map[string]bool{}, requests: map[string]int{},
	}
	f.srv = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeIDP) identity(t testing.TB) *Identity {
	t.Helper()
	id, err := NewIdentity(IdentityConfig{
		ClientID: f.clientID, ClientSecret: f.clientSecret,
		LoginURL: f.srv.URL, GraphURL: f.srv.URL + "/v1.0",
		RedirectURL: "http://localhost:8080/connect/callback",
		HTTPClient:  f.srv.Client(),
	})
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func (f *fakeIDP) count(grant string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.requests[grant]
}

// authorize plays the browser and the sign-in page: it reads the
// authorization URL and returns a code bound to its PKCE challenge and nonce.
func (f *fakeIDP) authorize(authURL, user string) string {
	f.t.Helper()
	req, err := http.NewRequest(http.MethodGet, authURL, nil)
	if err != nil {
		f.t.Fatal(err)
	}
	q := req.URL.Query()
	if q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" {
		f.t.Fatalf("authorize without PKCE S256: %s", authURL)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.seq++
	code := fmt.Sprintf("code-%d", f.seq)
	f.codes[code] = pendingCode{challenge: q.Get("code_challenge"), nonce: q.Get("nonce"), user: user, redirect: q.Get("redirect_uri")}
	return code
}

// issueRefresh gives user a refresh token directly, as a completed consent would.
func (f *fakeIDP) issueRefresh(user string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.newRefreshLocked(user)
}

func (f *fakeIDP) newRefreshLocked(user string) string {
	f.seq++
	rt := fmt.Sprintf("0.rt-%d-%s", f.seq, strings.Repeat("R", 20))
	f.refresh[rt] = user
	return rt
}

func (f *fakeIDP) revoke(user string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked[user] = true
}

// noRotation makes refreshes keep the refresh token, as Microsoft may.
func (f *fakeIDP) noRotation(on bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.keepRefresh = on
}

func (f *fakeIDP) expireSecret() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.secretExpired = true
}

func (f *fakeIDP) serve(w http.ResponseWriter, r *http.Request) {
	parts := strings.Split(strings.Trim(r.URL.Path, "/"), "/")
	switch {
	case len(parts) == 4 && parts[1] == "v2.0" && parts[2] == ".well-known":
		writeJSON(w, 200, map[string]any{
			"issuer":                                "https://login.microsoftonline.com/{tenantid}/v2.0",
			"authorization_endpoint":                f.srv.URL + "/" + parts[0] + "/oauth2/v2.0/authorize",
			"token_endpoint":                        f.srv.URL + "/" + parts[0] + "/oauth2/v2.0/token",
			"jwks_uri":                              f.srv.URL + "/" + parts[0] + "/discovery/v2.0/keys",
			"id_token_signing_alg_values_supported": []string{"RS256"},
		})
	case len(parts) == 4 && parts[1] == "discovery" && parts[3] == "keys":
		pub := f.key.PublicKey
		writeJSON(w, 200, map[string]any{"keys": []map[string]any{{
			"kty": "RSA", "use": "sig", "kid": "k1", "alg": "RS256",
			"n": b64(pub.N.Bytes()), "e": b64(big.NewInt(int64(pub.E)).Bytes()),
		}}})
	case len(parts) == 4 && parts[1] == "oauth2" && parts[3] == "token" && r.Method == http.MethodPost:
		f.token(w, r, parts[0])
	default:
		http.NotFound(w, r)
	}
}

func (f *fakeIDP) token(w http.ResponseWriter, r *http.Request, tenant string) {
	if err := r.ParseForm(); err != nil {
		aad(w, 400, "invalid_request", 900144, "bad body")
		return
	}
	grant := r.PostForm.Get("grant_type")
	f.mu.Lock()
	f.requests[grant]++
	gate := f.gate
	f.mu.Unlock()
	if gate != nil {
		<-gate
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if r.PostForm.Get("client_id") != f.clientID || r.PostForm.Get("client_secret") != f.clientSecret {
		aad(w, 401, "invalid_client", 7000215, "Invalid client secret provided.")
		return
	}
	if f.secretExpired {
		aad(w, 401, "invalid_client", 7000222, "The provided client secret keys for app are expired.")
		return
	}
	f.seq++
	access := fmt.Sprintf("eyJ.access-%d", f.seq)
	switch grant {
	case "authorization_code":
		pc, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		if !ok {
			aad(w, 400, "invalid_grant", 70000, "The provided authorization code is invalid or expired.")
			return
		}
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		if base64.RawURLEncoding.EncodeToString(sum[:]) != pc.challenge {
			aad(w, 400, "invalid_grant", 501481, "The Code_Verifier does not match the code_challenge supplied in the authorization request.")
			return
		}
		iss := f.tenant
		if f.issuerTenant != "" {
			iss = f.issuerTenant
		}
		now := time.Now()
		idt := f.sign(map[string]any{
			"iss": f.srv.URL + "/" + iss + "/v2.0", "aud": f.clientID, "tid": f.tenant, "oid": "oid-" + pc.user,
			"preferred_username": pc.user, "name": "Anna Admin", "nonce": pc.nonce, "groups": []string{"g1"},
			"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		})
		writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": access,
			"refresh_token": f.newRefreshLocked(pc.user), "id_token": idt, "scope": r.PostForm.Get("scope")})
	case "refresh_token":
		rt := r.PostForm.Get("refresh_token")
		user, ok := f.refresh[rt]
		switch {
		case ok && f.revoked[user]:
			aad(w, 400, "invalid_grant", 50173, "The provided grant has expired due to it being revoked, a fresh auth token is needed.")
			return
		case !ok:
			aad(w, 400, "invalid_grant", 70008, "The provided authorization code or refresh token has expired due to inactivity.")
			return
		}
		if f.keepRefresh {
			writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": access})
			return
		}
		delete(f.refresh, rt) // rotation: the old token is spent
		writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3600, "access_token": access,
			"refresh_token": f.newRefreshLocked(user)})
	case "client_credentials":
		if r.PostForm.Get("scope") != f.srv.URL+"/.default" {
			aad(w, 400, "invalid_scope", 1002012, "The provided value for scope is not valid.")
			return
		}
		writeJSON(w, 200, map[string]any{"token_type": "Bearer", "expires_in": 3599, "access_token": access})
	default:
		aad(w, 400, "unsupported_grant_type", 70003, "unsupported grant type")
	}
}

func (f *fakeIDP) sign(claims map[string]any) string {
	head, _ := json.Marshal(map[string]any{"alg": "RS256", "typ": "JWT", "kid": "k1"})
	body, _ := json.Marshal(claims)
	signing := b64(head) + "." + b64(body)
	sum := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, f.key, crypto.SHA256, sum[:])
	if err != nil {
		f.t.Fatal(err)
	}
	return signing + "." + b64(sig)
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func aad(w http.ResponseWriter, status int, code string, aadsts int, desc string) {
	writeJSON(w, status, map[string]any{
		"error":             code,
		"error_description": fmt.Sprintf("AADSTS%d: %s\r\nTrace ID: t\r\nCorrelation ID: c\r\nTimestamp: 2026-11-23 10:00:00Z", aadsts, desc),
		"error_codes":       []int{aadsts},
	})
}
