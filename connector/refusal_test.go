package connector_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestTokenRefusals drives the simulator's token endpoint to refuse with
// documented AADSTS codes and unknown ones, for a delegated connection (a
// refresh) and an app-only one (client credentials): every refusal moves the
// connection to needs_consent at once, with one state change, an
// explanation that names the code's reason (or, for an unknown code, the
// general sentence of its OAuth error), and no further token request.
func TestTokenRefusals(t *testing.T) {
	const (
		general     = "the sign-in behind this connection is no longer valid"
		interaction = "Microsoft requires the person to sign in again"
		client      = "the app's credentials were refused"
		unauth      = "the app is not allowed to sign in"
	)
	// Reasons given for known codes: an unknown code must get none of them.
	known := []string{"the grant was revoked", "the refresh token expired", "multi-factor authentication is required",
		"a Conditional Access policy requires interaction", "consent is missing", "the client secret expired",
		"the client secret is invalid", "sign-in frequency"}
	tests := []struct {
		aadsts   int
		oauth    string // the OAuth error Microsoft answers with
		status   int
		suberror string
		want     string // in the explanation
		unknown  bool
	}{
		{aadsts: 50173, oauth: "invalid_grant", want: "the grant was revoked"},
		{aadsts: 70008, oauth: "invalid_grant", want: "the refresh token expired"},
		{aadsts: 700082, oauth: "invalid_grant", want: "after 90 days of inactivity"},
		{aadsts: 50076, oauth: "invalid_grant", want: "multi-factor authentication is required"},
		{aadsts: 50158, oauth: "interaction_required", want: "a Conditional Access policy requires interaction"},
		{aadsts: 65001, oauth: "invalid_grant", want: "consent is missing"},
		{aadsts: 70043, oauth: "invalid_grant", suberror: "token_expired", want: "sign-in frequency"},
		{aadsts: 7000222, oauth: "invalid_client", status: http.StatusUnauthorized, want: "the client secret expired"},
		{aadsts: 7000215, oauth: "invalid_client", status: http.StatusUnauthorized, want: "the client secret is invalid"},
		{aadsts: 99999, oauth: "invalid_grant", want: general, unknown: true},
		{aadsts: 99999, oauth: "interaction_required", want: interaction, unknown: true},
		{aadsts: 99999, oauth: "consent_required", want: "consent for mailgate is missing", unknown: true},
		{aadsts: 99999, oauth: "invalid_client", status: http.StatusUnauthorized, want: client, unknown: true},
		{aadsts: 99999, oauth: "unauthorized_client", want: unauth, unknown: true},
	}
	for _, mode := range []connector.Mode{connector.Delegated, connector.AppOnly} {
		t.Run(string(mode), func(t *testing.T) {
			ctx := context.Background()
			e := newSimEnv(t)
			grant := "refresh_token"
			if mode == connector.AppOnly {
				grant = "client_credentials"
			}
			for _, tt := range tests {
				t.Run(fmt.Sprintf("AADSTS%d_%s", tt.aadsts, tt.oauth), func(t *testing.T) {
					var c connector.Connection
					if mode == connector.Delegated {
						c, _ = e.delegatedConnection(t)
					} else {
						var err error
						c, err = e.store.Create(ctx, connector.Connection{Customer: "acme", TenantID: graphtest.DefaultTenantID,
							Mailbox: graphtest.DefaultMailbox, Mode: connector.AppOnly, State: connector.StateActive})
						if err != nil {
							t.Fatal(err)
						}
					}
					e.sim.Inject(graphtest.Fault{PathContains: "/oauth2/v2.0/token", Status: tt.status, Code: tt.oauth, Count: 1,
						Token: graphtest.TokenFault{Grant: grant, AADSTS: tt.aadsts, Suberror: tt.suberror}})
					t.Cleanup(e.sim.ClearFaults)
					before := e.sim.Counters().Total("token")

					_, refusal := e.tokens.AccessToken(ctx, c.ID)
					var ce *connector.Error
					wantCode := fmt.Sprintf("AADSTS%d", tt.aadsts)
					if !errors.As(refusal, &ce) || ce.Kind != connector.NeedsConsent || ce.Code != wantCode {
						t.Fatalf("AccessToken: %v; want needs_consent %s", refusal, wantCode)
					}
					if n := e.sim.Counters().Total("token") - before; n != 1 {
						t.Errorf("%d token requests for one refusal, want 1", n)
					}
					got, err := e.store.Get(ctx, c.ID)
					if err != nil {
						t.Fatal(err)
					}
					if got.State != connector.StateNeedsConsent {
						t.Fatalf("state %s, want needs_consent", got.State)
					}
					if !strings.Contains(got.LastError, tt.want) || !strings.Contains(got.LastError, wantCode) {
						t.Errorf("explanation %q; want it to say %q and %s", got.LastError, tt.want, wantCode)
					}
					if got.LastError != connector.Explain(refusal) {
						t.Errorf("stored explanation %q is not Explain's %q", got.LastError, connector.Explain(refusal))
					}
					if tt.unknown {
						for _, k := range known {
							if strings.Contains(got.LastError, k) {
								t.Errorf("an unknown code's explanation %q gives a known code's reason (%q)", got.LastError, k)
							}
						}
					}

					// Stopped: the fault is spent, yet no caller reaches Microsoft again.
					for range 3 {
						if _, err := e.tokens.AccessToken(ctx, c.ID); !connector.IsKind(err, connector.NeedsConsent) {
							t.Fatalf("AccessToken after the refusal: %v, want needs_consent", err)
						}
					}
					if n := e.sim.Counters().Total("token") - before; n != 1 {
						t.Errorf("%d token requests in all, want the one refused", n)
					}
					if ch := e.changesOf(c.ID); !slices.Equal(ch, []connector.State{connector.StateNeedsConsent}) {
						t.Errorf("state changes %v, want exactly [needs_consent]", ch)
					}
				})
			}
		})
	}
}

// TestPrimeUsesTheExchangedToken: the access token of a code exchange
// serves the connection's first calls; the new refresh token is not
// redeemed straight away.
func TestPrimeUsesTheExchangedToken(t *testing.T) {
	ctx := context.Background()
	e := newSimEnv(t)
	req := connector.NewAuthRequest()
	code, _ := e.consent(t, req)
	consent, err := e.id.Exchange(ctx, code, req)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := e.sealer.Seal([]byte(consent.RefreshToken))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Create(ctx, connector.Connection{Customer: "acme", TenantID: consent.TenantID, Mailbox: graphtest.DefaultMailbox,
		Mode: connector.Delegated, State: connector.StatePending, ConsentedBy: consent.Username, RefreshToken: sealed})
	if err != nil {
		t.Fatal(err)
	}
	before := e.sim.Counters().Total("token")
	e.tokens.Prime(c.ID, consent.Token)
	for range 3 {
		tok, err := e.tokens.AccessToken(ctx, c.ID)
		if err != nil || tok != consent.Token.AccessToken {
			t.Fatalf("AccessToken after Prime: %v (same token: %v)", err, tok == consent.Token.AccessToken)
		}
		if tok2, err := e.tokens.TestToken(ctx, c); err != nil || tok2 != tok {
			t.Fatalf("TestToken after Prime: %v", err)
		}
	}
	if n := e.sim.Counters().Total("token") - before; n != 0 {
		t.Errorf("%d token requests after the code exchange, want 0", n)
	}
}

// TestTestTokenCandidate: a reconnect tests new app credentials before it
// stores them; the test neither needs the stored state to be active nor
// changes it, and a connection in needs_consent still sends no token
// request of its own.
func TestTestTokenCandidate(t *testing.T) {
	ctx := context.Background()
	e := newSimEnv(t)
	old, err := e.sealer.Seal([]byte("an-expired-secret"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := e.store.Create(ctx, connector.Connection{Customer: "acme", TenantID: graphtest.DefaultTenantID, Mailbox: graphtest.DefaultMailbox,
		Mode: connector.AppOnly, State: connector.StateActive, ClientID: graphtest.DefaultClientID, ClientSecret: old})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.tokens.AccessToken(ctx, c.ID); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("stored wrong secret: %v, want needs_consent", err)
	}
	before := e.sim.Counters().Total("token")
	if _, err := e.tokens.AccessToken(ctx, c.ID); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("AccessToken in needs_consent: %v", err)
	}
	if n := e.sim.Counters().Total("token") - before; n != 0 {
		t.Fatalf("%d token requests for a connection in needs_consent", n)
	}

	candidate := c
	candidate.ClientSecret, err = e.sealer.Seal([]byte(graphtest.DefaultClientSecret))
	if err != nil {
		t.Fatal(err)
	}
	tok, err := e.tokens.TestToken(ctx, candidate)
	if err != nil || tok == "" {
		t.Fatalf("TestToken with the new secret: %v", err)
	}
	wrong := c
	wrong.ClientSecret, _ = e.sealer.Seal([]byte("another-wrong-secret"))
	if _, err := e.tokens.TestToken(ctx, wrong); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("TestToken with a wrong secret: %v, want needs_consent", err)
	}
	if got, _ := e.store.Get(ctx, c.ID); got.State != connector.StateNeedsConsent {
		t.Errorf("state %s after candidate tests, want needs_consent untouched", got.State)
	}
	if ch := e.changesOf(c.ID); !slices.Equal(ch, []connector.State{connector.StateNeedsConsent}) {
		t.Errorf("state changes %v, want only the first [needs_consent]", ch)
	}
	// The stored connection still waits for a person: no token request.
	before = e.sim.Counters().Total("token")
	if _, err := e.tokens.AccessToken(ctx, c.ID); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("AccessToken after candidate tests: %v", err)
	}
	if n := e.sim.Counters().Total("token") - before; n != 0 {
		t.Errorf("%d token requests for the stored connection after candidate tests", n)
	}
}
