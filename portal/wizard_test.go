package portal

import (
	"context"
	"slices"
	"testing"
)

// TestWizardTransitions checks the table itself: every step it names is
// known, every step a wizard can be stored in has a handler for
// Microsoft's return and is reachable from the start, and the start is
// never stored.
func TestWizardTransitions(t *testing.T) {
	known := []step{stepStart, stepConnect, stepReconnect, stepAdminSignIn, stepAdminConsent, stepAdminReconnect, stepAdminRetry}
	for from, nexts := range transitions {
		if !slices.Contains(known, from) {
			t.Errorf("table has unknown step %q", from)
		}
		for _, next := range nexts {
			if _, ok := transitions[next]; !ok {
				t.Errorf("%q leads to %q, which has no row", from, next)
			}
			if next == stepStart {
				t.Errorf("%q leads back to the start, which is never stored", from)
			}
		}
	}
	reached := map[step]bool{stepStart: true}
	todo := []step{stepStart}
	for len(todo) > 0 {
		from := todo[0]
		todo = todo[1:]
		for _, next := range transitions[from] {
			if !reached[next] {
				reached[next] = true
				todo = append(todo, next)
			}
		}
	}
	for _, st := range known {
		if _, ok := transitions[st]; !ok {
			t.Errorf("step %q has no row", st)
		}
		if !reached[st] {
			t.Errorf("step %q cannot be reached from the start", st)
		}
		if cb := callbackOf(st); (cb == nil) != (st == stepStart) {
			t.Errorf("step %q: handler present %v", st, cb != nil)
		}
	}
	if callbackOf("admin_unknown") != nil {
		t.Error("an unknown stored step has a handler")
	}
}

// TestAdvanceRefusesUnlisted: a step the table does not list after
// another is refused before anything is stored.
func TestAdvanceRefusesUnlisted(t *testing.T) {
	s := &Server{} // no session manager: a refused step must not reach it
	for _, tt := range []struct{ from, to step }{
		{stepStart, stepAdminConsent},
		{stepStart, stepAdminRetry},
		{stepConnect, stepReconnect},
		{stepAdminSignIn, stepConnect},
		{stepAdminConsent, stepAdminConsent},
		{stepAdminReconnect, stepAdminRetry},
	} {
		if err := s.advance(context.Background(), tt.from, wizard{Step: tt.to}); err == nil {
			t.Errorf("advance %q → %q allowed", tt.from, tt.to)
		}
	}
}
