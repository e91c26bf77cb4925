package policy

import (
	"bytes"
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestInvoiceAttachmentsReal takes the supporting documents out of real
// XRechnungen of the corpus, UBL and CII.
func TestInvoiceAttachmentsReal(t *testing.T) {
	for _, tc := range []struct {
		file, name, contentType string
	}{
		{"kosit_01.15a-INVOICE_ubl.xml", "01_15_Anhang_01.pdf", "application/pdf"},
		{"kosit_01.15a-INVOICE_uncefact.xml", "01_15_Anhang_01.pdf", "application/pdf"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			xml, err := os.ReadFile(filepath.Join(corpusDir, "files", tc.file))
			if err != nil {
				t.Skipf("corpus not here: %v", err)
			}
			parts := InvoiceAttachments(bytes.NewReader(xml))
			if len(parts) == 0 {
				t.Fatal("no supporting document found")
			}
			p := parts[0]
			if p.Name != tc.name || p.ContentType != tc.contentType {
				t.Errorf("first part %q (%s), want %q (%s)", p.Name, p.ContentType, tc.name, tc.contentType)
			}
			if !bytes.HasPrefix(p.Content, []byte("%PDF-")) {
				t.Errorf("the decoded part does not start like a PDF: %q", p.Content[:min(16, len(p.Content))])
			}
		})
	}
}

// TestInvoiceAttachmentsBounds: the count and size bounds hold, broken
// base64 and objects outside BG-24 are left out, and names fall back to
// the reference's id.
func TestInvoiceAttachmentsBounds(t *testing.T) {
	ref := func(id, attrs, content string) string {
		return `<cac:AdditionalDocumentReference><cbc:ID>` + id + `</cbc:ID><cac:Attachment><cbc:EmbeddedDocumentBinaryObject ` + attrs + `>` +
			content + `</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>`
	}
	doc := func(refs ...string) []byte {
		return []byte(`<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"><cbc:ID>1</cbc:ID>` +
			strings.Join(refs, "") + `</Invoice>`)
	}
	b64 := base64.StdEncoding.EncodeToString
	parts := InvoiceAttachments(bytes.NewReader(doc(
		ref("Lieferschein 7", `mimeCode="text/csv"`, b64([]byte("a;b\n1;2\n"))),
		ref("x", `mimeCode="application/pdf" filename="..\..\evil.pdf"`, "%%%not base64"),
		ref("big", `mimeCode="application/pdf" filename="big.pdf"`, b64(make([]byte, MaxInvoiceAttachmentSize+1))),
		ref("ok", `mimeCode="application/pdf" filename="dir/ok.pdf"`, "JVBE\nRi0x"),
	)))
	var got []string
	for _, p := range parts {
		got = append(got, p.Name+"|"+p.ContentType+"|"+string(p.Content))
	}
	want := []string{"Lieferschein 7|text/csv|a;b\n1;2\n", "ok.pdf|application/pdf|%PDF-1"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("parts %q, want %q", got, want)
	}

	many := make([]string, MaxInvoiceAttachments+5)
	for i := range many {
		many[i] = ref("r", `filename="a.txt"`, b64([]byte("x")))
	}
	if n := len(InvoiceAttachments(bytes.NewReader(doc(many...)))); n != MaxInvoiceAttachments {
		t.Errorf("%d parts taken, want the bound %d", n, MaxInvoiceAttachments)
	}
}
