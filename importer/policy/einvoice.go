package policy

import (
	"context"
	"encoding/xml"
	"io"
	"regexp"
	"strings"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/importer/xmltext"
)

// E-invoice syntaxes.
const (
	SyntaxUBL = "UBL"
	SyntaxCII = "CII"
)

// Root element namespaces of the e-invoice syntaxes (EN 16931), and of
// ZUGFeRD 1.0's CrossIndustryDocument, the CII forerunner that ZUGFeRD 1.0
// PDFs embed.
const (
	nsUBLInvoice    = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
	nsUBLCreditNote = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
	nsCII           = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
	nsZUGFeRD1      = "urn:ferd:CrossIndustryDocument:invoice:1p0"
)

// maxInvoiceXML bounds how much of an XML invoice is read for its data.
// Invoices with attachments inside (base64 in UBL) reach a few MiB; the
// totals come last, so a larger file keeps what was read until the bound.
const maxInvoiceXML = 32 << 20

// EInvoice is what DetectEInvoice found.
type EInvoice struct {
	Syntax  string // SyntaxUBL or SyntaxCII
	Profile string // e.g. "XRECHNUNG 3.0", "EN 16931", "BASIC WL"; "" when not stated
	Raw     string // the specification identifier as written
	// Data is the invoice's own data; never nil for a detected invoice.
	Data *archive.Invoice
	// XML is the embedded file of a ZUGFeRD/Factur-X PDF (nil for an XML
	// file, which is its own XML), for the official rules.
	XML []byte
}

// DetectEInvoice reports whether r holds an XML e-invoice: a UBL Invoice or
// CreditNote, a CII CrossIndustryInvoice or a ZUGFeRD 1.0
// CrossIndustryDocument, told apart by the root element's name and
// namespace (any prefix), never by file name. The XML may start with a
// byte order mark, be UTF-16 or any encoding its declaration names, and
// carry comments or processing instructions before the root. For an
// invoice it reads the whole document (up to maxInvoiceXML) and fills
// Data; for anything else it stops at the root element. The decoder
// resolves no external entities. A broken document yields what was read
// before the break.
func DetectEInvoice(r io.Reader) (EInvoice, bool) {
	inv, _, ok := parseEInvoice(context.Background(), r)
	return inv, ok
}

// ctxEvery is how many XML tokens the walker reads between looks at its
// deadline.
const ctxEvery = 1 << 10

// parseEInvoice is DetectEInvoice that also returns the root element's
// name ("" when the input is not XML), for the skip detail of XML that is
// no invoice. At ctx's end it stops with what it read and the data marked
// archive.CheckIncomplete; the root element is always read.
func parseEInvoice(ctx context.Context, r io.Reader) (EInvoice, xml.Name, bool) {
	d := xml.NewDecoder(xmlText(io.LimitReader(r, maxInvoiceXML)))
	d.CharsetReader = charsetReader
	var w *invoiceWalker
	for n := 1; ; n++ {
		if w != nil && n%ctxEvery == 0 && ctx.Err() != nil {
			w.incomplete = true
			break
		}
		tok, err := d.Token()
		if err != nil {
			break
		}
		if w == nil {
			se, ok := tok.(xml.StartElement)
			if !ok {
				continue // prolog, comments, whitespace
			}
			syntax := rootSyntax(se.Name)
			if syntax == "" {
				return EInvoice{}, se.Name, false
			}
			w = newInvoiceWalker(syntax)
			continue
		}
		if !w.token(tok) {
			break
		}
	}
	if w == nil {
		return EInvoice{}, xml.Name{}, false
	}
	return w.result(), xml.Name{}, true
}

func rootSyntax(n xml.Name) string {
	switch {
	case n.Local == "Invoice" && n.Space == nsUBLInvoice, n.Local == "CreditNote" && n.Space == nsUBLCreditNote:
		return SyntaxUBL
	case n.Local == "CrossIndustryInvoice" && n.Space == nsCII, n.Local == "CrossIndustryDocument" && n.Space == nsZUGFeRD1:
		return SyntaxCII
	}
	return ""
}

// xmlText turns r into what encoding/xml reads (see package xmltext).
func xmlText(r io.Reader) io.Reader { return xmltext.Reader(r) }

// charsetReader decodes the encodings an XML declaration may name; an
// unknown label is read as it is, which keeps the (ASCII) element names
// readable for telling what the file is.
func charsetReader(label string, in io.Reader) (io.Reader, error) {
	if r, err := xmltext.Charset(label, in); err == nil {
		return r, nil
	}
	return in, nil
}

var xrechnungVersion = regexp.MustCompile(`xrechnung_(\d+(?:\.\d+)?)`)

// ProfileName turns a specification identifier (CustomizationID or
// guideline parameter) into a short name people know.
func ProfileName(id string) string {
	l := strings.ToLower(id)
	switch {
	case l == "":
		return ""
	case strings.Contains(l, "xrechnung"):
		if m := xrechnungVersion.FindStringSubmatch(l); m != nil {
			return "XRECHNUNG " + m[1]
		}
		return "XRECHNUNG"
	case strings.Contains(l, "peppol"):
		return "PEPPOL BIS"
	case strings.Contains(l, ":extended"):
		return "EXTENDED"
	case strings.Contains(l, ":basicwl"):
		return "BASIC WL"
	case strings.Contains(l, ":basic"):
		return "BASIC"
	case strings.Contains(l, ":minimum"):
		return "MINIMUM"
	case strings.Contains(l, ":comfort"): // ZUGFeRD 1.0
		return "COMFORT"
	case strings.Contains(l, "en16931"):
		return "EN 16931"
	}
	if len(id) > 100 {
		id = cutUTF8(id, 100)
	}
	return strings.ToValidUTF8(id, "")
}

var utf8BOM = xmltext.BOM
