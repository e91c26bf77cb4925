package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/crypto/bcrypt"
	"golang.org/x/oauth2"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

const (
	customerA = "acme"
	customerB = "globex"
	pw        = "correct horse battery"
)

// fakeTester answers connection tests from a function (default: pass).
type fakeTester struct {
	mu     sync.Mutex
	fn     func(c connector.Connection) (TestResult, error)
	calls  []string
	primed map[string]string // connection id → access token handed over before its test
}

// Prime records the access token of a code exchange (TokenPrimer).
func (f *fakeTester) Prime(connectionID string, tok *oauth2.Token) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.primed == nil {
		f.primed = map[string]string{}
	}
	f.primed[connectionID] = tok.AccessToken
}

// primedFor is the access token primed for a connection before its first test.
func (f *fakeTester) primedFor(id string) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.primed[id]
}

func (f *fakeTester) Test(_ context.Context, c connector.Connection) (TestResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls = append(f.calls, c.ID)
	if f.fn == nil {
		return TestResult{CanRead: true, CanWrite: true}, nil
	}
	return f.fn(c)
}

func (f *fakeTester) set(fn func(c connector.Connection) (TestResult, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fn = fn
}

type fakeStatuses struct{ st ConnectionStatus }

func (f fakeStatuses) Status(context.Context, string) (ConnectionStatus, error) { return f.st, nil }

func (f fakeStatuses) Retry(context.Context, string) (int, error) { return f.st.GivenUp, nil }

type recordAudit struct {
	mu     sync.Mutex
	events []archive.ConnectionChanged
}

func (a *recordAudit) ConnectionChanged(_ context.Context, d archive.ConnectionChanged) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.events = append(a.events, d)
	return nil
}

func (a *recordAudit) list() []archive.ConnectionChanged {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]archive.ConnectionChanged(nil), a.events...)
}

type recordTrigger struct {
	mu  sync.Mutex
	ids []string
}

func (t *recordTrigger) Trigger(id string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ids = append(t.ids, id)
}

func (t *recordTrigger) list() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]string(nil), t.ids...)
}

// env is a portal on httptest with the real connector store, codes, sealer
// and identity against the Microsoft 365 simulator.
type env struct {
	t        *testing.T
	js       jetstream.JetStream
	sim      *graphtest.Server
	srv      *Server
	ts       *httptest.Server
	store    *connector.Store
	codes    *connector.Codes
	sealer   *connector.Sealer
	identity *connector.Identity
	tester   *fakeTester
	audit    *recordAudit
	trigger  *recordTrigger
	reg      *prometheus.Registry
	handler  swapHandler
}

// swapHandler lets a test replace the portal behind the listening server.
type swapHandler struct {
	mu sync.RWMutex
	h  http.Handler
}

func (s *swapHandler) set(h http.Handler) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.h = h
}

func (s *swapHandler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.RLock()
	h := s.h
	s.mu.RUnlock()
	h.ServeHTTP(w, r)
}

type envOption func(*Config, *Deps)

func newEnv(t *testing.T, opts ...envOption) *env {
	t.Helper()
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	e := &env{t: t, js: js, sim: sim, tester: &fakeTester{}, audit: &recordAudit{}, trigger: &recordTrigger{}, reg: prometheus.NewRegistry()}
	var err error
	if e.store, err = connector.NewStore(ctx, js, connector.StoreOptions{}); err != nil {
		t.Fatal(err)
	}
	if e.codes, err = connector.NewCodes(ctx, js, connector.CodesOptions{}); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, connector.KeySize)
	for i := range key {
		key[i] = byte(i)
	}
	if e.sealer, err = connector.NewSealer(key); err != nil {
		t.Fatal(err)
	}
	// The portal's URL is known only once it listens; the handler follows.
	e.ts = httptest.NewServer(&e.handler)
	t.Cleanup(e.ts.Close)
	if e.identity, err = connector.NewIdentity(connector.IdentityConfig{
		ClientID: graphtest.DefaultClientID, ClientSecret: graphtest.DefaultClientSecret,
		LoginURL: sim.LoginURL(), GraphURL: sim.GraphURL(), RedirectURL: e.ts.URL + "/connect/callback",
	}); err != nil {
		t.Fatal(err)
	}
	cfg := Config{
		PublicURL: e.ts.URL, IdentityOrigin: sim.LoginURL(), Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		Registerer: e.reg,
		Ready:      func(context.Context) error { return nil },
	}
	deps := Deps{
		Identity: e.identity, Connections: e.store, Tenants: e.store, Codes: e.codes, Sealer: e.sealer, Tester: e.tester,
		Statuses: fakeStatuses{}, Audit: e.audit, Trigger: e.trigger,
	}
	for _, o := range opts {
		o(&cfg, &deps)
	}
	if e.srv, err = New(ctx, js, deps, cfg); err != nil {
		t.Fatal(err)
	}
	e.srv.users.cost = bcrypt.MinCost
	e.handler.set(e.srv.Handler())
	for _, u := range []struct {
		name, customer string
		groups         []string
	}{
		{"alice", customerA, []string{"mailbox-connect"}},
		{"bob", customerA, []string{"accounting"}},
		{"carol", customerB, []string{"mailbox-connect"}},
		{graphtest.DefaultUser, customerA, []string{"mailbox-connect"}},
	} {
		if err := e.srv.users.Add(ctx, u.name, u.customer, pw, u.groups); err != nil {
			t.Fatal(err)
		}
	}
	return e
}

// browser is a cookie-keeping client that does not follow redirects.
type browser struct {
	e *env
	c *http.Client
}

func (e *env) browser() *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return &browser{e: e, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

type resp struct {
	status int
	body   string
	header http.Header
}

func (r resp) location() string { return r.header.Get("Location") }

func (b *browser) do(req *http.Request) resp {
	b.e.t.Helper()
	res, err := b.c.Do(req)
	if err != nil {
		b.e.t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	return resp{status: res.StatusCode, body: string(body), header: res.Header}
}

func (b *browser) get(path string) resp {
	b.e.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = b.e.ts.URL + path
	}
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.do(req)
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// token reads the form token from a page of the site.
func (b *browser) token(path string) string {
	b.e.t.Helper()
	m := csrfRE.FindStringSubmatch(b.get(path).body)
	if m == nil && path == "/login" { // logged in: /login redirects
		m = csrfRE.FindStringSubmatch(b.get("/connections").body)
	}
	if m == nil {
		b.e.t.Fatalf("no csrf token on %s", path)
	}
	return html.UnescapeString(m[1])
}

// post sends a form; csrf "" means take a fresh one from /login's page.
func (b *browser) post(path string, form url.Values) resp {
	b.e.t.Helper()
	if form == nil {
		form = url.Values{}
	}
	if _, ok := form["csrf"]; !ok {
		form.Set("csrf", b.token("/login"))
	}
	req, _ := http.NewRequest(http.MethodPost, b.e.ts.URL+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.do(req)
}

func (b *browser) login(name string) {
	b.e.t.Helper()
	r := b.post("/login", url.Values{"name": {name}, "password": {pw}})
	if r.status != http.StatusSeeOther {
		b.e.t.Fatalf("login %s: status %d", name, r.status)
	}
}

func (e *env) loggedIn(name string) *browser {
	b := e.browser()
	b.login(name)
	return b
}

var mailboxSeq atomic.Int64

// connection creates a connection of customer in state directly in the store.
func (e *env) connection(customer string, state connector.State) connector.Connection {
	e.t.Helper()
	ctx := e.t.Context()
	rt, _ := e.sealer.Seal([]byte("refresh-token"))
	c, err := e.store.Create(ctx, connector.Connection{
		Customer: customer, TenantID: graphtest.DefaultTenantID, Mailbox: fmt.Sprintf("rechnungen-%d@%s.example", mailboxSeq.Add(1), customer),
		Folder: "inbox", Mode: connector.Delegated, State: connector.StatePending, RefreshToken: rt, ConsentedBy: graphtest.DefaultUser,
		PostProcess: connector.PostProcess{Action: connector.PostMove, Folder: "Archiviert"}, Backfill: connector.Backfill{Mode: connector.BackfillNew},
		CreatedBy: "test", UpdatedBy: "test",
	})
	if err != nil {
		e.t.Fatal(err)
	}
	if state != connector.StatePending {
		if c, err = e.store.Update(ctx, c.ID, func(c *connector.Connection) error { c.State = state; c.UpdatedBy = "test"; return nil }); err != nil {
			e.t.Fatal(err)
		}
	}
	return c
}

func (e *env) state(id string) connector.State {
	e.t.Helper()
	c, err := e.store.Get(e.t.Context(), id)
	if err != nil {
		e.t.Fatal(err)
	}
	return c.State
}

// apiKey makes a key for customer.
func (e *env) apiKey(customer string) string {
	e.t.Helper()
	secret, _, err := e.srv.keys.Create(e.t.Context(), customer, "dms")
	if err != nil {
		e.t.Fatal(err)
	}
	return secret
}

// api calls the DMS API with a bearer key.
func (e *env) api(method, path, key string, body any) (int, map[string]any, http.Header) {
	e.t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = strings.NewReader(string(b))
	}
	req, _ := http.NewRequest(method, e.ts.URL+path, rd)
	if key != "" {
		req.Header.Set("Authorization", "Bearer "+key)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	var out map[string]any
	if err := json.Unmarshal(raw, &out); err != nil {
		e.t.Fatalf("%s %s: body is not JSON: %q", method, path, raw)
	}
	return res.StatusCode, out, res.Header
}

func errCode(body map[string]any) string {
	e, _ := body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

// testWriter sends log lines to the test's log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// simTester is a behavioural connection test against the simulator: it gets
// an access token for the connection the way the importer will (real
// connector.Tokens) and reads the mailbox's inbox.
type simTester struct {
	tokens   *connector.Tokens
	graphURL string
}

func (s simTester) Test(ctx context.Context, c connector.Connection) (TestResult, error) {
	tok, err := s.tokens.AccessToken(ctx, c.ID)
	if err != nil {
		return TestResult{}, err
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.graphURL+"/users/"+url.PathEscape(c.Mailbox)+"/mailFolders/inbox", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return TestResult{}, connector.E("test", connector.Transient, err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	switch {
	case res.StatusCode == http.StatusOK:
		return TestResult{CanRead: true, CanWrite: true}, nil
	case res.StatusCode == http.StatusForbidden || res.StatusCode == http.StatusUnauthorized:
		return TestResult{Detail: "ErrorAccessDenied"}, connector.E("test", connector.AccessDenied, fmt.Errorf("%s", body))
	case res.StatusCode == http.StatusNotFound:
		return TestResult{}, connector.E("test", connector.NotFound, fmt.Errorf("%s", body))
	}
	return TestResult{}, fmt.Errorf("test: status %d", res.StatusCode)
}

// withSimTester replaces the fake tester with simTester.
func (e *env) withSimTester() {
	t := simTester{tokens: connector.NewTokens(e.identity, e.store, e.sealer, nil), graphURL: e.sim.GraphURL()}
	e.srv.deps.Tester, e.srv.activation.deps.Tester = t, t // the activation tests with what it was built with
}
