package importer

import (
	"encoding/base64"
	"fmt"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// forwardedMIME is a mail as Graph gives an item attachment's $value: a
// text body, a PDF, an XRechnung and, inside, another forwarded mail with
// one more PDF.
func forwardedMIME(pdf, xml, inner []byte) []byte {
	b64 := func(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
	return fmt.Appendf(nil, "From: rechnung@lieferant.example\r\nSubject: Rechnung RE-7\r\nMIME-Version: 1.0\r\n"+
		"Content-Type: multipart/mixed; boundary=\"outer\"\r\n\r\n"+
		"--outer\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nAnbei die Rechnung.\r\n"+
		"--outer\r\nContent-Type: application/pdf; name=\"RE-7.pdf\"\r\nContent-Disposition: attachment; filename=\"RE-7.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n"+
		"--outer\r\nContent-Type: application/xml\r\nContent-Disposition: attachment; filename=\"RE-7.xml\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n"+
		"--outer\r\nContent-Type: message/rfc822\r\nContent-Disposition: attachment; filename=\"Lieferschein.eml\"\r\n\r\n"+
		"Subject: Lieferschein\r\nContent-Type: multipart/mixed; boundary=\"inner\"\r\n\r\n"+
		"--inner\r\nContent-Type: text/plain\r\n\r\nsiehe Anlage\r\n"+
		"--inner\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=\"Lieferschein.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n%s\r\n"+
		"--inner--\r\n\r\n--outer--\r\n", b64(pdf), b64(xml), b64(inner))
}

// TestForwardedMailYieldsItsFiles: a mail forwarded as an attachment
// (item attachment) yields its files, nested ones too, each exactly once,
// also when the same file is attached to the outer mail as well.
func TestForwardedMailYieldsItsFiles(t *testing.T) {
	for _, saveEML := range []bool{false, true} {
		t.Run(fmt.Sprintf("saveEML=%v", saveEML), func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			pdf, xml, inner := pdfDoc(7), ublInvoice("RE-7", "DE123456789", "Lieferant GmbH"), pdfDoc(8)
			item := connector.Attachment{Type: connector.ItemAttachment, Name: "Rechnung RE-7", ContentType: "message/rfc822",
				Content: forwardedMIME(pdf, xml, inner)}
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<fwd@x>", Subject: "WG: Rechnung RE-7", ReceivedAt: t0},
				item, file("RE-7.pdf", "application/pdf", pdf))
			im := e.importer(t, "r1", func(c *Config) { c.Policy.SaveEML = saveEML })
			e.sync(t, im)
			e.mb.resetSync()
			e.sync(t, im)

			got := map[string]string{}
			for _, ev := range e.events.imported {
				got[ev.Document.Name] = ev.Document.Kind
			}
			want := map[string]string{"RE-7.pdf": archive.KindPDF, "RE-7.xml": archive.KindXRechnung, "Lieferschein.pdf": archive.KindPDF}
			if saveEML { // the attached mail and the whole mail as .eml besides
				want["Rechnung RE-7.eml"], want["WG: Rechnung RE-7.eml"] = archive.KindEML, archive.KindEML
			}
			if fmt.Sprint(got) != fmt.Sprint(want) {
				t.Errorf("imported %v\nwant %v", got, want)
			}
			if e.events.maxCalls() != 1 {
				t.Errorf("an event was published %d times", e.events.maxCalls())
			}
			for _, s := range e.events.skipped {
				if s.Reason == archive.ReasonItemAttachment || !strings.Contains(s.Name, "RE-7") {
					t.Errorf("skip %s %s", s.Name, s.Reason)
				}
			}
		})
	}
}

// TestForwardedMailWithoutFiles: an attached mail with no files of its
// own is skipped item_attachment, as before.
func TestForwardedMailWithoutFiles(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<fwd2@x>", Subject: "WG: Frage", ReceivedAt: t0},
		connector.Attachment{Type: connector.ItemAttachment, Name: "Frage", Content: []byte("Subject: Frage\r\nContent-Type: text/plain\r\n\r\nWann kommt die Rechnung?\r\n")})
	e.sync(t, e.importer(t, "r1", nil))
	if n, _ := e.events.counts(); n != 0 {
		t.Errorf("%d imported", n)
	}
	if r := e.events.reasons(); r[archive.ReasonItemAttachment] != 1 {
		t.Errorf("skips %v, want one item_attachment", r)
	}
}
