package importer

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// ublInvoice is a small UBL invoice with a seller, so it has an invoice
// identity.
func ublInvoice(number, sellerVAT, sellerName string) []byte {
	return ublInvoiceOf(number, sellerVAT, sellerName, "2026-11-02")
}

// ublInvoiceOf is ublInvoice issued on a date (BT-2, YYYY-MM-DD).
func ublInvoiceOf(number, sellerVAT, sellerName, issued string) []byte {
	return fmt.Appendf(nil, `<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ID>%s</cbc:ID><cbc:IssueDate>%s</cbc:IssueDate><cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cac:AccountingSupplierParty><cac:Party>
    <cac:PartyTaxScheme><cbc:CompanyID>%s</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>%s</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:LegalMonetaryTotal><cbc:TaxExclusiveAmount currencyID="EUR">100.00</cbc:TaxExclusiveAmount>
  <cbc:TaxInclusiveAmount currencyID="EUR">119.00</cbc:TaxInclusiveAmount><cbc:PayableAmount currencyID="EUR">119.00</cbc:PayableAmount></cac:LegalMonetaryTotal>
</Invoice>
`, number, issued, sellerVAT, sellerName)
}

// ciiTwin is the same invoice in CII, as a ZUGFeRD PDF embeds it: another
// file, the same seller and number.
func ciiTwin(number, sellerVAT string) []byte {
	return fmt.Appendf(nil, `<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100">
  <rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument><ram:ID>%s</ram:ID><ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100" format="102">20261102</udt:DateTimeString></ram:IssueDateTime></rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction><ram:ApplicableHeaderTradeAgreement><ram:SellerTradeParty><ram:Name>Anders geschrieben GmbH</ram:Name>
    <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">%s</ram:ID></ram:SpecifiedTaxRegistration></ram:SellerTradeParty></ram:ApplicableHeaderTradeAgreement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
`, number, sellerVAT)
}

func TestDuplicateInvoiceFlagged(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	im := e.importer(t, "r1", nil)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<1@x>", Subject: "Rechnung RE-7", ReceivedAt: t0},
		file("RE-7.xml", "application/xml", ublInvoice("RE-7", "DE123456789", "Müller GmbH")))
	e.sync(t, im)

	// The ZUGFeRD twin (VAT id written with a space), a reminder with the
	// very same file, the same number from another seller, and another
	// number of the same seller.
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<2@x>", Subject: "Rechnung RE-7 (PDF)", ReceivedAt: t0},
		file("factur-x.xml", "application/xml", ciiTwin("RE-7", "DE 123456789")))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<3@x>", Subject: "Zahlungserinnerung RE-7", ReceivedAt: t0},
		file("RE-7.xml", "application/xml", ublInvoice("RE-7", "DE123456789", "Müller GmbH")))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<4@x>", Subject: "Rechnung RE-7", ReceivedAt: t0},
		file("RE-7.xml", "application/xml", ublInvoice("RE-7", "DE999999999", "Andere AG")))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<5@x>", Subject: "Rechnung RE-8", ReceivedAt: t0},
		file("RE-8.xml", "application/xml", ublInvoice("RE-8", "DE123456789", "Müller GmbH")))
	e.sync(t, im)
	e.sync(t, im) // a second pass changes nothing

	var firstID string
	bySubject := map[string]archive.Imported{}
	for id, ev := range e.events.imported {
		if ev.Invoice == nil {
			t.Fatalf("%s: no invoice data", ev.Message.Subject)
		}
		if ev.Message.InternetMessageID == "<1@x>" {
			firstID = id
		}
		bySubject[ev.Message.InternetMessageID] = ev
	}
	if len(e.events.imported) != 4 {
		t.Fatalf("imported %d, want 4 (the reminder's same file is a content duplicate)", len(e.events.imported))
	}
	if r := e.events.reasons(); r[archive.ReasonDuplicate] != 1 {
		t.Errorf("skip reasons %v, want one duplicate_of", r)
	}
	want := map[string]string{"<1@x>": "", "<2@x>": firstID, "<4@x>": "", "<5@x>": ""}
	for mid, dup := range want {
		ev, ok := bySubject[mid]
		if !ok {
			t.Errorf("%s not imported", mid)
			continue
		}
		if ev.Invoice.DuplicateInvoiceOf != dup {
			t.Errorf("%s: duplicateInvoiceOf %q, want %q", mid, ev.Invoice.DuplicateInvoiceOf, dup)
		}
	}
	// The import history carries what the portal's list shows.
	st, _, err := im.ledger.status(t.Context(), e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	var listed, priced int
	for _, h := range st.Recent {
		if h.InvoiceNumber == "RE-7" && h.Seller != "" {
			listed++
		}
		if h.InvoiceNumber == "RE-7" && h.Gross == "119.00" && h.Currency == "EUR" {
			priced++
		}
	}
	if listed != 3 || priced != 2 { // the CII twin states no totals
		t.Errorf("history entries with RE-7: %d, with its gross: %d; want 3 and 2 (%+v)", listed, priced, st.Recent)
	}
	// On the wire.
	b, _ := json.Marshal(bySubject["<2@x>"])
	if !strings.Contains(string(b), `"duplicateInvoiceOf":"`+firstID+`"`) || !strings.Contains(string(b), `"invoice":{"number":"RE-7"`) {
		t.Errorf("event data %s", b)
	}
}

// TestDuplicateInvoiceYear: a supplier that starts its numbers again
// each year sends no duplicate; the same number in the same year is one,
// whatever the day.
func TestDuplicateInvoiceYear(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	im := e.importer(t, "r1", nil)
	for i, issued := range []string{"2025-03-01", "2026-03-01", "2026-11-30"} {
		e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<y%d@x>", i), Subject: "Rechnung 1", ReceivedAt: t0},
			file("1.xml", "application/xml", ublInvoiceOf("1", "DE123456789", "Müller GmbH", issued)))
	}
	e.sync(t, im)
	byMail := map[string]archive.Imported{}
	ids := map[string]string{}
	for id, ev := range e.events.imported {
		byMail[ev.Message.InternetMessageID] = ev
		ids[ev.Message.InternetMessageID] = id
	}
	if len(byMail) != 3 {
		t.Fatalf("%d imported, want 3", len(byMail))
	}
	if got := byMail["<y0@x>"].Invoice.DuplicateInvoiceOf; got != "" {
		t.Errorf("the invoice of 2025 is flagged a duplicate of %s", got)
	}
	// The mails run concurrently: whichever of 2026 came second names the first.
	a, b := byMail["<y1@x>"].Invoice.DuplicateInvoiceOf, byMail["<y2@x>"].Invoice.DuplicateInvoiceOf
	if !(a == "" && b == ids["<y1@x>"] || b == "" && a == ids["<y2@x>"]) {
		t.Errorf("the two invoices of 2026: duplicateInvoiceOf %q and %q, want one to name the other", a, b)
	}
}

func TestInvoiceKey(t *testing.T) {
	k := func(inv archive.Invoice) string {
		key, _ := invoiceKey("acme", &inv)
		return key
	}
	a := k(archive.Invoice{Number: "RE-1", Seller: archive.Party{VATID: "DE 123456789", Name: "A GmbH"}})
	if a == "" || a != k(archive.Invoice{Number: "RE-1", Seller: archive.Party{VATID: "de123456789", Name: "B"}}) {
		t.Error("the VAT id, normalised, identifies the seller")
	}
	if a == k(archive.Invoice{Number: "RE-1", Seller: archive.Party{Name: "A GmbH"}}) {
		t.Error("a name-only seller must not match a VAT id")
	}
	if k(archive.Invoice{Number: "RE-1", Seller: archive.Party{Name: "A  gmbh"}}) != k(archive.Invoice{Number: "RE-1", Seller: archive.Party{Name: "a GmbH"}}) {
		t.Error("names compare without case and extra spaces")
	}
	if k(archive.Invoice{Number: "RE-1"}) != "" || k(archive.Invoice{Seller: archive.Party{Name: "A"}}) != "" {
		t.Error("no key without number or seller")
	}
	if k(archive.Invoice{Number: "RE-1", IssueDate: "2025-12-31", Seller: archive.Party{Name: "A"}}) == k(archive.Invoice{Number: "RE-1", IssueDate: "2026-01-01", Seller: archive.Party{Name: "A"}}) {
		t.Error("the issue year is part of the key")
	}
	if k(archive.Invoice{Number: "RE-1", IssueDate: "2026-01-01", Seller: archive.Party{Name: "A"}}) != k(archive.Invoice{Number: "RE-1", IssueDate: "2026-12-31", Seller: archive.Party{Name: "A"}}) {
		t.Error("the issue day is not")
	}
	if !strings.HasPrefix(a, "inv.acme.") {
		t.Errorf("key %q", a)
	}
}
