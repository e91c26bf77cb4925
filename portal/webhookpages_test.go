package portal

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/webhook"
	"github.com/mailgate/mailgate/connector"
)

// TestWebhookPage: a member sees the customer's endpoints and delivery log
// and can send an event again; another customer's member sees none of it
// and cannot redeliver it; a form without its token is refused.
func TestWebhookPage(t *testing.T) {
	e := newEnv(t)
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer recv.Close()
	svc := e.webhookService()
	ep, _, err := svc.Create(t.Context(), customerA, webhook.Registration{URL: recv.URL + "/acme-dms"}, "test")
	if err != nil {
		t.Fatal(err)
	}
	c := e.connection(customerA, connector.StateActive)
	if err := archive.NewPublisher(e.js, "mailgate").Imported(t.Context(), "doc-page-1", archive.Imported{
		Customer: customerA, Connection: c.ID, Mailbox: c.Mailbox, Document: archive.DocumentInfo{Name: "RE-1.pdf", Kind: archive.KindPDF},
	}); err != nil {
		t.Fatal(err)
	}
	attempts := func() int {
		ds, _ := svc.Deliveries(t.Context(), customerA, ep.ID)
		if len(ds) != 1 || ds[0].Status != webhook.Delivered {
			return 0
		}
		return ds[0].Attempts
	}
	for deadline := time.Now().Add(10 * time.Second); attempts() == 0; time.Sleep(20 * time.Millisecond) { // the log is in KV; nothing to await
		if time.Now().After(deadline) {
			t.Fatal("not delivered")
		}
	}

	alice := e.loggedIn("alice")
	page := alice.get("/webhooks")
	if page.status != 200 || !strings.Contains(page.body, "/acme-dms") || !strings.Contains(page.body, "doc-page-1") || !strings.Contains(page.body, "Delivered") {
		t.Fatalf("alice's page: %d\n%s", page.status, page.body)
	}
	carol := e.loggedIn("carol")
	if page := carol.get("/webhooks"); page.status != 200 || strings.Contains(page.body, "/acme-dms") || strings.Contains(page.body, "doc-page-1") {
		t.Errorf("carol sees acme's webhooks: %d\n%s", page.status, page.body)
	}
	if r := carol.post("/webhooks/"+ep.ID+"/redeliver", url.Values{"event": {"doc-page-1"}}); r.status != http.StatusNotFound {
		t.Errorf("carol redelivers acme's event: %d", r.status)
	}
	if r := alice.post("/webhooks/"+ep.ID+"/redeliver", url.Values{"event": {"doc-page-1"}, "csrf": {"forged"}}); r.status != http.StatusForbidden {
		t.Errorf("redeliver with a forged form token: %d", r.status)
	}
	if n := attempts(); n != 1 {
		t.Errorf("%d attempts after refused redeliveries, want 1", n)
	}
	if r := alice.post("/webhooks/"+ep.ID+"/redeliver", url.Values{"event": {"doc-page-1"}}); r.status != http.StatusSeeOther || r.location() != "/webhooks" {
		t.Errorf("alice redelivers: %d %s", r.status, r.location())
	}
	if n := attempts(); n != 2 {
		t.Errorf("%d attempts after the redelivery, want 2", n)
	}
	if r := e.loggedIn("bob").get("/webhooks"); r.status != http.StatusForbidden {
		t.Errorf("bob (not in the connect group): %d", r.status)
	}
}
