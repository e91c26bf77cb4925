package portal

import (
	"strings"
	"testing"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// The Microsoft sign-in is never pre-filled with the shared mailbox, which
// cannot sign in: the hint is the portal user's own account or nothing.
func TestLoginHintIsNeverTheMailbox(t *testing.T) {
	e := newEnv(t)
	for _, tc := range []struct {
		user, want string
	}{
		{"alice", ""}, // the portal does not know alice's Microsoft account
		{graphtest.DefaultUser, graphtest.DefaultUser}, // the portal user is a Microsoft account
	} {
		b := e.loggedIn(tc.user)
		for _, mode := range []string{"delegated", "admin"} {
			f := wizardForm(graphtest.DefaultMailbox)
			f.Set("mode", mode)
			auth := b.startWizard(f)
			q := auth.Query()
			if got := q.Get("login_hint"); got == graphtest.DefaultMailbox || got != tc.want {
				t.Errorf("%s, %s: login_hint %q, want %q", tc.user, mode, got, tc.want)
			}
			if tc.want == "" && q.Has("login_hint") {
				t.Errorf("%s, %s: empty login_hint sent", tc.user, mode)
			}
		}
	}
}

// The wizard starts with the demo's sample mailbox in demo mode (the
// README says to keep it) and with an empty field elsewhere, whose
// placeholder is clearly an example.
func TestWizardStartMailbox(t *testing.T) {
	demo := newEnv(t, func(c *Config, _ *Deps) { c.DemoRedeem, c.DemoMailbox = true, graphtest.DefaultMailbox })
	page := demo.loggedIn("alice").get("/connect").body
	if !strings.Contains(page, `value="`+graphtest.DefaultMailbox+`"`) {
		t.Errorf("demo wizard does not start with %s", graphtest.DefaultMailbox)
	}
	real := newEnv(t)
	page = real.loggedIn("alice").get("/connect").body
	if !strings.Contains(page, `name="mailbox"`) || !strings.Contains(page, `value=""`) {
		t.Errorf("wizard's mailbox field is not empty outside the demo")
	}
	if !strings.Contains(page, `placeholder="e.g. invoices@your-company.com"`) {
		t.Errorf("mailbox placeholder is not clearly an example")
	}
}
