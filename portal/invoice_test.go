package portal

import (
	"html"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// TestDetailPageShowsInvoice: the document list shows an e-invoice's
// number, seller and gross amount, escaped, and nothing of the kind for
// a plain PDF.
func TestDetailPageShowsInvoice(t *testing.T) {
	now := time.Now()
	st := ConnectionStatus{
		LastSync: now.Add(-time.Minute), Imported: 2, Skipped: 1,
		SkippedByReason: map[string]int64{"archive": 1},
		Recent: []HistoryEntry{
			{Time: now, DocumentID: "d1", Name: "xrechnung.xml", Kind: "xrechnung", Profile: "XRECHNUNG 3.0", Subject: "Rechnung",
				InvoiceNumber: "RE-2026-04711", Seller: "Müller & Söhne <GmbH>", Gross: "1487.50", Currency: "EUR"},
			{Time: now, DocumentID: "d2", Name: "scan.pdf", Kind: "pdf", Subject: "Scan"},
			{Time: now, Name: "rechnungen.zip", Reason: "archive", Subject: "Archiv"},
		},
	}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses = fakeStatuses{st: st} })
	c := e.connection(customerA, connector.StateActive)
	r := e.loggedIn("alice").get("/connections/" + c.ID)
	for _, want := range []string{
		"Invoice RE-2026-04711", html.EscapeString("Müller & Söhne <GmbH>"), "€1,487.50", "Archive (ZIP, RAR, …), not unpacked",
	} {
		if !strings.Contains(r.body, want) {
			t.Errorf("detail page lacks %q", want)
		}
	}
	if strings.Contains(r.body, "<GmbH>") {
		t.Error("the seller's name is not escaped")
	}
	if n := strings.Count(r.body, `class="small invoice"`); n != 1 {
		t.Errorf("%d invoice lines, want 1 (only the e-invoice)", n)
	}
}
