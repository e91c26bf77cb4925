package policy

import (
	"encoding/base64"
	"encoding/xml"
	"io"
	"path"
	"strconv"
	"strings"
)

// Bounds of InvoiceAttachments.
const (
	// MaxInvoiceAttachments is how many supporting documents are taken
	// from one e-invoice; further ones are left inside it.
	MaxInvoiceAttachments = 20
	// MaxInvoiceAttachmentSize bounds one decoded supporting document; a
	// larger one is left inside the invoice.
	MaxInvoiceAttachmentSize = 16 << 20
)

// InvoiceAttachments returns the supporting documents embedded in an
// e-invoice XML (BG-24): in UBL the
// cac:AdditionalDocumentReference/cac:Attachment/cbc:EmbeddedDocumentBinaryObject,
// in CII the ram:AdditionalReferencedDocument/ram:AttachmentBinaryObject,
// each base64-decoded, named by its filename attribute (else by the
// reference's id, else "Anlage-<n>") and typed by its mimeCode. At most
// MaxInvoiceAttachments are taken, each at most MaxInvoiceAttachmentSize
// decoded; one that is not valid base64 is left out. A broken document
// yields what was read before the break.
func InvoiceAttachments(r io.Reader) []Part {
	d := xml.NewDecoder(xmlText(io.LimitReader(r, maxInvoiceXML)))
	d.CharsetReader = charsetReader
	var (
		parts []Part
		ref   string // the id of the reference being read (cbc:ID / ram:IssuerAssignedID)
		in    *Part  // the binary object being read
		text  strings.Builder
		depth int // elements open inside a reference
		n     int // binary objects seen
	)
	for len(parts) < MaxInvoiceAttachments {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			switch {
			case isReference(t.Name):
				depth, ref = 1, ""
				continue
			case depth == 0:
				continue
			case isBinaryObject(t.Name):
				n++
				in = &Part{ContentType: attr(t, "mimeCode"), Name: attr(t, "filename")}
				text.Reset()
			}
			depth++
			text.Reset()
		case xml.CharData:
			if depth > 0 && text.Len() <= MaxInvoiceAttachmentSize*4/3+4 {
				text.Write(t)
			}
		case xml.EndElement:
			if depth == 0 {
				continue
			}
			depth--
			switch {
			case in != nil && isBinaryObject(t.Name):
				if p, ok := decodePart(*in, text.String(), ref, n); ok {
					parts = append(parts, p)
				}
				in = nil
			case depth == 1 && (t.Name.Local == "ID" || t.Name.Local == "IssuerAssignedID") && ref == "":
				ref = strings.TrimSpace(text.String())
			}
			text.Reset()
		}
	}
	return parts
}

func isReference(n xml.Name) bool {
	return n.Local == "AdditionalDocumentReference" && n.Space == nsUBLCAC ||
		n.Local == "AdditionalReferencedDocument" && n.Space == nsCIIRAM
}

func isBinaryObject(n xml.Name) bool {
	return n.Local == "EmbeddedDocumentBinaryObject" && n.Space == nsUBLCBC ||
		n.Local == "AttachmentBinaryObject" && n.Space == nsCIIRAM
}

// Namespaces of the elements of BG-24.
const (
	nsUBLCAC = "urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
	nsUBLCBC = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
	nsCIIRAM = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
)

func attr(se xml.StartElement, local string) string {
	for _, a := range se.Attr {
		if a.Name.Local == local {
			return strings.TrimSpace(a.Value)
		}
	}
	return ""
}

// decodePart decodes the base64 text of the n-th binary object, streaming
// through the decoder and bounded; ok is false for an empty, broken or
// too large one.
func decodePart(p Part, b64, ref string, n int) (Part, bool) {
	dec := base64.NewDecoder(base64.StdEncoding, strings.NewReader(strings.Map(dropWhite, b64)))
	content, err := io.ReadAll(io.LimitReader(dec, MaxInvoiceAttachmentSize+1))
	if err != nil || len(content) == 0 || len(content) > MaxInvoiceAttachmentSize {
		return Part{}, false
	}
	p.Content = content
	p.Name = path.Base(strings.ReplaceAll(p.Name, `\`, "/"))
	if p.Name == "." || p.Name == "/" || p.Name == "" {
		p.Name = path.Base(strings.ReplaceAll(ref, `\`, "/"))
	}
	if p.Name == "." || p.Name == "/" || p.Name == "" {
		p.Name = "Anlage-" + strconv.Itoa(n)
	}
	if p.ContentType == "" {
		p.ContentType = "application/octet-stream"
	}
	return p, true
}

func dropWhite(r rune) rune {
	switch r {
	case ' ', '\t', '\r', '\n':
		return -1
	}
	return r
}
