package portal

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// endless is a request body of n bytes of form data that counts what was
// read from it.
type endless struct {
	n, read atomic.Int64
}

func (e *endless) Read(p []byte) (int, error) {
	left := e.n.Load() - e.read.Load()
	if left <= 0 {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), left)]
	for i := range p {
		p[i] = 'a'
	}
	copy(p, "name=")
	e.read.Add(int64(len(p)))
	return len(p), nil
}

// TestLargeLoginRefused: a 120 MB POST to /login (the attack) is
// answered 413 after reading little more than the limit.
func TestLargeLoginRefused(t *testing.T) {
	e := newEnv(t)
	body := &endless{}
	body.n.Store(120 << 20)
	req := httptest.NewRequest(http.MethodPost, "/login", body)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	e.srv.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("status %d, want 413", rec.Code)
	}
	if got := body.read.Load(); got > maxFormBytes+64<<10 {
		t.Fatalf("the portal read %d bytes of 120 MB; the limit is %d", got, maxFormBytes)
	}

	// The same against the listening server: refused, connection closed.
	body = &endless{}
	body.n.Store(120 << 20)
	hreq, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/login", body)
	hreq.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := http.DefaultClient.Do(hreq)
	if err == nil {
		resp.Body.Close()
		if resp.StatusCode != http.StatusRequestEntityTooLarge {
			t.Errorf("over the socket: status %d, want 413", resp.StatusCode)
		}
	}
	if got := body.read.Load(); got >= 120<<20 {
		t.Errorf("over the socket the client sent all %d bytes", got)
	}
}

func TestWrongMethodAndMediaType(t *testing.T) {
	e := newEnv(t)
	key := e.apiKey(customerA)
	do := func(method, path, ctype, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, e.ts.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+key)
		if ctype != "" {
			req.Header.Set("Content-Type", ctype)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	tests := []struct {
		method, path, ctype, body string
		want                      int
		allow                     string
	}{
		{"GET", "/api/v1/connections/redeem/", "", "", 404, ""},
		{"PUT", "/api/v1/connections/redeem", "application/json", `{"code":"x"}`, 405, "POST"},
		{"POST", "/api/v1/connections", "application/json", `{}`, 405, "GET, HEAD"},
		{"PATCH", "/api/v1/connections/con_x", "application/json", `{}`, 405, "GET, HEAD, DELETE"},
		{"GET", "/api/v1/connections/con_x/test", "", "", 405, "POST"},
		{"POST", "/api/v1/connections/redeem", "text/plain", `{"code":"x"}`, 415, ""},
		{"POST", "/api/v1/connections/redeem", "application/x-www-form-urlencoded", `code=x`, 415, ""},
		{"POST", "/api/v1/connections/redeem", "application/json", `{"code":"` + strings.Repeat("A", maxAPIBytes) + `"}`, 413, ""},
		{"POST", "/api/v1/connections/redeem", "application/json; charset=utf-8", `{"code":"AAAA-BBBB"}`, 400, ""},
	}
	for _, tt := range tests {
		resp := do(tt.method, tt.path, tt.ctype, tt.body)
		if resp.StatusCode != tt.want || resp.Header.Get("Allow") != tt.allow {
			t.Errorf("%s %s (%s): %d Allow %q, want %d %q", tt.method, tt.path, tt.ctype, resp.StatusCode, resp.Header.Get("Allow"), tt.want, tt.allow)
		}
	}
	// The browser side: a wrong method is 405, a form of another type 415.
	b := e.loggedIn("alice")
	req, _ := http.NewRequest(http.MethodPut, e.ts.URL+"/login", nil)
	if r := b.do(req); r.status != http.StatusMethodNotAllowed {
		t.Errorf("PUT /login: %d, want 405", r.status)
	}
	req, _ = http.NewRequest(http.MethodPost, e.ts.URL+"/connect", strings.NewReader(`{"mailbox":"x"}`))
	req.Header.Set("Content-Type", "application/json")
	if r := b.do(req); r.status != http.StatusUnsupportedMediaType {
		t.Errorf("JSON to /connect: %d, want 415", r.status)
	}
}

// TestFormActionNarrow: the CSP lets forms post to the portal and redirect
// to the identity platform only, not to any https or http target.
func TestFormActionNarrow(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	csp := b.get("/login").header.Get("Content-Security-Policy")
	want := "form-action 'self' " + e.sim.LoginURL()
	if !strings.Contains(csp, want) {
		t.Fatalf("CSP %q lacks %q", csp, want)
	}
	formAction, _, _ := strings.Cut(csp[strings.Index(csp, "form-action"):], ";")
	for _, src := range strings.Fields(formAction)[1:] {
		if src == "https:" || src == "http:" || strings.Contains(src, "*") {
			t.Errorf("form-action allows any target with %q: %s", src, csp)
		}
	}
	// The wizard's redirect target is within it.
	a := e.loggedIn("alice")
	auth := a.startWizard(wizardForm("rechnungen@acme.example"))
	if got := auth.Scheme + "://" + auth.Host; !strings.HasSuffix(want, got) {
		t.Errorf("the wizard redirects to %s, outside form-action %q", got, want)
	}
}
