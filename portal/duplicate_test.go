package portal

import (
	"net/http"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/connector"
)

// TestDuplicateMailboxRefused: a customer's second connection of a mailbox
// that is already connected (or waiting for its code) is refused, naming
// and linking the existing one and offering to reconnect it; another
// customer's connection of the same address does not count, nor does a
// disconnected one.
func TestDuplicateMailboxRefused(t *testing.T) {
	e := newEnv(t)
	alice := e.loggedIn("alice")
	for _, state := range []connector.State{connector.StateActive, connector.StatePending, connector.StatePaused} {
		from := state
		if state == connector.StatePaused {
			from = connector.StateActive // paused comes from active
		}
		c := e.connection(customerA, from)
		if state == connector.StatePaused {
			if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error { c.State = state; c.UpdatedBy = "test"; return nil }); err != nil {
				t.Fatal(err)
			}
		}
		f := wizardForm(strings.ToUpper(c.Mailbox)) // the address in another case is the same mailbox
		f.Set("csrf", alice.token("/connect"))
		r := alice.post("/connect", f)
		if r.status != http.StatusConflict {
			t.Fatalf("%s: second connection of %s: %d, want 409", state, c.Mailbox, r.status)
		}
		for _, want := range []string{"already connected", c.Mailbox, `href="/connections/` + c.ID + `"`} {
			if !strings.Contains(r.body, want) {
				t.Errorf("%s: refusal lacks %q", state, want)
			}
		}
		reconnect := `action="/connections/` + c.ID + `/reconnect"`
		if state == connector.StatePending {
			if !strings.Contains(r.body, `href="/connections/`+c.ID+`/code"`) {
				t.Errorf("pending: refusal does not link the code")
			}
		} else if !strings.Contains(r.body, reconnect) {
			t.Errorf("%s: refusal does not offer to reconnect", state)
		}
	}
	cs, _ := e.store.List(t.Context())
	if len(cs) != 3 {
		t.Errorf("%d connections, want the 3 that existed", len(cs))
	}

	// Another customer may connect the same address (its own tenant's).
	c := e.connection(customerA, connector.StateActive)
	carol := e.loggedIn("carol")
	if u := carol.startWizard(wizardForm(c.Mailbox)); !strings.HasPrefix(u.String(), e.sim.LoginURL()) {
		t.Errorf("carol is refused a mailbox of another customer: %s", u)
	}
	// A disconnected connection does not stand in the way.
	if _, err := e.store.Delete(t.Context(), c.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if u := alice.startWizard(wizardForm(c.Mailbox)); !strings.HasPrefix(u.String(), e.sim.LoginURL()) {
		t.Errorf("reconnecting a disconnected mailbox is refused: %s", u)
	}
}
