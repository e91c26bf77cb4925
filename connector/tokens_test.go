package connector

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"
)

// tokensEnv is a Tokens on a real (embedded) store, a fake identity
// platform and a log buffer that must never show a secret.
type tokensEnv struct {
	idp     *fakeIDP
	id      *Identity
	store   *Store
	changes *changes
	sealer  *Sealer
	tokens  *Tokens
	log     *bytes.Buffer
	secrets []string // values that must never be logged
}

func newTokensEnv(t *testing.T) *tokensEnv {
	t.Helper()
	e := &tokensEnv{idp: newFakeIDP(t), sealer: newTestSealer(t), log: &bytes.Buffer{}}
	e.id = e.idp.identity(t)
	e.store, e.changes = newTestStore(t)
	logger := slog.New(slog.NewJSONHandler(&lockedWriter{w: e.log}, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e.tokens = NewTokens(e.id, e.store, e.sealer, logger)
	e.secrets = append(e.secrets, e.idp.clientSecret)
	t.Cleanup(func() { e.checkLog(t) })
	return e
}

type lockedWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (l *lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// checkLog fails if any token, secret or sealed value shows in the log.
func (e *tokensEnv) checkLog(t *testing.T) {
	t.Helper()
	log := e.log.String()
	for _, s := range append(e.secrets, "0.rt-", "eyJ.access") {
		if strings.Contains(log, s) {
			t.Errorf("log contains a secret (%.8s…):\n%s", s, log)
		}
	}
	conns, _ := e.store.List(context.Background())
	for _, c := range conns {
		for _, sealed := range [][]byte{c.RefreshToken, c.ClientSecret} {
			if len(sealed) > 0 && strings.Contains(log, base64.StdEncoding.EncodeToString(sealed)[:16]) {
				t.Errorf("log contains a sealed value")
			}
		}
	}
}

func (e *tokensEnv) seal(t *testing.T, plain string) []byte {
	t.Helper()
	s, err := e.sealer.Seal([]byte(plain))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// open opens a secret of c as Tokens does, bound or (from before binding)
// not.
func (e *tokensEnv) open(t *testing.T, c Connection, sealed []byte) string {
	t.Helper()
	p, _, err := e.sealer.OpenFor(c.Customer, c.ID, sealed)
	if err != nil {
		t.Fatal(err)
	}
	return string(p)
}

// delegated creates an active delegated connection with a fresh refresh token.
func (e *tokensEnv) delegated(t *testing.T, user string) Connection {
	t.Helper()
	rt := e.idp.issueRefresh(user)
	c, err := e.store.Create(context.Background(), Connection{
		Customer: "acme", TenantID: e.idp.tenant, Mailbox: "rechnungen@firma.example", Mode: Delegated,
		State: StateActive, ConsentedBy: user, RefreshToken: e.seal(t, rt),
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestTokensRefreshRotates(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c := e.delegated(t, "anna")
	rt1 := e.open(t, c, c.RefreshToken)

	access, err := e.tokens.AccessToken(ctx, c.ID)
	if err != nil || access == "" {
		t.Fatalf("AccessToken = %q, %v", access, err)
	}
	stored, _ := e.store.Get(ctx, c.ID)
	rt2 := e.open(t, stored, stored.RefreshToken)
	if rt2 == rt1 || stored.TokenRefreshedAt.IsZero() {
		t.Fatalf("rotated refresh token not stored (same=%v, refreshedAt=%v)", rt2 == rt1, stored.TokenRefreshedAt)
	}
	// The old refresh token is refused now.
	if _, err := e.id.refresh(ctx, rt1); KindOf(err) != NeedsConsent {
		t.Fatalf("old refresh token: err = %v, want refused", err)
	}
	// Cached: no second refresh.
	if again, err := e.tokens.AccessToken(ctx, c.ID); err != nil || again != access {
		t.Fatalf("second AccessToken = %q, %v; want the cached %q", again, err, access)
	}
	before := e.idp.count("refresh_token")
	e.tokens.Forget(c.ID)
	fresh, err := e.tokens.AccessToken(ctx, c.ID)
	if err != nil || fresh == access {
		t.Fatalf("after Forget: %q, %v", fresh, err)
	}
	if n := e.idp.count("refresh_token"); n != before+1 {
		t.Fatalf("refresh requests after Forget = %d, want %d", n, before+1)
	}
	e.secrets = append(e.secrets, rt1, rt2, access, fresh)
}

func TestTokensRevokedNeedsConsent(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c := e.delegated(t, "anna")
	e.secrets = append(e.secrets, e.open(t, c, c.RefreshToken))
	e.idp.revoke("anna")

	_, err := e.tokens.AccessToken(ctx, c.ID)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != NeedsConsent || ce.Code != "AADSTS50173" {
		t.Fatalf("AccessToken: err = %v, want NeedsConsent AADSTS50173", err)
	}
	got, _ := e.store.Get(ctx, c.ID)
	if got.State != StateNeedsConsent || got.UpdatedBy != "importer" || !strings.Contains(got.LastError, "revoked") {
		t.Fatalf("connection after revoked grant: state %s, by %q, last error %q", got.State, got.UpdatedBy, got.LastError)
	}
	requests := e.idp.count("refresh_token")
	// Not retried: a second call fails at once without asking Microsoft.
	if _, err := e.tokens.AccessToken(ctx, c.ID); KindOf(err) != NeedsConsent {
		t.Fatalf("second AccessToken: err = %v", err)
	}
	if n := e.idp.count("refresh_token"); n != requests {
		t.Fatalf("second AccessToken sent %d new token requests", n-requests)
	}
	var toNeeds int
	for _, ch := range e.changes.list() {
		if ch.after.ID == c.ID && ch.after.State == StateNeedsConsent {
			toNeeds++
		}
	}
	if toNeeds != 1 {
		t.Fatalf("OnChange to needs_consent %d times, want 1", toNeeds)
	}
}

func TestTokensConcurrentSingleRefresh(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c := e.delegated(t, "anna")
	gate := make(chan struct{})
	e.idp.mu.Lock()
	e.idp.gate = gate
	e.idp.mu.Unlock()

	const n = 20
	var started, wg sync.WaitGroup
	started.Add(n)
	results := make(chan string, n)
	for range n {
		wg.Go(func() {
			started.Done()
			tok, err := e.tokens.AccessToken(ctx, c.ID)
			if err != nil {
				t.Error(err)
			}
			results <- tok
		})
	}
	started.Wait()
	close(gate) // let the token endpoint answer only once every caller is on its way
	wg.Wait()
	close(results)
	var first string
	for tok := range results {
		if first == "" {
			first = tok
		}
		if tok != first {
			t.Fatalf("callers got different tokens: %q and %q", first, tok)
		}
	}
	if got := e.idp.count("refresh_token"); got != 1 {
		t.Fatalf("%d concurrent AccessToken calls made %d refreshes, want 1", n, got)
	}
}

// A replica that read the connection before another replica rotated the
// refresh token retries with the fresh one instead of giving up.
func TestTokensStaleRefreshTokenRetries(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c := e.delegated(t, "anna")
	other := NewTokens(e.id, e.store, e.sealer, nil) // another replica
	if _, err := other.AccessToken(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	// c still holds the spent token.
	tok, err := e.tokens.refreshDelegated(ctx, c)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("refresh with a stale token: %v", err)
	}
	if got, _ := e.store.Get(ctx, c.ID); got.State != StateActive {
		t.Fatalf("state = %s, want active", got.State)
	}
}

// A rotation that loses the compare-and-set keeps the stored token.
func TestTokensRotationDoesNotOverwriteNewer(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c := e.delegated(t, "anna")
	storedBefore := c.RefreshToken
	racer := c
	racer.RefreshToken = e.seal(t, e.idp.issueRefresh("anna")) // what this replica read earlier
	tok, err := e.tokens.redeem(ctx, racer)
	if err != nil || tok.AccessToken == "" {
		t.Fatalf("redeem: %v", err)
	}
	got, _ := e.store.Get(ctx, c.ID)
	if !bytes.Equal(got.RefreshToken, storedBefore) {
		t.Fatal("the stored refresh token was overwritten by a replica that lost the race")
	}
}

// A refresh that finishes after a delete does not bring the token back.
func TestTokensRefreshAfterDeleteKeepsWiped(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c := e.delegated(t, "anna")
	if _, err := e.store.Delete(ctx, c.ID, "portal:bob"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.redeem(ctx, c); err != nil { // c: read before the delete
		t.Fatalf("redeem: %v", err)
	}
	got, _ := e.store.Get(ctx, c.ID)
	if got.State != StateDeleted || got.RefreshToken != nil {
		t.Fatalf("after delete and a late refresh: state %s, refresh token stored: %v", got.State, got.RefreshToken != nil)
	}
	if _, err := e.tokens.AccessToken(ctx, c.ID); KindOf(err) != NotFound {
		t.Fatalf("AccessToken of a deleted connection: %v, want NotFound", err)
	}
}

func TestTokensAppOnly(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	own, err := e.store.Create(ctx, Connection{Customer: "acme", TenantID: e.idp.tenant, Mode: AppOnly, State: StateActive})
	if err != nil {
		t.Fatal(err)
	}
	theirs, err := e.store.Create(ctx, Connection{Customer: "acme", TenantID: e.idp.tenant, Mode: AppOnly, State: StateActive,
		ClientID: e.idp.clientID, ClientSecret: e.seal(t, e.idp.clientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []Connection{own, theirs} {
		if tok, err := e.tokens.AccessToken(ctx, c.ID); err != nil || tok == "" {
			t.Fatalf("app-only %s: %q, %v", c.ID, tok, err)
		}
	}
	e.idp.expireSecret()
	e.tokens.Forget(theirs.ID)
	_, err = e.tokens.AccessToken(ctx, theirs.ID)
	var ce *Error
	if !errors.As(err, &ce) || ce.Kind != NeedsConsent || ce.Code != "AADSTS7000222" {
		t.Fatalf("expired secret: err = %v", err)
	}
	if got, _ := e.store.Get(ctx, theirs.ID); got.State != StateNeedsConsent || !strings.Contains(got.LastError, "secret expired") {
		t.Fatalf("after expired secret: %s %q", got.State, got.LastError)
	}
	n := e.idp.count("client_credentials")
	if _, err := e.tokens.AccessToken(ctx, theirs.ID); KindOf(err) != NeedsConsent || e.idp.count("client_credentials") != n {
		t.Fatalf("needs_consent connection asked Microsoft again (err %v)", err)
	}
	// The other connection keeps its cached token.
	if _, err := e.tokens.AccessToken(ctx, own.ID); err != nil {
		t.Fatal(err)
	}
}

func TestTokensRefreshIdle(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	now := time.Now()
	e.tokens.now = func() time.Time { return now }
	mk := func(state State, mode Mode, refreshedAgo time.Duration) Connection {
		c := e.delegated(t, "anna")
		c, err := e.store.Update(ctx, c.ID, func(c *Connection) error {
			c.Mode, c.TokenRefreshedAt = mode, now.Add(-refreshedAgo)
			if state == StatePaused {
				c.State = StatePaused
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	idleActive := mk(StateActive, Delegated, 40*24*time.Hour)
	idlePaused := mk(StatePaused, Delegated, 40*24*time.Hour)
	recent := mk(StateActive, Delegated, time.Hour)
	_ = mk(StateActive, AppOnly, 40*24*time.Hour)

	n, err := e.tokens.RefreshIdle(ctx, 30*24*time.Hour)
	if err != nil || n != 2 {
		t.Fatalf("RefreshIdle = %d, %v; want 2", n, err)
	}
	for _, c := range []Connection{idleActive, idlePaused} {
		got, _ := e.store.Get(ctx, c.ID)
		if !got.TokenRefreshedAt.Equal(now.UTC()) || bytes.Equal(got.RefreshToken, c.RefreshToken) {
			t.Fatalf("%s not refreshed: %v", c.ID, got.TokenRefreshedAt)
		}
	}
	if got, _ := e.store.Get(ctx, recent.ID); !bytes.Equal(got.RefreshToken, recent.RefreshToken) {
		t.Fatal("recently used token refreshed")
	}
	if e.idp.count("refresh_token") != 2 {
		t.Fatalf("token requests = %d, want 2", e.idp.count("refresh_token"))
	}
}

func BenchmarkAccessTokenCached(b *testing.B) {
	ctx := context.Background()
	idp := newFakeIDP(b)
	store, _ := newTestStore(b)
	sealer := newTestSealer(b)
	sealed, _ := sealer.Seal([]byte(idp.issueRefresh("anna")))
	c, err := store.Create(ctx, Connection{Customer: "acme", TenantID: idp.tenant, Mode: Delegated, State: StateActive, RefreshToken: sealed})
	if err != nil {
		b.Fatal(err)
	}
	tokens := NewTokens(idp.identity(b), store, sealer, nil)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := tokens.AccessToken(ctx, c.ID); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n := idp.count("refresh_token"); n != 1 {
		b.Fatalf("refreshes = %d, want 1", n)
	}
}

// TestTokensBindUnboundSecrets: secrets stored before they were bound to
// their connection still work, and the first use stores them bound; a
// bound secret copied into another connection does not work there.
func TestTokensBindUnboundSecrets(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	c, err := e.store.Create(ctx, Connection{Customer: "acme", TenantID: e.idp.tenant, Mode: AppOnly, State: StateActive,
		ClientID: e.idp.clientID, ClientSecret: e.seal(t, e.idp.clientSecret)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.AccessToken(ctx, c.ID); err != nil {
		t.Fatalf("unbound client secret: %v", err)
	}
	stored, _ := e.store.Get(ctx, c.ID)
	if got, reseal, err := e.sealer.OpenFor(c.Customer, c.ID, stored.ClientSecret); err != nil || reseal || string(got) != e.idp.clientSecret {
		t.Fatalf("client secret after first use: %q reseal %v err %v; want it stored bound", got, reseal, err)
	}
	// The bound secret, copied into a connection of another customer.
	thief, err := e.store.Create(ctx, Connection{Customer: "globex", TenantID: e.idp.tenant, Mode: AppOnly, State: StateActive,
		ClientID: e.idp.clientID, ClientSecret: stored.ClientSecret})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.AccessToken(ctx, thief.ID); !errors.Is(err, ErrSealed) {
		t.Errorf("copied secret in another customer's connection: %v, want ErrSealed", err)
	}

	// A delegated connection with an unbound refresh token that Microsoft
	// does not rotate: stored bound after the refresh.
	d := e.delegated(t, "alice@firma.example")
	e.idp.noRotation(true)
	if _, err := e.tokens.AccessToken(ctx, d.ID); err != nil {
		t.Fatal(err)
	}
	got, _ := e.store.Get(ctx, d.ID)
	if _, reseal, err := e.sealer.OpenFor(d.Customer, d.ID, got.RefreshToken); err != nil || reseal {
		t.Errorf("refresh token after use: reseal %v, err %v; want it stored bound", reseal, err)
	}
}

// TestTokensBindSealed: at start every secret still sealed unbound is
// stored bound to its connection, once; bound ones and connections without
// secrets are left alone.
func TestTokensBindSealed(t *testing.T) {
	ctx := context.Background()
	e := newTokensEnv(t)
	d := e.delegated(t, "alice@firma.example") // refresh token sealed unbound
	a, err := e.store.Create(ctx, Connection{Customer: "globex", TenantID: e.idp.tenant, Mode: AppOnly, State: StatePaused,
		ClientID: e.idp.clientID, ClientSecret: e.seal(t, "globex-secret")})
	if err != nil {
		t.Fatal(err)
	}
	plain, err := e.store.Create(ctx, Connection{Customer: "acme", TenantID: e.idp.tenant, Mode: AppOnly, State: StateActive})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := e.store.Get(ctx, plain.ID)
	if n, err := e.tokens.BindSealed(ctx); err != nil || n != 2 {
		t.Fatalf("BindSealed = %d, %v; want 2 connections", n, err)
	}
	for _, c := range []struct {
		id     string
		sealed func(Connection) []byte
		want   string
	}{
		{d.ID, func(c Connection) []byte { return c.RefreshToken }, ""},
		{a.ID, func(c Connection) []byte { return c.ClientSecret }, "globex-secret"},
	} {
		got, _ := e.store.Get(ctx, c.id)
		p, reseal, err := e.sealer.OpenFor(got.Customer, got.ID, c.sealed(got))
		if err != nil || reseal || (c.want != "" && string(p) != c.want) {
			t.Errorf("%s after BindSealed: %q reseal %v err %v", c.id, p, reseal, err)
		}
	}
	if after, _ := e.store.Get(ctx, plain.ID); !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("a connection without secrets was rewritten")
	}
	if n, err := e.tokens.BindSealed(ctx); err != nil || n != 0 {
		t.Errorf("second BindSealed = %d, %v; want nothing left", n, err)
	}
	// The delegated connection still works.
	if _, err := e.tokens.AccessToken(ctx, d.ID); err != nil {
		t.Errorf("after BindSealed: %v", err)
	}
}
