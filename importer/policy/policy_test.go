package policy

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

func TestClassify(t *testing.T) {
	pdf := fixture(t, "minimal.pdf", func(testing.TB) []byte { return minimalPDF("Rechnung RE-2026-001") })
	zugferd := fixture(t, "zugferd.pdf", zugferdPDF)
	ubl := fixture(t, "xrechnung-ubl.xml", func(testing.TB) []byte { return []byte(ublXML) })
	cii := fixture(t, "xrechnung-cii.xml", func(testing.TB) []byte { return []byte(ciiXML) })
	logo := fixture(t, "logo.png", func(t testing.TB) []byte { return encodePNG(t, noiseImage(16, 16, 1)) })
	scan := fixture(t, "scan.jpg", func(t testing.TB) []byte { return encodeJPEG(t, noiseImage(200, 200, 2)) })
	pe := fixture(t, "invoice.pdf.exe", func(testing.TB) []byte { return peHeader() })
	bigPNG := encodePNG(t, noiseImage(100, 100, 3))

	file := func(name, ct string) connector.Attachment {
		return connector.Attachment{ID: "a1", Type: connector.FileAttachment, Name: name, ContentType: ct}
	}
	inline := file("image001.png", "image/png")
	inline.ContentID = "image001.png@01DA0000"
	flaggedInline := file("scan.png", "image/png")
	flaggedInline.IsInline = true
	const body = `<p>Gruß</p><img src="cid:image001.png@01DA0000">`

	tests := []struct {
		name    string
		att     connector.Attachment
		body    string
		content []byte
		cfg     Config
		want    Decision
	}{
		{"pdf", file("RE-2026-001.pdf", "application/octet-stream"), "", pdf, Config{},
			Decision{Import: true, Kind: archive.KindPDF, ContentType: "application/pdf", Ext: "pdf"}},
		{"zugferd pdf", file("rechnung.pdf", "application/pdf"), "", zugferd, Config{},
			Decision{Import: true, Kind: archive.KindZUGFeRD, ContentType: "application/pdf", Ext: "pdf", Syntax: SyntaxCII, Profile: "BASIC WL"}},
		{"xrechnung ubl", file("x.xml", "text/xml"), "", ubl, Config{},
			Decision{Import: true, Kind: archive.KindXRechnung, ContentType: "application/xml", Ext: "xml", Syntax: SyntaxUBL, Profile: "XRECHNUNG 3.0"}},
		{"xrechnung cii without prolog named .txt", file("invoice.txt", "text/plain"), "", cii, Config{},
			Decision{Import: true, Kind: archive.KindXRechnung, ContentType: "application/xml", Ext: "xml", Syntax: SyntaxCII, Profile: "EN 16931"}},
		{"ubl credit note", file("gs.xml", ""), "", []byte(ublCreditNoteXML), Config{},
			Decision{Import: true, Kind: archive.KindXRechnung, ContentType: "application/xml", Ext: "xml", Syntax: SyntaxUBL, Profile: "EN 16931"}},
		{"scanned jpeg", file("scan.jpg", "image/jpeg"), "", scan, Config{},
			Decision{Import: true, Kind: archive.KindImage, ContentType: "image/jpeg", Ext: "jpg"}},
		{"large png attached", file("foto.png", "image/png"), "", bigPNG, Config{},
			Decision{Import: true, Kind: archive.KindImage, ContentType: "image/png", Ext: "png"}},
		{"inline image referenced by cid", inline, body, bigPNG, Config{},
			Decision{ContentType: "image/png", Ext: "png", Reason: archive.ReasonInline, Detail: "the image is shown in the mail body (cid:image001.png@01DA0000)"}},
		{"image flagged inline", flaggedInline, "", bigPNG, Config{},
			Decision{ContentType: "image/png", Ext: "png", Reason: archive.ReasonInline, Detail: "the image is marked as part of the mail body"}},
		{"small logo", file("firmenlogo.png", "image/png"), "", logo, Config{},
			Decision{ContentType: "image/png", Ext: "png", Reason: archive.ReasonSignatureLogo}},
		{"small image", file("foto.png", "image/png"), "", logo, Config{},
			Decision{ContentType: "image/png", Ext: "png", Reason: archive.ReasonTooSmall}},
		{"small image allowed by lower limit", file("foto.png", "image/png"), "", logo, Config{MinImageSize: 100},
			Decision{Import: true, Kind: archive.KindImage, ContentType: "image/png", Ext: "png"}},
		{"PE renamed .pdf", file("rechnung.pdf", "application/pdf"), "", pe, Config{},
			Decision{ContentType: "application/vnd.microsoft.portable-executable", Ext: "exe", Reason: archive.ReasonDisguised}},
		{"zip renamed .pdf", file("rechnung.pdf", "application/pdf"), "", []byte("PK\x03\x04\x14\x00\x00\x00\x08\x00" + string(make([]byte, 40))), Config{},
			Decision{ContentType: "application/zip", Ext: "zip", Reason: archive.ReasonArchive}},
		{"plain text", file("notes.txt", "text/plain"), "", []byte("just some words\n"), Config{},
			Decision{ContentType: "text/plain", Ext: "txt", Reason: archive.ReasonTypeNotAllowed}},
		{"other xml", file("data.xml", "text/xml"), "", []byte(`<?xml version="1.0"?><order xmlns="urn:x"/>`), Config{},
			Decision{ContentType: "text/xml", Ext: "xml", Reason: archive.ReasonTypeNotAllowed}},
		{"csv allowed by AllowTypes", file("data.csv", "text/csv"), "", []byte("a,b,c\n1,2,3\n4,5,6\n"), Config{AllowTypes: []string{"text/csv"}},
			Decision{Import: true, Kind: archive.KindOther, ContentType: "text/csv", Ext: "csv"}},
		{"empty", file("leer.pdf", "application/pdf"), "", nil, Config{},
			Decision{Reason: archive.ReasonEmpty, Detail: "the attachment has no content"}},
		{"reference attachment", connector.Attachment{Type: connector.ReferenceAttachment, Name: "Angebot.docx"}, "", nil, Config{},
			Decision{Reason: archive.ReasonReference, Detail: "the attachment is a link to a cloud file, not a file"}},
		{"item attachment without SaveEML", connector.Attachment{Type: connector.ItemAttachment, Name: "Fwd"}, "", []byte("x"), Config{},
			Decision{Reason: archive.ReasonItemAttachment, Detail: "the attachment is an attached mail; saving mails as .eml is off"}},
		{"item attachment with SaveEML", connector.Attachment{Type: connector.ItemAttachment, Name: "Fwd"}, "", []byte("From: a\r\n\r\nhi"), Config{SaveEML: true},
			Decision{Import: true, Kind: archive.KindEML, ContentType: "message/rfc822", Ext: "eml"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := New(tt.cfg).Classify(context.Background(), tt.att, tt.body, int64(len(tt.content)), bytes.NewReader(tt.content))
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if tt.want.Detail == "" && !tt.want.Import {
				if got.Detail == "" {
					t.Errorf("skip %s without a detail", got.Reason)
				}
				got.Detail = ""
			}
			if isEInvoice := tt.want.Kind == archive.KindZUGFeRD || tt.want.Kind == archive.KindXRechnung; isEInvoice != (got.Invoice != nil) {
				t.Errorf("Invoice = %+v for kind %s", got.Invoice, got.Kind)
			}
			got.Invoice = nil // the data is TestInvoiceData's
			if tt.want.Kind == archive.KindZUGFeRD && !strings.Contains(got.XML, "CrossIndustryInvoice") {
				t.Errorf("the embedded XML is not handed on: %q", got.XML)
			}
			got.XML = ""
			if got != tt.want {
				t.Errorf("Classify =\n %+v\nwant\n %+v", got, tt.want)
			}
		})
	}
}

func TestZUGFeRDHintWithoutEmbeddedFile(t *testing.T) {
	// The name in the page text is a hint only; pdfcpu finds no embedded file.
	pdf := minimalPDF("see factur-x.xml")
	got, err := New(Config{}).Classify(context.Background(), connector.Attachment{Type: connector.FileAttachment}, "", int64(len(pdf)), bytes.NewReader(pdf))
	if err != nil {
		t.Fatal(err)
	}
	if got.Kind != archive.KindPDF {
		t.Errorf("kind = %q, want pdf", got.Kind)
	}
}

func TestZugferdHintAcrossChunks(t *testing.T) {
	for _, off := range []int{0, 64<<10 - 5, 64<<10 - 1, 64 << 10, 200 << 10} {
		b := bytes.Repeat([]byte{'x'}, off)
		b = append(b, "Factur-X.xml"...)
		b = append(b, bytes.Repeat([]byte{'y'}, 100)...)
		if ok, err := zugferdHint(bytes.NewReader(b)); !ok || err != nil {
			t.Errorf("offset %d: hint = %v, %v; want true", off, ok, err)
		}
	}
	if ok, _ := zugferdHint(bytes.NewReader(bytes.Repeat([]byte("factur-x.xm"), 20000))); ok {
		t.Error("hint without the name")
	}
	// Binary content (every real PDF has some, starting with its marker
	// line) must neither grow the window nor hide a name behind it.
	bin := append([]byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), bytes.Repeat([]byte{0xff, 0xc3, 0x28, 'Z'}, 50000)...)
	if ok, err := zugferdHint(bytes.NewReader(bin)); ok || err != nil {
		t.Errorf("binary pdf without names: hint = %v, %v", ok, err)
	}
	if ok, err := zugferdHint(bytes.NewReader(append(bin, "/EmbeddedFiles"...))); !ok || err != nil {
		t.Errorf("binary pdf with a name tree: hint = %v, %v; want true", ok, err)
	}
}

func BenchmarkClassify(b *testing.B) {
	for _, bc := range []struct {
		name string
		gen  func(testing.TB) []byte
	}{
		{"pdf", func(testing.TB) []byte { return minimalPDF("x") }},
		{"zugferd", zugferdPDF},
		{"cii", func(testing.TB) []byte { return []byte(ciiXML) }},
		{"jpeg", func(t testing.TB) []byte { return encodeJPEG(t, noiseImage(200, 200, 2)) }},
	} {
		b.Run(bc.name, func(b *testing.B) {
			content := bc.gen(b)
			p := New(Config{})
			a := connector.Attachment{Type: connector.FileAttachment, Name: "x"}
			b.SetBytes(int64(len(content)))
			for b.Loop() {
				if _, err := p.Classify(context.Background(), a, "", int64(len(content)), bytes.NewReader(content)); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
