package importer

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestSMIMEYieldsItsFiles: a signed mail's smime.p7m is opened, and the
// files inside are the documents, each exactly once across passes.
func TestSMIMEYieldsItsFiles(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("policy", "testdata", "smime", name))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, tc := range []struct{ name, ct, file string }{
		{"opaque BER", "application/pkcs7-mime; smime-type=signed-data", "opaque-ber.p7m"},
		{"opaque DER", "application/octet-stream", "opaque-der.p7m"},
		{"clear-signed", "multipart/signed", "clear-signed.eml"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<1@x>", Subject: "Rechnung (signiert)", ReceivedAt: t0, HasAttachments: true},
				file("smime.p7m", tc.ct, read(tc.file)))
			// The same mail forwarded again, signed by the forwarder.
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<2@x>", Subject: "WG: Rechnung (signiert)", ReceivedAt: t0, HasAttachments: true},
				file("smime.p7m", tc.ct, read(tc.file)))
			im := e.importer(t, "r1", nil)
			e.sync(t, im)
			e.mb.resetSync()
			e.sync(t, im) // a full resync finds every part done

			got := map[string]string{}
			for _, ev := range e.events.imported {
				got[ev.Document.Name] = ev.Document.Kind
				if ev.Document.Kind == archive.KindZUGFeRD && (ev.Invoice == nil || ev.Invoice.Number != "FX-1") {
					t.Errorf("invoice %+v", ev.Invoice)
				}
			}
			if len(e.events.imported) != 2 || got["RE-FX-1.pdf"] != archive.KindZUGFeRD || got["Lieferschein.pdf"] != archive.KindPDF {
				t.Errorf("imported %v, want RE-FX-1.pdf (zugferd) and Lieferschein.pdf (pdf) once each", got)
			}
			if r := e.events.reasons(); r[archive.ReasonDuplicate] != 2 || len(r) != 1 {
				t.Errorf("skips %v, want the second mail's two files as duplicate_of", r)
			}
			if e.events.maxCalls() != 1 {
				t.Errorf("an event was published %d times", e.events.maxCalls())
			}
		})
	}
	// An encrypted container cannot be opened: it is skipped with a
	// reason that says so, not lost and not imported.
	e := newEnv(t, connector.PostNone)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<enc@x>", Subject: "Rechnung (verschlüsselt)", ReceivedAt: t0, HasAttachments: true},
		file("smime.p7m", "application/pkcs7-mime; smime-type=enveloped-data", read("encrypted.p7m")))
	e.sync(t, e.importer(t, "r1", nil))
	if n, _ := e.events.counts(); n != 0 {
		t.Errorf("encrypted mail: %d imported", n)
	}
	var detail string
	for _, s := range e.events.skipped {
		detail = s.Detail
	}
	if !strings.Contains(detail, "S/MIME") {
		t.Errorf("encrypted smime.p7m: skip detail %q", detail)
	}
}
