package connector_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
	"golang.org/x/oauth2"
)

// simEnv wires the connector to the Microsoft 365 simulator.
type simEnv struct {
	sim    *graphtest.Server
	id     *connector.Identity
	store  *connector.Store
	sealer *connector.Sealer
	tokens *connector.Tokens
	log    *bytes.Buffer

	mu      sync.Mutex
	changes map[string][]connector.State // state changes per connection id, from the store's hook
}

// changesOf returns the states a connection changed to, in order.
func (e *simEnv) changesOf(id string) []connector.State {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]connector.State(nil), e.changes[id]...)
}

func newSimEnv(t *testing.T) *simEnv {
	t.Helper()
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	id, err := connector.NewIdentity(connector.IdentityConfig{
		ClientID: graphtest.DefaultClientID, ClientSecret: graphtest.DefaultClientSecret,
		LoginURL: sim.LoginURL(), GraphURL: sim.GraphURL(), RedirectURL: graphtest.DefaultRedirectURI,
	})
	if err != nil {
		t.Fatal(err)
	}
	js, _ := archivetest.RunJetStream(t)
	e := &simEnv{sim: sim, id: id, changes: map[string][]connector.State{}}
	store, err := connector.NewStore(context.Background(), js, connector.StoreOptions{
		OnChange: func(_ context.Context, before, after connector.Connection) {
			if before.ID == "" {
				return // created
			}
			e.mu.Lock()
			e.changes[after.ID] = append(e.changes[after.ID], after.State)
			e.mu.Unlock()
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := connector.NewSealer(bytes.Repeat([]byte{7}, connector.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	log := &bytes.Buffer{} // slog handlers serialise their writes
	tokens := connector.NewTokens(id, store, sealer, slog.New(slog.NewTextHandler(log, &slog.HandlerOptions{Level: slog.LevelDebug})))
	e.store, e.sealer, e.tokens, e.log = store, sealer, tokens, log
	return e
}

// consent runs the browser part of the code flow and returns code and state.
func (e *simEnv) consent(t *testing.T, req connector.AuthRequest) (code, state string) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	redirect, err := graphtest.Authorize(context.Background(), &http.Client{Jar: jar}, e.id.AuthCodeURL(req, graphtest.DefaultUser),
		graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatalf("authorize: %v", err)
	}
	q := redirect.Query()
	if q.Get("code") == "" {
		t.Fatalf("no code in redirect %s", redirect.Redacted())
	}
	return q.Get("code"), q.Get("state")
}

// graphGet calls Graph with an access token and returns the status.
func (e *simEnv) graphGet(t *testing.T, token, path string) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.sim.GraphURL()+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestSimCodeFlowPKCE(t *testing.T) {
	ctx := context.Background()
	e := newSimEnv(t)

	req := connector.NewAuthRequest()
	code, state := e.consent(t, req)
	if state != req.State {
		t.Fatalf("state = %q, want %q", state, req.State)
	}
	consent, err := e.id.Exchange(ctx, code, req)
	if err != nil {
		t.Fatalf("Exchange: %v", err)
	}
	if consent.TenantID != graphtest.DefaultTenantID || !strings.EqualFold(consent.Username, graphtest.DefaultUser) ||
		consent.ObjectID == "" || consent.RefreshToken == "" {
		t.Fatalf("consent = tenant %q user %q oid %q rt %v", consent.TenantID, consent.Username, consent.ObjectID, consent.RefreshToken != "")
	}
	if st := e.graphGet(t, consent.Token.AccessToken, "/me"); st != http.StatusOK {
		t.Fatalf("GET /me with the exchanged token: %d", st)
	}

	// A code redeemed with another verifier is refused.
	req2 := connector.NewAuthRequest()
	code2, _ := e.consent(t, req2)
	wrong := req2
	wrong.Verifier = connector.NewAuthRequest().Verifier
	if _, err := e.id.Exchange(ctx, code2, wrong); err == nil {
		t.Fatal("Exchange with a wrong PKCE verifier succeeded")
	} else if connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("wrong verifier classified as needs_consent: %v", err)
	}
}

func (e *simEnv) delegatedConnection(t *testing.T) (connector.Connection, string) {
	t.Helper()
	// The code is redeemed with plain oauth2 so that these tests do not
	// depend on id_token verification (TestSimCodeFlowPKCE covers it).
	req := connector.NewAuthRequest()
	code, _ := e.consent(t, req)
	cfg := oauth2.Config{
		ClientID: graphtest.DefaultClientID, ClientSecret: graphtest.DefaultClientSecret, RedirectURL: graphtest.DefaultRedirectURI,
		Endpoint: oauth2.Endpoint{TokenURL: e.sim.LoginURL() + "/organizations/oauth2/v2.0/token", AuthStyle: oauth2.AuthStyleInParams},
	}
	tok, err := cfg.Exchange(context.Background(), code, oauth2.VerifierOption(req.Verifier))
	if err != nil || tok.RefreshToken == "" {
		t.Fatalf("exchange: %v", err)
	}
	sealed, err := e.sealer.Seal([]byte(tok.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Create(context.Background(), connector.Connection{
		Customer: "acme", TenantID: graphtest.DefaultTenantID, Mailbox: graphtest.DefaultMailbox, Mode: connector.Delegated,
		State: connector.StateActive, ConsentedBy: graphtest.DefaultUser, RefreshToken: sealed,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c, tok.RefreshToken
}

func TestSimRefreshRotationAndRevocation(t *testing.T) {
	ctx := context.Background()
	e := newSimEnv(t)
	c, rt1 := e.delegatedConnection(t)

	access, err := e.tokens.AccessToken(ctx, c.ID)
	if err != nil {
		t.Fatalf("AccessToken: %v", err)
	}
	if st := e.graphGet(t, access, "/me"); st != http.StatusOK {
		t.Fatalf("GET /me with the refreshed token: %d", st)
	}
	stored, _ := e.store.Get(ctx, c.ID)
	rt2, err := e.sealer.Open(stored.RefreshToken)
	if err != nil || string(rt2) == rt1 {
		t.Fatalf("rotated refresh token not stored (err %v)", err)
	}

	// The old refresh token is refused after rotation: a connection still
	// holding it ends in needs_consent.
	sealedOld, _ := e.sealer.Seal([]byte(rt1))
	old, err := e.store.Create(ctx, connector.Connection{Customer: "acme", TenantID: c.TenantID, Mode: connector.Delegated,
		State: connector.StateActive, RefreshToken: sealedOld})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.AccessToken(ctx, old.ID); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("old refresh token: err = %v, want NeedsConsent", err)
	}

	// Revoked consent: needs_consent once, then no further token requests.
	e.sim.RevokeRefreshTokens(graphtest.DefaultUser)
	e.tokens.Forget(c.ID)
	_, err = e.tokens.AccessToken(ctx, c.ID)
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Kind != connector.NeedsConsent || ce.Code != "AADSTS50173" {
		t.Fatalf("after revocation: err = %v, want NeedsConsent AADSTS50173", err)
	}
	if got, _ := e.store.Get(ctx, c.ID); got.State != connector.StateNeedsConsent || got.LastError == "" || got.UpdatedBy != "importer" {
		t.Fatalf("after revocation: state %s, last error %q, by %q", got.State, got.LastError, got.UpdatedBy)
	}
	before := e.sim.Counters().Total("token")
	if _, err := e.tokens.AccessToken(ctx, c.ID); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("second call: %v", err)
	}
	if after := e.sim.Counters().Total("token"); after != before {
		t.Fatalf("a needs_consent connection sent %d token requests", after-before)
	}
	for _, secret := range []string{rt1, string(rt2), access, graphtest.DefaultClientSecret} {
		if strings.Contains(e.log.String(), secret) {
			t.Fatal("a token or secret was logged")
		}
	}
}

func TestSimClientCredentials(t *testing.T) {
	ctx := context.Background()
	e := newSimEnv(t)
	e.sim.GrantAdminConsent(graphtest.DefaultTenantID, graphtest.DefaultClientID)
	c, err := e.store.Create(ctx, connector.Connection{Customer: "acme", TenantID: graphtest.DefaultTenantID,
		Mailbox: graphtest.DefaultMailbox, Mode: connector.AppOnly, State: connector.StateActive})
	if err != nil {
		t.Fatal(err)
	}
	access, err := e.tokens.AccessToken(ctx, c.ID)
	if err != nil {
		t.Fatalf("client credentials: %v", err)
	}
	if st := e.graphGet(t, access, "/users/"+graphtest.DefaultMailbox+"/mailFolders/inbox"); st != http.StatusOK {
		t.Fatalf("GET inbox with the app token: %d", st)
	}

	e.sim.ExpireClientSecret(graphtest.DefaultClientID)
	e.tokens.Forget(c.ID)
	_, err = e.tokens.AccessToken(ctx, c.ID)
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Kind != connector.NeedsConsent || ce.Code != "AADSTS7000222" {
		t.Fatalf("expired secret: err = %v", err)
	}
	if got, _ := e.store.Get(ctx, c.ID); got.State != connector.StateNeedsConsent {
		t.Fatalf("state = %s, want needs_consent", got.State)
	}
}

func TestSimConcurrentAccessTokenOneRefresh(t *testing.T) {
	ctx := context.Background()
	e := newSimEnv(t)
	c, _ := e.delegatedConnection(t)
	before := e.sim.Counters().Total("token")
	const n = 20
	var wg sync.WaitGroup
	tokens := make([]string, n)
	for i := range n {
		wg.Go(func() {
			tok, err := e.tokens.AccessToken(ctx, c.ID)
			if err != nil {
				t.Error(err)
			}
			tokens[i] = tok
		})
	}
	wg.Wait()
	if got := e.sim.Counters().Total("token") - before; got != 1 {
		t.Fatalf("%d concurrent AccessToken calls sent %d token requests, want 1", n, got)
	}
	for _, tok := range tokens {
		if tok != tokens[0] {
			t.Fatal("callers got different tokens")
		}
	}
}

// TestVerifySignIn: an administrator's sign-in at the tenant's endpoint
// yields the verified tid and the admin's roles; a member has no admin
// role; a sign-in with another request's nonce is refused.
func TestVerifySignIn(t *testing.T) {
	e := newSimEnv(t)
	signIn := func(user string, req connector.AuthRequest) string {
		t.Helper()
		u := e.id.SignInURL(graphtest.DefaultTenantDomain, req, user)
		if !strings.Contains(u, "/"+graphtest.DefaultTenantDomain+"/oauth2/v2.0/authorize") || !strings.Contains(u, "scope=openid") {
			t.Fatalf("sign-in URL %s", u)
		}
		back, err := graphtest.Authorize(t.Context(), &http.Client{}, u, user, graphtest.DefaultPassword, true)
		if err != nil {
			t.Fatal(err)
		}
		return back.Query().Get("code")
	}
	req := connector.NewAuthRequest()
	c, err := e.id.VerifySignIn(t.Context(), graphtest.DefaultTenantDomain, signIn(graphtest.DefaultUser, req), req)
	if err != nil || c.TenantID != graphtest.DefaultTenantID || !c.CanGrantAdminConsent() || c.RefreshToken != "" || c.Token != nil {
		t.Fatalf("admin sign-in: %+v %v", c, err)
	}
	req = connector.NewAuthRequest()
	c, err = e.id.VerifySignIn(t.Context(), graphtest.DefaultTenantDomain, signIn(graphtest.DefaultOtherUser, req), req)
	if err != nil || c.TenantID != graphtest.DefaultTenantID || c.CanGrantAdminConsent() {
		t.Fatalf("member's sign-in: %+v %v, want verified without admin role", c, err)
	}
	req = connector.NewAuthRequest()
	code := signIn(graphtest.DefaultUser, req)
	other := req
	other.Nonce = connector.NewAuthRequest().Nonce
	if _, err := e.id.VerifySignIn(t.Context(), graphtest.DefaultTenantDomain, code, other); !connector.IsKind(err, connector.Invalid) {
		t.Fatalf("another request's nonce: %v, want Invalid", err)
	}
}
