package portal

import (
	"context"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// recStatuses records the connections whose given-up mails were retried.
type recStatuses struct {
	st      ConnectionStatus
	mu      sync.Mutex
	retried []string
}

func (r *recStatuses) Status(context.Context, string) (ConnectionStatus, error) { return r.st, nil }

func (r *recStatuses) Retry(_ context.Context, id string) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.retried = append(r.retried, id)
	return r.st.GivenUp, nil
}

func (r *recStatuses) calls() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.retried...)
}

// TestParkedMailsShownAndRetried: the connection page says which mails
// failed on their own and which were given up; a member retries them, and
// a member of another customer cannot.
func TestParkedMailsShownAndRetried(t *testing.T) {
	now := time.Now()
	rec := &recStatuses{st: ConnectionStatus{
		LastSync: now, Imported: 7, Parked: 1, GivenUp: 1,
		ParkedMails: []ParkedMail{
			{Subject: "Rechnung kaputt", Attempts: 5, LastError: "graph: attachments: transient (ServiceNotAvailable)", GaveUp: true},
			{Subject: "Mahnung 3", Attempts: 1, NextRetry: now.Add(time.Minute), LastError: "graph: attachment: transient"},
		},
	}}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses = rec })
	c := e.connection(customerA, connector.StateActive)
	alice := e.loggedIn("alice")
	page := alice.get("/connections/" + c.ID)
	for _, want := range []string{"Rechnung kaputt", "Mahnung 3", "ServiceNotAvailable", "1 mails were given up", "Retry given-up mails", "retried automatically"} {
		if !strings.Contains(page.body, want) {
			t.Errorf("connection page lacks %q", want)
		}
	}

	carol := e.loggedIn("carol") // another customer, in the connect group
	if r := carol.post("/connections/"+c.ID+"/retry", url.Values{"csrf": {carol.token("/connections")}}); r.status != http.StatusNotFound {
		t.Errorf("another customer's retry: %d, want 404", r.status)
	}
	if r := alice.post("/connections/"+c.ID+"/retry", url.Values{"csrf": {"forged"}}); r.status != http.StatusForbidden {
		t.Errorf("retry without the CSRF token: %d, want 403", r.status)
	}
	if got := rec.calls(); len(got) != 0 {
		t.Fatalf("retried %v by refused requests", got)
	}
	r := alice.post("/connections/"+c.ID+"/retry", url.Values{"csrf": {alice.token("/connections/" + c.ID)}})
	if r.status != http.StatusSeeOther {
		t.Fatalf("retry: %d", r.status)
	}
	if got := rec.calls(); len(got) != 1 || got[0] != c.ID {
		t.Errorf("retried %v, want [%s]", got, c.ID)
	}
	if !strings.Contains(alice.get("/connections/"+c.ID).body, "retried on the next poll") {
		t.Error("no note that the mails are retried")
	}
}
