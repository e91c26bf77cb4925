package portal

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

func wizardForm(mailbox string) url.Values {
	return url.Values{
		"mailbox": {mailbox}, "mode": {"delegated"}, "post": {"move"}, "folder": {"Archiviert"}, "backfill": {"new"},
	}
}

// startWizard posts the form and returns Microsoft's authorize URL.
func (b *browser) startWizard(form url.Values) *url.URL {
	b.e.t.Helper()
	form.Set("csrf", b.token("/connect"))
	r := b.post("/connect", form)
	if r.status != http.StatusSeeOther {
		b.e.t.Fatalf("POST /connect: %d %s", r.status, r.body)
	}
	u, err := url.Parse(r.location())
	if err != nil {
		b.e.t.Fatal(err)
	}
	return u
}

// consent drives the simulator's sign-in page and follows the redirect back
// to the portal's callback with the browser's cookies.
func (b *browser) consent(authURL *url.URL, user string, accept bool) resp {
	b.e.t.Helper()
	back, err := graphtest.Authorize(b.e.t.Context(), &http.Client{}, authURL.String(), user, graphtest.DefaultPassword, accept)
	if err != nil {
		b.e.t.Fatalf("authorize: %v", err)
	}
	if !strings.HasPrefix(back.String(), b.e.ts.URL+"/connect/callback") {
		b.e.t.Fatalf("redirected to %s, want the portal's callback", back)
	}
	return b.get(back.String())
}

var codeRE = regexp.MustCompile(`data-code="([^"]+)"`)

func TestWizardDelegatedWithSimulator(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn(graphtest.DefaultUser)
	auth := b.startWizard(wizardForm(graphtest.DefaultMailbox))
	if !strings.HasPrefix(auth.String(), e.sim.LoginURL()) {
		t.Fatalf("wizard went to %s, want the identity platform", auth)
	}
	if got := auth.Query().Get("redirect_uri"); got != e.ts.URL+"/connect/callback" {
		t.Errorf("redirect_uri %q", got)
	}
	if auth.Query().Get("code_challenge") == "" || auth.Query().Get("state") == "" {
		t.Errorf("authorize URL lacks PKCE challenge or state: %s", auth)
	}
	r := b.consent(auth, graphtest.DefaultUser, true)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.location(), "/code") {
		t.Fatalf("callback: %d %q %s", r.status, r.location(), r.body)
	}
	codePath := r.location()
	page := b.get(codePath)
	m := codeRE.FindStringSubmatch(page.body)
	if m == nil {
		t.Fatalf("no code on the page: %s", page.body)
	}
	code := m[1]
	for _, want := range []string{`http-equiv="refresh" content="5"`, "Do not share this code", "Valid until", `data-expires="`} {
		if !strings.Contains(page.body, want) {
			t.Errorf("code page lacks %q", want)
		}
	}

	cs, _ := e.store.List(t.Context())
	if len(cs) != 1 {
		t.Fatalf("%d connections, want 1", len(cs))
	}
	c := cs[0]
	if c.State != connector.StatePending || c.Customer != customerA || c.TenantID != graphtest.DefaultTenantID ||
		c.ConsentedBy != graphtest.DefaultUser || c.Mode != connector.Delegated || c.CreatedBy != "portal:"+graphtest.DefaultUser ||
		c.UpdatedBy == "" || c.PostProcess.Folder != "Archiviert" {
		t.Errorf("connection %+v", c)
	}
	plain, err := e.openFor(c, c.RefreshToken)
	if err != nil || len(plain) == 0 || bytes.Contains(c.RefreshToken, plain) {
		t.Errorf("refresh token not sealed: %v", err)
	}
	// The connection test uses the code exchange's access token; nobody
	// redeemed the new refresh token straight away.
	if e.tester.primedFor(c.ID) == "" {
		t.Error("the code exchange's access token was not handed to the connection test")
	}
	if n := e.sim.Counters().Requests["token"][http.StatusOK]; n != 1 {
		t.Errorf("%d successful token requests for one connect, want 1 (the code exchange)", n)
	}
	if q := auth.Query(); q.Has("login_hint") && q.Has("prompt") {
		t.Errorf("authorize URL sends login_hint and prompt=%s together", q.Get("prompt"))
	}

	// The callback's state is single use.
	if r := b.get(r.header.Get("X-Unused") + "/connect/callback?" + auth.Query().Encode()); r.status != http.StatusBadRequest {
		t.Errorf("replayed state: %d, want 400", r.status)
	}

	// The DMS redeems; the page then says connected.
	key := e.apiKey(customerA)
	status, body, _ := e.api("POST", "/api/v1/connections/redeem", key, map[string]string{"code": code})
	if status != 200 {
		t.Fatalf("redeem: %d %v", status, body)
	}
	page = b.get(codePath)
	if !strings.Contains(page.body, "Connected") || strings.Contains(page.body, code) || strings.Contains(page.body, `http-equiv="refresh"`) {
		t.Errorf("code page after redeem: %s", page.body)
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Errorf("state %s, want active", got)
	}
	if ids := e.trigger.list(); len(ids) != 1 || ids[0] != c.ID {
		t.Errorf("trigger %v", ids)
	}
}

func TestWizardConsentCancelled(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn(graphtest.DefaultUser)
	r := b.consent(b.startWizard(wizardForm(graphtest.DefaultMailbox)), graphtest.DefaultUser, false)
	if r.status != 200 || !strings.Contains(r.body, "Sign-in cancelled") {
		t.Fatalf("cancel: %d %s", r.status, r.body)
	}
	if cs, _ := e.store.List(t.Context()); len(cs) != 0 {
		t.Errorf("%d connections after cancel", len(cs))
	}
}

func TestWizardAdminApprovalRequired(t *testing.T) {
	e := newEnv(t)
	e.sim.AddTenant(graphtest.Tenant{ID: "11111111-2222-4333-8444-555555555555", Domain: "strict.example", UserConsentDisabled: true})
	e.sim.AddUser(graphtest.User{UPN: "sam@strict.example", Password: graphtest.DefaultPassword, TenantID: "11111111-2222-4333-8444-555555555555"})
	b := e.loggedIn("alice")
	auth := b.startWizard(wizardForm("rechnungen@strict.example"))
	back, err := graphtest.Authorize(t.Context(), &http.Client{}, auth.String(), "sam@strict.example", graphtest.DefaultPassword, true)
	if err != nil {
		t.Skipf("simulator shows the refusal on its page: %v", err)
	}
	r := b.get(back.String())
	if !strings.Contains(r.body, "administrator") || !strings.Contains(r.body, "adminconsent") {
		t.Fatalf("no admin consent link: %s", r.body)
	}
}

func TestCallbackErrorsInPlainLanguage(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	tests := []struct {
		name, err, desc string
		want            string
		adminLink       bool
	}{
		{"cancel", "access_denied", "AADSTS65004: User declined to consent to access the app.", "Sign-in cancelled", false},
		{"plain access denied", "access_denied", "", "Sign-in cancelled", false},
		{"consent required", "consent_required", "AADSTS65001: The user or administrator has not consented to use the application.", "An administrator needs to approve mailgate", true},
		{"admin approval", "access_denied", "AADSTS90094: Admin consent is required for the permissions requested by this application.", "An administrator needs to approve mailgate", true},
		{"not assigned", "access_denied", "AADSTS50105: The signed in user is not assigned to a role for the application.", "not allowed to use mailgate", false},
		{"conditional access", "interaction_required", "AADSTS53003: Access has been blocked by Conditional Access policies.", "additional check", false},
		{"unknown", "server_error", "AADSTS90033: A transient error has occurred.", "AADSTS90033", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := b.startWizard(wizardForm("rechnungen@acme.example"))
			q := url.Values{"state": {auth.Query().Get("state")}, "error": {tt.err}, "error_description": {tt.desc}}
			r := b.get("/connect/callback?" + q.Encode())
			if r.status != 200 || !strings.Contains(r.body, tt.want) {
				t.Fatalf("%d, want %q in %s", r.status, tt.want, r.body)
			}
			if got := strings.Contains(r.body, "/v2.0/adminconsent"); got != tt.adminLink {
				t.Errorf("admin consent link shown %v, want %v", got, tt.adminLink)
			}
		})
	}
}

func TestCallbackState(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	auth := b.startWizard(wizardForm("rechnungen@acme.example"))
	state := auth.Query().Get("state")
	for _, s := range []string{"", "wrong", state[:len(state)-1]} {
		if r := b.get("/connect/callback?code=x&state=" + url.QueryEscape(s)); r.status != http.StatusBadRequest {
			t.Errorf("state %q: %d, want 400", s, r.status)
		}
	}
	// Another session cannot use this session's state.
	if r := e.loggedIn("alice").get("/connect/callback?code=x&state=" + url.QueryEscape(state)); r.status != http.StatusBadRequest {
		t.Errorf("state from another session: %d, want 400", r.status)
	}
	// A wrong state does not consume the right one; the right one is used once.
	if r := b.get("/connect/callback?error=access_denied&state=" + url.QueryEscape(state)); r.status != 200 {
		t.Errorf("right state: %d", r.status)
	}
	if r := b.get("/connect/callback?error=access_denied&state=" + url.QueryEscape(state)); r.status != http.StatusBadRequest {
		t.Errorf("state reused: %d, want 400", r.status)
	}
}

func TestWizardValidation(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	tests := []struct {
		name   string
		change map[string]string
		want   string
	}{
		{"bad mailbox", map[string]string{"mailbox": "not an address"}, "valid e-mail address"},
		{"mailbox with name", map[string]string{"mailbox": "Bob <bob@acme.example>"}, "valid e-mail address"},
		{"no mode", map[string]string{"mode": ""}, "how mailgate gets access"},
		{"move without folder", map[string]string{"folder": ""}, "folder to move"},
		{"category without name", map[string]string{"post": "category"}, "Enter the category"},
		{"since in future", map[string]string{"backfill": "since", "since": time.Now().AddDate(0, 0, 5).Format(time.DateOnly)}, "not in the future"},
		{"own app without secret", map[string]string{"mode": "app", "tenant": "t", "client_id": "c", "secret_expires": "2999-01-01"}, "client secret"},
		{"own app secret expired", map[string]string{"mode": "app", "tenant": "t", "client_id": "c", "client_secret": "s", "secret_expires": "2001-01-01"}, "expiry date"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := wizardForm("rechnungen@acme.example")
			for k, v := range tt.change {
				f.Set(k, v)
			}
			f.Set("csrf", b.token("/connect"))
			r := b.post("/connect", f)
			if r.status != http.StatusBadRequest || !strings.Contains(r.body, tt.want) {
				t.Fatalf("%d, want 400 with %q", r.status, tt.want)
			}
			if strings.Contains(r.body, `value="s"`) {
				t.Error("client secret echoed into the form")
			}
			if tt.name != "no mode" && !strings.Contains(r.body, `aria-invalid="true"`) {
				t.Error("no field marked aria-invalid")
			}
		})
	}
}

func TestWizardTestFailureDeletesPending(t *testing.T) {
	e := newEnv(t)
	e.tester.set(func(c connector.Connection) (TestResult, error) {
		return TestResult{}, &connector.Error{Op: "graph: test", Kind: connector.AccessDenied, Code: "ErrorAccessDenied"}
	})
	b := e.loggedIn(graphtest.DefaultUser)
	r := b.consent(b.startWizard(wizardForm(graphtest.DefaultMailbox)), graphtest.DefaultUser, true)
	if r.status != 200 || !strings.Contains(r.body, "has no full access to "+graphtest.DefaultMailbox) || !strings.Contains(r.body, "Full Access") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	cs, _ := e.store.List(t.Context())
	if len(cs) != 1 || cs[0].State != connector.StateDeleted || len(cs[0].RefreshToken) != 0 {
		t.Errorf("pending connection not deleted: %+v", cs)
	}
}

func TestWizardOwnApp(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	f := wizardForm("rechnungen@acme.example")
	f.Set("mode", "app")
	f.Set("tenant", graphtest.DefaultTenantID)
	f.Set("client_id", "own-client")
	f.Set("client_secret", "own-secret-value")
	exp := time.Now().AddDate(0, 0, 20).UTC().Truncate(24 * time.Hour)
	f.Set("secret_expires", exp.Format(time.DateOnly))
	f.Set("csrf", b.token("/connect"))
	r := b.post("/connect", f)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.location(), "/code") {
		t.Fatalf("%d %q %s", r.status, r.location(), r.body)
	}
	cs, _ := e.store.List(t.Context())
	c := cs[0]
	if c.Mode != connector.AppOnly || c.ClientID != "own-client" || !c.SecretExpiresAt.Equal(exp) || c.TenantID != graphtest.DefaultTenantID {
		t.Errorf("connection %+v", c)
	}
	if plain, err := e.openFor(c, c.ClientSecret); err != nil || string(plain) != "own-secret-value" {
		t.Errorf("client secret not sealed properly: %v", err)
	}
	// The detail page warns about the secret (≤ 30 days).
	d := b.get("/connections/" + c.ID)
	if !strings.Contains(d.body, "client secret of the app expires in") {
		t.Errorf("no secret expiry warning")
	}
}

func TestWizardAdminConsentWithSimulator(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn(graphtest.DefaultUser)
	f := wizardForm(graphtest.DefaultMailbox)
	f.Set("mode", "admin")
	auth := b.startWizard(f)
	// First the administrator signs in at the tenant's own endpoint.
	if !strings.Contains(auth.Path, "/firma.example/oauth2/v2.0/authorize") {
		t.Fatalf("admin sign-in URL %s: tenant should default to the mailbox domain", auth)
	}
	if q := auth.Query(); q.Get("nonce") == "" || q.Get("code_challenge") == "" || !strings.Contains(q.Get("scope"), "openid") {
		t.Errorf("sign-in URL lacks nonce, PKCE or openid: %s", auth)
	}
	r := b.consent(auth, graphtest.DefaultUser, true)
	next, _ := url.Parse(r.location())
	// Then the approval, for exactly the verified tenant.
	if r.status != http.StatusSeeOther || next.Path != "/"+graphtest.DefaultTenantID+"/v2.0/adminconsent" {
		t.Fatalf("after sign-in: %d %q, want the admin consent of the signed-in tenant", r.status, r.location())
	}
	r = b.consent(next, graphtest.DefaultUser, true)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.location(), "/code") {
		t.Fatalf("%d %q %s", r.status, r.location(), r.body)
	}
	cs, _ := e.store.List(t.Context())
	if len(cs) != 1 || cs[0].Mode != connector.AppOnly || cs[0].TenantID != graphtest.DefaultTenantID || len(cs[0].ClientSecret) != 0 ||
		cs[0].ConsentedBy != graphtest.DefaultUser {
		t.Fatalf("connection %+v", cs)
	}
	if bnd, ok, err := e.store.TenantOwner(t.Context(), graphtest.DefaultTenantID); err != nil || !ok || bnd.Customer != customerA {
		t.Errorf("binding %+v %v %v, want the tenant bound to %s", bnd, ok, err, customerA)
	}
	// The DMS redeems the code: the bound tenant's connection activates.
	m := codeRE.FindStringSubmatch(b.get(r.location()).body)
	if m == nil {
		t.Fatal("no code")
	}
	if status, body, _ := e.api("POST", "/api/v1/connections/redeem", e.apiKey(customerA), map[string]string{"code": m[1]}); status != 200 {
		t.Fatalf("redeem: %d %v", status, body)
	}
	if got := e.state(cs[0].ID); got != connector.StateActive {
		t.Errorf("state %s, want active", got)
	}
}

// evilTenant adds a second organisation with its own administrator to the
// simulator: what an attacker controls.
const (
	evilTenantID = "e0e0e0e0-0000-4000-8000-000000000e71"
	evilAdmin    = "mallory@evil.example"
)

func (e *env) addEvilTenant() {
	e.sim.AddTenant(graphtest.Tenant{ID: evilTenantID, Domain: "evil.example", DisplayName: "Evil"})
	e.sim.AddUser(graphtest.User{UPN: evilAdmin, Password: graphtest.DefaultPassword, TenantID: evilTenantID, Admin: true})
}

// TestAdminConsentForgeryRefused is the attack of issue 11: a user of
// another customer starts an admin connect for firma's mailbox and calls
// the callback with firma's tenant and their own state, without the
// administrator's sign-in or with a sign-in of their own tenant.
func TestAdminConsentForgeryRefused(t *testing.T) {
	e := newEnv(t)
	e.addEvilTenant()
	carol := e.loggedIn("carol") // customerB, in the connect group
	forged := func(state string) string {
		return "/connect/callback?" + url.Values{"admin_consent": {"True"}, "tenant": {graphtest.DefaultTenantID}, "state": {state}}.Encode()
	}
	nothingConnected := func(step string) {
		t.Helper()
		if cs, _ := e.store.List(t.Context()); len(cs) != 0 {
			t.Fatalf("%s: connections %+v, want none", step, cs)
		}
		if b, ok, _ := e.store.TenantOwner(t.Context(), graphtest.DefaultTenantID); ok {
			t.Fatalf("%s: firma's tenant bound to %+v", step, b)
		}
	}

	t.Run("without sign-in", func(t *testing.T) {
		f := wizardForm(graphtest.DefaultMailbox)
		f.Set("mode", "admin")
		auth := carol.startWizard(f)
		r := carol.get(forged(auth.Query().Get("state")))
		if r.status == http.StatusSeeOther || strings.Contains(r.body, "data-code") {
			t.Fatalf("forged callback: %d %q", r.status, r.location())
		}
		nothingConnected("without sign-in")
	})

	t.Run("with a sign-in of another tenant", func(t *testing.T) {
		f := wizardForm(graphtest.DefaultMailbox)
		f.Set("mode", "admin")
		f.Set("tenant", evilTenantID)
		auth := carol.startWizard(f)
		r := carol.consent(auth, evilAdmin, true)
		next, _ := url.Parse(r.location())
		if r.status != http.StatusSeeOther || next.Path != "/"+evilTenantID+"/v2.0/adminconsent" {
			t.Fatalf("after evil's sign-in: %d %q", r.status, r.location())
		}
		// Skip Microsoft: claim firma's tenant with the consent step's state.
		r = carol.get(forged(next.Query().Get("state")))
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "sign-in does not match") {
			t.Fatalf("forged callback: %d %q %s", r.status, r.location(), r.body)
		}
		nothingConnected("mismatching sign-in")
	})

	t.Run("with a member's sign-in of the tenant", func(t *testing.T) {
		// A user of firma's tenant who is no administrator (say, evil's
		// contractor with a firma account) signs in for real, then skips
		// the approval: a member's sign-in proves membership, not the
		// right to give the tenant away.
		f := wizardForm(graphtest.DefaultMailbox)
		f.Set("mode", "admin")
		auth := carol.startWizard(f)
		r := carol.consent(auth, graphtest.DefaultOtherUser, true)
		if r.status != http.StatusForbidden || !strings.Contains(r.body, "Global Administrator") {
			t.Fatalf("member's sign-in: %d %q %s", r.status, r.location(), r.body)
		}
		if r := carol.get(forged(auth.Query().Get("state"))); r.status == http.StatusSeeOther {
			t.Fatalf("forged callback after a member's sign-in: %d %q", r.status, r.location())
		}
		nothingConnected("member's sign-in")
	})

	t.Run("a sign-in of another tenant than asked for", func(t *testing.T) {
		f := wizardForm(graphtest.DefaultMailbox)
		f.Set("mode", "admin")
		f.Set("tenant", graphtest.DefaultTenantID)
		auth := carol.startWizard(f)
		// The attacker rewrites the sign-in to their own tenant's endpoint.
		auth.Path = strings.Replace(auth.Path, graphtest.DefaultTenantID, evilTenantID, 1)
		r := carol.consent(auth, evilAdmin, true)
		if r.status == http.StatusSeeOther {
			t.Fatalf("sign-in of another tenant: %d %q", r.status, r.location())
		}
		nothingConnected("other tenant's sign-in")
	})

	t.Run("a forged id_token", func(t *testing.T) {
		// A code that the identity platform never issued cannot be
		// redeemed; the id_token is never taken from the browser.
		f := wizardForm(graphtest.DefaultMailbox)
		f.Set("mode", "admin")
		auth := carol.startWizard(f)
		r := carol.get("/connect/callback?" + url.Values{"code": {"1.Aforged"}, "state": {auth.Query().Get("state")},
			"id_token": {"eyJhbGciOiJub25lIn0.eyJ0aWQiOiI0MiJ9."}}.Encode())
		if r.status == http.StatusSeeOther {
			t.Fatalf("forged code: %d %q", r.status, r.location())
		}
		nothingConnected("forged code")
	})
}

// TestTenantOfAnotherCustomerRefused: once firma's tenant is bound to its
// customer, a user of another customer cannot connect it, not even with a
// genuine administrator sign-in of that tenant; only the operator re-binds.
func TestTenantOfAnotherCustomerRefused(t *testing.T) {
	e := newEnv(t)
	if err := e.srv.users.Add(t.Context(), "anna@globex", customerB, pw, []string{"mailbox-connect"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.BindTenant(t.Context(), graphtest.DefaultTenantID, customerA, "test"); err != nil {
		t.Fatal(err)
	}
	other := e.loggedIn("anna@globex")
	f := wizardForm(graphtest.DefaultMailbox)
	f.Set("mode", "admin")
	r := other.consent(other.startWizard(f), graphtest.DefaultUser, true)
	if r.status != http.StatusForbidden || !strings.Contains(r.body, "another customer") {
		t.Fatalf("bound tenant: %d %q %s", r.status, r.location(), r.body)
	}
	if cs, _ := e.store.List(t.Context()); len(cs) != 0 {
		t.Fatalf("connections %+v", cs)
	}
	// The operator moves the tenant to globex: now it works for globex.
	if _, err := e.store.RebindTenant(t.Context(), graphtest.DefaultTenantID, customerB, "cli"); err != nil {
		t.Fatal(err)
	}
	r = other.consent(other.startWizard(f), graphtest.DefaultUser, true)
	next, _ := url.Parse(r.location())
	if r = other.consent(next, graphtest.DefaultUser, true); r.status != http.StatusSeeOther || !strings.HasSuffix(r.location(), "/code") {
		t.Fatalf("after rebind: %d %q %s", r.status, r.location(), r.body)
	}
}

// TestUnboundOperatorAppConnectionNotActivated: a connection through the
// operator's app whose tenant is not bound to the customer (made before
// tenants were proven) is refused at redeem like an invalid code.
func TestUnboundOperatorAppConnectionNotActivated(t *testing.T) {
	e := newEnv(t)
	c, err := e.store.Create(t.Context(), connector.Connection{
		Customer: customerB, TenantID: graphtest.DefaultTenantID, Mailbox: graphtest.DefaultMailbox, Mode: connector.AppOnly,
		State: connector.StatePending, PostProcess: connector.PostProcess{Action: connector.PostNone}, CreatedBy: "test",
	})
	if err != nil {
		t.Fatal(err)
	}
	code, _, err := e.codes.Issue(t.Context(), customerB, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, _ := e.api("POST", "/api/v1/connections/redeem", e.apiKey(customerB), map[string]string{"code": code}); status != http.StatusBadRequest {
		t.Fatalf("redeem of an unbound tenant's connection: %d %v", status, body)
	}
	if got := e.state(c.ID); got != connector.StatePending {
		t.Errorf("state %s, want pending", got)
	}
	// And a user of customerB cannot bind that tenant while customerA's
	// older connection uses it: here the other way round, customerA is
	// refused because customerB's connection is live in the tenant.
	b := e.loggedIn(graphtest.DefaultUser) // customerA
	f := wizardForm(graphtest.DefaultMailbox)
	f.Set("mode", "admin")
	if r := b.consent(b.startWizard(f), graphtest.DefaultUser, true); r.status != http.StatusForbidden {
		t.Errorf("tenant used by another customer's connection: %d %q", r.status, r.location())
	}
}

func TestCodePage(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StatePending)
	b := e.loggedIn("alice")
	// No code in this session: offer a new one.
	r := b.get("/connections/" + c.ID + "/code")
	if !strings.Contains(r.body, "Create a new code") {
		t.Fatalf("no reissue offer: %s", r.body)
	}
	r = b.post("/connections/"+c.ID+"/code", url.Values{"csrf": {b.token("/connections")}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("reissue: %d", r.status)
	}
	m := codeRE.FindStringSubmatch(b.get("/connections/" + c.ID + "/code").body)
	if m == nil {
		t.Fatal("no code after reissue")
	}
	if id, err := e.codes.Redeem(t.Context(), customerA, m[1]); err != nil || id != c.ID {
		t.Errorf("reissued code redeems to %q, %v", id, err)
	}
	// A connection that needs consent has no code page.
	a := e.connection(customerA, connector.StateNeedsConsent)
	if r := b.get("/connections/" + a.ID + "/code"); r.status != http.StatusSeeOther {
		t.Errorf("code page of a needs_consent connection: %d", r.status)
	}
}

func TestDemoRedeem(t *testing.T) {
	e := newEnv(t, demo)
	b := e.loggedIn(graphtest.DefaultUser)
	r := b.consent(b.startWizard(wizardForm(graphtest.DefaultMailbox)), graphtest.DefaultUser, true)
	page := b.get(r.location())
	m := codeRE.FindStringSubmatch(page.body)
	if m == nil || !strings.Contains(page.body, "Redeem now as the DMS would") {
		t.Fatalf("no demo button: %s", page.body)
	}
	id := strings.Split(r.location(), "/")[2]
	rr := b.post("/demo/redeem", url.Values{"id": {id}, "code": {m[1]}, "csrf": {b.token(r.location())}})
	if rr.status != http.StatusSeeOther {
		t.Fatalf("demo redeem: %d %s", rr.status, rr.body)
	}
	if got := e.state(id); got != connector.StateActive {
		t.Errorf("state %s, want active", got)
	}
	if !strings.Contains(b.get(r.location()).body, "Connected") {
		t.Error("code page does not say connected")
	}
	// Without DemoRedeem the route does not exist.
	e2 := newEnv(t)
	if r := e2.loggedIn("alice").post("/demo/redeem", url.Values{"id": {id}}); r.status != http.StatusNotFound {
		t.Errorf("demo redeem without DemoRedeem: %d, want 404", r.status)
	}
}

func TestPauseResume(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StateActive)
	b := e.loggedIn("alice")
	tok := b.token("/connections")
	if r := b.post("/connections/"+c.ID+"/resume", url.Values{"csrf": {tok}}); r.status != http.StatusBadRequest {
		t.Errorf("resume of an active connection: %d, want 400", r.status)
	}
	if r := b.post("/connections/"+c.ID+"/pause", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("pause: %d", r.status)
	}
	got, _ := e.store.Get(t.Context(), c.ID)
	if got.State != connector.StatePaused || got.UpdatedBy != "portal:alice" {
		t.Errorf("after pause: %s by %q", got.State, got.UpdatedBy)
	}
	if !strings.Contains(b.get("/connections/"+c.ID).body, "The connection is paused") {
		t.Error("no flash after pause")
	}
	if r := b.post("/connections/"+c.ID+"/resume", url.Values{"csrf": {tok}}); r.status != http.StatusSeeOther {
		t.Fatalf("resume: %d", r.status)
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Errorf("after resume: %s", got)
	}
	if ids := e.trigger.list(); len(ids) != 1 {
		t.Errorf("resume did not trigger a poll: %v", ids)
	}
}

func TestDisconnect(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StateActive)
	b := e.loggedIn("alice")
	r := b.get("/connections/" + c.ID + "/disconnect")
	if r.status != 200 || !strings.Contains(r.body, "Disconnect "+c.Mailbox+"?") {
		t.Fatalf("confirm page: %d", r.status)
	}
	if got := e.state(c.ID); got != connector.StateActive {
		t.Fatal("GET disconnected")
	}
	r = b.post("/connections/"+c.ID+"/disconnect", url.Values{"csrf": {b.token("/connections")}})
	if r.status != 200 || !strings.Contains(r.body, "Enterprise applications") {
		t.Fatalf("disconnect: %d %s", r.status, r.body)
	}
	got, _ := e.store.Get(t.Context(), c.ID)
	if got.State != connector.StateDeleted || len(got.RefreshToken) != 0 {
		t.Errorf("after disconnect: %s, token %d bytes", got.State, len(got.RefreshToken))
	}
	if r := b.get("/connections/" + c.ID); r.status != http.StatusNotFound {
		t.Errorf("deleted connection page: %d, want 404", r.status)
	}
}

func TestReconnectWithSimulator(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StateActive)
	ctx := t.Context()
	if _, err := e.store.Update(ctx, c.ID, func(c *connector.Connection) error {
		c.State, c.LastError, c.UpdatedBy = connector.StateNeedsConsent, "AADSTS50173 grant revoked", "importer"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := e.loggedIn(graphtest.DefaultUser)
	d := b.get("/connections/" + c.ID)
	if !strings.Contains(d.body, "Needs new consent") || !strings.Contains(d.body, "Reconnect") {
		t.Fatalf("detail page of needs_consent: %s", d.body)
	}
	r := b.post("/connections/"+c.ID+"/reconnect", url.Values{"csrf": {b.token("/connections")}})
	auth, _ := url.Parse(r.location())
	if r.status != http.StatusSeeOther || !strings.HasPrefix(auth.String(), e.sim.LoginURL()) {
		t.Fatalf("reconnect: %d %q", r.status, r.location())
	}
	r = b.consent(auth, graphtest.DefaultUser, true)
	if r.status != http.StatusSeeOther || r.location() != "/connections/"+c.ID {
		t.Fatalf("reconnect callback: %d %q %s", r.status, r.location(), r.body)
	}
	if e.tester.primedFor(c.ID) == "" {
		t.Error("the reconnect's code exchange token was not handed to the connection test")
	}
	got, _ := e.store.Get(ctx, c.ID)
	plain, err := e.openFor(got, got.RefreshToken)
	if got.State != connector.StateActive || got.LastError != "" || err != nil || string(plain) == "refresh-token" || got.CreatedBy != "test" {
		t.Errorf("after reconnect: %+v (token %q, %v)", got, plain, err)
	}
	ev := e.audit.list()
	if len(ev) != 1 || ev[0].Action != "reconnect" || ev[0].Actor != "portal:"+graphtest.DefaultUser || ev[0].From != "needs_consent" || ev[0].To != "active" {
		t.Errorf("audit %+v", ev)
	}
	if !strings.Contains(b.get("/connections/"+c.ID).body, "Reconnected") {
		t.Error("no flash after reconnect")
	}
}

func TestDetailPage(t *testing.T) {
	now := time.Now()
	st := ConnectionStatus{
		LastSync: now.Add(-time.Minute), NextSync: now.Add(time.Minute), Imported: 42, Skipped: 3,
		SkippedByReason: map[string]int64{"inline_image": 2, "duplicate_of": 1},
		Recent: []HistoryEntry{
			{Time: now, DocumentID: "d1", Name: "RE-2026-001.pdf", Subject: "Rechnung 001"},
			{Time: now, Name: "logo.png", Reason: "inline_image", Subject: "Rechnung 001"},
		},
	}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses = fakeStatuses{st: st} })
	c := e.connection(customerA, connector.StateActive)
	if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
		c.State, c.LastError, c.UpdatedBy = connector.StateFailing, "graph: delta: transient", "importer"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	r := e.loggedIn("alice").get("/connections/" + c.ID)
	for _, want := range []string{
		c.Mailbox, "Failing", "mailgate tries again by itself", "graph: delta: transient", ">42<", "RE-2026-001.pdf",
		"Inline image (e.g. a logo in the text)", "Already imported (duplicate)", "Reconnect", "Pause", "Disconnect",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "refresh-token") {
		t.Error("detail page shows a token")
	}
}

// TestDetailPageBackfill: the connection page shows a running backfill's
// mails done out of the total, the documents so far and the time left, in
// the page's language; a finished one says so, and "new" shows none.
func TestDetailPageBackfill(t *testing.T) {
	for _, tc := range []struct {
		name   string
		st     ConnectionStatus
		lang   string
		want   []string
		absent []string
	}{
		{"running", ConnectionStatus{BackfillMode: "all", BackfillMessages: 5120, BackfillTotal: 20000, BackfillDocuments: 4980, BackfillLeft: 12*time.Minute + 10*time.Second},
			"en", []string{"Backfill: 5,120 of 20,000 mails (25 %), 4,980 documents, about 12 min left"}, nil},
		{"running de", ConnectionStatus{BackfillMode: "since", BackfillMessages: 5120, BackfillTotal: 20000, BackfillDocuments: 4980, BackfillLeft: 3 * time.Hour},
			"de", []string{"5.120 von 20.000 (25 %), 4.980 Dokumente, noch etwa 3 Std."}, nil},
		{"no estimate yet", ConnectionStatus{BackfillMode: "all", BackfillMessages: 40, BackfillTotal: 20000, BackfillDocuments: 39},
			"en", []string{"Backfill: 40 of 20,000 mails (0 %), 39 documents</p>"}, []string{"left"}},
		{"total unknown", ConnectionStatus{BackfillMode: "all", BackfillMessages: 40},
			"en", []string{"Importing existing mail: 40 mails so far."}, []string{"Backfill:"}},
		{"done", ConnectionStatus{BackfillMode: "all", BackfillDone: true, BackfillMessages: 20000, BackfillTotal: 20000},
			"en", []string{"Existing mail has been imported."}, []string{"Backfill:"}},
		{"new", ConnectionStatus{BackfillMode: "new", BackfillDone: true, BackfillMessages: 300},
			"en", nil, []string{"Backfill:", "Existing mail has been imported.", "Importing existing mail"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses = fakeStatuses{st: tc.st} })
			c := e.connection(customerA, connector.StateActive)
			b := e.loggedIn("alice")
			path := "/connections/" + c.ID
			if tc.lang != "en" {
				b.get("/lang?to=" + tc.lang + "&next=" + path)
			}
			body := b.get(path).body
			// The page reloads itself while a backfill runs.
			if running := strings.Contains(body, `id="backfill"`); running != strings.Contains(body, `http-equiv="refresh" content="30"`) {
				t.Errorf("backfill running %v, but the page's refresh does not match", running)
			}
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q", w)
				}
			}
			for _, w := range tc.absent {
				if strings.Contains(body, w) {
					t.Errorf("page shows %q", w)
				}
			}
		})
	}
}

func TestStatusErrorIsNotFatal(t *testing.T) {
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses = failingStatuses{} })
	c := e.connection(customerA, connector.StateActive)
	r := e.loggedIn("alice").get("/connections/" + c.ID)
	if r.status != 200 || !strings.Contains(r.body, "unavailable right now") {
		t.Errorf("%d, want the page with a note", r.status)
	}
}

type failingStatuses struct{}

func (failingStatuses) Retry(context.Context, string) (int, error) {
	return 0, errors.New("status store down")
}

func (failingStatuses) Status(context.Context, string) (ConnectionStatus, error) {
	return ConnectionStatus{}, errors.New("importer down")
}

func TestWizardAccountWithoutFullAccess(t *testing.T) {
	e := newEnv(t)
	e.withSimTester()
	if err := e.srv.users.Add(t.Context(), graphtest.DefaultOtherUser, customerA, pw, []string{"mailbox-connect"}); err != nil {
		t.Fatal(err)
	}
	b := e.loggedIn(graphtest.DefaultOtherUser)
	r := b.consent(b.startWizard(wizardForm(graphtest.DefaultMailbox)), graphtest.DefaultOtherUser, true)
	want := "The account " + graphtest.DefaultOtherUser + " has no full access to " + graphtest.DefaultMailbox
	if r.status != 200 || !strings.Contains(r.body, want) {
		t.Fatalf("%d, want %q in %s", r.status, want, r.body)
	}
	cs, _ := e.store.List(t.Context())
	if len(cs) != 1 || cs[0].State != connector.StateDeleted {
		t.Errorf("pending connection not deleted: %+v", cs)
	}
}

func TestCookieFlags(t *testing.T) {
	for _, tc := range []struct {
		url    string
		secure bool
	}{{"https://portal.example", true}, {"http://localhost:8080", false}} {
		e := newEnv(t)
		srv, err := New(t.Context(), e.js, e.srv.deps, Config{PublicURL: tc.url})
		if err != nil {
			t.Fatal(err)
		}
		rec := httptest.NewRecorder()
		srv.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/login", nil))
		cookie := rec.Header().Get("Set-Cookie")
		if !strings.Contains(cookie, "mailgate_session=") || !strings.Contains(cookie, "HttpOnly") || !strings.Contains(cookie, "SameSite=Lax") ||
			strings.Contains(cookie, "Secure") != tc.secure {
			t.Errorf("%s: Set-Cookie %q", tc.url, cookie)
		}
	}
}

func TestHomeRedirects(t *testing.T) {
	e := newEnv(t)
	if r := e.loggedIn("alice").get("/"); r.status != http.StatusSeeOther || r.location() != "/connections" {
		t.Errorf("/: %d %q", r.status, r.location())
	}
}

func TestCallbackCodeRefusedByMicrosoft(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	auth := b.startWizard(wizardForm("rechnungen@acme.example"))
	r := b.get("/connect/callback?code=not-a-code&state=" + url.QueryEscape(auth.Query().Get("state")))
	if r.status != 200 || !strings.Contains(r.body, "Sign-in did not work") {
		t.Fatalf("%d %s", r.status, r.body)
	}
	if cs, _ := e.store.List(t.Context()); len(cs) != 0 {
		t.Errorf("%d connections after a refused code", len(cs))
	}
}

func TestSecretExpiryWarning(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	tests := []struct {
		in   time.Duration
		want string
	}{
		{20 * 24 * time.Hour, "expires in 20 days"},
		{-time.Hour, "client secret of the app expired on"},
		{60 * 24 * time.Hour, ""},
	}
	for _, tt := range tests {
		c := e.connection(customerA, connector.StateActive)
		if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
			c.Mode, c.ClientID, c.SecretExpiresAt, c.UpdatedBy = connector.AppOnly, "cid", time.Now().Add(tt.in), "test"
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		body := b.get("/connections/" + c.ID).body
		has := strings.Contains(body, "client secret of the app")
		if tt.want == "" && has || tt.want != "" && !strings.Contains(body, tt.want) {
			t.Errorf("secret expiring in %v: want %q, warning shown %v", tt.in, tt.want, has)
		}
	}
}

func TestReconnectOwnApp(t *testing.T) {
	e := newEnv(t)
	c := e.connection(customerA, connector.StateActive)
	old, _ := e.sealer.Seal([]byte("old-secret"))
	if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
		c.Mode, c.ClientID, c.ClientSecret, c.RefreshToken = connector.AppOnly, "own-client", old, nil
		c.SecretExpiresAt, c.State, c.UpdatedBy = time.Now().Add(-time.Hour), connector.StateNeedsConsent, "importer"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	b := e.loggedIn("alice")
	tok := b.token("/connections")
	r := b.post("/connections/"+c.ID+"/reconnect", url.Values{"csrf": {tok}})
	if r.status != http.StatusSeeOther || r.location() != "/connections/"+c.ID+"/secret" {
		t.Fatalf("reconnect own app: %d %q", r.status, r.location())
	}
	if r := b.get(r.location()); r.status != 200 || !strings.Contains(r.body, "own-client") {
		t.Fatalf("secret form: %d", r.status)
	}
	if r := b.post("/connections/"+c.ID+"/secret", url.Values{"csrf": {tok}, "client_secret": {"new"}, "secret_expires": {"2001-01-01"}}); r.status != http.StatusBadRequest {
		t.Errorf("expired date: %d, want 400", r.status)
	}
	exp := time.Now().AddDate(1, 0, 0).UTC().Truncate(24 * time.Hour)
	// A new secret whose test fails keeps the state and stores the
	// reason with its kind.
	e.tester.set(func(connector.Connection) (TestResult, error) {
		return TestResult{}, connector.E("graph: mailbox", connector.NotFound, errors.New("no such mailbox"))
	})
	r = b.post("/connections/"+c.ID+"/secret", url.Values{"csrf": {tok}, "client_secret": {"wrong-secret"}, "secret_expires": {exp.Format(time.DateOnly)}})
	if failed, _ := e.store.Get(t.Context(), c.ID); r.status != 200 || failed.State != connector.StateNeedsConsent || failed.ErrorKind() != connector.NotFound {
		t.Errorf("failed test of a new secret: %d, %s with kind %q", r.status, failed.State, failed.LastErrorKind)
	}
	e.tester.set(nil)
	r = b.post("/connections/"+c.ID+"/secret", url.Values{"csrf": {tok}, "client_secret": {"new-secret"}, "secret_expires": {exp.Format(time.DateOnly)}})
	if r.status != http.StatusSeeOther || r.location() != "/connections/"+c.ID {
		t.Fatalf("set secret: %d %q %s", r.status, r.location(), r.body)
	}
	got, _ := e.store.Get(t.Context(), c.ID)
	plain, err := e.openFor(got, got.ClientSecret)
	if got.State != connector.StateActive || err != nil || string(plain) != "new-secret" || !got.SecretExpiresAt.Equal(exp) {
		t.Errorf("after new secret: %s %q %v %v", got.State, plain, err, got.SecretExpiresAt)
	}
	if got.LastError != "" || got.LastErrorKind != "" {
		t.Errorf("after new secret: error %q of kind %q left", got.LastError, got.LastErrorKind)
	}
	if ev := e.audit.list(); len(ev) != 2 || ev[0].Action != "reconnect" || ev[1].Action != "reconnect" {
		t.Errorf("audit %+v", ev)
	}
	// A delegated connection has no secret form.
	d := e.connection(customerA, connector.StateActive)
	if r := b.get("/connections/" + d.ID + "/secret"); r.status != http.StatusBadRequest {
		t.Errorf("secret form of a delegated connection: %d, want 400", r.status)
	}
}

var adminURLRE = regexp.MustCompile(`href="([^"]*/v2.0/adminconsent[^"]*)"`)

// TestAdminConsentThenRetry: consent needs an administrator; the admin link
// comes back to the callback and the delegated sign-in starts again.
func TestAdminConsentThenRetry(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn(graphtest.DefaultUser)
	auth := b.startWizard(wizardForm(graphtest.DefaultMailbox))
	q := url.Values{"state": {auth.Query().Get("state")}, "error": {"consent_required"},
		"error_description": {"AADSTS65001: The user or administrator has not consented to use the application."}}
	r := b.get("/connect/callback?" + q.Encode())
	m := adminURLRE.FindStringSubmatch(r.body)
	if m == nil {
		t.Fatalf("no admin consent link: %s", r.body)
	}
	adminURL := html.UnescapeString(m[1])
	r = b.consent(mustParse(t, adminURL), graphtest.DefaultUser, true)
	next, _ := url.Parse(r.location())
	if r.status != http.StatusSeeOther || !strings.Contains(next.Path, "/oauth2/v2.0/authorize") {
		t.Fatalf("after admin consent: %d %q, want the delegated sign-in", r.status, r.location())
	}
	r = b.consent(next, graphtest.DefaultUser, true)
	if r.status != http.StatusSeeOther || !strings.HasSuffix(r.location(), "/code") {
		t.Fatalf("delegated after admin consent: %d %q", r.status, r.location())
	}
	// The admin link used by someone without the wizard in their session
	// only says that consent was given.
	other := e.loggedIn("alice")
	back := "/connect/callback?admin_consent=True&tenant=" + graphtest.DefaultTenantID + "&state=unknown"
	if r := other.get(back); r.status != 200 || !strings.Contains(r.body, "Approval granted") {
		t.Errorf("foreign admin consent return: %d", r.status)
	}
}

func mustParse(t *testing.T, s string) *url.URL {
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func TestErrorAdvice(t *testing.T) {
	tests := []struct {
		kind connector.Kind
		want string
	}{
		{connector.NeedsConsent, "advice.needs_consent"},
		{connector.AccessDenied, "advice.access_denied"},
		{connector.NotFound, "advice.not_found"},
		{connector.Throttled, "advice.transient"},
		{connector.Transient, "advice.transient"},
		{connector.Other, "advice.failing"},
		{connector.SyncReset, "advice.failing"},
	}
	for _, tt := range tests {
		if got := errorAdvice(tt.kind); got != tt.want {
			t.Errorf("errorAdvice(%v) = %q, want %q", tt.kind, got, tt.want)
		}
	}
}

// TestFailingAdviceByKind: a failing connection's advice follows the kind
// stored with its error, not words in the error's text.
func TestFailingAdviceByKind(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	c := e.connection(customerA, connector.StateActive)
	const text = "graph: delta: the text says transient and access_denied"
	if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
		c.State, c.UpdatedBy = connector.StateFailing, "importer"
		c.SetError(text, connector.NotFound)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	body := html.UnescapeString(b.get("/connections/" + c.ID).body)
	want := catalogue["en"]["advice.not_found"]
	if !strings.Contains(body, want) || !strings.Contains(body, text) {
		t.Errorf("page lacks the not_found advice %q or the error", want)
	}
	for _, other := range []string{"advice.transient", "advice.access_denied"} {
		if strings.Contains(body, catalogue["en"][other]) {
			t.Errorf("page shows %s, read from the text", other)
		}
	}
}

// TestNeedsConsentAdvice: the page of a connection in needs_consent says
// what to do for its kind (sign in again, a new client secret, an
// administrator's consent), shows the stored explanation and offers
// “Reconnect”, which starts that very step.
func TestNeedsConsentAdvice(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	secret, _ := e.sealer.Seal([]byte("old-secret"))
	const why = "Microsoft refused the sign-in: the sign-in behind this connection is no longer valid (AADSTS99999). Please connect the mailbox again."
	tests := []struct {
		name     string
		set      func(c *connector.Connection)
		advice   string
		redirect string // where “Reconnect” leads: a prefix
	}{
		{"delegated", func(c *connector.Connection) {}, "Click “Reconnect” and sign in again", e.sim.LoginURL()},
		{"own app", func(c *connector.Connection) {
			c.Mode, c.ClientID, c.ClientSecret, c.RefreshToken = connector.AppOnly, "own-client", secret, nil
		}, "Create a new client secret in Microsoft Entra", "/connections/"},
		{"mailgate's app", func(c *connector.Connection) {
			c.Mode, c.RefreshToken = connector.AppOnly, nil
		}, "An administrator of the tenant clicks “Reconnect”", e.sim.LoginURL()},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := e.connection(customerA, connector.StateActive)
			if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
				tt.set(c)
				c.State, c.LastError, c.UpdatedBy = connector.StateNeedsConsent, why, "importer"
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			body := html.UnescapeString(b.get("/connections/" + c.ID).body)
			for _, want := range []string{tt.advice, why, "Reconnect"} {
				if !strings.Contains(body, want) {
					t.Errorf("page lacks %q", want)
				}
			}
			r := b.post("/connections/"+c.ID+"/reconnect", url.Values{"csrf": {b.token("/connections")}})
			if r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), tt.redirect) {
				t.Errorf("reconnect: %d %q, want a redirect to %s…", r.status, r.location(), tt.redirect)
			}
			if u, err := url.Parse(r.location()); err == nil && u.Query().Has("login_hint") && u.Query().Has("prompt") {
				t.Errorf("reconnect sends login_hint and prompt together: %s", u)
			}
		})
	}
}

// openFor opens a secret of c as the importer will: only sealed for c.
func (e *env) openFor(c connector.Connection, sealed []byte) ([]byte, error) {
	plain, reseal, err := e.sealer.OpenFor(c.Customer, c.ID, sealed)
	if err == nil && reseal {
		err = fmt.Errorf("secret of %s stored unbound", c.ID)
	}
	return plain, err
}
