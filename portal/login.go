package portal

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"
)

type loginData struct {
	Next  string
	Name  string
	Error string // catalogue key
}

func (s *Server) loginForm(w http.ResponseWriter, r *http.Request) {
	if s.currentUser(r.Context()) != nil {
		http.Redirect(w, r, safeNext(r.URL.Query().Get("next")), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "login", "login.title", loginData{Next: safeNext(r.URL.Query().Get("next"))})
}

// login checks the form against the built-in directory. Failures back off
// per account and client and are rate limited per client IP; they all look
// the same.
func (s *Server) login(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	name := strings.TrimSpace(r.PostFormValue("name"))
	data := loginData{Next: safeNext(r.PostFormValue("next")), Name: name}
	if err := s.checkCSRF(r); err != nil {
		data.Error = "error.csrf"
		s.render(w, r, http.StatusForbidden, "login", "login.title", data)
		return
	}
	now := s.now()
	ip, user := s.clientIP(r), strings.ToLower(name)
	limited := func(wait time.Duration) {
		s.metrics.logins.WithLabelValues("limited").Inc()
		retryAfterHeader(w, &rateLimitedError{retryAfter: wait})
		data.Error = "login.limited"
		s.render(w, r, http.StatusTooManyRequests, "login", "login.title", data)
	}
	// The account from this client backs off; the owner from another
	// client is not slowed. The client's address is limited over all
	// accounts. Both are checked and taken in one step.
	wait, done := s.loginPair.Begin(user+"\x00"+ip, now)
	if wait > 0 {
		limited(wait)
		return
	}
	wait, release := s.loginIP.Take(ip, now)
	if wait > 0 {
		done(attemptCancelled, now)
		limited(wait)
		return
	}
	u, err := s.users.Authenticate(ctx, name, r.PostFormValue("password"))
	if err != nil {
		if !errors.Is(err, errBadLogin) {
			done(attemptCancelled, s.now())
			release()
			s.fail(w, r, err)
			return
		}
		done(attemptFailed, s.now())
		s.metrics.logins.WithLabelValues("failed").Inc()
		s.log.InfoContext(ctx, "login failed", "user", name, "ip", ip)
		data.Error = "login.wrong"
		s.render(w, r, http.StatusUnauthorized, "login", "login.title", data)
		return
	}
	done(attemptSucceeded, s.now())
	release()
	if err := s.startSession(r, sessionUser{Name: u.Name, Customer: u.Customer, Groups: u.Groups, Via: "password"}); err != nil {
		s.fail(w, r, err)
		return
	}
	s.metrics.logins.WithLabelValues("ok").Inc()
	s.log.InfoContext(ctx, "login", "user", u.Name, "customer", u.Customer)
	http.Redirect(w, r, data.Next, http.StatusSeeOther)
}

// startSession renews the session token (against fixation) and keeps the
// user and a fresh form token in it.
func (s *Server) startSession(r *http.Request, u sessionUser) error {
	ctx := r.Context()
	if err := s.sessions.RenewToken(ctx); err != nil {
		return err
	}
	b, err := json.Marshal(u)
	if err != nil {
		return err
	}
	s.sessions.Put(ctx, "user", string(b))
	s.sessions.Put(ctx, "csrf", randomToken())
	return nil
}

func (s *Server) logout(w http.ResponseWriter, r *http.Request) {
	if err := s.checkCSRF(r); err != nil {
		s.fail(w, r, err)
		return
	}
	if err := s.sessions.Destroy(r.Context()); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/login", http.StatusSeeOther)
}

func (s *Server) home(w http.ResponseWriter, r *http.Request, _ *sessionUser) {
	http.Redirect(w, r, "/connections", http.StatusSeeOther)
}
