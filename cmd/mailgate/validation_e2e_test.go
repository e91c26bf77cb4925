package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// einvoiceCorpus is ../shared/einvoices/files from the repository's root.
const einvoiceCorpus = "../../../shared/einvoices/files"

func corpusFile(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(einvoiceCorpus, name))
	if err != nil {
		t.Skipf("e-invoice corpus not here (%v)", err)
	}
	return b
}

// invalidGross is a real valid XRechnung (KoSIT's 01.01a, UBL) with its
// gross total (BT-112) raised by 10: the official artefacts
// (../shared/einvoice-rules/validate, Saxon-HE) fail BR-CO-15 and
// BR-CO-16 on it, fatal, and warn BR-DE-TMP-32.
func invalidGross(t *testing.T, valid []byte) []byte {
	t.Helper()
	const was = `<cbc:TaxInclusiveAmount currencyID="EUR">336.9</cbc:TaxInclusiveAmount>`
	if !bytes.Contains(valid, []byte(was)) {
		t.Fatal("the corpus file changed: no gross total of 336.9")
	}
	return bytes.Replace(valid, []byte(was), []byte(`<cbc:TaxInclusiveAmount currencyID="EUR">346.9</cbc:TaxInclusiveAmount>`), 1)
}

// bigInvoice repeats the invoice's first line until the XML has size
// bytes: a large real invoice.
func bigInvoice(t *testing.T, inv []byte, size int) []byte {
	t.Helper()
	start, end := bytes.Index(inv, []byte("<cac:InvoiceLine>")), bytes.Index(inv, []byte("</cac:InvoiceLine>"))
	if start < 0 || end < start {
		t.Fatal("the corpus file changed: no invoice line")
	}
	line := inv[start : end+len("</cac:InvoiceLine>")]
	var b bytes.Buffer
	b.Write(inv[:start])
	for b.Len() < size {
		b.Write(line)
	}
	b.Write(inv[start:])
	return b.Bytes()
}

// deepInvoice nests depth elements inside the invoice.
func deepInvoice(inv []byte, depth int) []byte {
	at := bytes.LastIndex(inv, []byte("</ubl:Invoice>"))
	if at < 0 {
		at = bytes.LastIndex(inv, []byte("</Invoice>"))
	}
	var b bytes.Buffer
	b.Write(inv[:at])
	b.WriteString(`<cbc:Note>`)
	b.WriteString(strings.Repeat("<x>", depth))
	b.WriteString(strings.Repeat("</x>", depth))
	b.WriteString(`</cbc:Note>`)
	b.Write(inv[at:])
	return b.Bytes()
}

// TestEInvoiceVerdictsE2E runs the built binary against the simulator
// with a valid real XRechnung, the same made invalid, a real one with a
// supporting document inside, a 20 MB one, a 100k-deep one and a ZUGFeRD
// PDF. Each is imported; each event carries data.invoice.validation and
// fits the AsyncAPI document; the invalid one is valid:false with the
// official rules' fatal ids, the valid one valid:true with data.rendition
// stored in S3; the supporting document names its invoice; the large and
// the deep one stay within the bounds.
func TestEInvoiceVerdictsE2E(t *testing.T) {
	valid := corpusFile(t, "kosit_01.01a-INVOICE_ubl.xml")
	withAttachment := corpusFile(t, "kosit_01.15a-INVOICE_ubl.xml")
	bin := mailgateBinary(t)
	in := newStack(t, stack{})
	in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	now := time.Now().UTC()
	files := map[string][]byte{
		"valid.xml":      valid,
		"invalid.xml":    invalidGross(t, valid),
		"anhang.xml":     withAttachment,
		"big.xml":        bigInvoice(t, valid, 20<<20),
		"deep.xml":       deepInvoice(valid, 100_000),
		"RE-ZF-1.pdf":    samples.ZUGFeRDPDF("Lieferant GmbH", "RE-ZF-1", 119, now),
		"RE-PLAIN-1.pdf": samples.InvoicePDF("Lieferant GmbH", "RE-PLAIN-1", 119, now),
	}
	names := slices.Sorted(maps.Keys(files))
	for i, name := range names {
		ct := "application/xml"
		if strings.HasSuffix(name, ".pdf") {
			ct = "application/pdf"
		}
		if _, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
			From: "rechnung@lieferant.example", Subject: "Rechnung " + name, Body: "Anbei.",
			InternetMessageID: fmt.Sprintf("<verdict-%d@lieferant.example>", i), ReceivedAt: now.Add(time.Duration(i) * time.Second),
			Attachments: []graphtest.Attachment{{Name: name, ContentType: ct, Content: files[name]}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	start := time.Now()
	p := startProc(t, bin, in.env(), "serve", "--role", "importer")
	const want = 8 // seven files and the supporting document inside anhang.xml
	in.waitDistinct(t, want, 3*time.Minute)
	t.Logf("%d documents imported in %s", want, time.Since(start).Round(time.Millisecond))
	p.stop()

	c, err := archivetest.NewContract(archive.AsyncAPI())
	if err != nil {
		t.Fatal(err)
	}
	raw, err := archivetest.ReadStream(t.Context(), in.js, archive.StreamName, "mailgate.*.document.>")
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range raw {
		if _, err := c.Validate(r.Subject, r.Header, r.Data); err != nil {
			t.Errorf("event does not fit the AsyncAPI document: %v\n%.2000s", err, r.Data)
		}
	}
	docs, ids := map[string]*archive.Imported{}, map[string]string{}
	for _, ev := range in.events(t) {
		if d, ok := ev.Data.(*archive.Imported); ok {
			docs[d.Document.Name], ids[d.Document.Name] = d, ev.ID
		} else {
			t.Errorf("unexpected %s event: %+v", ev.Type, ev.Data)
		}
	}
	if len(docs) != want {
		t.Fatalf("imported %v, want %d documents", slices.Sorted(maps.Keys(docs)), want)
	}
	for _, name := range names {
		d := docs[name]
		switch {
		case d == nil:
			t.Errorf("%s not imported", name)
		case name == "RE-PLAIN-1.pdf":
			if d.Invoice != nil {
				t.Errorf("%s: a plain PDF with invoice data %+v", name, d.Invoice)
			}
		case d.Invoice == nil || d.Invoice.Validation == nil:
			t.Errorf("%s (%s): no validation", name, d.Document.Kind)
		}
	}
	if att := docs["01_15_Anhang_01.pdf"]; att == nil || att.RelatedTo != ids["anhang.xml"] || att.Document.Kind != archive.KindPDF {
		t.Errorf("supporting document of anhang.xml: %+v, want relatedTo %s", att, ids["anhang.xml"])
	}
	if v := docs["big.xml"].Invoice.Validation; v.Valid != nil || !strings.Contains(v.Reason, "over the bound") {
		t.Errorf("20 MB XML: validation %+v, want valid null over the size bound", v)
	}
	for _, name := range []string{"deep.xml", "RE-ZF-1.pdf"} {
		v := docs[name].Invoice.Validation
		if v.Valid == nil && v.Reason == "" || v.Valid != nil && !*v.Valid && v.Class == "" {
			t.Errorf("%s: validation %+v, want a verdict or valid null with its reason", name, v)
		}
	}

	checkRendition(t, in, docs["valid.xml"])
	for _, name := range []string{"RE-ZF-1.pdf", "RE-PLAIN-1.pdf", "01_15_Anhang_01.pdf"} {
		if docs[name].Rendition != nil {
			t.Errorf("%s: a rendition of a PDF", name)
		}
	}

	good, bad := docs["valid.xml"].Invoice.Validation, docs["invalid.xml"].Invoice.Validation
	if good.Valid == nil || !*good.Valid || len(good.Errors) != 0 || good.Class != "" || len(good.Rules) != 2 {
		t.Errorf("valid XRechnung: validation %+v, want valid with EN 16931 and XRechnung rules", good)
	}
	var failed []string
	for _, f := range bad.Errors {
		failed = append(failed, f.Rule)
	}
	sort.Strings(failed)
	if bad.Valid == nil || *bad.Valid || bad.Class != archive.ValidationBusinessRule || strings.Join(failed, ",") != "BR-CO-15,BR-CO-16" {
		t.Errorf("invalid XRechnung: validation %+v (failed %v), want valid false, business_rule, BR-CO-15 and BR-CO-16 as the official artefacts say", bad, failed)
	}
	if v := docs["deep.xml"].Invoice.Validation; v.Valid != nil && *v.Valid {
		t.Errorf("100k-deep XML judged valid: %+v", v)
	}

}

// checkRendition requires the event's rendition stored beside the
// document, a PDF with the announced size and SHA-256.
func checkRendition(t *testing.T, in *infra, d *archive.Imported) {
	t.Helper()
	r := d.Rendition
	if r == nil {
		t.Fatal("no data.rendition for an XRechnung")
	}
	if r.Key != archive.RenditionKey(d.Object.Key) || r.ContentType != "application/pdf" {
		t.Errorf("rendition %+v beside %s", r, d.Object.Key)
	}
	cl, err := minio.New(in.s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(in.s3.AccessKey, in.s3.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	obj, err := cl.GetObject(t.Context(), in.s3.Bucket, r.Key, minio.GetObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer obj.Close()
	b, err := io.ReadAll(obj)
	if err != nil {
		t.Fatalf("rendition %s: %v", r.Key, err)
	}
	sum := sha256.Sum256(b)
	if int64(len(b)) != r.Size || hex.EncodeToString(sum[:]) != r.SHA256 || !bytes.HasPrefix(b, []byte("%PDF-")) {
		t.Errorf("stored rendition: %d bytes, sha256 %x; announced %+v", len(b), sum, r)
	}
}

var (
	crashBuildOnce sync.Once
	crashBinPath   string
	crashBuildErr  error
)

// crashBinary builds mailgate with the crashpoint tag: CRASHPOINT_AT
// halts it at an importer step (crashpoint.go).
func crashBinary(t *testing.T) string {
	t.Helper()
	mailgateBinary(t) // skips with -short
	crashBuildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailgate-crash-")
		if err != nil {
			crashBuildErr = err
			return
		}
		crashBinPath = filepath.Join(dir, "mailgate")
		if out, err := exec.Command("go", "build", "-tags", "crashpoint", "-o", crashBinPath, ".").CombinedOutput(); err != nil {
			crashBuildErr = fmt.Errorf("go build -tags crashpoint: %v\n%s", err, out)
		}
	})
	if crashBuildErr != nil {
		t.Fatal(crashBuildErr)
	}
	return crashBinPath
}

// TestRenditionSIGKILLBetweenStores kills the importer with SIGKILL after
// it stored an XRechnung and before it stored its rendition; after a
// restart there is one XML object, one rendition object and one event
// that names the rendition.
func TestRenditionSIGKILLBetweenStores(t *testing.T) {
	xml := corpusFile(t, "kosit_01.01a-INVOICE_ubl.xml")
	crash := crashBinary(t)
	in := newStack(t, stack{})
	in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	if _, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
		From: "rechnung@lieferant.example", Subject: "XRechnung 01.01a", Body: "Anbei.",
		InternetMessageID: "<kill-rendition@lieferant.example>", ReceivedAt: time.Now().UTC(),
		Attachments: []graphtest.Attachment{{Name: "01.01a.xml", ContentType: "application/xml", Content: xml}},
	}); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, crash, append(in.env(), "CRASHPOINT_AT=stored"), "serve", "--role", "importer")
	p.waitFor(t, regexp.MustCompile(`^crashpoint (stored)$`), 2*time.Minute)
	if n := in.objects(t); n != 1 {
		t.Fatalf("%d objects at the crash point, want the XML alone", n)
	}
	if imported, _, _ := in.tally(t); imported != 0 {
		t.Fatalf("%d events before the rendition was stored", imported)
	}
	_ = p.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
	_ = p.cmd.Wait()

	p = startProc(t, crash, in.env(), "serve", "--role", "importer")
	in.waitDistinct(t, 1, 2*time.Minute)
	p.stop()
	imported, distinct, skipped := in.tally(t)
	if objects := in.objects(t); imported != 1 || distinct != 1 || skipped != 0 || objects != 2 {
		t.Fatalf("after the kill: %d events (%d distinct, %d skipped), %d objects; want 1 event, the XML and its rendition", imported, distinct, skipped, objects)
	}
	for _, ev := range in.events(t) {
		checkRendition(t, in, ev.Data.(*archive.Imported))
	}
}
