package rendition

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

const creditNote = `<?xml version="1.0" encoding="UTF-8"?>
<CreditNote xmlns="urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2" xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ID>GS-2024-007</cbc:ID>
  <cbc:IssueDate>2024-02-29</cbc:IssueDate>
  <cbc:CreditNoteTypeCode>381</cbc:CreditNoteTypeCode>
  <cbc:Note>Gutschrift für Rücksendung – Größe passte nicht; Ελληνικά, čeština, €</cbc:Note>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>04011000-1234512345-06</cbc:BuyerReference>
  <cac:BillingReference><cac:InvoiceDocumentReference><cbc:ID>RE-2024-001</cbc:ID><cbc:IssueDate>2024-01-15</cbc:IssueDate></cac:InvoiceDocumentReference></cac:BillingReference>
  <cac:AdditionalDocumentReference><cbc:ID>Lieferschein 4711</cbc:ID><cbc:DocumentDescription>Rücksendeschein</cbc:DocumentDescription>
    <cac:Attachment><cbc:EmbeddedDocumentBinaryObject mimeCode="application/pdf" filename="ruecksendung.pdf">SGFsbG8gV2VsdA==</cbc:EmbeddedDocumentBinaryObject></cac:Attachment></cac:AdditionalDocumentReference>
  <cac:AccountingSupplierParty><cac:Party><cbc:EndpointID schemeID="EM">verkauf@beispiel.de</cbc:EndpointID>
    <cac:PostalAddress><cbc:StreetName>Hauptstraße 1</cbc:StreetName><cbc:CityName>Köln</cbc:CityName><cbc:PostalZone>50667</cbc:PostalZone><cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyTaxScheme><cbc:CompanyID>DE123456789</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>Müller &amp; Söhne GmbH</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party><cbc:EndpointID schemeID="EM">einkauf@kunde.de</cbc:EndpointID>
    <cac:PostalAddress><cbc:CityName>Berlin</cbc:CityName><cbc:PostalZone>10115</cbc:PostalZone><cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyLegalEntity><cbc:RegistrationName>Kunde AG</cbc:RegistrationName></cac:PartyLegalEntity></cac:Party></cac:AccountingCustomerParty>
  <cac:PaymentMeans><cbc:PaymentMeansCode>58</cbc:PaymentMeansCode><cac:PayeeFinancialAccount><cbc:ID>DE02120300000000202051</cbc:ID></cac:PayeeFinancialAccount></cac:PaymentMeans>
  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">19.00</cbc:TaxAmount>
    <cac:TaxSubtotal><cbc:TaxableAmount currencyID="EUR">100.00</cbc:TaxableAmount><cbc:TaxAmount currencyID="EUR">19.00</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal></cac:TaxTotal>
  <cac:LegalMonetaryTotal><cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount><cbc:TaxExclusiveAmount currencyID="EUR">100.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">119.00</cbc:TaxInclusiveAmount><cbc:PayableAmount currencyID="EUR">119.00</cbc:PayableAmount></cac:LegalMonetaryTotal>
  <cac:CreditNoteLine><cbc:ID>1</cbc:ID><cbc:CreditedQuantity unitCode="C62">2</cbc:CreditedQuantity><cbc:LineExtensionAmount currencyID="EUR">100.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Wanderschuh „Gipfel“</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">50.00</cbc:PriceAmount></cac:Price></cac:CreditNoteLine>
  <cbc:UnknownExtra note="kept">seltsam</cbc:UnknownExtra>
</CreditNote>`

const ciiInvoice = `<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100" xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument><ram:ID>CII-2024-042</ram:ID><ram:TypeCode>380</ram:TypeCode><ram:IssueDateTime><udt:DateTimeString format="102">20240131</udt:DateTimeString></ram:IssueDateTime></rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:IncludedSupplyChainTradeLineItem>
      <ram:AssociatedDocumentLineDocument><ram:LineID>10</ram:LineID></ram:AssociatedDocumentLineDocument>
      <ram:SpecifiedTradeProduct><ram:Name>Beratung</ram:Name></ram:SpecifiedTradeProduct>
      <ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice><ram:ChargeAmount>1234.50</ram:ChargeAmount></ram:NetPriceProductTradePrice></ram:SpecifiedLineTradeAgreement>
      <ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="HUR">1.000</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>
      <ram:SpecifiedLineTradeSettlement><ram:ApplicableTradeTax><ram:TypeCode>VAT</ram:TypeCode><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>19.00</ram:RateApplicablePercent></ram:ApplicableTradeTax>
        <ram:SpecifiedTradeSettlementLineMonetarySummation><ram:LineTotalAmount>1234.50</ram:LineTotalAmount></ram:SpecifiedTradeSettlementLineMonetarySummation></ram:SpecifiedLineTradeSettlement>
    </ram:IncludedSupplyChainTradeLineItem>
    <ram:ApplicableHeaderTradeAgreement><ram:BuyerReference>991-01234-56</ram:BuyerReference>
      <ram:SellerTradeParty><ram:Name>Beratung Schmidt</ram:Name><ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">DE999999999</ram:ID></ram:SpecifiedTaxRegistration></ram:SellerTradeParty>
      <ram:BuyerTradeParty><ram:Name>Stadt Musterhausen</ram:Name></ram:BuyerTradeParty></ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeDelivery/>
    <ram:ApplicableHeaderTradeSettlement><ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementPaymentMeans><ram:TypeCode>58</ram:TypeCode><ram:PayeePartyCreditorFinancialAccount><ram:IBANID>DE75512108001245126199</ram:IBANID></ram:PayeePartyCreditorFinancialAccount></ram:SpecifiedTradeSettlementPaymentMeans>
      <ram:ApplicableTradeTax><ram:CalculatedAmount>234.56</ram:CalculatedAmount><ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>1234.50</ram:BasisAmount><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>19.00</ram:RateApplicablePercent></ram:ApplicableTradeTax>
      <ram:SpecifiedTradePaymentTerms><ram:Description>Zahlbar binnen 14 Tagen</ram:Description><ram:DueDateDateTime><udt:DateTimeString format="102">20240214</udt:DateTimeString></ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation><ram:LineTotalAmount>1234.50</ram:LineTotalAmount><ram:TaxBasisTotalAmount>1234.50</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">234.56</ram:TaxTotalAmount><ram:GrandTotalAmount>1469.06</ram:GrandTotalAmount><ram:DuePayableAmount>1469.06</ram:DuePayableAmount></ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>`

// lineOf returns the text line containing want, or "".
func lineOf(s, want string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, want) {
			return l
		}
	}
	return ""
}

func TestCreditNote(t *testing.T) {
	out, err := PDF(context.Background(), []byte(creditNote))
	if err != nil {
		t.Fatal(err)
	}
	s := text(t, out)
	for _, want := range []string{
		"Gutschrift Nr. GS-2024-007", // the header's title and number
		"29.02.2024",                 // BT-2 as DD.MM.YYYY
		"381 (Gutschrift)",           // BT-3 with its meaning
		"Ελληνικά, čeština, €",       // any script, by the Unicode font
		"Müller & Söhne GmbH",        // BT-27
		"Wanderschuh „Gipfel“",       // BT-153
		"RE-2024-001",                // BT-25
		"DE02120300000000202051",     // BT-84
		"ruecksendung.pdf",           // BT-125's file name
		"ruecksendung.pdf, application/pdf, 10 Bytes (eingebettet", // name, type, decoded size; not the content
		"Weitere Angaben / Further information",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if strings.Contains(s, "SGFsbG8gV2VsdA==") {
		t.Error("base64 content is shown")
	}
	// under "Weitere Angaben", grouped by the parent's path
	if l := lineOf(s, "seltsam"); !strings.Contains(l, "cbc:UnknownExtra") || !strings.Contains(s, "Further information\n/CreditNote\n") {
		t.Errorf("an unmapped element should show with its path: %q", l)
	}
	if l := lineOf(s, "seltsam"); !strings.Contains(l, "note: kept") {
		t.Errorf("an unmapped element's attribute should show beside it: %q", l)
	}
	pages := regexp.MustCompile(`Seite (\d+) / (\d+)`).FindAllStringSubmatch(s, -1)
	if len(pages) == 0 || pages[0][1] != "1" || pages[len(pages)-1][1] != pages[0][2] || strconv.Itoa(len(pages)) != pages[0][2] {
		t.Errorf("page numbers: %v", pages)
	}
	if l := lineOf(s, "(BT-129)"); l == "" {
		t.Error("the line table's header is missing")
	}
}

func TestCII(t *testing.T) {
	out, err := PDF(context.Background(), []byte(ciiInvoice))
	if err != nil {
		t.Fatal(err)
	}
	s := text(t, out)
	for _, want := range []string{
		"Rechnung Nr. CII-2024-042",
		"31.01.2024", "14.02.2024", // 102 dates as DD.MM.YYYY
		"1234.50", "1469.06", "234.56 EUR", // amounts as written
		"991-01234-56", "DE75512108001245126199", "Zahlbar binnen 14 Tagen",
		"UN/CEFACT CII",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("text lacks %q", want)
		}
	}
	if !strings.Contains(squeeze(s), "HUR(Stunde)") {
		t.Error("text lacks the unit code with its name")
	}
	if strings.Contains(s, "Weitere Angaben") {
		t.Error("every value of this invoice has a business term; none should be left over")
	}
	if l := lineOf(s, "Fälliger Betrag"); !strings.Contains(l, "1469.06") {
		t.Errorf("BT-115 row: %q", l)
	}
}

func TestDeterministic(t *testing.T) {
	inputs := [][]byte{[]byte(creditNote), []byte(ciiInvoice)}
	if b, err := os.ReadFile(filepath.Join(shared, "einvoices/files/kosit_01.01a-INVOICE_ubl.xml")); err == nil {
		inputs = append(inputs, b)
	}
	var firsts [][]byte
	for _, in := range inputs {
		first, err := PDF(context.Background(), in)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 3; i++ {
			again, err := PDF(context.Background(), in)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(first, again) {
				t.Fatalf("render %d differs from the first (%d vs %d bytes)", i+2, len(again), len(first))
			}
		}
		if !bytes.Contains(first, []byte("/CreationDate")) {
			t.Fatal("no creation date written")
		}
		firsts = append(firsts, first)
	}
	if bytes.Equal(firsts[0], firsts[1]) {
		t.Fatal("different invoices gave the same PDF")
	}
	// The creation date is the invoice's issue date, not the clock's.
	if !bytes.Contains(firsts[1], []byte("D:20240131000000")) {
		t.Error("creation date should be the issue date 2024-01-31")
	}
}

// TestEncodings: a BOM, and a declared Latin-1 or UTF-16 encoding, read
// as the sender wrote them.
func TestEncodings(t *testing.T) {
	latin1 := strings.Replace(creditNote, `encoding="UTF-8"`, `encoding="ISO-8859-1"`, 1)
	latin1 = strings.NewReplacer("Ελληνικά, čeština, €", "", "„Gipfel“", "Gipfel", "–", "-").Replace(latin1)
	var l1 []byte
	for _, r := range latin1 {
		if r > 0xff {
			t.Fatalf("fixture has %q beyond Latin-1", r)
		}
		l1 = append(l1, byte(r))
	}
	utf16 := []byte{0xff, 0xfe}
	for _, r := range strings.Replace(ciiInvoice, `encoding="UTF-8"`, `encoding="UTF-16"`, 1) {
		utf16 = append(utf16, byte(r), byte(r>>8)) // the fixture is in the BMP
	}
	for _, c := range []struct {
		name string
		in   []byte
		want string
	}{
		{"UTF-8 with BOM", append([]byte("\xef\xbb\xbf"), creditNote...), "Müller & Söhne GmbH"},
		{"ISO-8859-1", l1, "Müller & Söhne GmbH"},
		{"UTF-16LE with BOM", utf16, "Rechnung Nr. CII-2024-042"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := PDF(context.Background(), c.in)
			if err != nil {
				t.Fatal(err)
			}
			if s := text(t, out); !strings.Contains(s, c.want) {
				t.Errorf("text lacks %q", c.want)
			}
		})
	}
}

// TestBeyondBMP: fpdf's fonts cover the Basic Multilingual Plane only
// (a rune beyond it made fpdf panic); such a rune is written as its code
// point.
func TestBeyondBMP(t *testing.T) {
	out, err := PDF(context.Background(), []byte(strings.Replace(creditNote, "Rücksendung", "Rücksendung 😀 𝐀", 1)))
	if err != nil {
		t.Fatal(err)
	}
	if s := text(t, out); !strings.Contains(s, "Rücksendung [U+1F600] [U+1D400]") {
		t.Error("text lacks the code points of the runes beyond the BMP")
	}
}

func TestHTML(t *testing.T) {
	evil := strings.Replace(creditNote, "Rücksendung", `Rücksendung &lt;script&gt;alert(1)&lt;/script&gt; "x" &amp; y`, 1)
	out, err := HTML(context.Background(), []byte(evil))
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		"<title>Gutschrift GS-2024-007</title>",
		"Rechnungsnummer / Invoice number (BT-1)", "29.02.2024", "Müller &amp; Söhne GmbH",
		"Rücksendung &lt;script&gt;alert(1)&lt;/script&gt; &#34;x&#34; &amp; y",
		"Ελληνικά, čeština, €", "DE02120300000000202051", "ruecksendung.pdf, application/pdf, 10 Bytes",
		`<td class="r">50.00 EUR</td>`, "Weitere Angaben / Further information",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("HTML lacks %q", want)
		}
	}
	if strings.Contains(s, "<script>") || strings.Contains(s, "SGFsbG8gV2VsdA==") {
		t.Error("HTML carries a script or the base64 content")
	}
	if _, err := HTML(context.Background(), []byte("<Order/>")); !errors.Is(err, ErrNotInvoice) {
		t.Errorf("non-invoice: err = %v", err)
	}
}
