package portal

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/connector"
)

type listData struct {
	Connections []connector.Connection
}

func (s *Server) listConnections(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	cs, err := s.ownConnections(r.Context(), u.Customer)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	slices.SortFunc(cs, func(a, b connector.Connection) int { return strings.Compare(a.Mailbox, b.Mailbox) })
	s.render(w, r, http.StatusOK, "connections", "list.title", listData{Connections: cs})
}

type reasonCount struct {
	Reason string
	Count  int64
}

type detailData struct {
	C          connector.Connection
	Status     *ConnectionStatus
	StatusErr  bool
	Reasons    []reasonCount
	Advice     string // catalogue key: what to do about the state
	SecretDays int    // days until an app secret expires when ≤ 30, else -1
	SecretGone bool   // the app secret has expired
	Flash      string
	Log        importLog
	LogErr     bool // the history could not be read
}

// backfillRefresh is how often the connection page reloads itself while a
// backfill runs, so its progress can be watched.
const backfillRefresh = 30

func (d detailData) refresh() int {
	st := d.Status
	if st == nil || st.BackfillDone || st.BackfillMode == "new" || st.BackfillMode == "" || st.BackfillMessages == 0 {
		return 0
	}
	return backfillRefresh
}

func (s *Server) showConnection(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := detailData{C: c, SecretDays: -1, Flash: s.sessions.PopString(ctx, "flash")}
	if s.deps.Statuses != nil {
		st, err := s.deps.Statuses.Status(ctx, c.ID)
		if err != nil {
			s.log.WarnContext(ctx, "status", "connection_id", c.ID, "err", err)
			d.StatusErr = true
		} else {
			d.Status = &st
			for reason, n := range st.SkippedByReason {
				d.Reasons = append(d.Reasons, reasonCount{Reason: reason, Count: n})
			}
			slices.SortFunc(d.Reasons, func(a, b reasonCount) int { return int(b.Count - a.Count) })
			if c.LastError == "" && st.LastError != "" {
				c.LastError, c.LastErrorKind = st.LastError, st.LastErrorKind
				d.C = c
			}
		}
	}
	entries, err := s.historyOf(ctx, c.ID, d.Status)
	if err != nil {
		s.log.WarnContext(ctx, "history", "connection_id", c.ID, "err", err)
		d.LogErr = true
	}
	var parked []ParkedMail
	if d.Status != nil {
		parked = d.Status.ParkedMails
	}
	q := r.URL.Query()
	outcome := q.Get("outcome")
	if !slices.Contains(logOutcomes, outcome) {
		outcome = ""
	}
	pageNo, _ := strconv.Atoi(q.Get("page"))
	d.Log = buildLog("/connections/"+url.PathEscape(c.ID), entries, parked, strings.TrimSpace(q.Get("q")), outcome, pageNo)
	d.Log.Downloads = s.deps.Documents != nil
	switch c.State {
	case connector.StateNeedsConsent:
		d.Advice = needsConsentAdvice(c)
	case connector.StateFailing:
		d.Advice = errorAdvice(c.ErrorKind())
	case connector.StatePending:
		d.Advice = "advice.pending"
	}
	if c.Mode == connector.AppOnly && !c.SecretExpiresAt.IsZero() {
		left := c.SecretExpiresAt.Sub(s.now())
		if days := int(math.Ceil(left.Hours() / 24)); left <= 0 {
			d.SecretGone = true
		} else if days <= 30 {
			d.SecretDays = days
		}
	}
	s.render(w, r, http.StatusOK, "connection", "detail.title", d)
}

// setState moves a connection between active and paused. With from empty,
// the connection must be active or failing (pause).
func (s *Server) setState(w http.ResponseWriter, r *http.Request, u *sessionUser, from, to connector.State, flash string) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if from != "" && c.State != from || from == "" && c.State != connector.StateActive && c.State != connector.StateFailing {
		s.fail(w, r, invalid("error.state"))
		return
	}
	c, err = s.deps.Connections.Update(ctx, c.ID, func(c *connector.Connection) error {
		c.State, c.UpdatedBy, c.UpdatedAt = to, u.actor(), s.now()
		return nil
	})
	if err != nil {
		s.fail(w, r, fmt.Errorf("update connection: %w", err))
		return
	}
	if to == connector.StateActive && s.deps.Trigger != nil {
		s.deps.Trigger.Trigger(c.ID)
	}
	s.log.InfoContext(ctx, "connection state set", "connection_id", c.ID, "state", to, "user", u.Name)
	s.sessions.Put(ctx, "flash", flash)
	http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID), http.StatusSeeOther)
}

func (s *Server) pause(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	s.setState(w, r, u, "", connector.StatePaused, "flash.paused")
}

func (s *Server) resume(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	s.setState(w, r, u, connector.StatePaused, connector.StateActive, "flash.resumed")
}

// retryParked makes the connection's given-up mails due for new retries.
func (s *Server) retryParked(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.deps.Statuses == nil {
		s.fail(w, r, invalid("error.state"))
		return
	}
	n, err := s.deps.Statuses.Retry(ctx, c.ID)
	if err != nil {
		s.fail(w, r, fmt.Errorf("retry: %w", err))
		return
	}
	if s.deps.Trigger != nil {
		s.deps.Trigger.Trigger(c.ID)
	}
	s.log.InfoContext(ctx, "given-up mails retried", "connection_id", c.ID, "mails", n, "user", u.Name)
	s.sessions.Put(ctx, "flash", "flash.retried")
	http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID), http.StatusSeeOther)
}

type disconnectData struct {
	C    connector.Connection
	Done bool
}

func (s *Server) confirmDisconnect(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	c, err := s.ownConnection(r.Context(), u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "disconnect", "disconnect.page_title", disconnectData{C: c})
}

func (s *Server) disconnect(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if _, err := s.deps.Connections.Delete(ctx, c.ID, u.actor()); err != nil {
		s.fail(w, r, fmt.Errorf("delete connection: %w", err))
		return
	}
	s.sessions.Remove(ctx, "code:"+c.ID)
	s.log.InfoContext(ctx, "connection deleted", "connection_id", c.ID, "user", u.Name)
	s.render(w, r, http.StatusOK, "disconnect", "disconnect.page_title", disconnectData{C: c, Done: true})
}

// reconnect asks for new consent for an existing connection; its history
// stays, its tokens are replaced.
func (s *Server) reconnect(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	f := connectForm{Mailbox: c.Mailbox, Mode: "delegated"}
	wz := wizard{Step: stepReconnect, Form: f, Req: connector.NewAuthRequest(), ReconnectID: c.ID}
	switch {
	case c.Mode == connector.Delegated:
		if err := s.advance(ctx, stepStart, wz); err != nil {
			s.fail(w, r, err)
			return
		}
		hint := c.ConsentedBy
		if hint == "" {
			hint = loginHint(u)
		}
		http.Redirect(w, r, s.deps.Identity.AuthCodeURL(wz.Req, hint), http.StatusSeeOther)
	case c.Mode == connector.AppOnly && len(c.ClientSecret) == 0:
		// Our own app: admin consent again, then test.
		wz.Form.Mode, wz.Form.Tenant = "admin", c.TenantID
		wz.Step = stepAdminReconnect
		if err := s.advance(ctx, stepStart, wz); err != nil {
			s.fail(w, r, err)
			return
		}
		http.Redirect(w, r, s.deps.Identity.AdminConsentURL(c.TenantID, wz.Req.State, s.redirectURI()), http.StatusSeeOther)
	default:
		// The customer's own app: new credentials are a new client secret.
		http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID)+"/secret", http.StatusSeeOther)
	}
}

type secretData struct {
	C      connector.Connection
	Errors []string
}

// ownAppConnection loads the user's connection of the route that uses the
// customer's own app registration, the only kind with a secret to renew.
func (s *Server) ownAppConnection(r *http.Request, u *sessionUser) (connector.Connection, error) {
	c, err := s.ownConnection(r.Context(), u.Customer, r.PathValue("id"))
	if err != nil {
		return c, err
	}
	if c.Mode != connector.AppOnly || len(c.ClientSecret) == 0 {
		return c, invalid("error.state")
	}
	return c, nil
}

// secretForm asks for a new client secret of the customer's own app.
func (s *Server) secretForm(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	c, err := s.ownAppConnection(r, u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.render(w, r, http.StatusOK, "secret", "secret.title", secretData{C: c})
}

// setSecret replaces the client secret of an own-app connection, tests it,
// and makes the connection active again when the test passes.
func (s *Server) setSecret(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	c, err := s.ownAppConnection(r, u)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	secret := r.PostFormValue("client_secret")
	exp, perr := time.Parse(time.DateOnly, strings.TrimSpace(r.PostFormValue("secret_expires")))
	var errs []string
	if secret == "" {
		errs = append(errs, "form.client_secret")
	}
	if perr != nil || !exp.After(s.now()) {
		errs = append(errs, "form.secret_expires")
	}
	if len(errs) > 0 {
		s.render(w, r, http.StatusBadRequest, "secret", "secret.title", secretData{C: c, Errors: errs})
		return
	}
	sealed, err := s.deps.Sealer.SealFor(c.Customer, c.ID, []byte(secret))
	if err != nil {
		s.fail(w, r, fmt.Errorf("seal client secret: %w", err))
		return
	}
	s.finishReconnect(w, r, u, c.ID, func(c *connector.Connection) {
		c.ClientSecret, c.SecretExpiresAt = sealed, exp
	})
}

// finishReconnect applies new credentials, tests, and makes the connection
// active when the test passes; the reconnect is audited either way.
func (s *Server) finishReconnect(w http.ResponseWriter, r *http.Request, u *sessionUser, id string, apply func(*connector.Connection), consents ...connector.Consent) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ch, err := s.activation.Renew(ctx, c, u.actor(), apply, consents...)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if !ch.Passed {
		m := s.testFailedMessage(r, ch.Connection, ch.Test, ch.Err)
		m.Links = []link{{Href: "/connections/" + url.PathEscape(id), Label: "nav.back"}}
		s.message(w, r, http.StatusOK, m)
		return
	}
	s.sessions.Put(ctx, "flash", "flash.reconnected")
	http.Redirect(w, r, "/connections/"+url.PathEscape(id), http.StatusSeeOther)
}

// messageData is a page of plain-language explanation with links onward.
type messageData struct {
	Title      string // catalogue key
	Paragraphs []string
	Steps      []string
	Code       string // Microsoft's error code, shown small
	AdminURL   string
	Links      []link
	Forms      []postForm // buttons that post (with the form token)
}

// postForm is a button that posts to Action.
type postForm struct {
	Action string
	Label  string // catalogue key
}

type link struct {
	Href  string
	Label string // catalogue key
}

func (s *Server) message(w http.ResponseWriter, r *http.Request, status int, m messageData) {
	s.render(w, r, status, "message", m.Title, m)
}

// tr translates a key for the request's language.
func (s *Server) tr(r *http.Request, key string) string {
	return s.pageFor(r).T(key)
}

// pageFor is the request's language and zone, for words and dates put
// together in a handler.
func (s *Server) pageFor(r *http.Request) page {
	lang := language(r)
	return page{Lang: lang, cat: catalogue[lang], loc: s.cfg.TimeZone}
}

// needsConsentAdvice is what a person does about a connection in
// needs_consent, by who can give Microsoft what it wants: the person who
// signs in (delegated), a new client secret of the customer's own app, or
// a tenant administrator's consent to mailgate's app. It matches what
// “Reconnect” starts for the connection.
func needsConsentAdvice(c connector.Connection) string {
	switch {
	case c.Mode == connector.AppOnly && len(c.ClientSecret) > 0:
		return "advice.needs_secret"
	case c.Mode == connector.AppOnly:
		return "advice.needs_admin"
	}
	return "advice.needs_consent"
}

// errorAdvice is what a person can do about a connection's last error,
// chosen by its kind (stored with the error, see
// connector.Connection.LastErrorKind).
func errorAdvice(kind connector.Kind) string {
	switch kind {
	case connector.NeedsConsent:
		return "advice.needs_consent"
	case connector.AccessDenied:
		return "advice.access_denied"
	case connector.NotFound:
		return "advice.not_found"
	case connector.Throttled, connector.Transient:
		return "advice.transient"
	}
	return "advice.failing"
}
