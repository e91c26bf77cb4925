package policy

import (
	"encoding/xml"
	"math/big"
	"regexp"
	"slices"
	"strings"

	"github.com/mailgate/mailgate/archive"
)

// The invoice walker reads an e-invoice's data from the XML tokens by the
// path of local element names below the root, so any namespace prefix
// does. ZUGFeRD 1.0 names its CII elements differently; ciiAliases maps
// them onto the CII D16B names, so one table serves both.

// field is a datum the walker collects.
type field int

const (
	fNone field = iota
	fNumber
	fTypeCode
	fIssueDate
	fDueDate
	fDueDateCreditNote // UBL CreditNote: cac:PaymentMeans/cbc:PaymentDueDate
	fCurrency
	fBuyerRef
	fGuideline
	fSellerName
	fSellerTaxID     // CII, told apart by schemeID
	fSellerCompanyID // UBL, told apart by the TaxScheme that follows
	fSellerTaxScheme
	fBuyerName
	fBuyerTaxID
	fBuyerCompanyID
	fBuyerTaxScheme
	fNet
	fTax
	fGross
	fPrepaid
	fRounding
	fPayable
	fIBAN
)

var ublFields = map[string]field{
	"ID":                          fNumber,
	"InvoiceTypeCode":             fTypeCode,
	"CreditNoteTypeCode":          fTypeCode,
	"IssueDate":                   fIssueDate,
	"DueDate":                     fDueDate,
	"PaymentMeans/PaymentDueDate": fDueDateCreditNote,
	"DocumentCurrencyCode":        fCurrency,
	"BuyerReference":              fBuyerRef,
	"CustomizationID":             fGuideline,
	"AccountingSupplierParty/Party/PartyLegalEntity/RegistrationName": fSellerName,
	"AccountingSupplierParty/Party/PartyTaxScheme/CompanyID":          fSellerCompanyID,
	"AccountingSupplierParty/Party/PartyTaxScheme/TaxScheme/ID":       fSellerTaxScheme,
	"AccountingCustomerParty/Party/PartyLegalEntity/RegistrationName": fBuyerName,
	"AccountingCustomerParty/Party/PartyTaxScheme/CompanyID":          fBuyerCompanyID,
	"AccountingCustomerParty/Party/PartyTaxScheme/TaxScheme/ID":       fBuyerTaxScheme,
	"LegalMonetaryTotal/TaxExclusiveAmount":                           fNet,
	"TaxTotal/TaxAmount":                                              fTax,
	"LegalMonetaryTotal/TaxInclusiveAmount":                           fGross,
	"LegalMonetaryTotal/PrepaidAmount":                                fPrepaid,
	"LegalMonetaryTotal/PayableRoundingAmount":                        fRounding,
	"LegalMonetaryTotal/PayableAmount":                                fPayable,
	"PaymentMeans/PayeeFinancialAccount/ID":                           fIBAN,
}

const (
	ciiAgreement = "SupplyChainTradeTransaction/ApplicableHeaderTradeAgreement/"
	ciiSettle    = "SupplyChainTradeTransaction/ApplicableHeaderTradeSettlement/"
	ciiSum       = ciiSettle + "SpecifiedTradeSettlementHeaderMonetarySummation/"
)

var ciiFields = map[string]field{
	"ExchangedDocumentContext/GuidelineSpecifiedDocumentContextParameter/ID": fGuideline,
	"ExchangedDocument/ID":                                                                       fNumber,
	"ExchangedDocument/TypeCode":                                                                 fTypeCode,
	"ExchangedDocument/IssueDateTime/DateTimeString":                                             fIssueDate,
	ciiAgreement + "BuyerReference":                                                              fBuyerRef,
	ciiAgreement + "SellerTradeParty/Name":                                                       fSellerName,
	ciiAgreement + "SellerTradeParty/SpecifiedTaxRegistration/ID":                                fSellerTaxID,
	ciiAgreement + "BuyerTradeParty/Name":                                                        fBuyerName,
	ciiAgreement + "BuyerTradeParty/SpecifiedTaxRegistration/ID":                                 fBuyerTaxID,
	ciiSettle + "InvoiceCurrencyCode":                                                            fCurrency,
	ciiSettle + "SpecifiedTradePaymentTerms/DueDateDateTime/DateTimeString":                      fDueDate,
	ciiSettle + "SpecifiedTradeSettlementPaymentMeans/PayeePartyCreditorFinancialAccount/IBANID": fIBAN,
	ciiSum + "TaxBasisTotalAmount":                                                               fNet,
	ciiSum + "TaxTotalAmount":                                                                    fTax,
	ciiSum + "GrandTotalAmount":                                                                  fGross,
	ciiSum + "TotalPrepaidAmount":                                                                fPrepaid,
	ciiSum + "RoundingAmount":                                                                    fRounding,
	ciiSum + "DuePayableAmount":                                                                  fPayable,
}

// ciiAliases maps ZUGFeRD 1.0 element names onto CII D16B ones.
var ciiAliases = map[string]string{
	"SpecifiedExchangedDocumentContext":         "ExchangedDocumentContext",
	"HeaderExchangedDocument":                   "ExchangedDocument",
	"SpecifiedSupplyChainTradeTransaction":      "SupplyChainTradeTransaction",
	"ApplicableSupplyChainTradeAgreement":       "ApplicableHeaderTradeAgreement",
	"ApplicableSupplyChainTradeSettlement":      "ApplicableHeaderTradeSettlement",
	"SpecifiedTradeSettlementMonetarySummation": "SpecifiedTradeSettlementHeaderMonetarySummation",
}

// maxFieldText bounds one collected value.
const maxFieldText = 1 << 10

// maxXMLDepth bounds the nesting the walker follows: real invoices nest
// about 10 deep, and each level costs the decoder memory. Reading stops
// at a deeper element, keeping what was read.
const maxXMLDepth = 256

type amount struct{ value, currency string }

// maxFieldPath bounds the element path the walker keeps: the longest
// path of the field tables is about 130 bytes. Below an element whose path
// would be longer, nothing can match, so no path is built there and a
// tag costs the same whatever the names above it.
const maxFieldPath = 256

// Bounds of the lists the walker collects: the payment accounts kept
// for the event (more are counted as truncated), and the values waiting
// for their pair (UBL CompanyIDs for their TaxScheme, VAT totals for the
// currency).
const (
	maxInvoiceIBANs = archive.MaxInvoiceList
	maxPending      = 16
)

type invoiceWalker struct {
	syntax string
	fields map[string]field
	// lens holds, for each open element, the length path had before the
	// element was entered; path is the element names joined by "/" up to
	// the depth beyond (0: the whole stack), where the path grew over
	// maxFieldPath.
	lens   []int
	path   string
	beyond int

	cur     field // field being collected, fNone when none
	curAttr string
	curLen  int // stack depth of the field's element
	text    strings.Builder

	inv                         archive.Invoice
	dueCreditNote               string
	taxes                       []amount
	prepaid, rounding           string
	sellerCompany, buyerCompany []string // UBL CompanyIDs waiting for their TaxScheme
	truncated                   []string // lists cut at their bound
	incomplete                  bool     // the reading stopped at the deadline
}

func newInvoiceWalker(syntax string) *invoiceWalker {
	w := &invoiceWalker{syntax: syntax, fields: ciiFields}
	if syntax == SyntaxUBL {
		w.fields = ublFields
	}
	return w
}

// token takes the next token below the root; false at the root's end.
func (w *invoiceWalker) token(tok xml.Token) bool {
	switch t := tok.(type) {
	case xml.StartElement:
		if len(w.lens) >= maxXMLDepth {
			return false
		}
		name := t.Name.Local
		if a, ok := ciiAliases[name]; ok && w.syntax == SyntaxCII {
			name = a
		}
		w.lens = append(w.lens, len(w.path))
		if w.beyond == 0 {
			switch {
			case len(w.path)+1+len(name) > maxFieldPath:
				w.beyond = len(w.lens)
			case w.path == "":
				w.path = name
			default:
				w.path += "/" + name
			}
		}
		if w.cur == fNone && w.beyond == 0 {
			if f, ok := w.fields[w.path]; ok {
				w.cur, w.curLen, w.curAttr = f, len(w.lens), ""
				w.text.Reset()
				for _, a := range t.Attr {
					if a.Name.Local == "schemeID" || a.Name.Local == "currencyID" {
						w.curAttr = strings.TrimSpace(a.Value)
					}
				}
			}
		}
	case xml.CharData:
		if room := maxFieldText - w.text.Len(); w.cur != fNone && room > 0 {
			w.text.Write(t[:min(len(t), room)])
		}
	case xml.EndElement:
		n := len(w.lens)
		if n == 0 {
			return false
		}
		if w.cur != fNone && n == w.curLen {
			w.set(w.cur, strings.ToValidUTF8(strings.TrimSpace(w.text.String()), ""), w.curAttr)
			w.cur = fNone
		}
		w.path = w.path[:w.lens[n-1]]
		if w.beyond == n {
			w.beyond = 0
		}
		w.lens = w.lens[:n-1]
	}
	return true
}

func setOnce(dst *string, v string) {
	if *dst == "" {
		*dst = v
	}
}

func (w *invoiceWalker) set(f field, v, attr string) {
	if v == "" {
		return
	}
	in := &w.inv
	switch f {
	case fNumber:
		setOnce(&in.Number, v)
	case fTypeCode:
		setOnce(&in.TypeCode, v)
	case fIssueDate:
		setOnce(&in.IssueDate, isoDate(v))
	case fDueDate:
		setOnce(&in.DueDate, isoDate(v))
	case fDueDateCreditNote:
		setOnce(&w.dueCreditNote, isoDate(v))
	case fCurrency:
		setOnce(&in.Currency, v)
	case fBuyerRef:
		setOnce(&in.BuyerReference, v)
	case fGuideline:
		setOnce(&in.Guideline, v)
	case fSellerName:
		setOnce(&in.Seller.Name, v)
	case fBuyerName:
		setOnce(&in.Buyer.Name, v)
	case fSellerTaxID: // CII: VA is the VAT id, FC the tax number
		switch strings.ToUpper(attr) {
		case "VA":
			setOnce(&in.Seller.VATID, v)
		case "FC":
			setOnce(&in.Seller.TaxNumber, v)
		}
	case fBuyerTaxID:
		if strings.EqualFold(attr, "VA") {
			setOnce(&in.Buyer.VATID, v)
		}
	case fSellerCompanyID:
		if len(w.sellerCompany) < maxPending {
			w.sellerCompany = append(w.sellerCompany, v)
		}
	case fBuyerCompanyID:
		if len(w.buyerCompany) < maxPending {
			w.buyerCompany = append(w.buyerCompany, v)
		}
	case fSellerTaxScheme: // UBL: VAT is the VAT id, any other scheme (FC) the tax number
		if n := len(w.sellerCompany); n > 0 {
			id := w.sellerCompany[n-1]
			w.sellerCompany = w.sellerCompany[:n-1]
			if strings.EqualFold(v, "VAT") {
				setOnce(&in.Seller.VATID, id)
			} else {
				setOnce(&in.Seller.TaxNumber, id)
			}
		}
	case fBuyerTaxScheme:
		if n := len(w.buyerCompany); n > 0 {
			id := w.buyerCompany[n-1]
			w.buyerCompany = w.buyerCompany[:n-1]
			if strings.EqualFold(v, "VAT") {
				setOnce(&in.Buyer.VATID, id)
			}
		}
	case fNet:
		setOnce(&in.Totals.Net, v)
	case fTax:
		if len(w.taxes) < maxPending {
			w.taxes = append(w.taxes, amount{v, attr})
		}
	case fGross:
		setOnce(&in.Totals.Gross, v)
	case fPrepaid:
		setOnce(&w.prepaid, v)
	case fRounding:
		setOnce(&w.rounding, v)
	case fPayable:
		setOnce(&in.Totals.Payable, v)
	case fIBAN:
		v = strings.ReplaceAll(v, " ", "")
		switch {
		case slices.Contains(in.IBAN, v):
		case len(in.IBAN) < maxInvoiceIBANs:
			in.IBAN = append(in.IBAN, v)
		case !slices.Contains(w.truncated, "iban"):
			w.truncated = append(w.truncated, "iban")
		}
	}
}

// result finishes the walk: it picks the VAT total in the invoice
// currency (BT-110, not the accounting currency's BT-111), fills the
// profile and runs the checks.
func (w *invoiceWalker) result() EInvoice {
	in := w.inv
	if in.DueDate == "" {
		in.DueDate = w.dueCreditNote
	}
	for _, t := range w.taxes {
		if t.currency == "" || in.Currency == "" || t.currency == in.Currency {
			in.Totals.Tax = t.value
			break
		}
	}
	if in.Totals.Tax == "" && len(w.taxes) > 0 {
		in.Totals.Tax = w.taxes[0].value
	}
	sanitizeInvoice(&in)
	in.Truncated = w.truncated
	e := EInvoice{Syntax: w.syntax, Raw: in.Guideline, Profile: ProfileName(in.Guideline)}
	in.Checks = checkInvoice(&in, e.Profile, w.prepaid, w.rounding)
	if w.incomplete {
		in.Checks = append(in.Checks, archive.CheckIncomplete)
	}
	e.Data = &in
	return e
}

// sanitizeInvoice makes every text of the invoice's data safe to show
// (SanitizeText): the XML is the sender's, and a bidi override in a
// seller's name would turn what the portal and the DMS show around.
func sanitizeInvoice(in *archive.Invoice) {
	for _, s := range []*string{
		&in.Number, &in.TypeCode, &in.IssueDate, &in.DueDate, &in.Currency, &in.BuyerReference, &in.Guideline,
		&in.Seller.Name, &in.Seller.VATID, &in.Seller.TaxNumber, &in.Buyer.Name, &in.Buyer.VATID,
		&in.Totals.Net, &in.Totals.Tax, &in.Totals.Gross, &in.Totals.Payable,
	} {
		*s = SanitizeText(*s, maxFieldText)
	}
	ibans := in.IBAN[:0]
	for _, v := range in.IBAN {
		if v = SanitizeText(v, maxFieldText); v != "" && !slices.Contains(ibans, v) {
			ibans = append(ibans, v)
		}
	}
	in.IBAN = ibans
	if len(in.IBAN) == 0 {
		in.IBAN = nil
	}
}

// isoDate turns CII's format 102 (YYYYMMDD) into YYYY-MM-DD; a date
// already so written stays; anything else is dropped, since the field's
// contract is YYYY-MM-DD.
func isoDate(s string) string {
	switch {
	case len(s) == 8 && allDigits(s):
		return s[:4] + "-" + s[4:6] + "-" + s[6:]
	case len(s) >= 10 && allDigits(s[:4]) && s[4] == '-' && allDigits(s[5:7]) && s[7] == '-' && allDigits(s[8:10]):
		return s[:10]
	}
	return ""
}

func allDigits(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return s != ""
}

// mandatory are the EN 16931 business terms the checks require, with how
// to read each from the data.
var mandatory = []struct {
	bt  string
	get func(*archive.Invoice) string
}{
	{"BT-1", func(i *archive.Invoice) string { return i.Number }},
	{"BT-2", func(i *archive.Invoice) string { return i.IssueDate }},
	{"BT-3", func(i *archive.Invoice) string { return i.TypeCode }},
	{"BT-5", func(i *archive.Invoice) string { return i.Currency }},
	{"BT-24", func(i *archive.Invoice) string { return i.Guideline }},
	{"BT-27", func(i *archive.Invoice) string { return i.Seller.Name }},
	{"BT-44", func(i *archive.Invoice) string { return i.Buyer.Name }},
	{"BT-109", func(i *archive.Invoice) string { return i.Totals.Net }},
	{"BT-112", func(i *archive.Invoice) string { return i.Totals.Gross }},
	{"BT-115", func(i *archive.Invoice) string { return i.Totals.Payable }},
}

func checkInvoice(in *archive.Invoice, profile, prepaid, rounding string) []string {
	var out []string
	for _, m := range mandatory {
		if m.get(in) == "" {
			out = append(out, archive.CheckMandatoryMissing+":"+m.bt)
		}
	}
	if len(out) == 0 {
		out = append(out, archive.CheckMandatoryPresent)
	}
	out = append(out, checkTotals(in.Totals, prepaid, rounding)...)
	if profile == "MINIMUM" || profile == "BASIC WL" {
		out = append(out, archive.CheckProfileNotEN16931)
	}
	return out
}

var decimalRE = regexp.MustCompile(`^[+-]?(\d+\.?\d*|\.\d+)$`)

// decimal parses an amount exactly; "" counts as zero when zeroOK.
func decimal(s string, zeroOK bool) (*big.Rat, bool) {
	if s == "" && zeroOK {
		return new(big.Rat), true
	}
	if !decimalRE.MatchString(s) {
		return nil, false
	}
	r, ok := new(big.Rat).SetString(s)
	return r, ok
}

// checkTotals checks BR-CO-15 (BT-112 = BT-109 + BT-110) and BR-CO-16
// (BT-115 = BT-112 - BT-113 + BT-114) exactly.
func checkTotals(t archive.Totals, prepaid, rounding string) []string {
	net, ok1 := decimal(t.Net, false)
	tax, ok2 := decimal(t.Tax, true)
	gross, ok3 := decimal(t.Gross, false)
	payable, ok4 := decimal(t.Payable, false)
	pre, ok5 := decimal(prepaid, true)
	rnd, ok6 := decimal(rounding, true)
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6) {
		return []string{archive.CheckTotalsUnreadable}
	}
	var out []string
	if new(big.Rat).Add(net, tax).Cmp(gross) != 0 {
		out = append(out, archive.CheckTotalsGross)
	}
	due := new(big.Rat).Sub(gross, pre)
	if due.Add(due, rnd).Cmp(payable) != 0 {
		out = append(out, archive.CheckTotalsPayable)
	}
	if out == nil {
		out = []string{archive.CheckTotalsOK}
	}
	return out
}
