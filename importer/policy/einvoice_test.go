package policy

import (
	"bytes"
	"compress/zlib"
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/pdfcpu/pdfcpu/pkg/api"
)

// TestEInvoiceVariants classifies the e-invoice shapes the shared corpus
// lacks and checks kind, syntax, profile and the extracted data.
func TestEInvoiceVariants(t *testing.T) {
	cii := func(n string) []byte { return []byte(ciiInvoice(n, "urn:cen.eu:en16931:2017")) }
	latin1 := strings.ReplaceAll(strings.ReplaceAll(xrechnungUBL, "UTF-8", "ISO-8859-1"), "ü", "\xfc")
	latin1 = strings.ReplaceAll(strings.ReplaceAll(latin1, "ä", "\xe4"), "ö", "\xf6")
	latin1 = strings.ReplaceAll(latin1, "ß", "\xdf")
	withoutProlog := xrechnungUBL[strings.Index(xrechnungUBL, "<ubl:Invoice"):]
	tests := []struct {
		file    string
		gen     func(testing.TB) []byte
		kind    string
		syntax  string
		profile string
		number  string
		seller  string
		gross   string
	}{
		{"zf1-pdf13-afrelationship.pdf", func(testing.TB) []byte {
			return embeddingPDF("1.3", "ZUGFeRD-invoice.xml", zugferd1Invoice)
		}, archive.KindZUGFeRD, SyntaxCII, "COMFORT", "ZF1-2014-0815", "Lieferant GmbH", "235.62"},
		{"zf2-pdf14-afrelationship.pdf", func(testing.TB) []byte {
			return embeddingPDF("1.4", "zugferd-invoice.xml", ciiInvoice("ZF2-2019-77", "urn:cen.eu:en16931:2017#conformant#urn:zugferd.de:2p0:extended"))
		}, archive.KindZUGFeRD, SyntaxCII, "EXTENDED", "ZF2-2019-77", "Schmidt Elektro GmbH", "999.60"},
		{"facturx-pdf20.pdf", func(testing.TB) []byte {
			return embeddingPDF("2.0", "factur-x.xml", ciiInvoice("FX-2026-1", "urn:cen.eu:en16931:2017"))
		}, archive.KindZUGFeRD, SyntaxCII, "EN 16931", "FX-2026-1", "Schmidt Elektro GmbH", "999.60"},
		{"xrechnung-in-pdf.pdf", func(testing.TB) []byte {
			return embeddingPDF("1.7", "xrechnung.xml", xrechnungUBL)
		}, archive.KindZUGFeRD, SyntaxUBL, "XRECHNUNG 3.0", "RE-2026-04711", "Müller Bürobedarf GmbH", "1487.50"},
		{"facturx-objstm.pdf", func(testing.TB) []byte { return objStmPDF("factur-x.xml", string(cii("OS-2026-3"))) },
			archive.KindZUGFeRD, SyntaxCII, "EN 16931", "OS-2026-3", "Schmidt Elektro GmbH", "999.60"},
		{"facturx-incremental.pdf", func(testing.TB) []byte { return incrementalPDF("factur-x.xml", string(cii("INC-2026-4"))) },
			archive.KindZUGFeRD, SyntaxCII, "EN 16931", "INC-2026-4", "Schmidt Elektro GmbH", "999.60"},
		{"facturx-encrypted.pdf", encryptedPDF,
			archive.KindZUGFeRD, SyntaxCII, "EN 16931", "ENC-2026-9", "Schmidt Elektro GmbH", "999.60"},
		{"xrechnung-utf16le-bom.xml", func(testing.TB) []byte {
			return utf16LE(strings.Replace(xrechnungUBL, "UTF-8", "UTF-16", 1), true)
		}, archive.KindXRechnung, SyntaxUBL, "XRECHNUNG 3.0", "RE-2026-04711", "Müller Bürobedarf GmbH", "1487.50"},
		{"xrechnung-utf16be-nobom.xml", func(testing.TB) []byte { return utf16BE(withoutProlog) },
			archive.KindXRechnung, SyntaxUBL, "XRECHNUNG 3.0", "RE-2026-04711", "Müller Bürobedarf GmbH", "1487.50"},
		{"xrechnung-utf8-bom.xml", func(testing.TB) []byte { return append([]byte("\xef\xbb\xbf"), xrechnungUBL...) },
			archive.KindXRechnung, SyntaxUBL, "XRECHNUNG 3.0", "RE-2026-04711", "Müller Bürobedarf GmbH", "1487.50"},
		{"xrechnung-latin1.xml", func(testing.TB) []byte { return []byte(latin1) },
			archive.KindXRechnung, SyntaxUBL, "XRECHNUNG 3.0", "RE-2026-04711", "Müller Bürobedarf GmbH", "1487.50"},
		{"zugferd1.xml", func(testing.TB) []byte { return []byte(zugferd1Invoice) },
			archive.KindXRechnung, SyntaxCII, "COMFORT", "ZF1-2014-0815", "Lieferant GmbH", "235.62"},
	}
	p := New(Config{})
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			b := fixture(t, "einvoice/"+tt.file, tt.gen)
			a := connector.Attachment{Type: connector.FileAttachment, Name: tt.file, ContentType: "application/octet-stream"}
			d, err := p.Classify(context.Background(), a, "", int64(len(b)), bytes.NewReader(b))
			if err != nil {
				t.Fatal(err)
			}
			if !d.Import || d.Kind != tt.kind || d.Syntax != tt.syntax || d.Profile != tt.profile {
				t.Fatalf("decision = %+v, want kind %s, syntax %s, profile %q", d, tt.kind, tt.syntax, tt.profile)
			}
			if d.Invoice == nil {
				t.Fatal("no invoice data")
			}
			inv := d.Invoice
			if inv.Number != tt.number || inv.Seller.Name != tt.seller || inv.Totals.Gross != tt.gross {
				t.Errorf("number %q seller %q gross %q, want %q %q %q", inv.Number, inv.Seller.Name, inv.Totals.Gross, tt.number, tt.seller, tt.gross)
			}
			if !slices.Contains(inv.Checks, archive.CheckTotalsOK) || !slices.Contains(inv.Checks, archive.CheckMandatoryPresent) {
				t.Errorf("checks = %v", inv.Checks)
			}
		})
	}
}

// TestLenientScan reads each hand-built PDF with the lenient scan alone,
// the path taken when pdfcpu cannot read a file.
func TestLenientScan(t *testing.T) {
	for _, tc := range []struct {
		name, file string
		pdf        []byte
	}{
		{"pdf 1.3 with AFRelationship", "ZUGFeRD-invoice.xml", embeddingPDF("1.3", "ZUGFeRD-invoice.xml", zugferd1Invoice)},
		{"object streams, UTF-16 name", "factur-x.xml", objStmPDF("factur-x.xml", ciiInvoice("OS-1", "urn:cen.eu:en16931:2017"))},
		{"incremental update", "factur-x.xml", incrementalPDF("factur-x.xml", ciiInvoice("INC-1", "urn:cen.eu:en16931:2017"))},
		// A cut-off file: no xref, no trailer; pdfcpu gives up.
		{"truncated", "xrechnung.xml", func() []byte {
			b := embeddingPDF("1.4", "xrechnung.xml", xrechnungUBL)
			return b[:bytes.Index(b, []byte("xref\n"))]
		}()},
	} {
		t.Run(tc.name, func(t *testing.T) {
			inv, name, ok := invoiceAmong(context.Background(), scanAttachments(context.Background(), tc.pdf))
			if !ok || name != tc.file || inv.Data == nil || inv.Data.Number == "" {
				t.Fatalf("scan: ok %v name %q inv %+v", ok, name, inv)
			}
			// And the whole detector gets there too.
			d, err := New(Config{}).Classify(context.Background(), connector.Attachment{Type: connector.FileAttachment, Name: "r.pdf"}, "", int64(len(tc.pdf)), bytes.NewReader(tc.pdf))
			if err != nil || d.Kind != archive.KindZUGFeRD || d.Invoice == nil || d.Invoice.Number != inv.Data.Number {
				t.Fatalf("Classify = %+v, %v", d, err)
			}
		})
	}
	// pdfcpu's reader on the truncated file fails, so the scan is what
	// found the invoice above.
	b := embeddingPDF("1.4", "xrechnung.xml", xrechnungUBL)
	if aa, err := readAttachments(t.Context(), b[:bytes.Index(b, []byte("xref\n"))]); err == nil && len(aa) > 0 {
		t.Logf("pdfcpu read the truncated file too (%d attachments)", len(aa))
	}
}

// TestPDFBounds: a PDF over the size bound, or one whose reader does not
// get going in time, is a plain PDF, quickly.
func TestPDFBounds(t *testing.T) {
	pdf := embeddingPDF("1.7", "factur-x.xml", ciiInvoice("B-1", "urn:cen.eu:en16931:2017"))
	a := connector.Attachment{Type: connector.FileAttachment, Name: "r.pdf"}
	d, err := New(Config{PDFMaxSize: int64(len(pdf)) - 1}).Classify(context.Background(), a, "", int64(len(pdf)), bytes.NewReader(pdf))
	if err != nil || d.Kind != archive.KindPDF || !d.Import {
		t.Errorf("over the size bound: %+v, %v; want a plain pdf", d, err)
	}
	// Every reader slot held by runaway readers: the next PDF waits no
	// longer than the time bound.
	p := New(Config{PDFTimeout: 50 * time.Millisecond})
	for range cap(p.pdfSlots) {
		p.pdfSlots <- struct{}{}
	}
	start := time.Now()
	d, err = p.Classify(context.Background(), a, "", int64(len(pdf)), bytes.NewReader(pdf))
	if err != nil || d.Kind != archive.KindPDF {
		t.Errorf("readers busy: %+v, %v; want a plain pdf", d, err)
	}
	if el := time.Since(start); el > 5*time.Second {
		t.Errorf("took %v", el)
	}
	// With a slot free again, the same file is an e-invoice.
	<-p.pdfSlots
	if d, _ = p.Classify(context.Background(), a, "", int64(len(pdf)), bytes.NewReader(pdf)); d.Kind != archive.KindZUGFeRD {
		t.Errorf("slot free: kind %s", d.Kind)
	}
}

// TestNotAnInvoiceXML: XML that is no EN 16931 invoice is skipped as a
// type not allowed, naming its root; allowed XML types archive it as
// kind other.
func TestNotAnInvoiceXML(t *testing.T) {
	a := connector.Attachment{Type: connector.FileAttachment, Name: "IT01234567890_FPR01.xml"}
	d, err := New(Config{}).Classify(context.Background(), a, "", int64(len(fatturaPA)), strings.NewReader(fatturaPA))
	if err != nil || d.Import || d.Reason != archive.ReasonTypeNotAllowed || !strings.Contains(d.Detail, "<FatturaElettronica>") {
		t.Errorf("FatturaPA: %+v, %v", d, err)
	}
	d, _ = New(Config{AllowTypes: []string{"text/xml"}}).Classify(context.Background(), a, "", int64(len(fatturaPA)), strings.NewReader(fatturaPA))
	if !d.Import || d.Kind != archive.KindOther {
		t.Errorf("FatturaPA with text/xml allowed: %+v", d)
	}
}

// TestInvoiceData compares the whole data of the realistic invoices.
func TestInvoiceData(t *testing.T) {
	tests := []struct {
		name string
		xml  string
		want archive.Invoice
	}{
		{"xrechnung ubl", xrechnungUBL, archive.Invoice{
			Number: "RE-2026-04711", TypeCode: "380", IssueDate: "2026-11-02", DueDate: "2026-12-02", Currency: "EUR",
			BuyerReference: "04011000-12345-67",
			Seller:         archive.Party{Name: "Müller Bürobedarf GmbH", VATID: "DE123456789", TaxNumber: "214/5678/0123"},
			Buyer:          archive.Party{Name: "Stadtwerke Bonn GmbH", VATID: "DE987654321"},
			Totals:         archive.Totals{Net: "1250.00", Tax: "237.50", Gross: "1487.50", Payable: "987.50"},
			IBAN:           []string{"DE02120300000000202051"},
			Guideline:      "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
			Checks:         []string{archive.CheckMandatoryPresent, archive.CheckTotalsOK},
		}},
		{"cii", ciiInvoice("R-1", "urn:cen.eu:en16931:2017"), archive.Invoice{
			Number: "R-1", TypeCode: "380", IssueDate: "2026-11-03", DueDate: "2026-12-03", Currency: "EUR",
			BuyerReference: "KST-4711",
			Seller:         archive.Party{Name: "Schmidt Elektro GmbH", VATID: "DE811223344", TaxNumber: "201/123/45678"},
			Buyer:          archive.Party{Name: "Hausverwaltung Weber KG", VATID: "DE299887766"},
			Totals:         archive.Totals{Net: "840.00", Tax: "159.60", Gross: "999.60", Payable: "999.60"},
			IBAN:           []string{"DE75512108001245126199"},
			Guideline:      "urn:cen.eu:en16931:2017",
			Checks:         []string{archive.CheckMandatoryPresent, archive.CheckTotalsOK},
		}},
		{"basic wl, totals off by a cent", strings.Replace(ciiInvoice("R-2", "urn:factur-x.eu:1p0:basicwl"), "<ram:GrandTotalAmount>999.60", "<ram:GrandTotalAmount>999.61", 1), archive.Invoice{
			Number: "R-2", TypeCode: "380", IssueDate: "2026-11-03", DueDate: "2026-12-03", Currency: "EUR",
			BuyerReference: "KST-4711",
			Seller:         archive.Party{Name: "Schmidt Elektro GmbH", VATID: "DE811223344", TaxNumber: "201/123/45678"},
			Buyer:          archive.Party{Name: "Hausverwaltung Weber KG", VATID: "DE299887766"},
			Totals:         archive.Totals{Net: "840.00", Tax: "159.60", Gross: "999.61", Payable: "999.60"},
			IBAN:           []string{"DE75512108001245126199"},
			Guideline:      "urn:factur-x.eu:1p0:basicwl",
			Checks:         []string{archive.CheckMandatoryPresent, archive.CheckTotalsGross, archive.CheckTotalsPayable, archive.CheckProfileNotEN16931},
		}},
		{"credit note, minimum fields", ublCreditNoteXML, archive.Invoice{
			Number: "GS-7", Guideline: "urn:cen.eu:en16931:2017",
			Checks: []string{"mandatory_missing:BT-2", "mandatory_missing:BT-3", "mandatory_missing:BT-5", "mandatory_missing:BT-27",
				"mandatory_missing:BT-44", "mandatory_missing:BT-109", "mandatory_missing:BT-112", "mandatory_missing:BT-115",
				archive.CheckTotalsUnreadable},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			inv, ok := DetectEInvoice(strings.NewReader(tt.xml))
			if !ok || inv.Data == nil {
				t.Fatal("not detected")
			}
			if !reflect.DeepEqual(*inv.Data, tt.want) {
				got, _ := json.MarshalIndent(inv.Data, "", " ")
				t.Errorf("data =\n%s", got)
			}
		})
	}
}

func TestCheckTotalsExact(t *testing.T) {
	tests := []struct {
		t                 archive.Totals
		prepaid, rounding string
		want              []string
	}{
		// 0.1 + 0.2 is not 0.3 in binary floating point.
		{archive.Totals{Net: "0.1", Tax: "0.2", Gross: "0.30", Payable: "0.3"}, "", "", []string{archive.CheckTotalsOK}},
		{archive.Totals{Net: "100.00", Tax: "19.00", Gross: "119.00", Payable: "19.01"}, "100", "0.01", []string{archive.CheckTotalsOK}},
		{archive.Totals{Net: "100.00", Gross: "100.00", Payable: "100.00"}, "", "", []string{archive.CheckTotalsOK}},
		{archive.Totals{Net: "100.00", Tax: "19.00", Gross: "119.01", Payable: "119.01"}, "", "", []string{archive.CheckTotalsGross}},
		{archive.Totals{Net: "1e3", Tax: "0", Gross: "1000", Payable: "1000"}, "", "", []string{archive.CheckTotalsUnreadable}},
		{archive.Totals{Net: "-50.00", Tax: "-9.50", Gross: "-59.50", Payable: "-59.50"}, "", "", []string{archive.CheckTotalsOK}},
	}
	for _, tt := range tests {
		if got := checkTotals(tt.t, tt.prepaid, tt.rounding); !slices.Equal(got, tt.want) {
			t.Errorf("checkTotals(%+v, %q, %q) = %v, want %v", tt.t, tt.prepaid, tt.rounding, got, tt.want)
		}
	}
}

// TestFixturesHoldTheFailingClass proves the hand-built files are the
// ones a validating reader refuses (issue 12: "unsupported in version
// 1.3"), so TestEInvoiceVariants covers what the corpus does not.
func TestFixturesHoldTheFailingClass(t *testing.T) {
	for _, f := range []string{"zf1-pdf13-afrelationship.pdf", "facturx-pdf20.pdf"} {
		b := fixture(t, "einvoice/"+f, nil)
		if _, err := api.ExtractAttachmentsRaw(bytes.NewReader(b), "", nil, pdfcpuConfig()); err == nil {
			t.Errorf("%s: pdfcpu's validating reader accepts it; the fixture no longer shows the failing class", f)
		}
	}
}

// TestInvoiceJSONExample keeps the data.invoice example of the README and
// the archive package docs honest: it is this test's golden file,
// testdata/invoice-example.json (rewritten with -update).
func TestInvoiceJSONExample(t *testing.T) {
	inv, ok := DetectEInvoice(strings.NewReader(xrechnungUBL))
	if !ok {
		t.Fatal("not detected")
	}
	got, err := json.MarshalIndent(map[string]any{"invoice": inv.Data}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	got = append(got, '\n')
	want := fixture(t, "invoice-example.json", func(testing.TB) []byte { return got })
	if !bytes.Equal(got, want) {
		t.Errorf("data.invoice =\n%s\nwant (testdata/invoice-example.json)\n%s", got, want)
	}
}

// FuzzScanAttachments: the lenient scan never panics or loops on hostile
// bytes.
func FuzzScanAttachments(f *testing.F) {
	f.Add(embeddingPDF("1.3", "ZUGFeRD-invoice.xml", zugferd1Invoice))
	f.Add(objStmPDF("factur-x.xml", "<x/>"))
	f.Add(incrementalPDF("factur-x.xml", "<x/>"))
	f.Add([]byte("1 0 obj << /EF << /F 2 0 R >> /F (factur-x.xml) >> endobj 2 0 obj << /Length 3 0 R /Filter [/FlateDecode /FlateDecode] >> stream\nxx\nendstream endobj 3 0 obj -5 endobj"))
	f.Add(quadraticPDF()[:4096])
	f.Fuzz(func(t *testing.T, in []byte) {
		cpuBound(t, len(in), func() {
			for _, a := range scanAttachments(context.Background(), in) {
				if len(a.data) > maxEmbeddedXML {
					t.Fatalf("embedded file of %d bytes", len(a.data))
				}
			}
		})
	})
}

func BenchmarkLenientScan(b *testing.B) {
	pdf := embeddingPDF("1.4", "factur-x.xml", xrechnungUBL)
	pdf = append(bytes.Repeat([]byte("% padding with obj and 12 0 obj words\n"), 1<<15), pdf...)
	b.SetBytes(int64(len(pdf)))
	for b.Loop() {
		if _, _, ok := invoiceAmong(context.Background(), scanAttachments(context.Background(), pdf)); !ok {
			b.Fatal("not found")
		}
	}
}

// TestHostileXML: an invoice root over a million levels deep, or with a
// field of megabytes, is read within its bounds, quickly.
func TestHostileXML(t *testing.T) {
	deep := `<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>D-1</ID>` + strings.Repeat("<a>", 1<<20)
	big := `<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>` + strings.Repeat("9", 8<<20) + `</ID></Invoice>`
	entity := `<!DOCTYPE Invoice [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>` +
		`<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID>&b;</ID></Invoice>`
	for name, in := range map[string]string{"deep": deep, "big field": big, "entities": entity} {
		start := time.Now()
		inv, ok := DetectEInvoice(strings.NewReader(in))
		if !ok || inv.Data == nil {
			t.Errorf("%s: not detected", name)
			continue
		}
		if len(inv.Data.Number) > maxFieldText || strings.Contains(inv.Data.Number, "aaaaaaaaaa") {
			t.Errorf("%s: number of %d bytes: %.20q", name, len(inv.Data.Number), inv.Data.Number)
		}
		if el := time.Since(start); el > 10*time.Second {
			t.Errorf("%s: %v", name, el)
		}
	}
}

// TestEmbeddedFlateBomb: an embedded factur-x.xml that inflates to
// 256 MiB is read no further than maxEmbeddedXML, by pdfcpu and by the
// lenient scan, and the PDF is still recognised by its embedded file.
func TestEmbeddedFlateBomb(t *testing.T) {
	var zb bytes.Buffer
	zw, _ := zlib.NewWriterLevel(&zb, zlib.BestCompression)
	zero := make([]byte, 1<<20)
	_, _ = zw.Write([]byte(ciiInvoice("BOMB-1", "urn:cen.eu:en16931:2017")[:200]))
	for range 256 {
		_, _ = zw.Write(zero)
	}
	_ = zw.Close()
	data := zb.Bytes()
	objs := append([]testObj{{body: "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 5 0 R >> >>"}}, pageObjs("Bombe")...)
	objs = append(objs,
		testObj{body: "<< /Names [(factur-x.xml) 6 0 R] >>"},
		testObj{body: "<< /Type /Filespec /F (factur-x.xml) /EF << /F 7 0 R >> >>"},
		testObj{body: fmt.Sprintf("<< /Type /EmbeddedFile /Filter /FlateDecode /Length %d >>", len(data)), stream: data},
	)
	pdf := classicPDF("1.7", objs, "")
	start := time.Now()
	d, err := New(Config{}).Classify(context.Background(), connector.Attachment{Type: connector.FileAttachment, Name: "bombe.pdf"}, "", int64(len(pdf)), bytes.NewReader(pdf))
	if err != nil || d.Kind != archive.KindZUGFeRD {
		t.Errorf("Classify = %+v, %v", d, err)
	}
	for _, a := range scanAttachments(context.Background(), pdf) {
		if len(a.data) > maxEmbeddedXML {
			t.Errorf("lenient scan decoded %d bytes", len(a.data))
		}
	}
	if el := time.Since(start); el > 20*time.Second {
		t.Errorf("took %v", el)
	}
}
