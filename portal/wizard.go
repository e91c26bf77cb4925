package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/connector"
)

// step is where the connect wizard waits for the browser to come back from
// Microsoft. It is kept in the session (as the wizard's "kind"), so the
// names are stable: a wizard started before an upgrade still finishes.
type step string

const (
	// stepStart is no step yet: the connect form or a connection's
	// “Reconnect”. It is never stored.
	stepStart step = ""
	// stepConnect is a person's delegated sign-in for a new connection.
	stepConnect step = "connect"
	// stepReconnect is the delegated sign-in that renews an existing
	// connection's consent.
	stepReconnect step = "reconnect"
	// stepAdminSignIn is the administrator's sign-in that proves the
	// tenant of an app-only connection through the operator's app.
	stepAdminSignIn step = "admin_signin"
	// stepAdminConsent is that proven tenant's administrator approving
	// mailgate.
	stepAdminConsent step = "admin_consent"
	// stepAdminReconnect is an administrator approving mailgate again for
	// an existing connection through the operator's app.
	stepAdminReconnect step = "admin_reconnect"
	// stepAdminRetry is an administrator approving for the organisation
	// after a person's sign-in was refused for want of it; the person's
	// sign-in follows.
	stepAdminRetry step = "admin_retry"
)

// transitions is the wizard: the steps each step may lead to. A step
// whose list is empty finishes the wizard (the connection is made or
// renewed, or the page explains why not). Every step a wizard is put in
// goes through advance, which refuses what is not listed here.
var transitions = map[step][]step{
	stepStart:          {stepConnect, stepAdminSignIn, stepReconnect, stepAdminReconnect},
	stepConnect:        {stepAdminRetry},
	stepReconnect:      {stepAdminRetry},
	stepAdminRetry:     {stepConnect, stepReconnect, stepAdminRetry},
	stepAdminSignIn:    {stepAdminConsent},
	stepAdminConsent:   nil,
	stepAdminReconnect: nil,
}

// callbackFunc handles Microsoft's return to a wizard in a step.
type callbackFunc func(s *Server, w http.ResponseWriter, r *http.Request, u *sessionUser, wz wizard, q url.Values)

// callbackOf is the handler of the return for each stored step.
func callbackOf(st step) callbackFunc {
	switch st {
	case stepConnect, stepReconnect:
		return (*Server).signedIn
	case stepAdminSignIn:
		return (*Server).adminSignedIn
	case stepAdminConsent:
		return (*Server).adminConsented
	case stepAdminReconnect:
		return (*Server).adminReconsented
	case stepAdminRetry:
		return (*Server).adminApproved
	}
	return nil
}

// wizard is what the session keeps between the form and the callback.
type wizard struct {
	Step        step                  `json:"kind"`
	Form        connectForm           `json:"form"`
	Req         connector.AuthRequest `json:"req"`
	ReconnectID string                `json:"reconnectId,omitempty"`
	// Tenant and Admin are the verified tid and account of the
	// administrator's sign-in (step admin_consent).
	Tenant string `json:"tenant,omitempty"`
	Admin  string `json:"admin,omitempty"`
}

// resumeStep is the delegated sign-in to go on with after an
// administrator's approval: a new connection's or an existing one's.
func (wz wizard) resumeStep() step {
	if wz.ReconnectID != "" {
		return stepReconnect
	}
	return stepConnect
}

// advance keeps next in the session as the step that follows from. A
// transition the table does not list is a bug, refused here.
func (s *Server) advance(ctx context.Context, from step, next wizard) error {
	if !slices.Contains(transitions[from], next.Step) {
		return fmt.Errorf("wizard: no step from %q to %q", from, next.Step)
	}
	b, err := json.Marshal(next)
	if err != nil {
		return fmt.Errorf("wizard: %w", err)
	}
	s.sessions.Put(ctx, "wizard", string(b))
	return nil
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

// connectCallback is where Microsoft sends the browser back: the wizard's
// step decides what the return means.
func (s *Server) connectCallback(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	q := r.URL.Query()
	wz, ok := s.popWizard(r.Context(), q.Get("state"))
	if !ok {
		if strings.EqualFold(q.Get("admin_consent"), "true") {
			// Consent granted by an administrator on someone else's behalf.
			s.message(w, r, http.StatusOK, messageData{Title: "consent.admin_done_title", Paragraphs: []string{s.tr(r, "consent.admin_done")}})
			return
		}
		s.staleCallback(w, r)
		return
	}
	if e := q.Get("error"); e != "" {
		s.consentError(w, r, wz, e, q.Get("error_description"))
		return
	}
	cb := callbackOf(wz.Step)
	if cb == nil {
		s.staleCallback(w, r)
		return
	}
	cb(s, w, r, u, wz, q)
}

// staleCallback answers a return that belongs to no wizard of the session.
func (s *Server) staleCallback(w http.ResponseWriter, r *http.Request) {
	s.message(w, r, http.StatusBadRequest, messageData{
		Title: "callback.stale_title", Paragraphs: []string{s.tr(r, "callback.stale")},
		Links: []link{{Href: "/connect", Label: "connect.again"}},
	})
}
