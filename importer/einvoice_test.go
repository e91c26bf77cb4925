package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/rules"
)

// verdicts is a Validator that judges by a marker in the XML: "INVALID"
// fails 60 fatal rules with long messages, anything else is valid.
type verdicts struct{ calls atomic.Int32 }

func (v *verdicts) Validate(ctx context.Context, xml []byte) rules.Report {
	v.calls.Add(1)
	rep := rules.Report{Syntax: "UBL", RuleSets: []string{"EN16931-CEN test", "XRechnung test"}}
	ok := !bytes.Contains(xml, []byte("INVALID"))
	rep.Valid = &ok
	if !ok {
		rep.Class = rules.ClassBusinessRule
		for i := range 60 {
			rep.Errors = append(rep.Errors, rules.Finding{Rule: fmt.Sprintf("BR-CO-%d", i), Flag: "fatal",
				Message: strings.Repeat("ä", 600), Location: "/Invoice"})
		}
		rep.Warnings = []rules.Finding{{Rule: "BR-DE-TMP-32", Flag: "warning", Message: "a warning"}}
	}
	return rep
}

// fakeRender renders deterministically: the same XML, the same bytes.
func fakeRender(_ context.Context, xml []byte) ([]byte, error) {
	sum := sha256.Sum256(xml)
	return []byte("%PDF-1.7 rendition of " + hex.EncodeToString(sum[:])), nil
}

func withEInvoices(v Validator, render func(context.Context, []byte) ([]byte, error)) func(*Config) {
	return func(c *Config) { c.Validator, c.Render = v, render }
}

// TestEInvoiceValidatedAndRendered: an XRechnung is announced with the
// rules' verdict and a rendition stored beside it; the verdict's lists
// are capped and its messages cut; a PDF is neither judged nor rendered;
// the history carries what the portal shows.
func TestEInvoiceValidatedAndRendered(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	v := &verdicts{}
	im := e.importer(t, "r1", withEInvoices(v, fakeRender))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<ok@x>", From: "rechnung@lieferant.example", Subject: "RE-1", ReceivedAt: t0},
		file("RE-1.xml", "application/xml", ublInvoice("RE-1", "DE123456789", "Müller GmbH")))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<bad@x>", Subject: "RE-2", ReceivedAt: t0},
		file("RE-2.xml", "application/xml", ublInvoice("RE-2", "DE123456789", "INVALID GmbH")))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<pdf@x>", Subject: "Brief", ReceivedAt: t0},
		file("brief.pdf", "application/pdf", pdfDoc(1)))
	e.sync(t, im)

	byMail := map[string]archive.Imported{}
	for _, ev := range e.events.imported {
		byMail[ev.Message.InternetMessageID] = ev
	}
	if len(byMail) != 3 || v.calls.Load() != 2 {
		t.Fatalf("%d imported, %d validations; want 3 and 2", len(byMail), v.calls.Load())
	}
	good := byMail["<ok@x>"]
	if val := good.Invoice.Validation; val == nil || val.Valid == nil || !*val.Valid || val.Class != "" || len(val.Rules) != 2 || val.Errors == nil {
		t.Errorf("valid invoice's validation %+v", val)
	}
	r := good.Rendition
	if r == nil {
		t.Fatal("no rendition announced for an XRechnung")
	}
	if want := strings.TrimSuffix(good.Object.Key, ".xml") + ".rendition.pdf"; r.Key != want || r.ContentType != "application/pdf" {
		t.Errorf("rendition %+v, want key %s", r, want)
	}
	stored := e.store.objects[r.Key]
	sum := sha256.Sum256(stored)
	if len(stored) == 0 || int64(len(stored)) != r.Size || hex.EncodeToString(sum[:]) != r.SHA256 {
		t.Errorf("stored rendition of %d bytes does not match %+v", len(stored), r)
	}
	if m := e.store.meta[r.Key]; m.Name != "RE-1.pdf" || m.DocumentID == "" {
		t.Errorf("rendition metadata %+v", m)
	}

	bad := byMail["<bad@x>"].Invoice.Validation
	if bad == nil || bad.Valid == nil || *bad.Valid || bad.Class != archive.ValidationBusinessRule {
		t.Fatalf("invalid invoice's validation %+v", bad)
	}
	if len(bad.Errors) != archive.MaxFindings || bad.ErrorCount != 60 || !bad.Truncated || bad.WarningCount != 1 || len(bad.Warnings) != 1 {
		t.Errorf("errors %d of %d (truncated %v), warnings %d of %d", len(bad.Errors), bad.ErrorCount, bad.Truncated, len(bad.Warnings), bad.WarningCount)
	}
	if m := bad.Errors[0].Message; len(m) > archive.MaxFindingMessage || !strings.HasSuffix(m, "…") || !strings.HasPrefix(m, "ää") || strings.ContainsRune(m, '\uFFFD') {
		t.Errorf("message of %d bytes not cut at a character: %q…", len(m), m[:20])
	}
	if pdf := byMail["<pdf@x>"]; pdf.Invoice != nil || pdf.Rendition != nil {
		t.Errorf("a plain PDF got %+v, %+v", pdf.Invoice, pdf.Rendition)
	}

	st, err := im.Status(t.Context(), e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	hist := map[string]HistoryEntry{}
	for _, h := range st.Recent {
		hist[h.Subject] = h
	}
	h := hist["RE-1"]
	if h.From != "rechnung@lieferant.example" || !h.ReceivedAt.Equal(t0) || h.ObjectKey != good.Object.Key || h.RenditionKey != r.Key ||
		h.Valid == nil || !*h.Valid || h.ErrorCount != 0 || len(h.Findings) != 0 {
		t.Errorf("history of the valid invoice %+v", h)
	}
	h = hist["RE-2"]
	if h.Valid == nil || *h.Valid || h.ErrorCount != 60 || len(h.Findings) != historyFindings || h.Findings[0].Rule != "BR-CO-0" || len(h.Findings[0].Message) > historyFindingMessage {
		t.Errorf("history of the invalid invoice: valid %v, %d errors, %d findings", h.Valid, h.ErrorCount, len(h.Findings))
	}
	if h := hist["Brief"]; h.Valid != nil || h.ObjectKey == "" || h.RenditionKey != "" {
		t.Errorf("history of the PDF %+v", h)
	}
}

// stubborn is a Validator that ignores its context until released, one
// that honours it, and one that panics.
type stubborn struct {
	release chan struct{}
	mode    string
}

func (s stubborn) Validate(ctx context.Context, xml []byte) rules.Report {
	switch s.mode {
	case "panic":
		panic("engine bug")
	case "honours":
		<-ctx.Done()
		return rules.Report{Reason: "stopped: " + ctx.Err().Error()}
	}
	<-s.release
	t := true
	return rules.Report{Valid: &t}
}

// TestEInvoiceNeverInTheWay: a validator or renderer that overruns its
// bound, ignores its context, panics or fails, and an XML over the size
// bound, all leave the e-invoice imported at once, with valid null and
// the reason, and without a rendition.
func TestEInvoiceNeverInTheWay(t *testing.T) {
	release := make(chan struct{})
	defer close(release)
	failing := func(context.Context, []byte) ([]byte, error) { return nil, errors.New("renderer broke") }
	blocking := func(ctx context.Context, _ []byte) ([]byte, error) { <-release; return []byte("late"), nil }
	for _, tc := range []struct {
		name   string
		v      Validator
		render func(context.Context, []byte) ([]byte, error)
		maxXML int64
		reason string
	}{
		{"ignores its context", stubborn{release: release}, blocking, 0, "over the time bound of 50ms"},
		{"honours its context", stubborn{mode: "honours"}, failing, 0, "over the time bound"},
		{"panics", stubborn{mode: "panic"}, failing, 0, "panic: engine bug"},
		{"too large", stubborn{release: release}, blocking, 100, "is over the bound of 100 bytes"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			im := e.importer(t, "r1", func(c *Config) {
				c.Validator, c.Render, c.EInvoiceTimeout, c.EInvoiceMaxXML = tc.v, tc.render, 50*time.Millisecond, tc.maxXML
			})
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<1@x>", Subject: "RE-1", ReceivedAt: t0},
				file("RE-1.xml", "application/xml", ublInvoice("RE-1", "DE123456789", "Müller GmbH")))
			res := e.sync(t, im)
			if res.Imported != 1 || len(e.events.imported) != 1 {
				t.Fatalf("pass %+v, %d events; want the invoice imported", res, len(e.events.imported))
			}
			for _, ev := range e.events.imported {
				v := ev.Invoice.Validation
				if v == nil || v.Valid != nil || !strings.Contains(v.Reason, tc.reason) || v.Rules == nil || v.Errors == nil {
					t.Errorf("validation %+v, want valid null with a reason containing %q", v, tc.reason)
				}
				if ev.Rendition != nil {
					t.Errorf("rendition %+v announced", ev.Rendition)
				}
			}
			if n := e.store.len(); n != 1 {
				t.Errorf("%d objects stored, want the XML alone", n)
			}
		})
	}
}

// TestRenditionOnceAcrossCrashes: a crash after the XML is stored (before
// its rendition), after the rendition is stored, or after the event,
// replays to one XML, one rendition and one event that names it.
func TestRenditionOnceAcrossCrashes(t *testing.T) {
	for _, step := range []string{"stored", "rendition_stored", "published"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			im := e.importer(t, "r1", withEInvoices(&verdicts{}, fakeRender))
			var crashed atomic.Bool
			im.hook = func(s string) error {
				if s == step && !crashed.Swap(true) {
					return errors.New("crash at " + s)
				}
				return nil
			}
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<1@x>", Subject: "RE-1", ReceivedAt: t0},
				file("RE-1.xml", "application/xml", ublInvoice("RE-1", "DE123456789", "Müller GmbH")))
			if _, err := im.SyncNow(t.Context(), e.conn.ID); err == nil || !strings.Contains(err.Error(), "crash") {
				t.Fatalf("SyncNow = %v, want the crash", err)
			}
			e.sync(t, e.importer(t, "r2", withEInvoices(&verdicts{}, fakeRender)))
			if n := e.store.len(); n != 2 {
				t.Errorf("%d objects, want the XML and its rendition", n)
			}
			if len(e.events.imported) != 1 {
				t.Fatalf("%d events, want 1", len(e.events.imported))
			}
			for _, ev := range e.events.imported {
				if ev.Rendition == nil || e.store.objects[ev.Rendition.Key] == nil {
					t.Errorf("event's rendition %+v not stored", ev.Rendition)
				}
			}
		})
	}
}

// invoiceWithAttachments is a UBL invoice carrying files inside (BG-24).
func invoiceWithAttachments(files map[string][]byte) []byte {
	var refs strings.Builder
	for name, content := range files {
		fmt.Fprintf(&refs, `<cac:AdditionalDocumentReference><cbc:ID>%s</cbc:ID><cac:Attachment>`+
			`<cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="%s">%s</cbc:EmbeddedDocumentBinaryObject>`+
			`</cac:Attachment></cac:AdditionalDocumentReference>`, name, name, base64.StdEncoding.EncodeToString(content))
	}
	inv := ublInvoice("RE-9", "DE123456789", "Müller GmbH")
	return bytes.Replace(inv, []byte("<cac:AccountingSupplierParty>"), []byte(refs.String()+"<cac:AccountingSupplierParty>"), 1)
}

// TestRelatedDocuments: the files inside an XRechnung are imported as
// documents of their own that name the invoice, each once, also when the
// import crashes after the invoice's event and before its record.
func TestRelatedDocuments(t *testing.T) {
	for _, step := range []string{"", "published", "recorded"} {
		t.Run("crash at "+step, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			im := e.importer(t, "r1", withEInvoices(&verdicts{}, nil))
			var crashed atomic.Bool
			im.hook = func(s string) error {
				if s == step && !crashed.Swap(true) {
					return errors.New("crash at " + s)
				}
				return nil
			}
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<1@x>", Subject: "RE-9", ReceivedAt: t0},
				file("RE-9.xml", "application/xml", invoiceWithAttachments(map[string][]byte{
					"Stundenzettel.pdf": pdfDoc(1), "Lieferschein.pdf": pdfDoc(2)})))
			_, err := im.SyncNow(t.Context(), e.conn.ID)
			if step != "" {
				if err == nil {
					t.Fatal("no crash")
				}
				e.sync(t, e.importer(t, "r2", withEInvoices(&verdicts{}, nil)))
			} else if err != nil {
				t.Fatal(err)
			}
			checkRelated(t, e, "RE-9.xml", "Lieferschein.pdf", "Stundenzettel.pdf")
			for id, n := range e.events.calls {
				if n > 2 {
					t.Errorf("%s published %d times", id, n)
				}
			}
		})
	}
}

// checkRelated requires the invoice and each related file imported once,
// the files naming the invoice.
func checkRelated(t *testing.T, e *env, invoice string, related ...string) {
	t.Helper()
	var invoiceID string
	names := map[string]archive.Imported{}
	for id, ev := range e.events.imported {
		names[ev.Document.Name] = ev
		if ev.Document.Name == invoice {
			invoiceID = id
		}
	}
	if len(e.events.imported) != 1+len(related) || invoiceID == "" {
		t.Fatalf("imported %d documents (%v), want the invoice and %d related", len(e.events.imported), names, len(related))
	}
	if names[invoice].RelatedTo != "" {
		t.Errorf("the invoice is related to %s", names[invoice].RelatedTo)
	}
	for _, r := range related {
		ev, ok := names[r]
		if !ok || ev.RelatedTo != invoiceID || ev.Document.Kind != archive.KindPDF {
			t.Errorf("%s: imported %v, relatedTo %q (kind %s), want %s", r, ok, ev.RelatedTo, ev.Document.Kind, invoiceID)
		}
	}
	if n := e.store.len(); n != 1+len(related) {
		t.Errorf("%d objects stored, want %d", n, 1+len(related))
	}
}

// TestRelatedDocumentsReal takes the supporting document out of a real
// XRechnung of the corpus.
func TestRelatedDocumentsReal(t *testing.T) {
	xml, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "einvoices", "files", "kosit_01.15a-INVOICE_ubl.xml"))
	if err != nil {
		t.Skipf("corpus not here: %v", err)
	}
	for _, maxXML := range []int64{0, 1 << 10} { // and over the validation bound
		t.Run(fmt.Sprint("max ", maxXML), func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			im := e.importer(t, "r1", func(c *Config) { c.Validator, c.EInvoiceMaxXML = &verdicts{}, maxXML })
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<1@x>", Subject: "01.15a", ReceivedAt: t0},
				file("01.15a.xml", "application/xml", xml))
			e.sync(t, im)
			checkRelated(t, e, "01.15a.xml", "01_15_Anhang_01.pdf")
		})
	}
}
