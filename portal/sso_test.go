package portal

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/connector/graphtest"
)

func TestSSOLogin(t *testing.T) {
	for _, overage := range []bool{false, true} {
		t.Run(fmt.Sprintf("overage=%v", overage), func(t *testing.T) {
			e := newSSOEnv(t, overage)
			b := e.browser()
			r := b.get("/login")
			if !strings.Contains(r.body, "/login/sso") {
				t.Fatal("login page offers no SSO")
			}
			r = b.get("/login/sso?next=/connect")
			auth, err := url.Parse(r.location())
			if r.status != http.StatusSeeOther || err != nil || !strings.HasPrefix(auth.String(), e.sim.LoginURL()) {
				t.Fatalf("sso start: %d %q", r.status, r.location())
			}
			back, err := graphtest.Authorize(t.Context(), &http.Client{}, auth.String(), graphtest.DefaultUser, graphtest.DefaultPassword, true)
			if err != nil {
				t.Fatal(err)
			}
			r = b.get(back.String())
			if r.status != http.StatusSeeOther || r.location() != "/connect" {
				t.Fatalf("sso callback: %d %q %s", r.status, r.location(), r.body)
			}
			if r := b.get("/connect"); r.status != 200 {
				t.Fatalf("/connect after SSO: %d (groups not found?)", r.status)
			}
			// The state was single use.
			if r := b.get(back.String()); r.status != http.StatusBadRequest {
				t.Errorf("replayed SSO callback: %d, want 400", r.status)
			}
		})
	}
}

func newSSOEnv(t *testing.T, overage bool) *env {
	t.Helper()
	// The simulator must exist before the portal discovers it, so build the
	// env first without SSO, then a second server with SSO on the same parts.
	e := newEnv(t)
	e.sim.AddApp(graphtest.App{
		ClientID: graphtest.DefaultClientID, ClientSecret: graphtest.DefaultClientSecret, DisplayName: "mailgate",
		TenantID: graphtest.DefaultTenantID, RequirePKCE: true, GroupClaims: true,
		RedirectURIs: []string{graphtest.DefaultRedirectURI, e.ts.URL + "/login/sso/callback"},
	})
	if overage {
		for i := range 201 {
			e.sim.AddGroup(graphtest.Group{ID: fmt.Sprintf("00000000-0000-4000-8000-%012d", i), DisplayName: fmt.Sprint("g", i), Members: []string{graphtest.DefaultUser}})
		}
	}
	srv, err := New(t.Context(), e.js, e.srv.deps, Config{
		PublicURL: e.ts.URL, Logger: e.srv.log, ConnectGroup: graphtest.DefaultGroupID,
		OIDC: &OIDCConfig{
			IssuerURL: e.sim.LoginURL() + "/" + graphtest.DefaultTenantID + "/v2.0",
			ClientID:  graphtest.DefaultClientID, ClientSecret: graphtest.DefaultClientSecret, Customer: customerA,
			GroupsURL: e.sim.GraphURL() + "/me/getMemberGroups",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.srv = srv
	e.handler.set(srv.Handler())
	return e
}

func TestSSOUserOutsideConnectGroup(t *testing.T) {
	e := newSSOEnv(t, false)
	// The group carries a different id than the configured connect group.
	srv, err := New(t.Context(), e.js, e.srv.deps, Config{
		PublicURL: e.ts.URL, Logger: e.srv.log, ConnectGroup: "00000000-0000-4000-8000-00000000dead",
		OIDC: &OIDCConfig{
			IssuerURL: e.sim.LoginURL() + "/" + graphtest.DefaultTenantID + "/v2.0",
			ClientID:  graphtest.DefaultClientID, ClientSecret: graphtest.DefaultClientSecret, Customer: customerA,
			GroupsURL: e.sim.GraphURL() + "/me/getMemberGroups",
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	e.handler.set(srv.Handler())
	b := e.browser()
	r := b.get("/login/sso?next=/connect")
	back, err := graphtest.Authorize(t.Context(), &http.Client{}, r.location(), graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.get(back.String()); r.status != http.StatusSeeOther {
		t.Fatalf("sso callback: %d", r.status)
	}
	if r := b.get("/connect"); r.status != http.StatusForbidden || !strings.Contains(r.body, "00000000-0000-4000-8000-00000000dead") {
		t.Errorf("/connect for an SSO user outside the group: %d, want 403 naming the group", r.status)
	}
}

func TestSSONotConfigured(t *testing.T) {
	e := newEnv(t)
	b := e.browser()
	if r := b.get("/login/sso"); r.status != http.StatusNotFound {
		t.Errorf("/login/sso without OIDC: %d, want 404", r.status)
	}
	if r := b.get("/login/sso/callback?state=x&code=y"); r.status != http.StatusNotFound {
		t.Errorf("/login/sso/callback without OIDC: %d, want 404", r.status)
	}
	if strings.Contains(b.get("/login").body, "/login/sso") {
		t.Error("login page offers SSO without OIDC")
	}
}
