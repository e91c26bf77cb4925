package portal

import (
	"fmt"
	"net/http"
	"net/mail"
	"net/url"
	"slices"
	"strings"
	"time"

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
		wz := wizard{Step: stepConnect, Form: f, Req: connector.NewAuthRequest()}
		if err := s.advance(ctx, stepStart, wz); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, s.deps.Identity.AuthCodeURL(wz.Req, loginHint(u)), http.StatusSeeOther)
	case "admin":
		// First the administrator signs in at the tenant's own endpoint;
		// the verified id_token's tid is the proof of the tenant. The admin
		// consent follows for exactly that tenant.
		wz := wizard{Step: stepAdminSignIn, Form: f, Req: connector.NewAuthRequest()}
		if err := s.advance(ctx, stepStart, wz); err != nil {
			s.fail(w, r, err)
			return
		}
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
	ch, err := s.activation.CreatePending(ctx, c, u.actor(), consent...)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	c = ch.Connection
	if !ch.Passed {
		s.metrics.connects.WithLabelValues("test_failed").Inc()
		s.message(w, r, http.StatusOK, s.testFailedMessage(r, c, ch.Test, ch.Err))
		return
	}
	if !s.issueCode(w, r, c) {
		return
	}
	s.metrics.connects.WithLabelValues("code_issued").Inc()
	s.log.InfoContext(ctx, "connection pending, code issued", "connection_id", c.ID, "customer", c.Customer, "user", u.Name,
		"mailbox", c.Mailbox, "mode", c.Mode)
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
