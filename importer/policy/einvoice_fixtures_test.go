package policy

import (
	"bytes"
	"compress/zlib"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
	"unicode/utf16"

	"github.com/pdfcpu/pdfcpu/pkg/api"
)

// The e-invoice variants the shared corpus lacks are built here. With
// -update, TestEInvoiceVariants writes them under testdata (small files,
// reviewable); without it, the committed files are read.

// xrechnungUBL is a complete XRechnung 3.0 in UBL, as a German supplier's
// ERP sends it: every field of data.invoice is set, the seller has a VAT
// id and a tax number, and part of the invoice was prepaid.
const xrechnungUBL = `<?xml version="1.0" encoding="UTF-8"?>
<!-- exported by Faktura 9.2 -->
<ubl:Invoice xmlns:ubl="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
  xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2"
  xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
  <cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
  <cbc:ProfileID>urn:fdc:peppol.eu:2017:poacc:billing:01:1.0</cbc:ProfileID>
  <cbc:ID>RE-2026-04711</cbc:ID>
  <cbc:IssueDate>2026-11-02</cbc:IssueDate>
  <cbc:DueDate>2026-12-02</cbc:DueDate>
  <cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
  <cbc:Note>Lieferung gemäß Auftrag 2026-118</cbc:Note>
  <cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
  <cbc:BuyerReference>04011000-12345-67</cbc:BuyerReference>
  <cac:AccountingSupplierParty>
    <cac:Party>
      <cac:PartyName><cbc:Name>Müller Bürobedarf</cbc:Name></cac:PartyName>
      <cac:PostalAddress>
        <cbc:StreetName>Hauptstraße 5</cbc:StreetName><cbc:CityName>Köln</cbc:CityName><cbc:PostalZone>50667</cbc:PostalZone>
        <cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country>
      </cac:PostalAddress>
      <cac:PartyTaxScheme><cbc:CompanyID>DE123456789</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
      <cac:PartyTaxScheme><cbc:CompanyID>214/5678/0123</cbc:CompanyID><cac:TaxScheme><cbc:ID>FC</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
      <cac:PartyLegalEntity><cbc:RegistrationName>Müller Bürobedarf GmbH</cbc:RegistrationName></cac:PartyLegalEntity>
      <cac:Contact><cbc:Name>Anna Müller</cbc:Name><cbc:Telephone>+49 221 12345</cbc:Telephone><cbc:ElectronicMail>rechnung@mueller-buero.de</cbc:ElectronicMail></cac:Contact>
    </cac:Party>
  </cac:AccountingSupplierParty>
  <cac:AccountingCustomerParty>
    <cac:Party>
      <cac:PostalAddress><cbc:CityName>Bonn</cbc:CityName><cac:Country><cbc:IdentificationCode>DE</cbc:IdentificationCode></cac:Country></cac:PostalAddress>
      <cac:PartyTaxScheme><cbc:CompanyID>DE987654321</cbc:CompanyID><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:PartyTaxScheme>
      <cac:PartyLegalEntity><cbc:RegistrationName>Stadtwerke Bonn GmbH</cbc:RegistrationName></cac:PartyLegalEntity>
    </cac:Party>
  </cac:AccountingCustomerParty>
  <cac:PaymentMeans>
    <cbc:PaymentMeansCode>58</cbc:PaymentMeansCode>
    <cac:PayeeFinancialAccount><cbc:ID>DE02 1203 0000 0000 2020 51</cbc:ID></cac:PayeeFinancialAccount>
  </cac:PaymentMeans>
  <cac:TaxTotal>
    <cbc:TaxAmount currencyID="EUR">237.50</cbc:TaxAmount>
    <cac:TaxSubtotal>
      <cbc:TaxableAmount currencyID="EUR">1250.00</cbc:TaxableAmount><cbc:TaxAmount currencyID="EUR">237.50</cbc:TaxAmount>
      <cac:TaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:TaxCategory>
    </cac:TaxSubtotal>
  </cac:TaxTotal>
  <cac:LegalMonetaryTotal>
    <cbc:LineExtensionAmount currencyID="EUR">1250.00</cbc:LineExtensionAmount>
    <cbc:TaxExclusiveAmount currencyID="EUR">1250.00</cbc:TaxExclusiveAmount>
    <cbc:TaxInclusiveAmount currencyID="EUR">1487.50</cbc:TaxInclusiveAmount>
    <cbc:PrepaidAmount currencyID="EUR">500.00</cbc:PrepaidAmount>
    <cbc:PayableAmount currencyID="EUR">987.50</cbc:PayableAmount>
  </cac:LegalMonetaryTotal>
  <cac:InvoiceLine>
    <cbc:ID>1</cbc:ID>
    <cbc:InvoicedQuantity unitCode="H87">50</cbc:InvoicedQuantity>
    <cbc:LineExtensionAmount currencyID="EUR">1250.00</cbc:LineExtensionAmount>
    <cac:Item><cbc:Name>Toner schwarz</cbc:Name>
      <cac:ClassifiedTaxCategory><cbc:ID>S</cbc:ID><cbc:Percent>19</cbc:Percent><cac:TaxScheme><cbc:ID>VAT</cbc:ID></cac:TaxScheme></cac:ClassifiedTaxCategory>
    </cac:Item>
    <cac:Price><cbc:PriceAmount currencyID="EUR">25.00</cbc:PriceAmount></cac:Price>
  </cac:InvoiceLine>
</ubl:Invoice>
`

// ciiInvoice is a Factur-X/ZUGFeRD 2.x CII invoice with the given
// guideline, as factur-x.xml, zugferd-invoice.xml or xrechnung.xml hold it.
func ciiInvoice(number, guideline string) string {
	return `<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100">
  <rsm:ExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>` + guideline + `</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:ExchangedDocumentContext>
  <rsm:ExchangedDocument>
    <ram:ID>` + number + `</ram:ID>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString format="102">20261103</udt:DateTimeString></ram:IssueDateTime>
  </rsm:ExchangedDocument>
  <rsm:SupplyChainTradeTransaction>
    <ram:ApplicableHeaderTradeAgreement>
      <ram:BuyerReference>KST-4711</ram:BuyerReference>
      <ram:SellerTradeParty>
        <ram:Name>Schmidt Elektro GmbH</ram:Name>
        <ram:SpecifiedTaxRegistration><ram:ID schemeID="FC">201/123/45678</ram:ID></ram:SpecifiedTaxRegistration>
        <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">DE811223344</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty>
        <ram:Name>Hausverwaltung Weber KG</ram:Name>
        <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">DE299887766</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:BuyerTradeParty>
    </ram:ApplicableHeaderTradeAgreement>
    <ram:ApplicableHeaderTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementPaymentMeans>
        <ram:TypeCode>58</ram:TypeCode>
        <ram:PayeePartyCreditorFinancialAccount><ram:IBANID>DE75512108001245126199</ram:IBANID></ram:PayeePartyCreditorFinancialAccount>
      </ram:SpecifiedTradeSettlementPaymentMeans>
      <ram:SpecifiedTradePaymentTerms>
        <ram:DueDateDateTime><udt:DateTimeString format="102">20261203</udt:DateTimeString></ram:DueDateDateTime>
      </ram:SpecifiedTradePaymentTerms>
      <ram:SpecifiedTradeSettlementHeaderMonetarySummation>
        <ram:LineTotalAmount>840.00</ram:LineTotalAmount>
        <ram:TaxBasisTotalAmount>840.00</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">159.60</ram:TaxTotalAmount>
        <ram:GrandTotalAmount>999.60</ram:GrandTotalAmount>
        <ram:DuePayableAmount>999.60</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementHeaderMonetarySummation>
    </ram:ApplicableHeaderTradeSettlement>
  </rsm:SupplyChainTradeTransaction>
</rsm:CrossIndustryInvoice>
`
}

// zugferd1Invoice is a ZUGFeRD 1.0 COMFORT invoice (CrossIndustryDocument),
// as the ZUGFeRD 1.0 info package's PDFs embed it.
const zugferd1Invoice = `<?xml version="1.0" encoding="UTF-8"?>
<rsm:CrossIndustryDocument xmlns:rsm="urn:ferd:CrossIndustryDocument:invoice:1p0"
  xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:12"
  xmlns:udt="urn:un:unece:uncefact:data:standard:UnqualifiedDataType:15">
  <rsm:SpecifiedExchangedDocumentContext>
    <ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:ferd:CrossIndustryDocument:invoice:1p0:comfort</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter>
  </rsm:SpecifiedExchangedDocumentContext>
  <rsm:HeaderExchangedDocument>
    <ram:ID>ZF1-2014-0815</ram:ID>
    <ram:Name>RECHNUNG</ram:Name>
    <ram:TypeCode>380</ram:TypeCode>
    <ram:IssueDateTime><udt:DateTimeString format="102">20140605</udt:DateTimeString></ram:IssueDateTime>
  </rsm:HeaderExchangedDocument>
  <rsm:SpecifiedSupplyChainTradeTransaction>
    <ram:ApplicableSupplyChainTradeAgreement>
      <ram:SellerTradeParty>
        <ram:Name>Lieferant GmbH</ram:Name>
        <ram:SpecifiedTaxRegistration><ram:ID schemeID="VA">DE123456789</ram:ID></ram:SpecifiedTaxRegistration>
      </ram:SellerTradeParty>
      <ram:BuyerTradeParty><ram:Name>Kunden AG Mitte</ram:Name></ram:BuyerTradeParty>
    </ram:ApplicableSupplyChainTradeAgreement>
    <ram:ApplicableSupplyChainTradeSettlement>
      <ram:InvoiceCurrencyCode>EUR</ram:InvoiceCurrencyCode>
      <ram:SpecifiedTradeSettlementPaymentMeans>
        <ram:PayeePartyCreditorFinancialAccount><ram:IBANID>DE08700901001234567890</ram:IBANID></ram:PayeePartyCreditorFinancialAccount>
      </ram:SpecifiedTradeSettlementPaymentMeans>
      <ram:SpecifiedTradeSettlementMonetarySummation>
        <ram:LineTotalAmount currencyID="EUR">198.00</ram:LineTotalAmount>
        <ram:TaxBasisTotalAmount currencyID="EUR">198.00</ram:TaxBasisTotalAmount>
        <ram:TaxTotalAmount currencyID="EUR">37.62</ram:TaxTotalAmount>
        <ram:GrandTotalAmount currencyID="EUR">235.62</ram:GrandTotalAmount>
        <ram:DuePayableAmount currencyID="EUR">235.62</ram:DuePayableAmount>
      </ram:SpecifiedTradeSettlementMonetarySummation>
    </ram:ApplicableSupplyChainTradeSettlement>
  </rsm:SpecifiedSupplyChainTradeTransaction>
</rsm:CrossIndustryDocument>
`

// fatturaPA is the root of an Italian FatturaPA: an e-invoice, but not
// EN 16931 UBL or CII.
const fatturaPA = `<?xml version="1.0" encoding="UTF-8"?>
<p:FatturaElettronica versione="FPR12" xmlns:p="http://ivaservizi.agenziaentrate.gov.it/docs/xsd/fatture/v1.2">
  <FatturaElettronicaHeader><DatiTrasmissione><ProgressivoInvio>00001</ProgressivoInvio></DatiTrasmissione></FatturaElettronicaHeader>
</p:FatturaElettronica>
`

func flate(b []byte) []byte {
	var out bytes.Buffer
	zw := zlib.NewWriter(&out)
	_, _ = zw.Write(b)
	_ = zw.Close()
	return out.Bytes()
}

// testObj is an indirect object of a hand-built PDF: a dictionary (or
// any object) and, for a stream, its encoded bytes.
type testObj struct {
	body   string
	stream []byte
}

func writeObj(b *bytes.Buffer, num int, o testObj) {
	fmt.Fprintf(b, "%d 0 obj\n%s", num, o.body)
	if o.stream != nil {
		b.WriteString("\nstream\n")
		b.Write(o.stream)
		b.WriteString("\nendstream")
	}
	b.WriteString("\nendobj\n")
}

// classicPDF writes objs as objects 1..n with a classic xref table and
// the trailer's /Root 1 0 R, under the given header version.
func classicPDF(version string, objs []testObj, trailer string) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%%PDF-%s\n%%\xe2\xe3\xcf\xd3\n", version)
	offsets := make([]int, len(objs))
	for i, o := range objs {
		offsets[i] = b.Len()
		writeObj(&b, i+1, o)
	}
	xref := b.Len()
	fmt.Fprintf(&b, "xref\n0 %d\n0000000000 65535 f \n", len(objs)+1)
	for _, off := range offsets {
		fmt.Fprintf(&b, "%010d 00000 n \n", off)
	}
	fmt.Fprintf(&b, "trailer\n<< /Size %d /Root 1 0 R %s>>\nstartxref\n%d\n%%%%EOF\n", len(objs)+1, trailer, xref)
	return b.Bytes()
}

// pageObjs are the objects 2..4 of a one-page document (pages, page,
// content); the catalog is object 1.
func pageObjs(text string) []testObj {
	content := fmt.Sprintf("BT /F1 18 Tf 72 760 Td (%s) Tj ET", text)
	return []testObj{
		{body: "<< /Type /Pages /Kids [3 0 R] /Count 1 >>"},
		{body: "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Contents 4 0 R /Resources << /Font << /F1 << /Type /Font /Subtype /Type1 /BaseFont /Helvetica >> >> >> >>"},
		{body: fmt.Sprintf("<< /Length %d >>", len(content)), stream: []byte(content)},
	}
}

// embeddingPDF is a PDF/A-3-style invoice PDF written the way sloppy
// producers do: the header's version is whatever the producer says (1.3
// in ZUGFeRD 1.0's reference samples), the file specification carries
// /AFRelationship and the catalog an /AF list, and the embedded file is
// FlateDecode compressed with its /Length in a separate object.
func embeddingPDF(version, fileName, xmlText string) []byte {
	data := flate([]byte(xmlText))
	objs := []testObj{
		{body: "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 5 0 R >> /AF [6 0 R] >>"},
	}
	objs = append(objs, pageObjs("Rechnung "+fileName)...)
	objs = append(objs,
		testObj{body: fmt.Sprintf("<< /Names [(%s) 6 0 R] >>", fileName)},
		testObj{body: fmt.Sprintf("<< /Type /Filespec /F (%s) /UF (%s) /Desc (Invoice) /AFRelationship /Alternative /EF << /F 7 0 R /UF 7 0 R >> >>", fileName, fileName)},
		testObj{body: "<< /Type /EmbeddedFile /Subtype /text#2Fxml /Filter /FlateDecode /Length 8 0 R /Params << /Size " + fmt.Sprint(len(xmlText)) + " >> >>", stream: data},
		testObj{body: fmt.Sprint(len(data))},
	)
	return classicPDF(version, objs, "")
}

// objStmPDF keeps the catalog, the name tree and the file specification
// compressed in an object stream, found through a cross-reference stream
// (PDF 1.5+): nothing but /ObjStm and the embedded file stream is visible
// in the bytes.
func objStmPDF(fileName, xmlText string) []byte {
	// Objects 1..3 (catalog, names, filespec) and the page objects live in
	// object stream 8.
	inStream := []string{
		"<< /Type /Catalog /Pages 4 0 R /Names << /EmbeddedFiles 2 0 R >> >>",
		fmt.Sprintf("<< /Names [<%X> 3 0 R] >>", utf16BEWithBOM(fileName)),
		fmt.Sprintf("<< /Type /Filespec /F (%s) /UF <%X> /AFRelationship /Data /EF << /F 7 0 R >> >>", fileName, utf16BEWithBOM(fileName)),
		"<< /Type /Pages /Kids [5 0 R] /Count 1 >>",
		"<< /Type /Page /Parent 4 0 R /MediaBox [0 0 595 842] /Contents 6 0 R >>",
	}
	var head, body strings.Builder
	for i, o := range inStream {
		fmt.Fprintf(&head, "%d %d ", i+1, body.Len())
		body.WriteString(o + "\n")
	}
	stm := head.String() + "\n" + body.String()
	first := len(head.String()) + 1
	content := "BT /F1 18 Tf 72 760 Td (Rechnung) Tj ET"
	data := flate([]byte(xmlText))

	var b bytes.Buffer
	b.WriteString("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	off := map[int]int{}
	off[6] = b.Len()
	writeObj(&b, 6, testObj{body: fmt.Sprintf("<< /Length %d >>", len(content)), stream: []byte(content)})
	off[7] = b.Len()
	writeObj(&b, 7, testObj{body: fmt.Sprintf("<< /Type /EmbeddedFile /Filter /FlateDecode /Length %d >>", len(data)), stream: data})
	zs := flate([]byte(stm))
	off[8] = b.Len()
	writeObj(&b, 8, testObj{body: fmt.Sprintf("<< /Type /ObjStm /N %d /First %d /Filter /FlateDecode /Length %d >>", len(inStream), first, len(zs)), stream: zs})
	// Cross-reference stream, object 9: W [1 4 2].
	var xr []byte
	row := func(typ byte, f2 uint32, f3 uint16) {
		xr = append(xr, typ)
		xr = binary.BigEndian.AppendUint32(xr, f2)
		xr = binary.BigEndian.AppendUint16(xr, f3)
	}
	row(0, 0, 65535)
	for i := range inStream {
		row(2, 8, uint16(i))
	}
	row(1, uint32(off[6]), 0)
	row(1, uint32(off[7]), 0)
	row(1, uint32(off[8]), 0)
	xrefAt := b.Len()
	row(1, uint32(xrefAt), 0)
	zx := flate(xr)
	writeObj(&b, 9, testObj{body: fmt.Sprintf("<< /Type /XRef /Size 10 /W [1 4 2] /Root 1 0 R /Filter /FlateDecode /Length %d >>", len(zx)), stream: zx})
	fmt.Fprintf(&b, "startxref\n%d\n%%%%EOF\n", xrefAt)
	return b.Bytes()
}

func utf16BEWithBOM(s string) []byte {
	out := []byte{0xFE, 0xFF}
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.BigEndian.AppendUint16(out, u)
	}
	return out
}

// incrementalPDF is a plain PDF to which an incremental update (a second
// body, xref section and trailer with /Prev) added the embedded invoice
// and a new catalog version, as signing tools and "attach invoice data"
// steps do.
func incrementalPDF(fileName, xmlText string) []byte {
	base := classicPDF("1.4", append([]testObj{{body: "<< /Type /Catalog /Pages 2 0 R >>"}}, pageObjs("Rechnung")...), "")
	prev := bytes.LastIndex(base, []byte("startxref\n"))
	var prevXref int
	fmt.Sscanf(string(base[prev+len("startxref\n"):]), "%d", &prevXref)
	b := bytes.NewBuffer(append([]byte(nil), base...))
	data := flate([]byte(xmlText))
	upd := []struct {
		num int
		o   testObj
	}{
		{1, testObj{body: "<< /Type /Catalog /Pages 2 0 R /Names << /EmbeddedFiles 5 0 R >> >>"}},
		{5, testObj{body: fmt.Sprintf("<< /Names [(%s) 6 0 R] >>", fileName)}},
		{6, testObj{body: fmt.Sprintf("<< /Type /Filespec /F (%s) /EF << /F 7 0 R >> >>", fileName)}},
		{7, testObj{body: fmt.Sprintf("<< /Type /EmbeddedFile /Filter /FlateDecode /Length %d >>", len(data)), stream: data}},
	}
	offs := map[int]int{}
	for _, u := range upd {
		offs[u.num] = b.Len()
		writeObj(b, u.num, u.o)
	}
	xref := b.Len()
	fmt.Fprintf(b, "xref\n0 1\n0000000000 65535 f \n1 1\n%010d 00000 n \n5 3\n", offs[1])
	for _, n := range []int{5, 6, 7} {
		fmt.Fprintf(b, "%010d 00000 n \n", offs[n])
	}
	fmt.Fprintf(b, "trailer\n<< /Size 8 /Root 1 0 R /Prev %d >>\nstartxref\n%d\n%%%%EOF\n", prevXref, xref)
	return b.Bytes()
}

// encryptedPDF encrypts an embedding PDF (AES-256) with an owner password
// and an empty user password: it opens without a password, but its
// strings and streams are encrypted.
func encryptedPDF(t testing.TB) []byte {
	conf := pdfcpuConfig()
	conf.UserPW, conf.OwnerPW = "", "geheim"
	var out bytes.Buffer
	in := embeddingPDF("1.7", "factur-x.xml", ciiInvoice("ENC-2026-9", "urn:cen.eu:en16931:2017"))
	if err := api.Encrypt(bytes.NewReader(in), &out, conf); err != nil {
		t.Fatalf("encrypt: %v", err)
	}
	return out.Bytes()
}

func utf16LE(s string, bom bool) []byte {
	var out []byte
	if bom {
		out = []byte{0xFF, 0xFE}
	}
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.LittleEndian.AppendUint16(out, u)
	}
	return out
}

func utf16BE(s string) []byte {
	var out []byte
	for _, u := range utf16.Encode([]rune(s)) {
		out = binary.BigEndian.AppendUint16(out, u)
	}
	return out
}
