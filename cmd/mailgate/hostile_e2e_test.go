package main

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestHostileMailsThroughTheImporter delivers issue 25's crafted files
// from an ordinary sender through the simulator to the built binary: the
// XRechnung of 1.9 MB with 50,000 account ids (made from a real
// XRechnung), whose event used to outgrow NATS's max_payload and stall
// the mailbox with /readyz at 503; the "PDF" with 32,000 unclosed
// strings; the XRechnung with a 512 KiB element name over 128,000
// children. Each is imported (the account list capped and marked
// truncated), a plain invoice after them too, and /readyz answers 200
// throughout.
func TestHostileMailsThroughTheImporter(t *testing.T) {
	real, err := os.ReadFile(filepath.Join("..", "..", "..", "shared", "einvoices", "files", "hk_xml_xrechnung_1.xml"))
	if err != nil {
		t.Skipf("the real e-invoices of ../shared: %v", err)
	}
	const account = "<ram:IBANID>DE02120300000000202051</ram:IBANID>"
	if !bytes.Contains(real, []byte(account)) {
		t.Fatalf("the XRechnung has no %s", account)
	}
	// IBAN-shaped ids of 22 characters, the element written without a
	// prefix (the walker, like many readers, goes by local names): 1.9 MB,
	// and 1.25 MB of account ids in an uncapped event.
	var ids bytes.Buffer
	for i := range 50000 {
		fmt.Fprintf(&ids, "<IBANID>DE%020d</IBANID>", i)
	}
	ibans := bytes.Replace(real, []byte(account), ids.Bytes(), 1)

	var pdf bytes.Buffer
	pdf.WriteString("%PDF-1.7\n1 0 obj << /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >> endobj\n")
	for range 32000 {
		pdf.WriteString("3 0 obj (x\n")
	}
	name := strings.Repeat("N", 512<<10)
	long := `<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>LN-1</ID><` + name + `>` +
		strings.Repeat("<a/>", 128000) + `</` + name + `></Invoice>`

	bin := mailgateBinary(t)
	in := newStack(t, stack{archive: dirArchive})
	in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	now := time.Now().UTC()
	for i, a := range []graphtest.Attachment{
		{Name: "RE-50000-konten.xml", ContentType: "application/xml", Content: ibans},
		{Name: "kaputt.pdf", ContentType: "application/pdf", Content: pdf.Bytes()},
		{Name: "langer-name.xml", ContentType: "application/xml", Content: []byte(long)},
		{Name: "RE-2026-1.pdf", ContentType: "application/pdf", Content: samples.InvoicePDF("Lieferant GmbH", "RE-2026-1", 100, now)},
	} {
		if _, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
			From: "angreifer@example.net", Subject: "Rechnung " + a.Name, Body: "Anbei.",
			InternetMessageID: fmt.Sprintf("<hostile-%d@example.net>", i), ReceivedAt: now.Add(time.Duration(i) * time.Second),
			Attachments: []graphtest.Attachment{a},
		}); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("the XRechnung with 50,000 account ids: %d bytes", len(ibans))

	var env []string
	for _, e := range in.env() {
		if !strings.HasPrefix(e, "MAILGATE_S3_") {
			env = append(env, e) // the directory archive: no MinIO needed
		}
	}
	p := startProc(t, bin, env, "serve", "--role", "importer")
	defer p.stop()
	addr := p.waitFor(t, regexp.MustCompile(`listening on (\S+)`), time.Minute)
	ready := func() (int, string) {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, strings.TrimSpace(string(b))
	}
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if code, body := ready(); code != http.StatusOK {
			t.Fatalf("/readyz answered %d while the crafted mails were imported: %s", code, body)
		}
		if _, distinct, _ := in.tally(t); distinct >= 4 {
			break
		}
		if time.Now().After(deadline) {
			_, distinct, _ := in.tally(t)
			t.Fatalf("%d of 4 documents imported within 2 minutes\n%s", distinct, p.stderr())
		}
		time.Sleep(500 * time.Millisecond) // polling an external process' progress and readiness
	}
	if code, body := ready(); code != http.StatusOK {
		t.Fatalf("/readyz answered %d after the imports: %s", code, body)
	}
	kinds := map[string]string{}
	for _, ev := range in.events(t) {
		d, ok := ev.Data.(*archive.Imported)
		if !ok {
			continue
		}
		kinds[d.Document.Name] = d.Document.Kind
		if d.Document.Name == "RE-50000-konten.xml" {
			if d.Invoice == nil || len(d.Invoice.IBAN) != archive.MaxInvoiceList || fmt.Sprint(d.Invoice.Truncated) != "[iban]" ||
				d.Invoice.IBAN[0] != "DE00000000000000000000" {
				t.Errorf("invoice %+v; want the first %d accounts and truncated [iban]", d.Invoice, archive.MaxInvoiceList)
			}
		}
	}
	want := map[string]string{"RE-50000-konten.xml": archive.KindXRechnung, "kaputt.pdf": archive.KindPDF,
		"langer-name.xml": archive.KindXRechnung, "RE-2026-1.pdf": archive.KindPDF}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Errorf("imported %v, want %v", kinds, want)
	}
	if strings.Contains(p.stderr(), "infrastructure fault") {
		t.Errorf("the crafted mails were reported as an infrastructure fault:\n%s", p.stderr())
	}
}
