package policy

import (
	"archive/zip"
	"bytes"
	"compress/zlib"
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// The hostile-content suite: files any mail sender can craft, each read
// by the reader that takes it (Classify for files, the unpackers for
// containers), each required to finish within a CPU bound far below what
// the quadratic readers of before cost, and each timed.

// cpuTime is the CPU time (user and system) the process spends in f,
// counting every goroutine f starts (pdfcpu's reader, the GC).
func cpuTime(f func()) time.Duration {
	var a, b syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &a)
	f()
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &b)
	return time.Duration(b.Utime.Nano() + b.Stime.Nano() - a.Utime.Nano() - a.Stime.Nano())
}

// zlibBytes compresses b at the best level.
func zlibBytes(b []byte) []byte {
	var zb bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&zb, zlib.BestCompression)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return zb.Bytes()
}

// quadraticPDF is issue 25's PDF: it names /EmbeddedFiles (so the hint
// asks for a reading), pdfcpu refuses it, and it holds 32,000 "3 0 obj ("
// headers whose strings never close: before, the lenient scan parsed each
// to the end of the file, twice.
func quadraticPDF() []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n1 0 obj << /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >> endobj\n")
	for range 32000 {
		b.WriteString("3 0 obj (x\n")
	}
	return b.Bytes()
}

// longNameXML is issue 25's XRechnung: one element with a 512 KiB name
// and 128,000 empty children. Before, every tag re-joined the whole
// element path.
func longNameXML() []byte {
	name := strings.Repeat("N", 512<<10)
	var b bytes.Buffer
	b.WriteString(`<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>LN-1</ID><` + name + `>`)
	for range 128000 {
		b.WriteString("<a/>")
	}
	b.WriteString(`</` + name + `></Invoice>`)
	return b.Bytes()
}

// ibanXML is a UBL invoice listing n payment accounts.
func ibanXML(n int) []byte {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "<cac:PayeeFinancialAccount><cbc:ID>DE%020d</cbc:ID></cac:PayeeFinancialAccount>", i)
	}
	return []byte(strings.Replace(xrechnungUBL, "<cac:PayeeFinancialAccount><cbc:ID>DE02 1203 0000 0000 2020 51</cbc:ID></cac:PayeeFinancialAccount>", b.String(), 1))
}

// objStmBombPDF holds an object stream whose header names one offset a
// million times, the object there a string that never closes: before,
// each entry parsed the stream to its end.
func objStmBombPDF() []byte {
	const entries = 200000
	var head strings.Builder
	for i := range entries {
		fmt.Fprintf(&head, "%d 0 ", i+10)
	}
	stm := head.String() + "\n(" + strings.Repeat("a", 4<<20)
	zs := zlibBytes([]byte(stm))
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n")
	writeObj(&b, 1, testObj{body: "<< /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >>"})
	writeObj(&b, 8, testObj{body: fmt.Sprintf("<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>", entries, head.Len()+1, len(zs)), stream: zs})
	return b.Bytes()
}

// manyBombsPDF has 300 file specifications named factur-x.xml, each with
// its own embedded file that inflates to 4 MiB of zeros.
func manyBombsPDF() []byte {
	bomb := zlibBytes(make([]byte, 5<<20))
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n")
	writeObj(&b, 1, testObj{body: "<< /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >>"})
	for i := range 300 {
		writeObj(&b, 10+2*i, testObj{body: fmt.Sprintf("<< /Type /Filespec /F (factur-x.xml) /EF << /F %d 0 R >> >>", 11+2*i)})
		writeObj(&b, 11+2*i, testObj{body: fmt.Sprintf("<< /Filter /FlateDecode /Length %d >>", len(bomb)), stream: bomb})
	}
	return b.Bytes()
}

// lengthRefsPDF has 20,000 definitions of the integer object 5 and
// 20,000 streams whose /Length is 5 0 R.
func lengthRefsPDF() []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n1 0 obj << /Names << /EmbeddedFiles 2 0 R >> >> endobj\n")
	for range 20000 {
		b.WriteString("5 0 obj 7 endobj\n")
	}
	for i := range 20000 {
		fmt.Fprintf(&b, "%d 0 obj << /Length 5 0 R >> stream\nabc\nendstream endobj\n", 10+i)
	}
	return b.Bytes()
}

// hugeXrefPDF claims a million objects in its cross-reference table.
func hugeXrefPDF() []byte {
	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n1 0 obj << /Type /Catalog /Names << /EmbeddedFiles 2 0 R >> >> endobj\nxref\n0 1000000\n")
	for range 1000000 {
		b.WriteString("0000000009 00000 n \n")
	}
	b.WriteString("trailer << /Size 1000000 /Root 1 0 R >>\nstartxref\n80\n%%EOF\n")
	return b.Bytes()
}

// signedData wraps content in a CMS ContentInfo of the given type (DER,
// definite lengths), with extra elements (certificates) after it.
func cmsInfo(oid []byte, inner []byte) []byte {
	return der(0x30, append(der(0x06, oid), der(0xA0, inner)...))
}

func der(tag byte, content []byte) []byte {
	n := len(content)
	var l []byte
	switch {
	case n < 0x80:
		l = []byte{byte(n)}
	case n < 1<<8:
		l = []byte{0x81, byte(n)}
	case n < 1<<16:
		l = []byte{0x82, byte(n >> 8), byte(n)}
	default:
		l = []byte{0x84, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	}
	return append(append([]byte{tag}, l...), content...)
}

// signedAround is a SignedData whose encapsulated content is content,
// with certs as its certificate list.
func signedAround(content, certs []byte) []byte {
	eci := der(0x30, append(der(0x06, oidData), der(0xA0, der(0x04, content))...))
	sd := append(der(0x02, []byte{1}), der(0x31, nil)...)
	sd = append(sd, eci...)
	if certs != nil {
		sd = append(sd, der(0xA0, certs)...)
	}
	return cmsInfo(oidSignedData, der(0x30, sd))
}

// nestedMail is a mail forwarding a mail forwarding … depth deep, the
// innermost with a PDF.
func nestedMail(depth int) []byte {
	inner := "Content-Type: multipart/mixed; boundary=b\r\n\r\n--b\r\nContent-Disposition: attachment; filename=tief.pdf\r\n\r\n%PDF-1.4 tief\r\n--b--\r\n"
	for i := range depth {
		inner = fmt.Sprintf("Subject: WG %d\r\nContent-Type: multipart/mixed; boundary=b%d\r\n\r\n--b%d\r\nContent-Type: message/rfc822\r\n\r\n%s\r\n--b%d--\r\n", i, i, i, inner, i)
	}
	return []byte(inner)
}

// deepMultipart nests multipart/mixed depth deep.
func deepMultipart(depth int) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=x0\r\n\r\n")
	for i := range depth {
		fmt.Fprintf(&b, "--x%d\r\nContent-Type: multipart/mixed; boundary=x%d\r\n\r\n", i, i+1)
	}
	return []byte(b.String())
}

// manyParts is a mail with n attached files.
func manyParts(n int) []byte {
	var b strings.Builder
	b.WriteString("Content-Type: multipart/mixed; boundary=p\r\n\r\n")
	for i := range n {
		fmt.Fprintf(&b, "--p\r\nContent-Disposition: attachment; filename=f%d.pdf\r\n\r\n%%PDF-1.4\r\n", i)
	}
	b.WriteString("--p--\r\n")
	return []byte(b.String())
}

// hostile is one crafted file and the reader it goes to.
type hostile struct {
	name  string
	data  []byte
	kind  string // "file" (Classify), "smime" (UnpackSMIME), "mail" (UnpackMessage)
	bound time.Duration
	check func(t *testing.T, d Decision, parts []Part, err error)
}

func hostileFiles() []hostile {
	wantKind := func(kind string) func(*testing.T, Decision, []Part, error) {
		return func(t *testing.T, d Decision, _ []Part, err error) {
			t.Helper()
			if err != nil || !d.Import || d.Kind != kind {
				t.Errorf("decision %+v, %v; want an import of kind %s", d, err, kind)
			}
		}
	}
	wantSkip := func(reason string) func(*testing.T, Decision, []Part, error) {
		return func(t *testing.T, d Decision, _ []Part, err error) {
			t.Helper()
			if err != nil || d.Import || d.Reason != reason {
				t.Errorf("decision %+v, %v; want a skip %s", d, err, reason)
			}
		}
	}
	noParts := func(t *testing.T, _ Decision, parts []Part, err error) {
		t.Helper()
		if err == nil && len(parts) > maxMIMEParts {
			t.Errorf("%d parts", len(parts))
		}
	}
	deep := strings.Repeat("[", 1<<20)
	dicts := strings.Repeat("<< /A ", 1<<19)
	var zipBomb bytes.Buffer
	zw := zip.NewWriter(&zipBomb)
	if w, err := zw.Create("rechnung.xml"); err == nil {
		_, _ = w.Write(make([]byte, 64<<20))
	}
	_ = zw.Close()
	laughs := `<?xml version="1.0"?><!DOCTYPE Invoice [<!ENTITY a "aaaaaaaaaa">` +
		`<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">` +
		`<!ENTITY d "&c;&c;&c;&c;&c;&c;&c;&c;&c;&c;"><!ENTITY e "&d;&d;&d;&d;&d;&d;&d;&d;&d;&d;">]>` +
		`<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>&e;</ID></Invoice>`
	ubl := `<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>H-1</ID>`
	const s2 = 2 * time.Second
	return []hostile{
		{"pdf: 32,000 unclosed strings (issue 25)", quadraticPDF(), "file", s2, wantKind(archive.KindPDF)},
		{"pdf: arrays 1M deep", []byte("%PDF-1.7\n/EmbeddedFiles\n1 0 obj " + deep + "\nendobj\n2 0 obj " + deep), "file", s2, wantKind(archive.KindPDF)},
		{"pdf: dictionaries 512k deep", []byte("%PDF-1.7\n/EmbeddedFiles\n1 0 obj " + dicts), "file", s2, wantKind(archive.KindPDF)},
		{"pdf: xref of a million entries", hugeXrefPDF(), "file", 5 * time.Second, wantKind(archive.KindPDF)},
		{"pdf: object stream, one offset 200,000 times", objStmBombPDF(), "file", s2, wantKind(archive.KindPDF)},
		{"pdf: 300 embedded flate bombs", manyBombsPDF(), "file", 5 * time.Second, func(t *testing.T, d Decision, _ []Part, err error) {
			if err != nil || !d.Import || d.Kind != archive.KindPDF && d.Kind != archive.KindZUGFeRD {
				t.Errorf("decision %+v, %v; want a pdf", d, err)
			}
		}},
		{"pdf: 20,000 streams with a shared /Length", lengthRefsPDF(), "file", s2, wantKind(archive.KindPDF)},
		// pdfcpu is no linear reader: on this file it runs until the
		// deadline (here the suite's 3 s) stops it.
		{"pdf: 200,000 headers", append([]byte("%PDF-1.7\n/EmbeddedFiles\n"), bytes.Repeat([]byte("1 0 obj 1 endobj\n"), 200000)...), "file", 6 * time.Second, wantKind(archive.KindPDF)},
		{"xml: 512 KiB name, 128,000 children (issue 25)", longNameXML(), "file", s2, wantKind(archive.KindXRechnung)},
		{"xml: 100,000 deep", []byte(ubl + strings.Repeat("<a>", 100000)), "file", s2, wantKind(archive.KindXRechnung)},
		{"xml: billion laughs", []byte(laughs), "file", s2, wantKind(archive.KindXRechnung)},
		{"xml: 8 MiB attribute", []byte(ubl + `<a b="` + strings.Repeat("x", 8<<20) + `"/></Invoice>`), "file", s2, wantKind(archive.KindXRechnung)},
		{"xml: 50,000 IBANs", ibanXML(50000), "file", s2, func(t *testing.T, d Decision, _ []Part, err error) {
			wantKind(archive.KindXRechnung)(t, d, nil, err)
			if d.Invoice == nil || len(d.Invoice.IBAN) != archive.MaxInvoiceList || fmt.Sprint(d.Invoice.Truncated) != "[iban]" {
				t.Errorf("invoice %+v; want %d IBANs and truncated [iban]", d.Invoice, archive.MaxInvoiceList)
			}
		}},
		{"xml: 100,000 tax totals and company ids", []byte(ubl + strings.Repeat("<TaxTotal><TaxAmount>1</TaxAmount></TaxTotal><AccountingSupplierParty><Party><PartyTaxScheme><CompanyID>X</CompanyID></PartyTaxScheme></Party></AccountingSupplierParty>", 100000) + "</Invoice>"), "file", s2, wantKind(archive.KindXRechnung)},
		{"xml: 4 MiB of comments before the root", []byte(strings.Repeat("<!-- x -->", 400000) + ubl + "</Invoice>"), "file", s2, wantKind(archive.KindXRechnung)},
		{"zip: 64 MiB of zeros", zipBomb.Bytes(), "file", s2, wantSkip(archive.ReasonArchive)},
		{"s/mime: signed around enveloped", signedAround(cmsInfo(oidEnvelopedData, der(0x30, nil)), nil), "smime", s2, noParts},
		{"s/mime: 300,000 certificates", signedAround([]byte("Content-Type: text/plain\r\n\r\nhi"), bytes.Repeat([]byte{0x05, 0x00}, 300000)), "smime", s2, noParts},
		{"s/mime: signed 60 times over", func() []byte {
			c := []byte("Content-Type: text/plain\r\n\r\nhi")
			for range 60 {
				c = signedAround(c, nil)
			}
			return c
		}(), "smime", s2, noParts},
		{"s/mime: base64 of base64 of … 12 deep", func() []byte {
			c := signedAround(manyParts(1), nil)
			for range 12 {
				c = []byte(base64.StdEncoding.EncodeToString(c))
			}
			return c
		}(), "smime", s2, noParts},
		{"mail: forwarded 50 deep", nestedMail(50), "mail", s2, noParts},
		{"mail: multipart 10,000 deep", deepMultipart(10000), "mail", s2, noParts},
		{"mail: 20,000 attached files", manyParts(20000), "mail", s2, noParts},
	}
}

// TestHostileContent runs every crafted file through its reader and
// prints the CPU time each took.
func TestHostileContent(t *testing.T) {
	p := New(Config{ContentTimeout: 3 * time.Second})
	var table strings.Builder
	fmt.Fprintf(&table, "\n%-52s %10s %10s\n", "file", "size", "cpu s")
	for _, h := range hostileFiles() {
		var (
			d     Decision
			parts []Part
			err   error
		)
		cpu := cpuTime(func() {
			switch h.kind {
			case "file":
				a := connector.Attachment{Type: connector.FileAttachment, Name: "rechnung"}
				ctx, cancel := context.WithDeadline(context.Background(), p.Deadline(time.Now()))
				defer cancel()
				d, err = p.Classify(ctx, a, "", int64(len(h.data)), bytes.NewReader(h.data))
			case "smime":
				parts, err = UnpackSMIME(context.Background(), bytes.NewReader(h.data))
			case "mail":
				parts, err = UnpackMessage(context.Background(), bytes.NewReader(h.data))
			}
		})
		fmt.Fprintf(&table, "%-52s %10d %10.3f\n", h.name, len(h.data), cpu.Seconds())
		t.Run(h.name, func(t *testing.T) {
			h.check(t, d, parts, err)
			if cpu > h.bound {
				t.Errorf("took %.2f CPU seconds, over the bound of %v", cpu.Seconds(), h.bound)
			}
		})
	}
	t.Log(table.String())
}

// TestContentDeadline: a document whose reading meets its deadline is
// still decided, on what was read, with the reason, and without error
// (an error would be retried): a ZUGFeRD PDF is a plain PDF, an
// XRechnung keeps the data read and says it is incomplete, a container
// is not unpacked.
func TestContentDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	p := New(Config{})
	a := connector.Attachment{Type: connector.FileAttachment, Name: "rechnung"}
	pdf := embeddingPDF("1.7", "factur-x.xml", ciiInvoice("DL-1", "urn:cen.eu:en16931:2017"))
	d, err := p.Classify(ctx, a, "", int64(len(pdf)), bytes.NewReader(pdf))
	if err != nil || !d.Import || d.Kind != archive.KindPDF || d.Note == "" {
		t.Errorf("pdf past the deadline: %+v, %v; want a plain pdf with a note", d, err)
	}
	xml := []byte(strings.Replace(xrechnungUBL, "<cac:AccountingSupplierParty>", strings.Repeat("<cbc:Note>x</cbc:Note>", 2000)+"<cac:AccountingSupplierParty>", 1))
	d, err = p.Classify(ctx, a, "", int64(len(xml)), bytes.NewReader(xml))
	if err != nil || d.Kind != archive.KindXRechnung || d.Note == "" || d.Invoice == nil ||
		d.Invoice.Number == "" || !strings.Contains(fmt.Sprint(d.Invoice.Checks), archive.CheckIncomplete) {
		t.Errorf("xml past the deadline: %+v (%+v), %v; want an xrechnung marked %s", d, d.Invoice, err, archive.CheckIncomplete)
	}
	if _, err := UnpackMessage(ctx, bytes.NewReader(manyParts(2))); err == nil {
		t.Error("a mail unpacked past the deadline")
	}
	// With time left, the same files are what they are.
	if d, _ := p.Classify(context.Background(), a, "", int64(len(pdf)), bytes.NewReader(pdf)); d.Kind != archive.KindZUGFeRD || d.Note != "" {
		t.Errorf("pdf in time: %+v", d)
	}
}

// TestInvoiceFieldsSanitized: bidi overrides, isolates and zero-width
// characters injected into every text field of a real invoice are gone
// from the invoice's data, the rest of each value kept.
func TestInvoiceFieldsSanitized(t *testing.T) {
	inv, ok := DetectEInvoice(strings.NewReader(xrechnungUBL))
	if !ok {
		t.Fatal("fixture not detected")
	}
	clean := *inv.Data
	poison := func(s string) string {
		if len(s) < 2 {
			return "\u202e" + s + "\u2066\u200b"
		}
		return s[:1] + "\u202e" + s[1:len(s)-1] + "\u2066\u200b\ufeff\u2069" + s[len(s)-1:] + "\u0085\u200f"
	}
	x := xrechnungUBL
	for _, v := range []string{clean.Number, clean.Seller.Name, clean.Buyer.Name, clean.Seller.VATID, clean.Buyer.VATID,
		clean.Seller.TaxNumber, clean.BuyerReference, "DE02 1203 0000 0000 2020 51", clean.Currency} {
		if v == "" {
			t.Fatalf("fixture lacks a field: %+v", clean)
		}
		x = strings.ReplaceAll(x, ">"+v+"<", ">"+poison(v)+"<")
	}
	got, ok := DetectEInvoice(strings.NewReader(x))
	if !ok {
		t.Fatal("poisoned fixture not detected")
	}
	g := got.Data
	for _, f := range []struct{ name, got, want string }{
		{"number", g.Number, clean.Number}, {"seller", g.Seller.Name, clean.Seller.Name}, {"buyer", g.Buyer.Name, clean.Buyer.Name},
		{"seller vat", g.Seller.VATID, clean.Seller.VATID}, {"buyer vat", g.Buyer.VATID, clean.Buyer.VATID},
		{"tax number", g.Seller.TaxNumber, clean.Seller.TaxNumber}, {"buyer reference", g.BuyerReference, clean.BuyerReference},
		{"currency", g.Currency, clean.Currency}, {"iban", fmt.Sprint(g.IBAN), fmt.Sprint(clean.IBAN)},
	} {
		if f.got != f.want {
			t.Errorf("%s = %+q, want %+q", f.name, f.got, f.want)
		}
	}
	if SanitizeText("ab cd", 3) != "ab" || SanitizeText("ab cd", 4) != "ab c" {
		t.Errorf("SanitizeText cut: %q %q", SanitizeText("ab cd", 3), SanitizeText("ab cd", 4))
	}
	if SanitizeText("a\t\u202eb\n\nc\u2066", 100) != "a b c" || SanitizeText(strings.Repeat("ä", 10), 5) != "ää" {
		t.Errorf("SanitizeText: %q %q", SanitizeText("a\t\u202eb\n\nc\u2066", 100), SanitizeText(strings.Repeat("ä", 10), 5))
	}
}

// cpuBound fails when f took more CPU than linear in n allows: k plus c
// per byte, far below a quadratic reader's cost on the same input.
func cpuBound(t *testing.T, n int, f func()) {
	t.Helper()
	const k, c = 500 * time.Millisecond, 2 * time.Microsecond
	if cpu := cpuTime(f); cpu > k+time.Duration(n)*c {
		t.Fatalf("%d bytes took %v of CPU", n, cpu)
	}
}

func FuzzUnpackMessage(f *testing.F) {
	f.Add(nestedMail(3))
	f.Add(manyParts(3))
	f.Add(deepMultipart(3))
	f.Fuzz(func(t *testing.T, in []byte) {
		cpuBound(t, len(in), func() {
			parts, err := UnpackMessage(context.Background(), bytes.NewReader(in))
			if err == nil && len(parts) > maxMIMEParts {
				t.Fatalf("%d parts", len(parts))
			}
		})
	})
}
