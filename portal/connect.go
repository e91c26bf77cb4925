package portal

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// connectForm is the wizard's first step.
type connectForm struct {
	Mailbox       string `json:"mailbox"`
	Mode          string `json:"mode"` // delegated, admin, app
	Tenant        string `json:"tenant"`
	ClientID      string `json:"clientId"`
	ClientSecret  string `json:"-"` // sealed at once, never kept in the session
	SecretExpires string `json:"secretExpires"`
	Post          string `json:"post"` // move, mark_read, category, none
	Folder        string `json:"folder"`
	Category      string `json:"category"`
	Backfill      string `json:"backfill"` // new, since, all
	Since         string `json:"since"`
}

func defaultConnectForm() connectForm {
	return connectForm{Mode: "delegated", Post: "move", Folder: "Archiviert", Backfill: "new"}
}

func parseConnectForm(r *http.Request) connectForm {
	v := func(k string) string { return strings.TrimSpace(r.PostFormValue(k)) }
	return connectForm{
		Mailbox: strings.ToLower(v("mailbox")), Mode: v("mode"), Tenant: v("tenant"), ClientID: v("client_id"),
		ClientSecret: r.PostFormValue("client_secret"), SecretExpires: v("secret_expires"),
		Post: v("post"), Folder: v("folder"), Category: v("category"), Backfill: v("backfill"), Since: v("since"),
	}
}

// Validate returns catalogue keys of what is wrong, in form order.
func (f connectForm) Validate(now time.Time) []string {
	var errs []string
	if a, err := mail.ParseAddress(f.Mailbox); err != nil || a.Address != f.Mailbox || a.Name != "" ||
		!strings.Contains(f.Mailbox[strings.LastIndexByte(f.Mailbox, '@')+1:], ".") {
		errs = append(errs, "form.mailbox")
	}
	switch f.Mode {
	case "delegated", "admin":
	case "app":
		if f.Tenant == "" {
			errs = append(errs, "form.tenant")
		}
		if f.ClientID == "" {
			errs = append(errs, "form.client_id")
		}
		if f.ClientSecret == "" {
			errs = append(errs, "form.client_secret")
		}
		if d, err := time.Parse(time.DateOnly, f.SecretExpires); err != nil || !d.After(now) {
			errs = append(errs, "form.secret_expires")
		}
	default:
		errs = append(errs, "form.mode")
	}
	switch f.Post {
	case "move":
		if f.Folder == "" {
			errs = append(errs, "form.folder")
		}
	case "category":
		if f.Category == "" {
			errs = append(errs, "form.category")
		}
	case "mark_read", "none":
	default:
		errs = append(errs, "form.post")
	}
	switch f.Backfill {
	case "new", "all":
	case "since":
		if d, err := time.Parse(time.DateOnly, f.Since); err != nil || d.After(now) {
			errs = append(errs, "form.since")
		}
	default:
		errs = append(errs, "form.backfill")
	}
	return errs
}

// connection builds the pending connection the form describes.
func (f connectForm) connection(u *sessionUser, now time.Time) connector.Connection {
	c := connector.Connection{
		ID:       connector.NewID(), // before Create: secrets are sealed for it
		Customer: u.Customer, Mailbox: f.Mailbox, Folder: "inbox", State: connector.StatePending,
		PostProcess: connector.PostProcess{Action: connector.PostAction(f.Post)},
		Backfill:    connector.Backfill{Mode: connector.BackfillMode(f.Backfill)},
		CreatedBy:   u.actor(), UpdatedBy: u.actor(), CreatedAt: now, UpdatedAt: now,
	}
	switch f.Post {
	case "move":
		c.PostProcess.Folder = f.Folder
	case "category":
		c.PostProcess.Category = f.Category
	}
	if f.Backfill == "since" {
		c.Backfill.Since, _ = time.Parse(time.DateOnly, f.Since)
	}
	if f.Mode == "delegated" {
		c.Mode = connector.Delegated
	} else {
		c.Mode = connector.AppOnly
	}
	return c
}

// wizard is what the session keeps between the form and the callback.
type wizard struct {
	// Kind is "connect", "reconnect", "admin_retry", "admin_reconnect",
	// "admin_signin" (the administrator signs in to prove the tenant) or
	// "admin_consent" (the proven tenant's administrator approves).
	Kind        string                `json:"kind"`
	Form        connectForm           `json:"form"`
	Req         connector.AuthRequest `json:"req"`
	ReconnectID string                `json:"reconnectId,omitempty"`
	// Tenant and Admin are the verified tid and account of the
	// administrator's sign-in (kind admin_consent).
	Tenant string `json:"tenant,omitempty"`
	Admin  string `json:"admin,omitempty"`
}

type connectData struct {
	Form   connectForm
	Errors []string // catalogue keys "form.<field>"
}

// Err reports whether field (the input's id) has an error, for aria-invalid.
func (d connectData) Err(field string) bool { return slices.Contains(d.Errors, "form."+field) }

func (s *Server) connectForm(w http.ResponseWriter, r *http.Request, _ *sessionUser) {
	f := defaultConnectForm()
	// The demo's simulated tenant has one invoice mailbox; a real user's
	// field starts empty, with a placeholder that is clearly one.
	f.Mailbox = s.cfg.DemoMailbox
	s.render(w, r, http.StatusOK, "connect", "connect.title", connectData{Form: f})
}

// connectStart validates the form and sends the browser to Microsoft
// (delegated, admin consent) or creates the connection at once (own app).
func (s *Server) connectStart(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	f := parseConnectForm(r)
	if errs := f.Validate(s.now()); len(errs) > 0 {
		f.ClientSecret = ""
		s.render(w, r, http.StatusBadRequest, "connect", "connect.title", connectData{Form: f, Errors: errs})
		return
	}
	if s.refuseDuplicate(w, r, u, f.Mailbox) {
		return
	}
	switch f.Mode {
	case "delegated":
		wz := wizard{Kind: "connect", Form: f, Req: connector.NewAuthRequest()}
		s.putWizard(ctx, wz)
		http.Redirect(w, r, s.deps.Identity.AuthCodeURL(wz.Req, loginHint(u)), http.StatusSeeOther)
	case "admin":
		// First the administrator signs in at the tenant's own endpoint;
		// the verified id_token's tid is the proof of the tenant. The admin
		// consent follows for exactly that tenant.
		wz := wizard{Kind: "admin_signin", Form: f, Req: connector.NewAuthRequest()}
		s.putWizard(ctx, wz)
		http.Redirect(w, r, s.deps.Identity.SignInURL(tenantOf(f), wz.Req, loginHint(u)), http.StatusSeeOther)
	case "app":
		c := f.connection(u, s.now())
		c.TenantID, c.ClientID = f.Tenant, f.ClientID
		c.SecretExpiresAt, _ = time.Parse(time.DateOnly, f.SecretExpires)
		sealed, err := s.deps.Sealer.SealFor(c.Customer, c.ID, []byte(f.ClientSecret))
		if err != nil {
			s.fail(w, r, fmt.Errorf("seal client secret: %w", err))
			return
		}
		c.ClientSecret = sealed
		s.createAndIssue(w, r, u, c)
	}
}

// loginHint suggests the account to sign in with: the portal user's own
// account when the portal knows it (a name that is an address, as SSO
// users' are), else nothing. Never the mailbox: a shared mailbox cannot
// sign in (AADSTS50034), and the person signing in is someone with access
// to it.
func loginHint(u *sessionUser) string {
	if strings.Contains(u.Name, "@") {
		return u.Name
	}
	return ""
}

// tenantOf is the tenant for admin consent: as entered, else the mailbox's
// domain, which Microsoft resolves to the tenant.
func tenantOf(f connectForm) string {
	if f.Tenant != "" {
		return f.Tenant
	}
	return f.Mailbox[strings.LastIndexByte(f.Mailbox, '@')+1:]
}

func (s *Server) putWizard(ctx context.Context, wz wizard) {
	b, _ := json.Marshal(wz)
	s.sessions.Put(ctx, "wizard", string(b))
}

// popWizard takes the wizard out of the session if state matches: the state
// is compared in constant time and can be used once.
func (s *Server) popWizard(ctx context.Context, state string) (wizard, bool) {
	raw := s.sessions.GetString(ctx, "wizard")
	if raw == "" || state == "" {
		return wizard{}, false
	}
	var wz wizard
	if err := json.Unmarshal([]byte(raw), &wz); err != nil || !constantEqual(state, wz.Req.State) {
		return wizard{}, false
	}
	s.sessions.Remove(ctx, "wizard")
	return wz, true
}

// connectCallback is where Microsoft sends the browser back.
func (s *Server) connectCallback(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	q := r.URL.Query()
	wz, ok := s.popWizard(ctx, q.Get("state"))
	if !ok {
		if strings.EqualFold(q.Get("admin_consent"), "true") {
			// Consent granted by an administrator on someone else's behalf.
			s.message(w, r, http.StatusOK, messageData{Title: "consent.admin_done_title", Paragraphs: []string{s.tr(r, "consent.admin_done")}})
			return
		}
		s.message(w, r, http.StatusBadRequest, messageData{
			Title: "callback.stale_title", Paragraphs: []string{s.tr(r, "callback.stale")},
			Links: []link{{Href: "/connect", Label: "connect.again"}},
		})
		return
	}
	if e := q.Get("error"); e != "" {
		s.consentError(w, r, wz, e, q.Get("error_description"))
		return
	}
	switch {
	case wz.Kind == "admin_signin":
		s.adminSignedIn(w, r, u, wz, q.Get("code"))
	case wz.Kind == "admin_consent":
		s.adminConsented(w, r, u, wz, q)
	case wz.Form.Mode == "admin" && wz.Kind == "connect":
		// Admin mode without the administrator's sign-in (a wizard from
		// before the sign-in step): never trust the callback's tenant.
		s.message(w, r, http.StatusBadRequest, messageData{
			Title: "callback.stale_title", Paragraphs: []string{s.tr(r, "callback.stale")},
			Links: []link{{Href: "/connect", Label: "connect.again"}},
		})
	case wz.Kind == "admin_reconnect":
		// The connection keeps its tenant, proven when it was made; the
		// callback's tenant is only compared, never taken.
		tenant := q.Get("tenant")
		if !strings.EqualFold(q.Get("admin_consent"), "true") || tenant == "" {
			s.consentError(w, r, wz, "access_denied", "")
			return
		}
		if !strings.EqualFold(tenant, wz.Form.Tenant) {
			s.tenantRefused(w, r, u, "tenant.proof", "admin consent for another tenant", wz.Form.Tenant, tenant)
			return
		}
		if taken, err := s.tenantTaken(ctx, wz.Form.Tenant, u.Customer); err != nil {
			s.fail(w, r, err)
			return
		} else if taken {
			s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", wz.Form.Tenant, "")
			return
		}
		s.finishReconnect(w, r, u, wz.ReconnectID, func(*connector.Connection) {})
	case wz.Kind == "admin_retry":
		// The admin consented for the organisation; now the user's own
		// delegated sign-in can succeed.
		next := wizard{Kind: wz.ReconnectKind(), Form: wz.Form, Req: connector.NewAuthRequest(), ReconnectID: wz.ReconnectID}
		s.putWizard(ctx, next)
		http.Redirect(w, r, s.deps.Identity.AuthCodeURL(next.Req, loginHint(u)), http.StatusSeeOther)
	default:
		consent, err := s.deps.Identity.Exchange(ctx, q.Get("code"), wz.Req)
		if err != nil {
			s.log.WarnContext(ctx, "token exchange failed", "user", u.Name, "err", err)
			if connector.IsKind(err, connector.Transient) || connector.IsKind(err, connector.Throttled) {
				s.fail(w, r, fmt.Errorf("exchange code: %w", err))
				return
			}
			// Refused by Microsoft (consent missing, code expired, policy):
			// explain, with the AADSTS code when there is one.
			var code string
			var ce *connector.Error
			if errors.As(err, &ce) {
				code = ce.Code
			}
			s.consentError(w, r, wz, "invalid_grant", code)
			return
		}
		c := wz.Form.connection(u, s.now())
		if wz.Kind == "reconnect" {
			c.ID = wz.ReconnectID
		}
		sealed, err := s.deps.Sealer.SealFor(c.Customer, c.ID, []byte(consent.RefreshToken))
		if err != nil {
			s.fail(w, r, fmt.Errorf("seal refresh token: %w", err))
			return
		}
		if wz.Kind == "reconnect" {
			s.prime(wz.ReconnectID, consent)
			s.finishReconnect(w, r, u, wz.ReconnectID, func(c *connector.Connection) {
				c.RefreshToken, c.TenantID, c.ConsentedBy = sealed, consent.TenantID, consent.Username
				c.TokenRefreshedAt = s.now()
			})
			return
		}
		c.TenantID, c.ConsentedBy, c.RefreshToken, c.TokenRefreshedAt = consent.TenantID, consent.Username, sealed, s.now()
		s.createAndIssue(w, r, u, c, consent)
	}
}

// prime hands the access token of a code exchange to the token cache of
// the connection it is for (when the Tester is a TokenPrimer), so the connection test uses it instead of
// redeeming the new refresh token at once.
func (s *Server) prime(connectionID string, consent connector.Consent) {
	if p, ok := s.deps.Tester.(TokenPrimer); ok && consent.Token != nil {
		p.Prime(connectionID, consent.Token)
	}
}

// adminSignedIn verifies the administrator's sign-in (id_token signature,
// issuer, audience, nonce), checks that its tenant is the one asked for and
// is not another customer's, and sends the administrator on to approve
// mailgate for exactly that tenant.
func (s *Server) adminSignedIn(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, code string) {
	ctx := r.Context()
	asked := tenantOf(wz.Form)
	signIn, err := s.deps.Identity.VerifySignIn(ctx, asked, code, wz.Req)
	if err != nil {
		s.log.WarnContext(ctx, "admin sign-in failed", "user", u.Name, "err", err)
		if connector.IsKind(err, connector.Transient) || connector.IsKind(err, connector.Throttled) {
			s.fail(w, r, fmt.Errorf("verify admin sign-in: %w", err))
			return
		}
		var aadsts string
		var ce *connector.Error
		if errors.As(err, &ce) && strings.HasPrefix(ce.Code, "AADSTS") {
			aadsts = ce.Code
		}
		s.message(w, r, http.StatusOK, messageData{
			Title: "consent.failed_title", Paragraphs: []string{s.tr(r, "consent.other")}, Code: aadsts,
			Links: []link{{Href: "/connect", Label: "connect.again"}},
		})
		return
	}
	if !signIn.CanGrantAdminConsent() {
		// Only a Global or Privileged Role Administrator can approve; a
		// member's sign-in proves membership, not ownership.
		s.tenantRefused(w, r, u, "tenant.not_admin", "signed-in account is not an administrator", signIn.TenantID, "")
		return
	}
	if connector.ValidTenantID(asked) == nil && !strings.EqualFold(asked, signIn.TenantID) {
		s.tenantRefused(w, r, u, "tenant.proof", "admin signed in to another tenant", asked, signIn.TenantID)
		return
	}
	if taken, err := s.tenantTaken(ctx, signIn.TenantID, u.Customer); err != nil {
		s.fail(w, r, err)
		return
	} else if taken {
		s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", signIn.TenantID, "")
		return
	}
	next := wizard{Kind: "admin_consent", Form: wz.Form, Req: connector.NewAuthRequest(), Tenant: signIn.TenantID, Admin: signIn.Username}
	s.putWizard(ctx, next)
	http.Redirect(w, r, s.deps.Identity.AdminConsentURL(signIn.TenantID, next.Req.State, s.redirectURI()), http.StatusSeeOther)
}

// adminConsented finishes an admin connect: the approval must name the
// tenant of the administrator's verified sign-in; the tenant is then bound
// to the customer (compare-and-set) and the connection made for it.
func (s *Server) adminConsented(w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, q url.Values) {
	ctx := r.Context()
	if !strings.EqualFold(q.Get("admin_consent"), "true") {
		s.consentError(w, r, wz, "access_denied", "")
		return
	}
	if wz.Tenant == "" || !strings.EqualFold(q.Get("tenant"), wz.Tenant) {
		s.tenantRefused(w, r, u, "tenant.proof", "admin consent for another tenant than the sign-in's", wz.Tenant, q.Get("tenant"))
		return
	}
	if taken, err := s.tenantTaken(ctx, wz.Tenant, u.Customer); err != nil {
		s.fail(w, r, err)
		return
	} else if taken {
		s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", wz.Tenant, "")
		return
	}
	if _, err := s.deps.Tenants.BindTenant(ctx, wz.Tenant, u.Customer, u.actor()+" (admin "+wz.Admin+")"); err != nil {
		if errors.Is(err, connector.ErrTenantBound) {
			s.tenantRefused(w, r, u, "tenant.bound", "tenant bound to another customer", wz.Tenant, "")
			return
		}
		s.fail(w, r, fmt.Errorf("bind tenant: %w", err))
		return
	}
	c := wz.Form.connection(u, s.now())
	c.TenantID = wz.Tenant
	c.ConsentedBy = wz.Admin
	s.createAndIssue(w, r, u, c)
}

// tenantTaken reports whether tenant belongs to another customer than
// customer: bound to it, or, for a tenant not yet bound, used by another
// customer's live connection through the operator's app (made before
// tenants were bound).
func (s *Server) tenantTaken(ctx context.Context, tenant, customer string) (bool, error) {
	if connector.ValidTenantID(tenant) != nil {
		return true, nil // only a verified GUID can be bound
	}
	b, ok, err := s.deps.Tenants.TenantOwner(ctx, tenant)
	if err != nil {
		return false, fmt.Errorf("tenant owner: %w", err)
	}
	if ok {
		return b.Customer != customer, nil
	}
	all, err := s.deps.Connections.List(ctx)
	if err != nil {
		return false, fmt.Errorf("list connections: %w", err)
	}
	for _, c := range all {
		if c.Customer != customer && c.State != connector.StateDeleted && operatorApp(c) && strings.EqualFold(c.TenantID, tenant) {
			return true, nil
		}
	}
	return false, nil
}

// operatorApp reports whether c is app-only through the operator's app
// (not the customer's own app registration).
func operatorApp(c connector.Connection) bool {
	return c.Mode == connector.AppOnly && len(c.ClientSecret) == 0
}

// tenantRefused explains a refused tenant and logs the attempt.
func (s *Server) tenantRefused(w http.ResponseWriter, r *http.Request, u *sessionUser, key, why, tenant, got string) {
	s.log.WarnContext(r.Context(), "tenant refused", "reason", why, "user", u.Name, "customer", u.Customer,
		"tenant", tenant, "callback_tenant", got)
	s.metrics.connects.WithLabelValues("tenant_refused").Inc()
	s.message(w, r, http.StatusForbidden, messageData{
		Title: key + "_title", Paragraphs: []string{s.tr(r, key)},
		Links: []link{{Href: "/connect", Label: "connect.again"}},
	})
}

// ReconnectKind is the kind of the flow to resume after admin consent.
func (wz wizard) ReconnectKind() string {
	if wz.ReconnectID != "" {
		return "reconnect"
	}
	return "connect"
}

// createAndIssue stores the pending connection, tests it, and on success
// issues the one-time code; a failing connection is deleted again. The
// access token of a delegated consent (optional) serves the test.
func (s *Server) createAndIssue(w http.ResponseWriter, r *http.Request, u *sessionUser, c connector.Connection, consent ...connector.Consent) {
	ctx := r.Context()
	// Checked again after the sign-in: another tab may have connected the
	// mailbox meanwhile.
	if s.refuseDuplicate(w, r, u, c.Mailbox) {
		return
	}
	c, err := s.deps.Connections.Create(ctx, c)
	if err != nil {
		s.fail(w, r, fmt.Errorf("create connection: %w", err))
		return
	}
	for _, cs := range consent {
		s.prime(c.ID, cs)
	}
	log := s.log.With("connection_id", c.ID, "customer", c.Customer, "user", u.Name)
	res, terr := s.deps.Tester.Test(ctx, c)
	if !testPassed(c, res, terr) {
		log.InfoContext(ctx, "connection test failed", "err", terr, "detail", res.Detail)
		if _, err := s.deps.Connections.Delete(ctx, c.ID, u.actor()); err != nil {
			log.ErrorContext(ctx, "delete failed pending connection", "err", err)
		}
		s.metrics.connects.WithLabelValues("test_failed").Inc()
		s.message(w, r, http.StatusOK, s.testFailedMessage(r, c, res, terr))
		return
	}
	if !s.issueCode(w, r, c) {
		return
	}
	s.metrics.connects.WithLabelValues("code_issued").Inc()
	log.InfoContext(ctx, "connection pending, code issued", "mailbox", c.Mailbox, "mode", c.Mode)
	http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID)+"/code", http.StatusSeeOther)
}

// refuseDuplicate answers the request and reports true when the customer
// already has a connection of mailbox that is not deleted: two connections
// of one mailbox would race for the same mail. The page names the one that
// exists, links to it and offers to reconnect it.
func (s *Server) refuseDuplicate(w http.ResponseWriter, r *http.Request, u *sessionUser, mailbox string) bool {
	cs, err := s.ownConnections(r.Context(), u.Customer)
	if err != nil {
		s.fail(w, r, err)
		return true
	}
	i := slices.IndexFunc(cs, func(c connector.Connection) bool { return strings.EqualFold(c.Mailbox, mailbox) })
	if i < 0 {
		return false
	}
	c := cs[i]
	p := s.pageFor(r)
	m := messageData{
		Title:      "duplicate.title",
		Paragraphs: []string{p.T("duplicate.body", c.Mailbox, p.T("state."+string(c.State)), p.Date(c.CreatedAt))},
		Links:      []link{{Href: "/connections/" + url.PathEscape(c.ID), Label: "duplicate.open"}},
	}
	if c.State == connector.StatePending {
		m.Paragraphs = append(m.Paragraphs, p.T("duplicate.pending"))
		m.Links = append(m.Links, link{Href: "/connections/" + url.PathEscape(c.ID) + "/code", Label: "detail.show_code"})
	} else {
		m.Paragraphs = append(m.Paragraphs, p.T("duplicate.reconnect_help"))
		m.Forms = []postForm{{Action: "/connections/" + url.PathEscape(c.ID) + "/reconnect", Label: "duplicate.reconnect"}}
	}
	s.log.InfoContext(r.Context(), "second connection of a mailbox refused", "connection_id", c.ID, "user", u.Name)
	s.message(w, r, http.StatusConflict, m)
	return true
}

// issueCode issues a one-time code for c and keeps it in the session for
// the code page; on failure it answers the request and reports false.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, c connector.Connection) bool {
	code, exp, err := s.deps.Codes.Issue(r.Context(), c.Customer, c.ID)
	if err != nil {
		s.fail(w, r, fmt.Errorf("issue code: %w", err))
		return false
	}
	s.keepCode(r.Context(), c.ID, code, exp)
	return true
}

// testPassed: the account must read the mailbox, and move or mark mail
// unless nothing is to be done with processed mail.
func testPassed(c connector.Connection, res TestResult, err error) bool {
	if err != nil || !res.CanRead {
		return false
	}
	return res.CanWrite || c.PostProcess.Action == connector.PostNone
}

// testProblem is the plain-language key for a failed test.
func testProblem(res TestResult, err error) string {
	switch {
	case connector.IsKind(err, connector.NeedsConsent):
		return "test.needs_consent"
	case connector.IsKind(err, connector.AccessDenied), err == nil && !res.CanRead:
		return "test.no_access"
	case connector.IsKind(err, connector.NotFound):
		return "test.not_found"
	case err == nil && !res.CanWrite:
		return "test.no_write"
	case connector.IsKind(err, connector.Transient), connector.IsKind(err, connector.Throttled):
		return "test.transient"
	}
	return "test.other"
}

func (s *Server) testFailedMessage(r *http.Request, c connector.Connection, res TestResult, err error) messageData {
	who := c.ConsentedBy
	if who == "" {
		who = s.tr(r, "test.the_app")
	}
	m := messageData{
		Title:      "test.failed_title",
		Paragraphs: []string{strings.NewReplacer("{account}", who, "{mailbox}", c.Mailbox).Replace(s.tr(r, testProblem(res, err)))},
		Links:      []link{{Href: "/connect", Label: "connect.again"}},
	}
	if res.Detail != "" {
		m.Paragraphs = append(m.Paragraphs, s.tr(r, "test.detail")+" "+res.Detail)
	}
	return m
}

// consentError explains a refused or failed sign-in in plain language and,
// where an administrator can help, offers the admin consent link.
func (s *Server) consentError(w http.ResponseWriter, r *http.Request, wz wizard, code, description string) {
	ctx := r.Context()
	s.metrics.connects.WithLabelValues("consent_error").Inc()
	aadsts := ""
	if i := strings.Index(description, "AADSTS"); i >= 0 {
		j := i + len("AADSTS")
		for j < len(description) && description[j] >= '0' && description[j] <= '9' {
			j++
		}
		aadsts = description[i:j]
	}
	m := messageData{Code: aadsts, Links: []link{{Href: "/connect", Label: "connect.again"}}}
	adminLink := func() {
		if wz.Form.Mode == "admin" {
			// Already the administrator's flow: starting again is the way.
			return
		}
		retry := wizard{Kind: "admin_retry", Form: wz.Form, Req: connector.NewAuthRequest(), ReconnectID: wz.ReconnectID}
		s.putWizard(ctx, retry)
		m.AdminURL = s.deps.Identity.AdminConsentURL(tenantOf(wz.Form), retry.Req.State, s.redirectURI())
	}
	switch {
	case aadsts == "AADSTS65001" || aadsts == "AADSTS90094" || aadsts == "AADSTS90095":
		m.Title, m.Paragraphs = "consent.admin_title", []string{s.tr(r, "consent.admin_needed")}
		adminLink()
	case aadsts == "AADSTS65004" || code == "access_denied" && aadsts == "":
		m.Title, m.Paragraphs = "consent.cancel_title", []string{s.tr(r, "consent.cancelled")}
	case aadsts == "AADSTS50105":
		m.Title, m.Paragraphs = "consent.failed_title", []string{s.tr(r, "consent.not_assigned")}
	case aadsts == "AADSTS50076" || aadsts == "AADSTS50158" || aadsts == "AADSTS53003":
		m.Title, m.Paragraphs = "consent.failed_title", []string{s.tr(r, "consent.conditional")}
	default:
		m.Title, m.Paragraphs = "consent.failed_title", []string{s.tr(r, "consent.other")}
		if code == "invalid_grant" {
			adminLink()
		}
	}
	s.log.InfoContext(ctx, "consent refused", "err", code, "aadsts", aadsts)
	s.message(w, r, http.StatusOK, m)
}

type codeData struct {
	C         connector.Connection
	Code      string
	ExpiresAt time.Time
	Active    bool
}

// refresh makes the code page reload every 5 seconds until it is connected.
func (d codeData) refresh() int {
	if d.Active {
		return 0
	}
	return 5
}

func (s *Server) showCode(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := codeData{C: c}
	switch c.State {
	case connector.StatePending:
		if code, exp, ok := s.keptCodeOf(ctx, c.ID); ok {
			d.Code, d.ExpiresAt = code, exp
		}
	case connector.StateActive:
		s.sessions.Remove(ctx, "code:"+c.ID)
		d.Active = true
	default:
		http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "code", "code.page_title", d)
}

// reissueCode gives a pending connection a new code when the old one expired.
func (s *Server) reissueCode(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c.State != connector.StatePending {
		http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID), http.StatusSeeOther)
		return
	}
	if !s.issueCode(w, r, c) {
		return
	}
	http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID)+"/code", http.StatusSeeOther)
}

// demoRedeem redeems the code as the DMS would (demo installations only).
func (s *Server) demoRedeem(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	id := r.PostFormValue("id")
	if _, err := s.ownConnection(ctx, u.Customer, id); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, _, err := s.Redeem(ctx, u.Customer, r.PostFormValue("code"), u.actor()); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/connections/"+url.PathEscape(id)+"/code", http.StatusSeeOther)
}

// Redeem redeems a one-time code of customer and activates its
// connection. The DMS API, the demo button and `mailgate connections
// redeem` (through the control service) all redeem here, so they keep the
// same rules.
func (s *Server) Redeem(ctx context.Context, customer, code, actor string) (connector.Connection, TestResult, error) {
	id, err := s.deps.Codes.Redeem(ctx, customer, strings.TrimSpace(code))
	if err != nil {
		return connector.Connection{}, TestResult{}, fmt.Errorf("redeem: %w", err)
	}
	c, res, err := s.Activate(ctx, customer, id, actor)
	if err == nil {
		switch c.State {
		case connector.StateActive:
			s.metrics.redeems.WithLabelValues("active").Inc()
		case connector.StateFailing:
			s.metrics.redeems.WithLabelValues("failing").Inc()
		}
	}
	return c, res, err
}

// Activate tests a pending connection of customer and makes it active (test
// passed) or failing (with the reason). A connection that is not pending,
// or of another customer, is refused like an invalid code. One that left
// pending during the test (a token error that needs a person moved it to
// needs_consent, or somebody deleted it) is left as it is.
func (s *Server) Activate(ctx context.Context, customer, id, actor string) (connector.Connection, TestResult, error) {
	c, err := s.deps.Connections.Get(ctx, id)
	if err != nil {
		return c, TestResult{}, fmt.Errorf("activate: get %s: %w", id, err)
	}
	if c.Customer != customer || c.State != connector.StatePending {
		// Codes already refuses other customers' codes; a connection that
		// moved on (deleted, or redeemed by another path) is no use either.
		return connector.Connection{}, TestResult{}, fmt.Errorf("activate %s (state %s): %w", id, c.State, errInvalidCode)
	}
	if operatorApp(c) {
		// Through the operator's app a connection reaches the whole
		// tenant: only a tenant proven and bound to the customer.
		b, ok, err := s.deps.Tenants.TenantOwner(ctx, c.TenantID)
		if err != nil && !connector.IsKind(err, connector.Invalid) {
			return connector.Connection{}, TestResult{}, fmt.Errorf("activate %s: tenant owner: %w", id, err)
		}
		if !ok || b.Customer != customer {
			s.log.WarnContext(ctx, "activation refused: tenant not bound to the customer", "connection_id", id, "customer", customer, "tenant", c.TenantID)
			return connector.Connection{}, TestResult{}, fmt.Errorf("activate %s: tenant not bound to %s: %w", id, customer, errInvalidCode)
		}
	}
	res, terr := s.deps.Tester.Test(ctx, c)
	passed := testPassed(c, res, terr)
	c, err = s.deps.Connections.Update(ctx, id, func(c *connector.Connection) error {
		if c.State != connector.StatePending {
			return nil
		}
		if passed {
			c.State, c.LastError = connector.StateActive, ""
		} else {
			c.State, c.LastError = connector.StateFailing, testFailure(res, terr)
		}
		c.UpdatedBy, c.UpdatedAt = actor, s.now()
		return nil
	})
	if err != nil {
		return c, res, fmt.Errorf("activate: update %s: %w", id, err)
	}
	s.log.InfoContext(ctx, "connection activated", "connection_id", id, "customer", customer, "actor", actor, "state", c.State)
	if c.State == connector.StateActive && s.deps.Trigger != nil {
		s.deps.Trigger.Trigger(id)
	}
	return c, res, nil
}

// testFailure is the LastError text of a failed test (English, stored).
func testFailure(res TestResult, err error) string {
	msg := map[string]string{
		"test.needs_consent": "consent missing or expired: reconnect",
		"test.no_access":     "the account has no full access to the mailbox",
		"test.not_found":     "the mailbox was not found",
		"test.no_write":      "the account can read but not move or mark mail",
		"test.transient":     "Microsoft 365 was not reachable; try again",
		"test.other":         "connection test failed",
	}[testProblem(res, err)]
	if res.Detail != "" {
		msg += ": " + res.Detail
	}
	return msg
}

// audit records an action that the store's change events do not cover.
func (s *Server) audit(ctx context.Context, c connector.Connection, from connector.State, action, actor string) {
	if s.deps.Audit == nil {
		return
	}
	err := s.deps.Audit.ConnectionChanged(ctx, archive.ConnectionChanged{
		Customer: c.Customer, Connection: c.ID, Mailbox: c.Mailbox, From: string(from), To: string(c.State),
		Action: action, Actor: actor,
	})
	if err != nil {
		s.log.ErrorContext(ctx, "audit", "connection_id", c.ID, "action", action, "err", err)
	}
}
