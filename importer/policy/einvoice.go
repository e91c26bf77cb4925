package policy

import (
	"bytes"
	"encoding/xml"
	"errors"
	"io"
	"regexp"
	"strings"
)

// E-invoice syntaxes.
const (
	SyntaxUBL = "UBL"
	SyntaxCII = "CII"
)

// Root element namespaces of the e-invoice syntaxes (EN 16931).
const (
	nsUBLInvoice    = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
	nsUBLCreditNote = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
	nsCII           = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
)

// maxEInvoiceTokens bounds how far DetectEInvoice reads looking for the
// profile; both syntaxes state it within the first few elements.
const maxEInvoiceTokens = 4096

// EInvoice is what DetectEInvoice found.
type EInvoice struct {
	Syntax  string // SyntaxUBL or SyntaxCII
	Profile string // e.g. "XRECHNUNG 3.0", "EN 16931", "BASIC WL"; "" when not stated
	Raw     string // the specification identifier as written
}

// DetectEInvoice reports whether r holds an XML e-invoice: a UBL Invoice or
// CreditNote, or a CII CrossIndustryInvoice, told apart by the root
// element's name and namespace, never by file name. The profile comes from
// cbc:CustomizationID (UBL) or
// ExchangedDocumentContext/GuidelineSpecifiedDocumentContextParameter/ID
// (CII). It reads only as far as it needs. The decoder resolves no external
// entities.
func DetectEInvoice(r io.Reader) (EInvoice, bool) {
	d := xml.NewDecoder(skipBOM(r))
	d.CharsetReader = func(_ string, in io.Reader) (io.Reader, error) {
		return in, nil // element names are ASCII in every encoding we meet
	}
	var (
		inv   EInvoice
		stack []string
	)
	for i := 0; i < maxEInvoiceTokens; i++ {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch t := tok.(type) {
		case xml.StartElement:
			if len(stack) == 0 {
				switch {
				case (t.Name.Local == "Invoice" && t.Name.Space == nsUBLInvoice) ||
					(t.Name.Local == "CreditNote" && t.Name.Space == nsUBLCreditNote):
					inv.Syntax = SyntaxUBL
				case t.Name.Local == "CrossIndustryInvoice" && t.Name.Space == nsCII:
					inv.Syntax = SyntaxCII
				default:
					return EInvoice{}, false
				}
			}
			stack = append(stack, t.Name.Local)
			if isProfileElement(inv.Syntax, stack) {
				var s string
				if err := d.DecodeElement(&s, &t); err != nil {
					return inv, true
				}
				inv.Raw = strings.TrimSpace(s)
				inv.Profile = ProfileName(inv.Raw)
				return inv, true
			}
			if len(stack) == 2 && passedProfile(inv.Syntax, t.Name.Local) {
				return inv, true
			}
		case xml.EndElement:
			if len(stack) > 0 {
				stack = stack[:len(stack)-1]
			}
			if len(stack) == 0 {
				return inv, inv.Syntax != ""
			}
		}
	}
	return inv, inv.Syntax != ""
}

func isProfileElement(syntax string, stack []string) bool {
	switch syntax {
	case SyntaxUBL:
		return len(stack) == 2 && stack[1] == "CustomizationID"
	case SyntaxCII:
		return len(stack) == 4 && stack[1] == "ExchangedDocumentContext" &&
			stack[2] == "GuidelineSpecifiedDocumentContextParameter" && stack[3] == "ID"
	}
	return false
}

// passedProfile reports whether a top-level element shows that the
// document states no profile where the schema puts it.
func passedProfile(syntax, local string) bool {
	switch syntax {
	case SyntaxUBL:
		return local == "ID" || local == "IssueDate" || local == "AccountingSupplierParty"
	case SyntaxCII:
		return local == "ExchangedDocument" || local == "SupplyChainTradeTransaction"
	}
	return false
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
	case strings.Contains(l, "en16931"):
		return "EN 16931"
	}
	if len(id) > 100 {
		id = cutUTF8(id, 100)
	}
	return strings.ToValidUTF8(id, "")
}

var utf8BOM = []byte{0xEF, 0xBB, 0xBF}

// skipBOM drops a UTF-8 byte order mark, which encoding/xml rejects.
func skipBOM(r io.Reader) io.Reader {
	head := make([]byte, 3)
	n, err := io.ReadFull(r, head)
	head = head[:n]
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return bytes.NewReader(head)
	}
	if bytes.Equal(head, utf8BOM) {
		return r
	}
	return io.MultiReader(bytes.NewReader(head), r)
}
