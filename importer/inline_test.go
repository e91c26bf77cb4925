package importer

import (
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestInlineOnlyMailExamined: Graph says hasAttachments false when every
// attachment is inline; an inline PDF is still imported, while the body's
// images stay silent, as does a mail with nothing attached at all.
func TestInlineOnlyMailExamined(t *testing.T) {
	e := newEnv(t, connector.PostMarkRead)
	pdf := file("Rechnung-0815.pdf", "application/pdf", pdfDoc(815))
	pdf.IsInline, pdf.ContentID = true, "pdf@apple"
	logo := file("logo.png", "image/png", logoPNG(t))
	logo.IsInline, logo.ContentID = true, "logo@1"
	id := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<inline@x>", Subject: "Rechnung 0815", ReceivedAt: t0,
		BodyRefs: "cid:logo@1 cid:pdf@apple"}, pdf, logo)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<text@x>", Subject: "Danke", ReceivedAt: t0})
	news := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<news@x>", Subject: "Newsletter", ReceivedAt: t0,
		BodyRefs: "cid:logo@1"}, logo)
	e.mb.mu.Lock()
	e.mb.mails[id].msg.HasAttachments = false // as Graph reports it
	e.mb.mails[news].msg.HasAttachments = false
	e.mb.mu.Unlock()

	im := e.importer(t, "r1", nil)
	res := e.sync(t, im)
	if res.Imported != 1 || res.Skipped != 0 {
		t.Errorf("imported %d, skipped %d; want the PDF alone", res.Imported, res.Skipped)
	}
	for _, ev := range e.events.imported {
		if ev.Document.Name != "Rechnung-0815.pdf" || ev.Document.Kind != archive.KindPDF {
			t.Errorf("imported %+v", ev.Document)
		}
	}
	if _, skipped := e.events.counts(); skipped != 0 {
		t.Errorf("skip events %v for body images", e.events.reasons())
	}
	// The newsletter with body images only is left alone: not marked read,
	// no mail record.
	if n := e.mb.callCount("markread"); n != 1 {
		t.Errorf("%d mails marked read, want the invoice mail alone", n)
	}
	if done, err := im.ledger.mailDone(t.Context(), hashID(e.conn.Customer, e.conn.ID, mailIdentity("<news@x>", news))); err != nil || done {
		t.Errorf("newsletter marked done: %v, %v", done, err)
	}
	if done, err := im.ledger.mailDone(t.Context(), hashID(e.conn.Customer, e.conn.ID, mailIdentity("<inline@x>", id))); err != nil || !done {
		t.Errorf("inline-only invoice mail not marked done: %v, %v", done, err)
	}
}
