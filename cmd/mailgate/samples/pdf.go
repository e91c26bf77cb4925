package samples

import (
	"bytes"
	"fmt"
	"strings"
)

// embedded is a file carried inside a PDF, as ZUGFeRD/Factur-X carry their XML.
type embedded struct {
	name    string
	subtype string // MIME type, e.g. text/xml
	data    []byte
}

// pdf renders lines of text on one A4 page. With files, the PDF carries them
// as associated embedded files (the ZUGFeRD / Factur-X way).
func pdf(lines []string, files ...embedded) []byte {
	var b bytes.Buffer
	var offsets []int
	obj := func(body string) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n%s\nendobj\n", len(offsets), body)
	}
	stream := func(dict string, data []byte) {
		offsets = append(offsets, b.Len())
		fmt.Fprintf(&b, "%d 0 obj\n<< %s /Length %d >>\nstream\n", len(offsets), dict, len(data))
		b.Write(data)
		b.WriteString("\nendstream\nendobj\n")
	}

	var content strings.Builder
	content.WriteString("BT /F1 11 Tf 56 780 Td 15 TL\n")
	for i, l := range lines {
		if i == 0 {
			content.WriteString("/F1 16 Tf\n")
		}
		fmt.Fprintf(&content, "(%s) Tj T*\n", pdfString(l))
		if i == 0 {
			content.WriteString("/F1 11 Tf T*\n")
		}
	}
	content.WriteString("ET\n")

	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	// Objects 1..4: catalog, pages, page, font; 5: content; then per file a
	// filespec and its embedded stream.
	var names, af strings.Builder
	for i, f := range files {
		spec := 6 + 2*i
		fmt.Fprintf(&names, "(%s) %d 0 R ", f.name, spec)
		fmt.Fprintf(&af, "%d 0 R ", spec)
	}
	catalog := "<< /Type /Catalog /Pages 2 0 R"
	if len(files) > 0 {
		catalog += fmt.Sprintf(" /Names << /EmbeddedFiles << /Names [%s] >> >> /AF [%s]", names.String(), af.String())
	}
	obj(catalog + " >>")
	obj("<< /Type /Pages /Kids [3 0 R] /Count 1 >>")
	obj("<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>")
	obj("<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>")
	stream("", []byte(content.String()))
	for i, f := range files {
		obj(fmt.Sprintf("<< /Type /Filespec /F (%s) /UF (%s) /Desc (Invoice data) /AFRelationship /Alternative /EF << /F %d 0 R /UF %d 0 R >> >>",
			f.name, f.name, 7+2*i, 7+2*i))
		stream(fmt.Sprintf("/Type /EmbeddedFile /Subtype /%s /Params << /Size %d >>", strings.ReplaceAll(f.subtype, "/", "#2F"), len(f.data)), f.data)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(offsets)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", len(offsets)+1, xref)
	return b.Bytes()
}

// pdfString escapes a line for a PDF literal string in WinAnsiEncoding, so
// umlauts and the euro sign print.
func pdfString(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch {
		case r == '(' || r == ')' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r == '€':
			b.WriteString("\\200")
		case r < 0x80:
			b.WriteRune(r)
		case r <= 0xff:
			fmt.Fprintf(&b, "\\%03o", r)
		default:
			b.WriteByte('?')
		}
	}
	return b.String()
}
