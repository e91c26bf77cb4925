package portal

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/connector"
)

// issue makes a pending connection of customer with a fresh code.
func (e *env) issue(customer string) (connector.Connection, string) {
	e.t.Helper()
	c := e.connection(customer, connector.StatePending)
	code, _, err := e.codes.Issue(e.t.Context(), customer, c.ID)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, code
}

func TestAPIAuthentication(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StateActive)
	good := e.apiKey(customerA)
	revoked, key, _ := e.srv.keys.Create(t.Context(), customerA, "old")
	if err := e.srv.keys.Revoke(t.Context(), key.ID); err != nil {
		t.Fatal(err)
	}
	routes := []struct{ method, path string }{
		{"POST", "/api/v1/connections/redeem"},
		{"GET", "/api/v1/connections"},
		{"GET", "/api/v1/connections/" + c.ID},
		{"POST", "/api/v1/connections/" + c.ID + "/test"},
		{"DELETE", "/api/v1/connections/" + c.ID},
	}
	keys := map[string]string{
		"none":      "",
		"garbage":   "hello",
		"unknown":   "mgk_0123456789abcdef_" + strings.Repeat("a", 48),
		"tampered":  good[:len(good)-1] + "x",
		"revoked":   revoked,
		"wrong id":  "mgk_" + key.ID + good[len("mgk_")+16:],
		"no prefix": strings.TrimPrefix(good, "mgk_"),
	}
	for _, rt := range routes {
		for name, k := range keys {
			t.Run(rt.method+" "+rt.path+" "+name, func(t *testing.T) {
				e.srv.apiIP.reset()
				status, body, hdr := e.api(rt.method, rt.path, k, map[string]string{"code": "X"})
				if status != http.StatusUnauthorized || errCode(body) != "unauthorized" || hdr.Get("WWW-Authenticate") == "" {
					t.Fatalf("%d %v, want 401 unauthorized with WWW-Authenticate", status, body)
				}
			})
		}
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Errorf("state %s after unauthorized calls", got)
	}
	// The browser session does not authenticate the API.
	b := e.loggedIn("alice")
	e.srv.apiIP.reset()
	if r := b.get("/api/v1/connections"); r.status != http.StatusUnauthorized {
		t.Errorf("API with a session cookie: %d, want 401", r.status)
	}
}

func TestAPIRedeem(t *testing.T) {
	e := newEnv(t)
	keyA, keyB := e.apiKey(customerA), e.apiKey(customerB)
	c, code := e.issue(customerA)

	// Another customer's key gets the same answer as a code that never was,
	// and does not use the code up.
	statusB, bodyB, _ := e.api("POST", "/api/v1/connections/redeem", keyB, map[string]string{"code": code})
	statusX, bodyX, _ := e.api("POST", "/api/v1/connections/redeem", keyA, map[string]string{"code": "ABCD-EFGH-JKMN-PQRS-TVWX"})
	if statusB != http.StatusBadRequest || errCode(bodyB) != "invalid_code" || statusB != statusX || errCode(bodyB) != errCode(bodyX) {
		t.Fatalf("other customer's code: %d %v; unknown code: %d %v", statusB, bodyB, statusX, bodyX)
	}

	status, body, _ := e.api("POST", "/api/v1/connections/redeem", keyA, map[string]string{"code": code})
	if status != 200 {
		t.Fatalf("redeem: %d %v", status, body)
	}
	conn := body["connection"].(map[string]any)
	test := body["test"].(map[string]any)
	if conn["id"] != c.ID || conn["state"] != "active" || test["canRead"] != true || test["canWrite"] != true {
		t.Errorf("redeem answer %v", body)
	}
	got, _ := e.store.Get(t.Context(), c.ID)
	if got.State != connector.StateActive || !strings.HasPrefix(got.UpdatedBy, "api:") {
		t.Errorf("after redeem: %s by %q", got.State, got.UpdatedBy)
	}
	if ids := e.trigger.list(); len(ids) != 1 || ids[0] != c.ID {
		t.Errorf("trigger %v", ids)
	}
	// Used: same uniform answer.
	status, body, _ = e.api("POST", "/api/v1/connections/redeem", keyA, map[string]string{"code": code})
	if status != http.StatusBadRequest || errCode(body) != "invalid_code" {
		t.Errorf("used code: %d %v", status, body)
	}
	// Malformed body.
	status, body, _ = e.api("POST", "/api/v1/connections/redeem", keyA, map[string]string{"nocode": "x"})
	if status != http.StatusBadRequest || errCode(body) != "invalid" {
		t.Errorf("no code: %d %v", status, body)
	}
}

func TestAPIRedeemFailingTest(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(customerA)
	c, code := e.issue(customerA)
	e.tester.set(func(connector.Connection) (TestResult, error) {
		return TestResult{CanRead: true, CanWrite: false, Detail: "move refused"}, nil
	})
	status, body, _ := e.api("POST", "/api/v1/connections/redeem", key, map[string]string{"code": code})
	if status != 200 {
		t.Fatalf("%d %v", status, body)
	}
	conn := body["connection"].(map[string]any)
	if conn["state"] != "failing" || !strings.Contains(conn["lastError"].(string), "move refused") {
		t.Errorf("answer %v", body)
	}
	if got := e.state(c.ID); got != connector.StateFailing {
		t.Errorf("state %s, want failing", got)
	}
	// The reason's kind is stored with it: reading is no use without
	// moving, which the account was not allowed.
	stored, err := e.store.Get(t.Context(), c.ID)
	if err != nil || stored.ErrorKind() != connector.AccessDenied {
		t.Errorf("stored kind %q (%v), want access_denied", stored.LastErrorKind, err)
	}
	if ids := e.trigger.list(); len(ids) != 0 {
		t.Errorf("failing connection triggered: %v", ids)
	}
	// A passing test through the API recovers it.
	e.tester.set(nil)
	status, body, _ = e.api("POST", "/api/v1/connections/"+c.ID+"/test", key, nil)
	if status != 200 || body["connection"].(map[string]any)["state"] != "active" {
		t.Errorf("test: %d %v", status, body)
	}
	if stored, err := e.store.Get(t.Context(), c.ID); err != nil || stored.LastError != "" || stored.LastErrorKind != "" {
		t.Errorf("recovered: error %q of kind %q left (%v)", stored.LastError, stored.LastErrorKind, err)
	}
}

func TestAPIRedeemRateLimited(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(customerA)
	_, code := e.issue(customerA)
	var status int
	var hdr http.Header
	for range 6 {
		status, _, hdr = e.api("POST", "/api/v1/connections/redeem", key, map[string]string{"code": "WRONG-CODE"})
	}
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("6th wrong code: %d Retry-After %q, want 429", status, hdr.Get("Retry-After"))
	}
	// Even a right code waits; the limit is per key and per IP.
	if status, body, _ := e.api("POST", "/api/v1/connections/redeem", key, map[string]string{"code": code}); status != http.StatusTooManyRequests || errCode(body) != "rate_limited" {
		t.Errorf("right code while limited: %d %v", status, body)
	}
	// Listing is not a redeem and still works.
	if status, _, _ := e.api("GET", "/api/v1/connections", key, nil); status != 200 {
		t.Errorf("list while redeem limited: %d", status)
	}
}

func TestAPIBadKeysRateLimitedPerIP(t *testing.T) {
	e := newEnv(t)
	var status int
	var hdr http.Header
	for range 21 {
		status, _, hdr = e.api("GET", "/api/v1/connections", "mgk_0123456789abcdef_nope", nil)
	}
	if status != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
		t.Fatalf("21st bad key: %d, want 429", status)
	}
}

func TestAPIConnections(t *testing.T) {
	e := newEnv(t)
	keyA, keyB := e.apiKey(customerA), e.apiKey(customerB)
	a := e.connection(customerA, connector.StateActive)
	if status, body, _ := e.api("GET", "/api/v1/connections/"+a.ID, keyB, nil); status != http.StatusNotFound {
		t.Errorf("other customer's key: %d %v, want 404", status, body)
	}
	b := e.connection(customerB, connector.StateActive)

	status, body, _ := e.api("GET", "/api/v1/connections", keyA, nil)
	list := body["connections"].([]any)
	if status != 200 || len(list) != 1 || list[0].(map[string]any)["id"] != a.ID {
		t.Fatalf("list: %d %v", status, body)
	}
	for _, path := range []string{"/api/v1/connections/" + b.ID, "/api/v1/connections/nope"} {
		for _, method := range []string{"GET", "DELETE"} {
			if status, body, _ := e.api(method, path, keyA, nil); status != http.StatusNotFound || errCode(body) != "not_found" {
				t.Errorf("%s %s: %d %v, want 404", method, path, status, body)
			}
		}
		if status, _, _ := e.api("POST", path+"/test", keyA, nil); status != http.StatusNotFound {
			t.Errorf("test %s: %d, want 404", path, status)
		}
	}
	if got := e.state(b.ID); got != connector.StateActive {
		t.Errorf("other customer's connection changed: %s", got)
	}

	status, body, _ = e.api("GET", "/api/v1/connections/"+a.ID, keyA, nil)
	if status != 200 || body["connection"].(map[string]any)["mailbox"] != a.Mailbox {
		t.Errorf("get: %d %v", status, body)
	}

	e.tester.set(func(connector.Connection) (TestResult, error) {
		return TestResult{}, &connector.Error{Op: "graph: test", Kind: connector.AccessDenied}
	})
	status, body, _ = e.api("POST", "/api/v1/connections/"+a.ID+"/test", keyA, nil)
	if status != 200 || body["test"].(map[string]any)["canRead"] != false || !strings.Contains(body["test"].(map[string]any)["detail"].(string), "no full access") {
		t.Errorf("test: %d %v", status, body)
	}

	// A connection in needs_consent waits for a person: the test does not
	// reach Microsoft and says to reconnect.
	if _, err := e.store.Update(t.Context(), a.ID, func(c *connector.Connection) error {
		c.State, c.UpdatedBy = connector.StateNeedsConsent, "importer"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	e.tester.set(func(connector.Connection) (TestResult, error) {
		t.Error("a connection in needs_consent was tested against Microsoft")
		return TestResult{CanRead: true, CanWrite: true}, nil
	})
	status, body, _ = e.api("POST", "/api/v1/connections/"+a.ID+"/test", keyA, nil)
	if status != 200 || body["connection"].(map[string]any)["state"] != "needs_consent" ||
		!strings.Contains(body["test"].(map[string]any)["detail"].(string), "reconnect") {
		t.Errorf("test in needs_consent: %d %v", status, body)
	}

	status, body, _ = e.api("DELETE", "/api/v1/connections/"+a.ID, keyA, nil)
	if status != 200 || body["connection"].(map[string]any)["state"] != "deleted" {
		t.Errorf("delete: %d %v", status, body)
	}
	got, _ := e.store.Get(t.Context(), a.ID)
	if got.State != connector.StateDeleted || !strings.HasPrefix(got.UpdatedBy, "api:") {
		t.Errorf("after delete: %s by %q", got.State, got.UpdatedBy)
	}
	if status, _, _ := e.api("GET", "/api/v1/connections/"+a.ID, keyA, nil); status != http.StatusNotFound {
		t.Errorf("deleted connection: %d, want 404", status)
	}
	if status, body, _ := e.api("GET", "/api/v1/nothing", keyA, nil); status != http.StatusNotFound || errCode(body) != "not_found" {
		t.Errorf("unknown API path: %d %v", status, body)
	}
}

func TestAPIConnectionJSONHasNoSecrets(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(customerA)
	c := e.connection(customerA, connector.StateActive)
	sealed, _ := e.sealer.Seal([]byte("client-secret"))
	if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
		c.ClientSecret, c.ClientID, c.UpdatedBy = sealed, "cid", "test"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/connections", nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := res.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	raw := sb.String()
	for _, bad := range []string{"refreshToken", "clientSecret", "RefreshToken", "ClientSecret"} {
		if strings.Contains(raw, bad) {
			t.Errorf("connection JSON contains %q: %s", bad, raw)
		}
	}
	if !strings.Contains(raw, `"clientId":"cid"`) {
		t.Errorf("connection JSON lacks the client id: %s", raw)
	}
}

func TestAPIRedeemConcurrentlyOnce(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(customerA)
	_, code := e.issue(customerA)
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	for range 8 {
		wg.Go(func() {
			status, _, _ := e.api("POST", "/api/v1/connections/redeem", key, map[string]string{"code": code})
			if status == 200 {
				mu.Lock()
				ok++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if ok != 1 {
		t.Errorf("%d successful redeems of one code, want 1", ok)
	}
}

// Behind a trusted reverse proxy, clients are told apart by the address
// the proxy recorded; a client that sends X-Forwarded-For itself gains
// nothing.
func TestRateLimitBehindTrustedProxy(t *testing.T) {
	loopback := func(c *Config, _ *Deps) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} }
	e := newEnv(t, loopback)
	badKey := func(xff string) int {
		req, _ := http.NewRequest("GET", e.ts.URL+"/api/v1/connections", nil)
		req.Header.Set("Authorization", "Bearer mgk_0123456789abcdef_nope")
		req.Header.Set("X-Forwarded-For", xff)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	var status int
	for range 21 {
		status = badKey("198.51.100.7")
	}
	if status != http.StatusTooManyRequests {
		t.Fatalf("21st bad key from 198.51.100.7 via the proxy: %d, want 429", status)
	}
	if status := badKey("203.0.113.9"); status != http.StatusUnauthorized {
		t.Errorf("another client via the same proxy: %d, want 401 (not limited)", status)
	}
	// A client spoofing the header is still the address the proxy saw.
	if status := badKey("203.0.113.9, 198.51.100.7"); status != http.StatusTooManyRequests {
		t.Errorf("limited client prepending a forged address: %d, want 429", status)
	}

	// Without trusted proxies the header is ignored: every request comes
	// from the loopback peer.
	e = newEnv(t)
	for i := range 21 {
		status = badKey(fmt.Sprintf("198.51.100.%d", i))
	}
	if status != http.StatusTooManyRequests {
		t.Errorf("21st bad key with rotating X-Forwarded-For and no trusted proxy: %d, want 429", status)
	}
}

func TestClientIP(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{
		netip.MustParsePrefix("10.0.0.0/8"), netip.MustParsePrefix("fd00::/8"),
	}}}
	for _, tc := range []struct {
		remote string
		xff    []string
		want   string
	}{
		{"192.0.2.1:5000", nil, "192.0.2.1"},
		{"192.0.2.1:5000", []string{"198.51.100.7"}, "192.0.2.1"}, // untrusted peer: header ignored
		{"10.1.2.3:5000", nil, "10.1.2.3"},
		{"10.1.2.3:5000", []string{"198.51.100.7"}, "198.51.100.7"},
		{"10.1.2.3:5000", []string{"198.51.100.7, 10.9.9.9"}, "198.51.100.7"}, // two proxies
		{"10.1.2.3:5000", []string{"203.0.113.1", "198.51.100.7"}, "198.51.100.7"},
		{"10.1.2.3:5000", []string{"forged, 198.51.100.7"}, "198.51.100.7"},
		{"10.1.2.3:5000", []string{"198.51.100.7, garbage"}, "10.1.2.3"},
		{"[fd00::1]:5000", []string{"2001:db8::7"}, "2001:db8::7"},
		{"[::ffff:10.1.2.3]:5000", []string{"198.51.100.7"}, "198.51.100.7"},
	} {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tc.remote
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := s.clientIP(r); got != tc.want {
			t.Errorf("clientIP(%s, X-Forwarded-For %q) = %s, want %s", tc.remote, tc.xff, got, tc.want)
		}
	}
}
