package main

import (
	"context"
	"fmt"
	"html"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestRefusedSignInStopsAtOnce runs `mailgate serve --role importer` with a
// delegated connection that imports, then has the simulator refuse every
// refresh of it with invalid_grant and an AADSTS code no list knows (as
// Microsoft may, for example AADSTS70043 under a sign-in frequency policy).
// The connection must reach needs_consent on the first refused refresh,
// with one connection.changed event and a general explanation, and no
// token request may follow: a second, healthy connection's polls are the
// clock for "several poll intervals later".
func TestRefusedSignInStopsAtOnce(t *testing.T) {
	const (
		poll    = 5 * time.Second // MAILGATE_POLL_INTERVAL of infra.env
		unknown = 99999
	)
	bin := mailgateBinary(t)
	in := newStack(t, stack{archive: dirArchive})
	// Access tokens live 2m5s; connector.Tokens replaces them two minutes
	// before expiry, so the importer refreshes about every 5 s.
	in.sim.SetTokenLifetime(2*time.Minute + 5*time.Second)
	ctx := context.Background()
	store, err := connector.NewStore(ctx, in.js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn := in.addDelegatedConnection(t, store, "firma", graphtest.DefaultMailbox)
	const clockBox = "uhr@" + graphtest.DefaultTenantDomain
	in.sim.AddMailbox(graphtest.Mailbox{Address: clockBox, DisplayName: "Uhr", Shared: true})
	clock := in.addAppConnection(t, "firma", clockBox)
	in.deliverInvoices(t, graphtest.DefaultMailbox, 1)
	p := startProc(t, bin, append(in.env(), "MAILGATE_REPLICA=signin", "MAILGATE_LOG_LEVEL=debug"), "serve", "--role", "importer")

	// The delegated connection works: its invoice arrives.
	eventually(t, time.Minute, "the delegated connection's invoice", func() bool {
		if p.exited() {
			t.Fatalf("the importer exited:\n%s", p.stderr())
		}
		_, distinct, _ := in.tally(t)
		return distinct >= 1
	})
	if refused := in.sim.Counters().Requests["token"][http.StatusBadRequest]; refused != 0 {
		t.Fatalf("%d token requests refused before the fault", refused)
	}

	// Microsoft ends the grant with a code mailgate has never seen.
	in.sim.Inject(graphtest.Fault{PathContains: "/oauth2/v2.0/token", Token: graphtest.TokenFault{
		Grant: "refresh_token", AADSTS: unknown, Suberror: "token_expired",
		Description: "The refresh token has expired or is invalid due to a policy of the tenant."}})
	injectedAt := time.Now()
	var stopped connector.Connection
	eventually(t, 2*time.Minute, "the connection to need consent", func() bool {
		c, err := store.Get(ctx, conn.ID)
		if err != nil {
			t.Fatal(err)
		}
		stopped = c
		return c.State != connector.StateActive
	})
	reached := time.Since(injectedAt)
	refusedAt := in.sim.Counters().Requests["token"][http.StatusBadRequest]
	if stopped.State != connector.StateNeedsConsent {
		t.Fatalf("state %s (%q), want needs_consent", stopped.State, stopped.LastError)
	}
	if refusedAt != 1 {
		t.Errorf("%d refused token requests until needs_consent, want 1: the first refusal stops the connection", refusedAt)
	}
	// The cached token lasts at most 5 s more, then the next poll refreshes.
	if limit := 5*time.Second + poll + 5*time.Second; reached > limit {
		t.Errorf("needs_consent %s after the fault, want within one poll (%s)", reached.Round(time.Millisecond), limit)
	}
	code := fmt.Sprintf("AADSTS%d", unknown)
	if !strings.Contains(stopped.LastError, code) || !strings.Contains(stopped.LastError, "no longer valid") {
		t.Errorf("explanation %q: want the general sentence for invalid_grant with %s", stopped.LastError, code)
	}

	// Several poll intervals later, counted on the healthy connection's
	// delta requests: still no token request for the stopped one (the fault
	// stays, so any refresh would be answered 400 again).
	deltas := func() int {
		n := 0
		for _, rec := range mailboxLog(in.sim.Counters(), clockBox) {
			if rec.Endpoint == "messages.delta" {
				n++
			}
		}
		return n
	}
	start := deltas()
	eventually(t, 2*time.Minute, "three more polls of the healthy connection", func() bool { return deltas() >= start+3 })
	c := in.sim.Counters()
	if n := c.Requests["token"][http.StatusBadRequest]; n != refusedAt {
		t.Errorf("%d refused token requests after needs_consent; want none after the first", n-refusedAt)
	}
	if got, _ := store.Get(ctx, conn.ID); got.State != connector.StateNeedsConsent {
		t.Errorf("the connection left needs_consent on its own: %s", got.State)
	}
	if got, _ := store.Get(ctx, clock.ID); got.State != connector.StateActive {
		t.Errorf("the healthy connection is %s (%q), want active", got.State, got.LastError)
	}

	changes := connectionChanges(t, in.js, conn.ID)
	if len(changes) != 1 {
		t.Fatalf("%d connection.changed events, want exactly 1: %+v", len(changes), changes)
	}
	if ch := changes[0]; ch.From != "active" || ch.To != "needs_consent" || ch.Action != "needs_consent" || ch.Actor != "importer" || ch.Error != stopped.LastError {
		t.Errorf("connection.changed %+v", ch)
	}
	if log := p.stderr(); !strings.Contains(log, "connection needs consent") || !strings.Contains(log, code) {
		t.Errorf("the importer did not log the refusal with its code")
	}
	t.Logf("needs_consent %s after the fault with %d refused token request; %d polls of the healthy connection later still %d",
		reached.Round(100*time.Millisecond), refusedAt, deltas()-start, c.Requests["token"][http.StatusBadRequest])
}

// connectionChanges returns the connection.changed events of a connection
// on the stream, in order.
func connectionChanges(t *testing.T, js jetstream.JetStream, id string) []archive.ConnectionChanged {
	t.Helper()
	var out []archive.ConnectionChanged
	for _, ev := range streamEvents(t, js, "mailgate.*.connection.changed") {
		if d, ok := ev.Data.(*archive.ConnectionChanged); ok && d.Connection == id {
			out = append(out, *d)
		}
	}
	return out
}

// TestReconnectAfterRefusal is the person's side through the built binary
// (`mailgate serve`, all roles): connecting uses the code exchange's access
// token for the connection test (one token request, no refresh straight
// away); a refusal with an unknown code puts the connection in
// needs_consent and its page says what to do; “Reconnect” signs in again,
// tests the new grant with the new access token and makes the connection
// active, and it imports again.
func TestReconnectAfterRefusal(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{archive: dirArchive})
	port := freePorts(t, 1)[0]
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := append(in.env(), "MAILGATE_HTTP_ADDR="+strings.TrimPrefix(base, "http://"), "MAILGATE_PUBLIC_URL="+base, "MAILGATE_REPLICA=reconnect")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-passw0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, bin, env, "users", "add", "anna", "--customer", "firma", "--group", "mailbox-connect", "--password-file", pwFile)
	apiKey := strings.TrimSpace(runCLI(t, bin, env, "apikeys", "create", "--customer", "firma"))
	in.deliverInvoices(t, graphtest.DefaultMailbox, 1)
	p := startProc(t, bin, env, "serve")
	p.waitFor(t, regexp.MustCompile(`mailgate (listening) on`), time.Minute)

	b := newBrowser(t, base)
	resp := b.form("/login", "/login", url.Values{"name": {"anna"}, "password": {"s3cret-passw0rd"}, "next": {"/"}})
	resp.Body.Close()
	tokens := func() int { return in.sim.Counters().Total("token") }

	// Connect: one token request, the code exchange; the connection test
	// and the redeem use its access token.
	before := tokens()
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	authURL := b.redirectOf(b.form("/connect", "/connect", url.Values{
		"mailbox": {graphtest.DefaultMailbox}, "mode": {"delegated"}, "post": {"move"}, "folder": {"Archiviert"}, "backfill": {"all"},
	}))
	if q := authURL.Query(); q.Has("login_hint") && q.Has("prompt") {
		t.Errorf("the sign-in request sends login_hint and prompt=%s together", q.Get("prompt"))
	}
	b.c.CheckRedirect = nil
	page := b.get(b.consent(authURL).String())
	m := codeRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no connection code after consent:\n%s", page)
	}
	res := redeem(t, base, apiKey, m[1])
	conn, _ := res["connection"].(map[string]any)
	id, _ := conn["id"].(string)
	if conn["state"] != "active" {
		t.Fatalf("after redeem: %v", res)
	}
	in.waitDistinct(t, 1, time.Minute)
	if n := tokens() - before; n != 1 {
		t.Errorf("connect, test, redeem and first import sent %d token requests, want 1 (the code exchange)", n)
	}

	// Microsoft ends the grant with a code no list knows. The access token
	// is cached in memory, so a restart makes the importer refresh at once.
	in.sim.Inject(graphtest.Fault{PathContains: "/oauth2/v2.0/token", Token: graphtest.TokenFault{Grant: "refresh_token", AADSTS: 99999}})
	p.stop()
	p = startProc(t, bin, env, "serve")
	p.waitFor(t, regexp.MustCompile(`mailgate (listening) on`), time.Minute)
	store, err := connector.NewStore(context.Background(), in.js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "the connection to need consent", func() bool {
		c, err := store.Get(context.Background(), id)
		return err == nil && c.State == connector.StateNeedsConsent
	})
	in.sim.ClearFaults()
	detail := html.UnescapeString(b.get("/connections/" + id))
	for _, want := range []string{"Needs new consent", "Click “Reconnect” and sign in again", "AADSTS99999", "no longer valid"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the connection page lacks %q", want)
		}
	}

	// Reconnect: again one token request, the code exchange.
	before = tokens()
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	authURL = b.redirectOf(b.form("/connections/"+id, "/connections/"+id+"/reconnect", url.Values{}))
	b.c.CheckRedirect = nil
	if q := authURL.Query(); q.Has("login_hint") && q.Has("prompt") {
		t.Errorf("the reconnect sends login_hint and prompt=%s together", q.Get("prompt"))
	}
	page = html.UnescapeString(b.get(b.consent(authURL).String()))
	if !strings.Contains(page, "Reconnected. The connection test passed.") {
		t.Fatalf("after reconnecting:\n%s", page)
	}
	if c, _ := store.Get(context.Background(), id); c.State != connector.StateActive || c.LastError != "" {
		t.Errorf("after reconnecting: %s %q", c.State, c.LastError)
	}
	if _, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{From: "rechnung@lieferant.example", Subject: "Rechnung 2",
		Attachments: []graphtest.Attachment{{Name: "RE-2.pdf", ContentType: "application/pdf",
			Content: samples.InvoicePDF("Lieferant GmbH", "RE-2", 200, time.Now())}}}); err != nil {
		t.Fatal(err)
	}
	in.waitDistinct(t, 2, time.Minute)
	if n := tokens() - before; n != 1 {
		t.Errorf("reconnect, its test and the next import sent %d token requests, want 1 (the code exchange)", n)
	}
	var actions []string
	for _, ch := range connectionChanges(t, in.js, id) {
		actions = append(actions, ch.Action)
	}
	if n := strings.Count(strings.Join(actions, " "), "needs_consent"); n != 1 || actions[len(actions)-1] != "reconnect" {
		t.Errorf("connection.changed actions %v: want one needs_consent, ending with reconnect", actions)
	}
}

// TestNewSecretAfterRefusal is the own-app variant through the built
// binary: Microsoft refuses the stored client secret, the connection goes
// to needs_consent without asking again, its page asks for a new secret,
// and the new secret is tested before it is stored (the stored connection
// still waits for a person, so the test cannot use the stored state) and
// makes the connection import again.
func TestNewSecretAfterRefusal(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{archive: dirArchive})
	port := freePorts(t, 1)[0]
	base := fmt.Sprintf("http://127.0.0.1:%d", port)
	env := append(in.env(), "MAILGATE_HTTP_ADDR="+strings.TrimPrefix(base, "http://"), "MAILGATE_PUBLIC_URL="+base, "MAILGATE_REPLICA=secret")
	pwFile := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pwFile, []byte("s3cret-passw0rd\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	runCLI(t, bin, env, "users", "add", "anna", "--customer", "firma", "--group", "mailbox-connect", "--password-file", pwFile)
	store, err := connector.NewStore(context.Background(), in.js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conn := in.createConnection(t, store, connector.Connection{Customer: "firma", Mailbox: graphtest.DefaultMailbox, Mode: connector.AppOnly,
		ClientID: graphtest.DefaultClientID, ClientSecret: in.seal(t, "a-secret-somebody-deleted"), SecretExpiresAt: time.Now().AddDate(1, 0, 0)})
	in.deliverInvoices(t, graphtest.DefaultMailbox, 1)
	p := startProc(t, bin, env, "serve")
	p.waitFor(t, regexp.MustCompile(`mailgate (listening) on`), time.Minute)

	eventually(t, time.Minute, "the connection to need consent", func() bool {
		c, err := store.Get(context.Background(), conn.ID)
		return err == nil && c.State == connector.StateNeedsConsent
	})
	tokens := func() int { return in.sim.Counters().Total("token") }
	refused := tokens()
	b := newBrowser(t, base)
	resp := b.form("/login", "/login", url.Values{"name": {"anna"}, "password": {"s3cret-passw0rd"}, "next": {"/"}})
	resp.Body.Close()
	detail := html.UnescapeString(b.get("/connections/" + conn.ID))
	for _, want := range []string{"Create a new client secret in Microsoft Entra", "the client secret is invalid (AADSTS7000215)"} {
		if !strings.Contains(detail, want) {
			t.Errorf("the connection page lacks %q", want)
		}
	}
	if n := tokens() - refused; n != 0 {
		t.Errorf("%d token requests for a connection in needs_consent", n)
	}

	// The reconnect button leads to the secret form; the new secret passes.
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	form := b.redirectOf(b.form("/connections/"+conn.ID, "/connections/"+conn.ID+"/reconnect", url.Values{}))
	b.c.CheckRedirect = nil
	resp = b.form(form.Path, form.Path, url.Values{"client_secret": {graphtest.DefaultClientSecret},
		"secret_expires": {time.Now().AddDate(1, 0, 0).Format(time.DateOnly)}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/connections/"+conn.ID {
		t.Fatalf("new secret: %s at %s", resp.Status, resp.Request.URL.Path)
	}
	if c, _ := store.Get(context.Background(), conn.ID); c.State != connector.StateActive {
		t.Fatalf("after the new secret: %s %q", c.State, c.LastError)
	}
	in.waitDistinct(t, 1, time.Minute)
	var actions []string
	for _, ch := range connectionChanges(t, in.js, conn.ID) {
		actions = append(actions, ch.Action)
	}
	if n := strings.Count(strings.Join(actions, " "), "needs_consent"); n != 1 || actions[len(actions)-1] != "reconnect" {
		t.Errorf("connection.changed actions %v: want one needs_consent, ending with reconnect", actions)
	}
}

// redirectOf returns the Location of a redirect answer.
func (b *browser) redirectOf(resp *http.Response) *url.URL {
	b.t.Helper()
	resp.Body.Close()
	loc, err := resp.Location()
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || err != nil {
		b.t.Fatalf("%s %s: %s, want a redirect", resp.Request.Method, resp.Request.URL.Path, resp.Status)
	}
	return loc
}

// consent plays the person on the simulator's sign-in and consent page and
// returns where Microsoft sends the browser back.
func (b *browser) consent(authURL *url.URL) *url.URL {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	back, err := graphtest.Authorize(ctx, b.c, authURL.String(), graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		b.t.Fatalf("consent: %v", err)
	}
	return back
}
