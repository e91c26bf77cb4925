package main

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestEInvoicesAsTheyArrive runs the built binary against the Microsoft
// 365 simulator with e-invoices in the shapes real mail brings them: a
// ZUGFeRD 1.0 PDF that declares %PDF-1.3 and carries /AFRelationship, an
// S/MIME-signed mail, a mail forwarded as an attachment, an inline-only
// mail, and the same invoice arriving again in another file. It checks
// kinds and data.invoice on the stream, and that the second file is
// flagged duplicateInvoiceOf the first.
func TestEInvoicesAsTheyArrive(t *testing.T) {
	read := func(parts ...string) []byte {
		b, err := os.ReadFile(filepath.Join(parts...))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	fixtures := filepath.Join("..", "..", "importer", "policy", "testdata")
	zf1 := read(fixtures, "einvoice", "zf1-pdf13-afrelationship.pdf")
	smime := read(fixtures, "smime", "opaque-ber.p7m")
	utf16 := read(fixtures, "einvoice", "xrechnung-utf16le-bom.xml")
	twin := read(fixtures, "einvoice", "xrechnung-in-pdf.pdf") // the same invoice, embedded in a PDF
	inlinePDF := read(fixtures, "einvoice", "facturx-objstm.pdf")

	bin := mailgateBinary(t)
	in := newStack(t, stack{})
	in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	now := time.Now().UTC()
	deliver := func(m graphtest.Mail) {
		t.Helper()
		if m.ReceivedAt.IsZero() {
			m.ReceivedAt = now
		}
		if _, err := in.sim.Deliver(graphtest.DefaultMailbox, m); err != nil {
			t.Fatal(err)
		}
	}
	deliver(graphtest.Mail{From: "rechnung@lieferant.example", Subject: "Rechnung ZF1", Body: "Anbei.",
		Attachments: []graphtest.Attachment{{Name: "rechnung.pdf", ContentType: "application/octet-stream", Content: zf1}}})
	deliver(graphtest.Mail{From: "rechnung@lieferant.example", Subject: "Rechnung (signiert)", Body: "Signiert.",
		Attachments: []graphtest.Attachment{{Name: "smime.p7m", ContentType: "application/pkcs7-mime", Content: smime}}})
	deliver(graphtest.Mail{From: "kollege@firma.example", Subject: "WG: XRechnung RE-2026-04711", Body: "Zur Info.",
		Attachments: []graphtest.Attachment{{Name: "XRechnung RE-2026-04711", Item: &graphtest.Mail{
			From: "rechnung@mueller-buero.example", Subject: "XRechnung RE-2026-04711", Body: "Anbei.", ReceivedAt: now.Add(-time.Hour),
			Attachments: []graphtest.Attachment{{Name: "RE-2026-04711.xml", ContentType: "application/xml", Content: utf16}},
		}}}})
	deliver(graphtest.Mail{From: "ap@apple.example", Subject: "Rechnung OS-2026-3", BodyHTML: true,
		Body:        `<p>Anbei</p><img src="cid:pdf1@apple">`,
		Attachments: []graphtest.Attachment{{Name: "OS-2026-3.pdf", ContentType: "application/pdf", Content: inlinePDF, Inline: true, ContentID: "pdf1@apple"}}})

	p := startProc(t, bin, in.env(), "serve", "--role", "importer")
	defer p.stop()
	in.waitDistinct(t, 5, 2*time.Minute)
	// The twin comes later, so which file is first is not left to chance.
	deliver(graphtest.Mail{From: "rechnung@mueller-buero.example", Subject: "Rechnung RE-2026-04711 als PDF", Body: "Anbei.",
		ReceivedAt:  now.Add(time.Second),
		Attachments: []graphtest.Attachment{{Name: "RE-2026-04711.pdf", ContentType: "application/pdf", Content: twin}}})
	in.waitDistinct(t, 6, 2*time.Minute)

	type doc struct {
		id   string
		kind string
		inv  *archive.Invoice
	}
	docs := map[string]doc{}
	imported := 0
	for _, ev := range in.events(t) {
		if d, ok := ev.Data.(*archive.Imported); ok {
			imported++
			docs[d.Document.Name] = doc{ev.ID, d.Document.Kind, d.Invoice}
		}
	}
	want := map[string]struct{ kind, number string }{
		"rechnung.pdf":      {archive.KindZUGFeRD, "ZF1-2014-0815"},
		"RE-FX-1.pdf":       {archive.KindZUGFeRD, "FX-1"},
		"Lieferschein.pdf":  {archive.KindPDF, ""},
		"RE-2026-04711.xml": {archive.KindXRechnung, "RE-2026-04711"},
		"OS-2026-3.pdf":     {archive.KindZUGFeRD, "OS-2026-3"},
		"RE-2026-04711.pdf": {archive.KindZUGFeRD, "RE-2026-04711"},
	}
	if imported != len(want) || len(docs) != len(want) {
		t.Errorf("%d imported events, %d names; want %d", imported, len(docs), len(want))
	}
	for name, w := range want {
		d, ok := docs[name]
		switch {
		case !ok:
			t.Errorf("%s not imported", name)
		case d.kind != w.kind:
			t.Errorf("%s: kind %s, want %s", name, d.kind, w.kind)
		case w.number == "" && d.inv != nil:
			t.Errorf("%s: invoice data %+v", name, d.inv)
		case w.number != "" && (d.inv == nil || d.inv.Number != w.number):
			t.Errorf("%s: invoice %+v, want number %s", name, d.inv, w.number)
		}
	}
	first, again := docs["RE-2026-04711.xml"], docs["RE-2026-04711.pdf"]
	if again.inv == nil || again.inv.DuplicateInvoiceOf != first.id || first.inv == nil || first.inv.DuplicateInvoiceOf != "" {
		t.Errorf("twin not flagged: first %+v, again %+v (first id %s)", first.inv, again.inv, first.id)
	}
	if again.inv != nil && (again.inv.Seller.VATID != "DE123456789" || again.inv.Totals.Gross != "1487.50") {
		t.Errorf("twin data %+v", again.inv)
	}
}
