package portal

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailgate/mailgate/connector"
)

// memberRoutes are every browser route that needs a connect-group member.
func memberRoutes(id string) []struct{ method, path string } {
	return []struct{ method, path string }{
		{"GET", "/"},
		{"GET", "/connections"},
		{"GET", "/connections/" + id},
		{"GET", "/connections/" + id + "/code"},
		{"POST", "/connections/" + id + "/code"},
		{"POST", "/connections/" + id + "/pause"},
		{"POST", "/connections/" + id + "/resume"},
		{"POST", "/connections/" + id + "/retry"},
		{"GET", "/connections/" + id + "/disconnect"},
		{"POST", "/connections/" + id + "/disconnect"},
		{"POST", "/connections/" + id + "/reconnect"},
		{"GET", "/connections/" + id + "/secret"},
		{"POST", "/connections/" + id + "/secret"},
		{"GET", "/connect"},
		{"POST", "/connect"},
		{"GET", "/connect/callback?state=x&code=y"},
		{"POST", "/demo/redeem"},
	}
}

func demo(c *Config, _ *Deps) { c.DemoRedeem = true }

func TestAnonymousIsSentToLogin(t *testing.T) {
	e := newEnv(t, demo)
	c := e.connection(customerA, connector.StateActive)
	for _, rt := range memberRoutes(c.ID) {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			b := e.browser()
			var r resp
			if rt.method == "GET" {
				r = b.get(rt.path)
			} else {
				r = b.post(rt.path, nil)
			}
			if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login?next=") {
				t.Fatalf("status %d location %q, want 303 to /login", r.status, r.location())
			}
		})
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Errorf("state changed by anonymous requests: %s", got)
	}
}

func TestNotInConnectGroupIsForbidden(t *testing.T) {
	e := newEnv(t, demo)
	c := e.connection(customerA, connector.StateActive)
	b := e.loggedIn("bob") // customer acme, not in mailbox-connect
	for _, rt := range memberRoutes(c.ID) {
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			var r resp
			if rt.method == "GET" {
				r = b.get(rt.path)
			} else {
				r = b.post(rt.path, url.Values{"csrf": {b.token("/login")}})
			}
			if r.status != http.StatusForbidden {
				t.Fatalf("status %d, want 403", r.status)
			}
			if !strings.Contains(r.body, "Access not allowed") || !strings.Contains(r.body, "mailbox-connect") {
				t.Errorf("403 page does not name the group: %s", r.body)
			}
		})
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Errorf("state changed by a non-member: %s", got)
	}
}

func TestOtherCustomersConnectionIsNotFound(t *testing.T) {
	e := newEnv(t, demo)
	c := e.connection(customerA, connector.StateActive)
	b := e.loggedIn("carol") // customer globex
	for _, rt := range memberRoutes(c.ID) {
		if !strings.Contains(rt.path, c.ID) {
			continue
		}
		t.Run(rt.method+" "+rt.path, func(t *testing.T) {
			var r resp
			if rt.method == "GET" {
				r = b.get(rt.path)
			} else {
				r = b.post(rt.path, url.Values{"csrf": {b.token("/login")}})
			}
			if r.status != http.StatusNotFound {
				t.Fatalf("status %d, want 404", r.status)
			}
			if strings.Contains(r.body, c.Mailbox) {
				t.Error("404 page leaks the mailbox")
			}
		})
	}
	// Demo redeem with the other customer's connection id.
	r := b.post("/demo/redeem", url.Values{"id": {c.ID}, "code": {"X"}, "csrf": {b.token("/login")}})
	if r.status != http.StatusNotFound {
		t.Errorf("demo redeem of another customer's connection: status %d, want 404", r.status)
	}
	// The list shows only own connections.
	if r := b.get("/connections"); strings.Contains(r.body, c.Mailbox) {
		t.Error("list shows another customer's connection")
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Errorf("state changed by another customer: %s", got)
	}
}

func TestLogin(t *testing.T) {
	e := newEnv(t)
	tests := []struct {
		name, user, password string
		status               int
	}{
		{"ok", "alice", pw, http.StatusSeeOther},
		{"name without case", "ALICE", pw, http.StatusSeeOther},
		{"wrong password", "alice", "wrong password", http.StatusUnauthorized},
		{"unknown user", "mallory", pw, http.StatusUnauthorized},
	}
	var wrongBodies []string
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := e.browser()
			before := b.cookie("mailgate_session")
			r := b.post("/login", url.Values{"name": {tt.user}, "password": {tt.password}, "next": {"/connect"}})
			if r.status != tt.status {
				t.Fatalf("status %d, want %d", r.status, tt.status)
			}
			if tt.status == http.StatusSeeOther {
				if r.location() != "/connect" {
					t.Errorf("redirect to %q, want /connect", r.location())
				}
				if after := b.cookie("mailgate_session"); after == "" || after == before {
					t.Errorf("session token not renewed at login")
				}
				if r := b.get("/connections"); r.status != http.StatusOK {
					t.Errorf("after login /connections: %d", r.status)
				}
				return
			}
			if !strings.Contains(r.body, "Wrong name or password.") {
				t.Errorf("no uniform error message")
			}
			wrongBodies = append(wrongBodies, strings.ReplaceAll(r.body, tt.user, ""))
		})
	}
	if len(wrongBodies) == 2 && stripTokens(wrongBodies[0]) != stripTokens(wrongBodies[1]) {
		t.Error("wrong password and unknown user answer differently")
	}
}

func (b *browser) cookie(name string) string {
	u, _ := url.Parse(b.e.ts.URL)
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == name {
			return c.Value
		}
	}
	return ""
}

func stripTokens(s string) string { return csrfRE.ReplaceAllString(s, "") }

func TestOpenRedirectAfterLoginRefused(t *testing.T) {
	e := newEnv(t)
	for _, next := range []string{"https://evil.example/", "//evil.example/", "/\\evil.example"} {
		b := e.browser()
		r := b.post("/login", url.Values{"name": {"alice"}, "password": {pw}, "next": {next}})
		if r.location() != "/connections" {
			t.Errorf("next=%q: redirect to %q, want /connections", next, r.location())
		}
	}
}

func TestLoginRateLimited(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	var last resp
	for range 6 {
		last = b.post("/login", url.Values{"name": {"alice"}, "password": {"nope nope"}})
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Fatalf("6th failed login: status %d Retry-After %q, want 429 with Retry-After", last.status, last.header.Get("Retry-After"))
	}
	// Even the right password is refused while limited.
	if r := b.post("/login", url.Values{"name": {"alice"}, "password": {pw}}); r.status != http.StatusTooManyRequests {
		t.Errorf("right password while limited: %d, want 429", r.status)
	}
	// Another user from the same IP is not locked out by alice's failures.
	if r := b.post("/login", url.Values{"name": {"carol"}, "password": {pw}}); r.status != http.StatusSeeOther {
		t.Errorf("other user: %d, want 303", r.status)
	}
}

func TestLogout(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	if r := b.post("/logout", url.Values{"csrf": {"wrong"}}); r.status != http.StatusForbidden {
		t.Errorf("logout with a wrong token: %d, want 403", r.status)
	}
	if r := b.post("/logout", url.Values{"csrf": {b.token("/connections")}}); r.status != http.StatusSeeOther || r.location() != "/login" {
		t.Fatalf("logout: %d %q", r.status, r.location())
	}
	if r := b.get("/connections"); r.status != http.StatusSeeOther {
		t.Errorf("after logout /connections: %d, want 303 to login", r.status)
	}
}

func TestCSRF(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StateActive)
	b := e.loggedIn("alice")
	tok := b.token("/connections")

	t.Run("cross-origin post refused", func(t *testing.T) {
		form := url.Values{"csrf": {tok}}
		req, _ := http.NewRequest("POST", e.ts.URL+"/connections/"+c.ID+"/pause", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("Sec-Fetch-Site", "cross-site")
		req.Header.Set("Origin", "https://evil.example")
		if r := b.do(req); r.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.status)
		}
	})
	t.Run("missing form token refused", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.ts.URL+"/connections/"+c.ID+"/pause", strings.NewReader(""))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r := b.do(req); r.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.status)
		}
	})
	t.Run("another session's token refused", func(t *testing.T) {
		other := e.loggedIn("alice").token("/connections")
		if r := b.post("/connections/"+c.ID+"/pause", url.Values{"csrf": {other}}); r.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.status)
		}
	})
	t.Run("login without token refused", func(t *testing.T) {
		req, _ := http.NewRequest("POST", e.ts.URL+"/login", strings.NewReader(url.Values{"name": {"alice"}, "password": {pw}}.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if r := e.browser().do(req); r.status != http.StatusForbidden {
			t.Fatalf("status %d, want 403", r.status)
		}
	})
	if got := e.state(c.ID); got != connector.StateActive {
		t.Fatalf("state %s after refused posts, want active", got)
	}
	if r := b.post("/connections/"+c.ID+"/pause", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("same-origin post with token: %d, want 303", r.status)
	}
	if got := e.state(c.ID); got != connector.StatePaused {
		t.Errorf("state %s, want paused", got)
	}
}

func TestLanguage(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	req, _ := http.NewRequest("GET", e.ts.URL+"/login", nil)
	req.Header.Set("Accept-Language", "de-DE,de;q=0.9,en;q=0.8")
	if r := b.do(req); !strings.Contains(r.body, "Benutzername") || !strings.Contains(r.body, `lang="de"`) {
		t.Error("Accept-Language de did not give German")
	}
	if r := b.get("/login"); !strings.Contains(r.body, "User name") {
		t.Error("default is not English")
	}
	r := b.get("/lang?to=de&next=/login")
	if r.status != http.StatusSeeOther || r.location() != "/login" {
		t.Fatalf("lang switch: %d %q", r.status, r.location())
	}
	if r := b.get("/login"); !strings.Contains(r.body, "Benutzername") {
		t.Error("lang cookie did not switch to German")
	}
	if r := b.get("/lang?to=en&next=https://evil.example"); r.location() != "/connections" {
		t.Errorf("lang switch open redirect: %q", r.location())
	}
}

func TestCatalogueComplete(t *testing.T) {
	for key := range catalogue["en"] {
		if _, ok := catalogue["de"][key]; !ok {
			t.Errorf("de lacks %q", key)
		}
	}
	for key := range catalogue["de"] {
		if _, ok := catalogue["en"][key]; !ok {
			t.Errorf("en lacks %q", key)
		}
	}
	// Every state, mode, action, backfill and skip reason has words.
	keys := []string{
		"state.pending", "state.active", "state.paused", "state.needs_consent", "state.failing",
		"mode.delegated", "mode.app_only", "post.move", "post.mark_read", "post.category", "post.none",
		"backfill.new", "backfill.since", "backfill.all",
		"error.unauthorized", "error.forbidden", "error.rate_limited", "error.invalid_code", "error.csrf",
		"error.not_found", "error.unavailable", "error.internal", "error.invalid",
	}
	for _, k := range keys {
		if k == "error.invalid" {
			continue // its message is the form's own key
		}
		if _, ok := catalogue["en"][k]; !ok {
			t.Errorf("catalogue lacks %q", k)
		}
	}
}

func TestHealthReadyMetrics(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if r := b.get("/healthz"); r.status != 200 {
		t.Errorf("healthz %d", r.status)
	}
	if r := b.get("/readyz"); r.status != 200 {
		t.Errorf("readyz %d", r.status)
	}
	b.post("/login", url.Values{"name": {"alice"}, "password": {"bad password"}})
	// The metrics are counted, but the portal's listener never serves
	// them: they name customers and connections.
	if r := b.get("/metrics"); r.status != http.StatusNotFound && r.status != http.StatusSeeOther {
		t.Errorf("/metrics on the portal: %d, want not served", r.status)
	}
	rec := httptest.NewRecorder()
	promhttp.HandlerFor(e.reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	out := rec.Body
	if !strings.Contains(out.String(), `mailgate_portal_logins_total{result="failed"} 1`) {
		t.Errorf("metrics: %s", out.String())
	}
	if r := b.get("/static/style.css"); r.status != 200 || !strings.Contains(r.header.Get("Content-Type"), "text/css") {
		t.Errorf("static css: %d %s", r.status, r.header.Get("Content-Type"))
	}

	notReady := newEnv(t, func(c *Config, _ *Deps) {
		c.Ready = func(ctx context.Context) error { return errors.New("nats down") }
	})
	// A line per problem, as the README promises (issue 24): what is
	// down, for the operator's probe and the person reading it.
	if r := notReady.browser().get("/readyz"); r.status != http.StatusServiceUnavailable || r.body != "not ready\nnats down\n" {
		t.Errorf("readyz when not ready: %d %q", r.status, r.body)
	}
}

// TestTemplateKeysExist finds every literal catalogue key in the templates
// and the Go code and checks that both languages have it.
func TestTemplateKeysExist(t *testing.T) {
	keyRE := regexp.MustCompile(`(?:\.T |tr\(r, |Title: |Label: |key = |Advice = |Error = |errs = append\(errs, |invalid\()"([a-z_]+\.[a-z_0-9]+)"`)
	files, _ := filepath.Glob("templates/*.html")
	gofiles, _ := filepath.Glob("*.go")
	seen := 0
	for _, f := range append(files, gofiles...) {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range keyRE.FindAllStringSubmatch(string(b), -1) {
			seen++
			for lang, cat := range catalogue {
				if _, ok := cat[m[1]]; !ok {
					t.Errorf("%s: key %q missing in %s", f, m[1], lang)
				}
			}
		}
	}
	if seen < 100 {
		t.Errorf("found only %d keys; is the pattern still right?", seen)
	}
}
