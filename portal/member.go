package portal

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"time"

	"golang.org/x/oauth2"
)

// sessionUser is who is logged in, kept in the session as JSON.
type sessionUser struct {
	Name     string   `json:"name"`
	Customer string   `json:"customer"`
	Groups   []string `json:"groups"`
	Via      string   `json:"via"` // "password" or "sso"
	// Until ends an SSO session when its id_token expires: the groups
	// came from the token, and a fresh sign-in brings the current ones.
	Until time.Time `json:"until,omitzero"`
}

// actor names the user in UpdatedBy and audit events.
func (u *sessionUser) actor() string { return "portal:" + u.Name }

// currentUser is the session's user as the directory knows them now: a
// built-in user is looked up on every request, so removing the user, or a
// group of theirs, takes effect on their next request; an SSO session ends
// when its id_token expires. A user who is gone is logged out.
func (s *Server) currentUser(ctx context.Context) *sessionUser {
	raw := s.sessions.GetString(ctx, "user")
	if raw == "" {
		return nil
	}
	var u sessionUser
	if err := json.Unmarshal([]byte(raw), &u); err != nil {
		return nil
	}
	switch u.Via {
	case "sso":
		if !u.Until.IsZero() && !s.now().Before(u.Until) {
			s.sessions.Remove(ctx, "user")
			return nil
		}
	default:
		su, err := s.users.get(ctx, u.Name)
		if err != nil {
			if errors.Is(err, errNotFound) {
				s.log.InfoContext(ctx, "session of a removed user ended", "user", u.Name)
				s.sessions.Remove(ctx, "user")
			} else {
				s.log.ErrorContext(ctx, "look up session user", "user", u.Name, "err", err)
			}
			return nil // fail closed
		}
		if su.Customer != u.Customer {
			s.sessions.Remove(ctx, "user")
			return nil
		}
		u.Groups = su.Groups
	}
	return &u
}

// member wraps a handler that needs a logged-in member of the connect group.
func (s *Server) member(h func(http.ResponseWriter, *http.Request, *sessionUser)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		u := s.currentUser(r.Context())
		if u == nil {
			http.Redirect(w, r, "/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
		if !slices.Contains(u.Groups, s.cfg.ConnectGroup) {
			w.Header().Set("Cache-Control", "no-store")
			s.render(w, r, http.StatusForbidden, "forbidden", "forbidden.title", s.cfg.ConnectGroup)
			return
		}
		if r.Method == http.MethodPost {
			if err := s.checkCSRF(r); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		w.Header().Set("Cache-Control", "no-store")
		h(w, r, u)
	}
}

// csrfToken returns the session's form token, creating it on first use.
func (s *Server) csrfToken(ctx context.Context) string {
	t := s.sessions.GetString(ctx, "csrf")
	if t == "" {
		t = randomToken()
		s.sessions.Put(ctx, "csrf", t)
	}
	return t
}

// checkCSRF compares the form's token with the session's in constant time.
func (s *Server) checkCSRF(r *http.Request) error {
	want := s.sessions.GetString(r.Context(), "csrf")
	got := r.PostFormValue("csrf")
	if want == "" || !constantEqual(got, want) {
		return errBadCSRF
	}
	return nil
}

func randomToken() string { return oauth2.GenerateVerifier() }
