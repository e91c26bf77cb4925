// Package samples makes realistic German invoice mails for `mailgate demo`,
// the end-to-end tests and `mailgate bench`: invoices as real PDFs, an
// XRechnung (UBL), a ZUGFeRD PDF with its embedded CII XML, a signature logo,
// an inline image, a scan, a newsletter without attachments, an
// executable dressed up as a PDF and a forwarded mail attached as a mail.
package samples

import (
	"bytes"
	"encoding/xml"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// Expect says what the importer should make of one attachment.
type Expect struct {
	Name   string
	Kind   string // document kind when imported
	Reason string // skip reason when skipped
}

// Mail is a sample mail and what should become of its attachments.
type Mail struct {
	graphtest.Mail
	Expect []Expect
}

var senders = []struct{ name, addr, company string }{
	{"Buchhaltung Müller", "rechnung@buerobedarf-mueller.example", "Bürobedarf Müller GmbH"},
	{"Stadtwerke Musterstadt", "xrechnung@stadtwerke-musterstadt.example", "Stadtwerke Musterstadt"},
	{"Elektro Schmidt KG", "office@elektro-schmidt.example", "Elektro Schmidt KG"},
	{"IT-Service Weber", "billing@it-weber.example", "IT-Service Weber e.K."},
}

// totals splits a gross amount into the net amount and the 19 % VAT the
// rules compute from it (BR-CO-17: the VAT is the net times the rate,
// rounded to the cent), in cents; gross is net + VAT, which may differ from
// the amount asked for by a cent.
func totals(amount float64) (net, tax, gross int64) {
	cents := int64(math.Round(amount * 100))
	net = int64(math.Round(float64(cents) / 1.19))
	tax = (net*19 + 50) / 100
	return net, tax, net + tax
}

// eur writes cents as a decimal with two places, as e-invoices carry it.
func eur(cents int64) string { return fmt.Sprintf("%d.%02d", cents/100, cents%100) }

// InvoicePDF renders invoice number n of a sender as a one-page PDF.
func InvoicePDF(company, number string, amount float64, date time.Time) []byte {
	return pdf(invoiceLines(company, number, amount, date))
}

func invoiceLines(company, number string, amount float64, date time.Time) []string {
	net, tax, gross := totals(amount)
	return []string{
		"Rechnung " + number,
		company,
		"Musterstraße 12, 12345 Musterstadt",
		"",
		"An: Firma Beispiel GmbH, Rechnungseingang",
		"Rechnungsdatum: " + date.Format("02.01.2006"),
		"Leistungszeitraum: " + date.AddDate(0, -1, 0).Format("01/2006"),
		"",
		fmt.Sprintf("Nettobetrag:        %10s €", eur(net)),
		fmt.Sprintf("Umsatzsteuer 19 %%:  %10s €", eur(tax)),
		fmt.Sprintf("Rechnungsbetrag:    %10s €", eur(gross)),
		"",
		"Zahlbar innerhalb von 14 Tagen ohne Abzug.",
		"IBAN DE02 1203 0000 0000 2020 51",
	}
}

// ZUGFeRDPDF renders an invoice PDF that carries its CII XML as factur-x.xml.
func ZUGFeRDPDF(company, number string, amount float64, date time.Time) []byte {
	return pdf(invoiceLines(company, number, amount, date), embedded{name: "factur-x.xml", subtype: "text/xml", data: CII(company, number, amount, date)})
}

// The parties of the samples' e-invoices besides the seller's name.
const (
	sampleSellerVAT = "DE123456789"
	sampleIBAN      = "DE02120300000000202051"
	sampleBuyer     = "Firma Beispiel GmbH"
	sampleLeitweg   = "04011000-12345-67"
)

// XRechnung renders a complete UBL invoice in the XRechnung 3.0 profile
// that passes the official EN 16931 and XRechnung rules: seller and buyer
// with names, addresses and electronic addresses, the seller's contact
// and VAT id, a line, the VAT breakdown, totals, payment terms and a SEPA
// transfer (samples_test checks it with the official rules when Java and
// Saxon are at hand).
func XRechnung(company, number string, amount float64, date time.Time) []byte {
	net, tax, gross := totals(amount)
	n, t, g := eur(net), eur(tax), eur(gross)
	esc := xmlText
	from, to := period(date)
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<ubl:Invoice xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>%[1]s</cbc:ID>
  <cbc:IssueDate>%[2]s</cbc:IssueDate>
  <cbc:DueDate>%[3]s</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>%[9]s</cbc:BuyerReference>
  <cac:InvoicePeriod><cbc:StartDate>%[13]s</cbc:StartDate><cbc:EndDate>%[14]s</cbc:EndDate></cac:InvoicePeriod>
  <cac:AccountingSupplierParty><cac:Party>
    <cbc:EndpointID schemeID="EM">rechnung@lieferant.example</cbc:EndpointID>
    <cac:PartyName><cbc:Name>%[4]s</cbc:Name></cac:PartyName>
    <cac:PostalAddress><cbc:StreetName>Musterstraße 12</cbc:StreetName><cbc:CityName>Musterstadt</cbc:CityName><cbc:PostalZone>12345</cbc:PostalZone><cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyTaxScheme><cbc:CompanyID>%[10]s</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
    <cac:PartyLegalEntity><cbc:RegistrationName>%[4]s</cbc:RegistrationName></cac:PartyLegalEntity>
    <cac:Contact><cbc:Name>Buchhaltung</cbc:Name><cbc:Telephone>+49 30 1234567</cbc:Telephone><cbc:ElectronicMail>rechnung@lieferant.example</cbc:ElectronicMail></cac:Contact>
  </cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party>
    <cbc:EndpointID schemeID="EM">rechnungen@firma.example</cbc:EndpointID>
    <cac:PostalAddress><cbc:StreetName>Beispielweg 1</cbc:StreetName><cbc:CityName>Beispielstadt</cbc:CityName><cbc:PostalZone>54321</cbc:PostalZone><cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
    <cac:PartyLegalEntity><cbc:RegistrationName>%[11]s</cbc:RegistrationName></cac:PartyLegalEntity>
  </cac:Party></cac:AccountingCustomerParty>
  <cac:PaymentMeans><cbc:PaymentMeansCode>58</cbc:PaymentMeansCode><cbc:PaymentID>%[1]s</cbc:PaymentID><cac:PayeeFinancialAccount><cbc:ID>%[12]s</cbc:ID></cac:PayeeFinancialAccount></cac:PaymentMeans>
  <cac:PaymentTerms><cbc:Note>Zahlbar innerhalb von 14 Tagen ohne Abzug.</cbc:Note></cac:PaymentTerms>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">%[6]s</cbc:TaxAmount>
    <cac:TaxSubtotal><cbc:TaxableAmount currencyID="EUR">%[5]s</cbc:TaxableAmount><cbc:TaxAmount currencyID="EUR">%[6]s</cbc:TaxAmount><cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory></cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">%[5]s</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">%[5]s</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">%[7]s</cbc:TaxInclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">%[7]s</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="C62">1</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">%[5]s</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Leistungen %[8]s</cbc:Name><cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory></cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">%[5]s</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</ubl:Invoice>
`, esc(number), date.Format("2006-01-02"), date.AddDate(0, 0, 14).Format("2006-01-02"), esc(company), n, t, g,
		date.AddDate(0, -1, 0).Format("01/2006"), sampleLeitweg, sampleSellerVAT, sampleBuyer, sampleIBAN,
		from.Format("2006-01-02"), to.Format("2006-01-02")))
}

// period is the month before date, the samples' invoicing period (BG-14).
func period(date time.Time) (from, to time.Time) {
	first := time.Date(date.Year(), date.Month(), 1, 0, 0, 0, 0, time.UTC)
	return first.AddDate(0, -1, 0), first.AddDate(0, 0, -1)
}

// CII renders a complete UN/CEFACT Cross Industry Invoice in the EN 16931
// profile, the XML inside ZUGFeRD and Factur-X PDFs, that passes the
// official EN 16931 rules.
func CII(company, number string, amount float64, date time.Time) []byte {
	net, tax, gross := totals(amount)
	n, t, g := eur(net), eur(tax), eur(gross)
	from, to := period(date)
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>%[1]s</ram:ID><ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString format="102">%[2]s</udt:DateTimeString></ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:IncludedSupplyChainTradeLineItem>
      <ram:AssociatedDocumentLineDocument><ram:LineID>1</ram:LineID></ram:AssociatedDocumentLineDocument>
      <ram:SpecifiedTradeProduct><ram:Name>Leistungen %[8]s</ram:Name></ram:SpecifiedTradeProduct>
      <ram:SpecifiedLineTradeAgreement><ram:NetPriceProductTradePrice><ram:ChargeAmount>%[5]s</ram:ChargeAmount></ram:NetPriceProductTradePrice></ram:SpecifiedLineTradeAgreement>
      <ram:SpecifiedLineTradeDelivery><ram:BilledQuantity unitCode="C62">1</ram:BilledQuantity></ram:SpecifiedLineTradeDelivery>
      <ram:SpecifiedLineTradeSettlement>
        <ram:ApplicableTradeTax><ram:TypeCode>VAT</ram:TypeCode><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>19</ram:RateApplicablePercent></ram:ApplicableTradeTax>
        <ram:SpecifiedTradeSettlementLineMonetarySummation><ram:LineTotalAmount>%[5]s</ram:LineTotalAmount></ram:SpecifiedTradeSettlementLineMonetarySummation>
      </ram:SpecifiedLineTradeSettlement>
    </ram:IncludedSupplyChainTradeLineItem>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:BuyerReference>%[9]s</ram:BuyerReference>
      <ram:SellerTradeParty>
        <ram:Name>%[4]s</ram:Name>
        <ram:PostalTradeAddress><ram:PostcodeCode>12345</ram:PostcodeCode><ram:LineOne>Musterstraße 12</ram:LineOne><ram:CityName>Musterstadt</ram:CityName><ram:CountryID>DE</ram:CountryID></ram:PostalTradeAddress>
        <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">%[10]s</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty>
        <ram:Name>%[11]s</ram:Name>
        <ram:PostalTradeAddress><ram:PostcodeCode>54321</ram:PostcodeCode><ram:LineOne>Beispielweg 1</ram:LineOne><ram:CityName>Beispielstadt</ram:CityName><ram:CountryID>DE</ram:CountryID></ram:PostalTradeAddress>
      </ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeDelivery/>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:PaymentReference>%[1]s</ram:PaymentReference>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementPaymentMeans><ram:TypeCode>58</ram:TypeCode><ram:PayeePartyCreditorFinancialAccount><ram:IBANID>%[12]s</ram:IBANID></ram:PayeePartyCreditorFinancialAccount></ram:SpecifiedTradeSettlementPaymentMeans>
      <ram:ApplicableTradeTax><ram:CalculatedAmount>%[6]s</ram:CalculatedAmount><ram:TypeCode>VAT</ram:TypeCode><ram:BasisAmount>%[5]s</ram:BasisAmount><ram:CategoryCode>S</ram:CategoryCode><ram:RateApplicablePercent>19</ram:RateApplicablePercent></ram:ApplicableTradeTax>
      <ram:BillingSpecifiedPeriod><ram:StartDateTime><udt:DateTimeString format="102">%[13]s</udt:DateTimeString></ram:StartDateTime><ram:EndDateTime><udt:DateTimeString format="102">%[14]s</udt:DateTimeString></ram:EndDateTime></ram:BillingSpecifiedPeriod>
      <ram:SpecifiedTradePaymentTerms><ram:Description>Zahlbar innerhalb von 14 Tagen ohne Abzug.</ram:Description><ram:DueDateDateTime><udt:DateTimeString format="102">%[3]s</udt:DateTimeString></ram:DueDateDateTime></ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:LineTotalAmount>%[5]s</ram:LineTotalAmount>
        <ram:TaxBasisTotalAmount>%[5]s</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">%[6]s</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>%[7]s</ram:GrandTotalAmount>
        <ram:DuePayableAmount>%[7]s</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
`, xmlText(number), date.Format("20060102"), date.AddDate(0, 0, 14).Format("20060102"), xmlText(company), n, t, g,
		date.AddDate(0, -1, 0).Format("01/2006"), sampleLeitweg, sampleSellerVAT, sampleBuyer, sampleIBAN,
		from.Format("20060102"), to.Format("20060102")))
}

// xmlText escapes s for XML character data.
func xmlText(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

// Logo is a small PNG as mail signatures carry it.
func Logo(seed uint64) []byte {
	img := image.NewRGBA(image.Rect(0, 0, 120, 40))
	r := rand.New(rand.NewPCG(seed, 1))
	base := color.RGBA{uint8(r.IntN(200)), 80, 160, 255}
	for y := 0; y < 40; y++ {
		for x := 0; x < 120; x++ {
			if (x/10+y/10)%2 == 0 {
				img.Set(x, y, base)
			} else {
				img.Set(x, y, color.White)
			}
		}
	}
	var b bytes.Buffer
	_ = png.Encode(&b, img)
	return b.Bytes()
}

// Scan is a grey "scanned page" JPEG of about 100 KB.
func Scan(seed uint64) []byte {
	img := image.NewGray(image.Rect(0, 0, 850, 1100))
	r := rand.New(rand.NewPCG(seed, 2))
	for y := 0; y < 1100; y++ {
		for x := 0; x < 850; x++ {
			v := uint8(235 + r.IntN(20))
			if y%40 < 3 && x > 80 && x < 770 && r.IntN(4) > 0 {
				v = uint8(r.IntN(60))
			}
			img.SetGray(x, y, color.Gray{v})
		}
	}
	var b bytes.Buffer
	_ = jpeg.Encode(&b, img, &jpeg.Options{Quality: 60})
	return b.Bytes()
}

// FakeExe is a Windows executable header with some padding: what a
// "rechnung.pdf.exe renamed to rechnung.pdf" attack looks like.
func FakeExe() []byte {
	b := make([]byte, 4096)
	copy(b, "MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff")
	copy(b[0x3c:], []byte{0x80, 0, 0, 0})
	copy(b[0x80:], "PE\x00\x00\x4c\x01")
	return b
}

func signature(cid string) string {
	return `<p>Mit freundlichen Grüßen<br>Ihr Buchhaltungsteam</p><p><img src="cid:` + cid + `" alt="Logo" width="120" height="40"></p>`
}

// Sample returns the i-th mail of an endless, deterministic mixture of
// realistic invoice mails; i selects both the kind of mail and its numbers.
func Sample(i int, received time.Time) Mail {
	s := senders[i%len(senders)]
	number := fmt.Sprintf("RE-%d-%04d", received.Year(), 1000+i)
	amount := float64(100+(i*7919)%9000) + 0.45
	msgID := fmt.Sprintf("<%s.%d@%s>", number, i, s.addr[len("rechnung@"):])
	m := Mail{Mail: graphtest.Mail{
		From:              s.addr,
		FromName:          s.name,
		InternetMessageID: msgID,
		ReceivedAt:        received,
		BodyHTML:          true,
	}}
	logoCID := fmt.Sprintf("logo%d@mail", i)
	logo := graphtest.Attachment{Name: "image001.png", ContentType: "image/png", Content: Logo(uint64(i)), Inline: true, ContentID: logoCID}
	switch i % 7 {
	case 0: // PDF invoice with a signature logo
		m.Subject = "Ihre Rechnung " + number
		m.Body = "<p>Sehr geehrte Damen und Herren,</p><p>anbei erhalten Sie unsere Rechnung " + number + ".</p>" + signature(logoCID)
		m.Attachments = []graphtest.Attachment{
			{Name: number + ".pdf", ContentType: "application/pdf", Content: InvoicePDF(s.company, number, amount, received)},
			logo,
		}
		m.Expect = []Expect{{Name: number + ".pdf", Kind: "pdf"}, {Name: "image001.png", Reason: "inline_image"}}
	case 1: // XRechnung without XML prolog hint in the declared type
		m.Subject = "XRechnung " + number
		m.Body = "<p>Guten Tag,</p><p>die XRechnung " + number + " finden Sie im Anhang.</p>" + signature(logoCID)
		m.Attachments = []graphtest.Attachment{
			{Name: number + ".xml", ContentType: "application/octet-stream", Content: XRechnung(s.company, number, amount, received)},
			logo,
		}
		m.Expect = []Expect{{Name: number + ".xml", Kind: "xrechnung"}, {Name: "image001.png", Reason: "inline_image"}}
	case 2: // ZUGFeRD PDF
		m.Subject = "ZUGFeRD-Rechnung " + number
		m.Body = "<p>Anbei unsere elektronische Rechnung (ZUGFeRD) " + number + ".</p>"
		m.Attachments = []graphtest.Attachment{
			{Name: number + ".pdf", ContentType: "application/pdf", Content: ZUGFeRDPDF(s.company, number, amount, received)},
		}
		m.Expect = []Expect{{Name: number + ".pdf", Kind: "zugferd"}}
	case 3: // a scan sent from a copier
		m.Subject = "Scan vom Kopierer: Lieferschein und Rechnung"
		m.Body = "<p>Gescanntes Dokument im Anhang.</p>"
		m.Attachments = []graphtest.Attachment{
			{Name: fmt.Sprintf("scan_%04d.jpg", i), ContentType: "image/jpeg", Content: Scan(uint64(i))},
		}
		m.Expect = []Expect{{Name: fmt.Sprintf("scan_%04d.jpg", i), Kind: "image"}}
	case 4: // newsletter: nothing to import
		m.Subject = "Newsletter November: Neuigkeiten von " + s.company
		m.Body = "<p>Unsere Angebote des Monats …</p>"
	case 5: // an executable dressed up as an invoice
		m.Subject = "Rechnung offen – bitte sofort zahlen"
		m.Body = "<p>Bitte öffnen Sie die angehängte Rechnung.</p>"
		m.Attachments = []graphtest.Attachment{
			{Name: "Rechnung_" + number + ".pdf", ContentType: "application/pdf", Content: FakeExe()},
		}
		m.Expect = []Expect{{Name: "Rechnung_" + number + ".pdf", Reason: "disguised_executable"}}
	case 6: // a forwarded mail, attached as a mail (itemAttachment)
		m.Subject = "WG: Rechnung " + number
		m.Body = "<p>Zur Info, siehe angehängte Mail.</p>"
		fwd := &graphtest.Mail{From: s.addr, FromName: s.name, Subject: "Rechnung " + number, Body: "Die Rechnung folgt separat.", ReceivedAt: received.Add(-time.Hour)}
		m.Attachments = []graphtest.Attachment{{Name: "Rechnung " + number, Item: fwd}}
		m.Expect = []Expect{{Name: "Rechnung " + number, Reason: "item_attachment"}}
	}
	return m
}
