// Package samples makes realistic German invoice mails for `mailgate demo`,
// the end-to-end tests and `mailgate bench`: invoices as real PDFs, an
// XRechnung (UBL), a ZUGFeRD PDF with its embedded CII XML, a signature logo,
// an inline image, a scan, a newsletter without attachments, an
// executable dressed up as a PDF and a forwarded mail attached as a mail.
package samples

import (
	"bytes"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
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

// InvoicePDF renders invoice number n of a sender as a one-page PDF.
func InvoicePDF(company, number string, amount float64, date time.Time) []byte {
	return pdf(invoiceLines(company, number, amount, date))
}

func invoiceLines(company, number string, amount float64, date time.Time) []string {
	net := amount / 1.19
	return []string{
		"Rechnung " + number,
		company,
		"Musterstraße 12, 12345 Musterstadt",
		"",
		"An: Firma Beispiel GmbH, Rechnungseingang",
		"Rechnungsdatum: " + date.Format("02.01.2006"),
		"Leistungszeitraum: " + date.AddDate(0, -1, 0).Format("01/2006"),
		"",
		fmt.Sprintf("Nettobetrag:        %10.2f €", net),
		fmt.Sprintf("Umsatzsteuer 19 %%:  %10.2f €", amount-net),
		fmt.Sprintf("Rechnungsbetrag:    %10.2f €", amount),
		"",
		"Zahlbar innerhalb von 14 Tagen ohne Abzug.",
		"IBAN DE02 1203 0000 0000 2020 51",
	}
}

// ZUGFeRDPDF renders an invoice PDF that carries its CII XML as factur-x.xml.
func ZUGFeRDPDF(company, number string, amount float64, date time.Time) []byte {
	return pdf(invoiceLines(company, number, amount, date), embedded{name: "factur-x.xml", subtype: "text/xml", data: CII(company, number, amount, date)})
}

// XRechnung renders a UBL invoice in the XRechnung 3.0 profile.
func XRechnung(company, number string, amount float64, date time.Time) []byte {
	net := amount / 1.19
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<ubl:Invoice xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>%s</cbc:ID>
  <cbc:IssueDate>%s</cbc:IssueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>04011000-12345-67</cbc:BuyerReference>
  <cac:AccountingSupplierParty><cac:Party><cac:PartyName><cbc:Name>%s</cbc:Name></cac:PartyName></cac:Party></cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty><cac:Party><cac:PartyName><cbc:Name>Firma Beispiel GmbH</cbc:Name></cac:PartyName></cac:Party></cac:AccountingCustomerParty>
  <cac:TaxTotal><cbc:TaxAmount currencyID="EUR">%.2f</cbc:TaxAmount></cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:TaxExclusiveAmount currencyID="EUR">%.2f</cbc:TaxExclusiveAmount>
    <cbc:PayableAmount currencyID="EUR">%.2f</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
</ubl:Invoice>
`, number, date.Format("2006-01-02"), company, amount-net, net, amount))
}

// CII renders a UN/CEFACT Cross Industry Invoice (EN 16931 profile), the XML
// inside ZUGFeRD and Factur-X PDFs.
func CII(company, number string, amount float64, date time.Time) []byte {
	return []byte(fmt.Sprintf(`<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:cen.eu:en16931:2017</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>%s</ram:ID><ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString format="102">%s</udt:DateTimeString></ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:ApplicableHeaderTradeAgreement><ram:SellerTradeParty><ram:Name>%s</ram:Name></ram:SellerTradeParty></ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation><ram:GrandTotalAmount>%.2f</ram:GrandTotalAmount></ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
`, number, date.Format("20060102"), company, amount))
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
