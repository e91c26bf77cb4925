package rendition

import (
	"context"
	"strconv"
	"strings"
)

// partyField is one field of a party; its BT id depends on the party's role.
type partyField struct {
	key, de, en, path string
}

var ublParty = []partyField{
	{"name", "Name", "name", "cac:PartyLegalEntity/cbc:RegistrationName"},
	{"trading", "Handelsname", "trading name", "cac:PartyName/cbc:Name"},
	{"id", "Kennung", "identifier", "cac:PartyIdentification/cbc:ID"},
	{"legal", "Registernummer", "legal registration identifier", "cac:PartyLegalEntity/cbc:CompanyID"},
	{"vat", "Umsatzsteuer-Identifikationsnummer", "VAT identifier", "cac:PartyTaxScheme[cac:TaxScheme/cbc:ID=VAT]/cbc:CompanyID"},
	{"tax", "Steuernummer", "tax registration identifier", "cac:PartyTaxScheme[cac:TaxScheme/cbc:ID!=VAT]/cbc:CompanyID"},
	{"", "Steuerschema", "tax scheme", "cac:PartyTaxScheme/cac:TaxScheme/cbc:ID"},
	{"legalinfo", "Weitere rechtliche Informationen", "additional legal information", "cac:PartyLegalEntity/cbc:CompanyLegalForm"},
	{"endpoint", "Elektronische Adresse", "electronic address", "cbc:EndpointID"},
	{"street", "Straße", "address line 1", "cac:PostalAddress/cbc:StreetName"},
	{"street2", "Adresszusatz", "address line 2", "cac:PostalAddress/cbc:AdditionalStreetName"},
	{"line3", "Adresszeile 3", "address line 3", "cac:PostalAddress/cac:AddressLine/cbc:Line"},
	{"zip", "Postleitzahl", "post code", "cac:PostalAddress/cbc:PostalZone"},
	{"city", "Ort", "city", "cac:PostalAddress/cbc:CityName"},
	{"subdiv", "Region", "country subdivision", "cac:PostalAddress/cbc:CountrySubentity"},
	{"country", "Land", "country code", "cac:PostalAddress/cac:Country/cbc:IdentificationCode"},
	{"contact", "Kontaktstelle", "contact point", "cac:Contact/cbc:Name"},
	{"phone", "Telefon", "contact telephone number", "cac:Contact/cbc:Telephone"},
	{"email", "E-Mail", "contact email address", "cac:Contact/cbc:ElectronicMail"},
}

var ciiParty = []partyField{
	{"name", "Name", "name", "ram:Name"},
	{"trading", "Handelsname", "trading name", "ram:SpecifiedLegalOrganization/ram:TradingBusinessName"},
	{"id", "Kennung", "identifier", "ram:ID"},
	{"id", "Kennung", "identifier", "ram:GlobalID"},
	{"legal", "Registernummer", "legal registration identifier", "ram:SpecifiedLegalOrganization/ram:ID"},
	{"vat", "Umsatzsteuer-Identifikationsnummer", "VAT identifier", "ram:SpecifiedTaxRegistration/ram:ID[@schemeID=VA]"},
	{"tax", "Steuernummer", "tax registration identifier", "ram:SpecifiedTaxRegistration/ram:ID[@schemeID!=VA]"},
	{"legalinfo", "Weitere rechtliche Informationen", "additional legal information", "ram:Description"},
	{"endpoint", "Elektronische Adresse", "electronic address", "ram:URIUniversalCommunication/ram:URIID"},
	{"street", "Straße", "address line 1", "ram:PostalTradeAddress/ram:LineOne"},
	{"street2", "Adresszusatz", "address line 2", "ram:PostalTradeAddress/ram:LineTwo"},
	{"line3", "Adresszeile 3", "address line 3", "ram:PostalTradeAddress/ram:LineThree"},
	{"zip", "Postleitzahl", "post code", "ram:PostalTradeAddress/ram:PostcodeCode"},
	{"city", "Ort", "city", "ram:PostalTradeAddress/ram:CityName"},
	{"subdiv", "Region", "country subdivision", "ram:PostalTradeAddress/ram:CountrySubDivisionName"},
	{"country", "Land", "country code", "ram:PostalTradeAddress/ram:CountryID"},
	{"contact", "Kontaktstelle", "contact point", "ram:DefinedTradeContact/ram:PersonName"},
	{"contact", "Abteilung", "contact point", "ram:DefinedTradeContact/ram:DepartmentName"},
	{"phone", "Telefon", "contact telephone number", "ram:DefinedTradeContact/ram:TelephoneUniversalCommunication/ram:CompleteNumber"},
	{"email", "E-Mail", "contact email address", "ram:DefinedTradeContact/ram:EmailURIUniversalCommunication/ram:URIID"},
}

// role names a party and gives the BT ids of its fields.
type role struct {
	title, en, bg string
	bt            map[string]string
}

var (
	sellerRole = role{"Verkäufer", "Seller", "BG-4", map[string]string{
		"name": "BT-27", "trading": "BT-28", "id": "BT-29", "legal": "BT-30", "vat": "BT-31", "tax": "BT-32",
		"legalinfo": "BT-33", "endpoint": "BT-34", "street": "BT-35", "street2": "BT-36", "line3": "BT-162",
		"city": "BT-37", "zip": "BT-38", "subdiv": "BT-39", "country": "BT-40", "contact": "BT-41",
		"phone": "BT-42", "email": "BT-43"}}
	buyerRole = role{"Käufer", "Buyer", "BG-7", map[string]string{
		"name": "BT-44", "trading": "BT-45", "id": "BT-46", "legal": "BT-47", "vat": "BT-48",
		"endpoint": "BT-49", "street": "BT-50", "street2": "BT-51", "line3": "BT-163", "city": "BT-52",
		"zip": "BT-53", "subdiv": "BT-54", "country": "BT-55", "contact": "BT-56", "phone": "BT-57", "email": "BT-58"}}
	payeeRole = role{"Zahlungsempfänger", "Payee", "BG-10", map[string]string{
		"name": "BT-59", "trading": "BT-59", "id": "BT-60", "legal": "BT-61"}}
	taxRepRole = role{"Steuerbevollmächtigter des Verkäufers", "Seller tax representative party", "BG-11", map[string]string{
		"name": "BT-62", "trading": "BT-62", "vat": "BT-63", "street": "BT-64", "street2": "BT-65", "line3": "BT-164",
		"city": "BT-66", "zip": "BT-67", "subdiv": "BT-68", "country": "BT-69"}}
	deliveryRole = role{"Lieferung", "Delivery information", "BG-13", map[string]string{
		"name": "BT-70", "trading": "BT-70", "id": "BT-71", "street": "BT-75", "street2": "BT-76", "line3": "BT-165",
		"city": "BT-77", "zip": "BT-78", "subdiv": "BT-79", "country": "BT-80"}}
)

func (m *mapper) party(s *section, n *node, r role, fields []partyField) {
	for _, pf := range fields {
		en := ""
		if pf.key != "" {
			en = r.en + " " + pf.en
		} else {
			en = pf.en
		}
		m.fields(s, n, []f{{pf.de, en, r.bt[pf.key], pf.path}})
	}
}

var ublHeader = []f{
	{"Rechnungsnummer", "Invoice number", "BT-1", "cbc:ID"},
	{"Rechnungsdatum", "Invoice issue date", "BT-2", "cbc:IssueDate"},
	{"Rechnungsart", "Invoice type code", "BT-3", "cbc:InvoiceTypeCode"},
	{"Rechnungsart", "Invoice type code", "BT-3", "cbc:CreditNoteTypeCode"},
	{"Währung", "Invoice currency code", "BT-5", "cbc:DocumentCurrencyCode"},
	{"Steuerwährung", "VAT accounting currency code", "BT-6", "cbc:TaxCurrencyCode"},
	{"Liefer-/Leistungsdatum (Steuerdatum)", "Value added tax point date", "BT-7", "cbc:TaxPointDate"},
	{"Code für das Steuerdatum", "Value added tax point date code", "BT-8", "cac:InvoicePeriod/cbc:DescriptionCode"},
	{"Fälligkeitsdatum", "Payment due date", "BT-9", "cbc:DueDate"},
	{"Fälligkeitsdatum", "Payment due date", "BT-9", "cac:PaymentMeans/cbc:PaymentDueDate"},
	{"Käuferreferenz (Leitweg-ID)", "Buyer reference", "BT-10", "cbc:BuyerReference"},
	{"Projektreferenz", "Project reference", "BT-11", "cac:ProjectReference/cbc:ID"},
	{"Vertragsnummer", "Contract reference", "BT-12", "cac:ContractDocumentReference/cbc:ID"},
	{"Bestellnummer", "Purchase order reference", "BT-13", "cac:OrderReference/cbc:ID"},
	{"Auftragsnummer", "Sales order reference", "BT-14", "cac:OrderReference/cbc:SalesOrderID"},
	{"Wareneingangsmeldung", "Receiving advice reference", "BT-15", "cac:ReceiptDocumentReference/cbc:ID"},
	{"Versandanzeige", "Despatch advice reference", "BT-16", "cac:DespatchDocumentReference/cbc:ID"},
	{"Ausschreibung/Los", "Tender or lot reference", "BT-17", "cac:OriginatorDocumentReference/cbc:ID"},
	{"Buchungsreferenz des Käufers", "Buyer accounting reference", "BT-19", "cbc:AccountingCost"},
	{"Abrechnungszeitraum von", "Invoicing period start date", "BT-73", "cac:InvoicePeriod/cbc:StartDate"},
	{"Abrechnungszeitraum bis", "Invoicing period end date", "BT-74", "cac:InvoicePeriod/cbc:EndDate"},
	{"Vorausgegangene Rechnung", "Preceding invoice reference", "BT-25", "cac:BillingReference/cac:InvoiceDocumentReference/cbc:ID"},
	{"Datum der vorausgegangenen Rechnung", "Preceding invoice issue date", "BT-26", "cac:BillingReference/cac:InvoiceDocumentReference/cbc:IssueDate"},
	{"Prozesskennung", "Business process type", "BT-23", "cbc:ProfileID"},
	{"Spezifikationskennung", "Specification identifier", "BT-24", "cbc:CustomizationID"},
	{"Bemerkung zur Rechnung", "Invoice note", "BT-22", "cbc:Note"},
}

var ciiHeader = []f{
	{"Rechnungsnummer", "Invoice number", "BT-1", "rsm:ExchangedDocument/ram:ID"},
	{"Rechnungsdatum", "Invoice issue date", "BT-2", "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString"},
	{"Rechnungsart", "Invoice type code", "BT-3", "rsm:ExchangedDocument/ram:TypeCode"},
	{"Währung", "Invoice currency code", "BT-5", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceCurrencyCode"},
	{"Steuerwährung", "VAT accounting currency code", "BT-6", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:TaxCurrencyCode"},
	{"Liefer-/Leistungsdatum (Steuerdatum)", "Value added tax point date", "BT-7", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:TaxPointDate/udt:DateString"},
	{"Code für das Steuerdatum", "Value added tax point date code", "BT-8", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:ApplicableTradeTax/ram:DueDateTypeCode"},
	{"Fälligkeitsdatum", "Payment due date", "BT-9", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:SpecifiedTradePaymentTerms/ram:DueDateDateTime/udt:DateTimeString"},
	{"Käuferreferenz (Leitweg-ID)", "Buyer reference", "BT-10", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:BuyerReference"},
	{"Projektreferenz", "Project reference", "BT-11", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:SpecifiedProcuringProject/ram:ID"},
	{"Projektname", "Project name", "BT-11", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:SpecifiedProcuringProject/ram:Name"},
	{"Vertragsnummer", "Contract reference", "BT-12", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:ContractReferencedDocument/ram:IssuerAssignedID"},
	{"Bestellnummer", "Purchase order reference", "BT-13", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:BuyerOrderReferencedDocument/ram:IssuerAssignedID"},
	{"Auftragsnummer", "Sales order reference", "BT-14", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeAgreement/ram:SellerOrderReferencedDocument/ram:IssuerAssignedID"},
	{"Wareneingangsmeldung", "Receiving advice reference", "BT-15", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeDelivery/ram:ReceivingAdviceReferencedDocument/ram:IssuerAssignedID"},
	{"Versandanzeige", "Despatch advice reference", "BT-16", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeDelivery/ram:DespatchAdviceReferencedDocument/ram:IssuerAssignedID"},
	{"Buchungsreferenz des Käufers", "Buyer accounting reference", "BT-19", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"},
	{"Art der Buchungsreferenz", "accounting account type code", "", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:ReceivableSpecifiedTradeAccountingAccount/ram:TypeCode"},
	{"Abrechnungszeitraum von", "Invoicing period start date", "BT-73", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString"},
	{"Abrechnungszeitraum bis", "Invoicing period end date", "BT-74", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString"},
	{"Vorausgegangene Rechnung", "Preceding invoice reference", "BT-25", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceReferencedDocument/ram:IssuerAssignedID"},
	{"Datum der vorausgegangenen Rechnung", "Preceding invoice issue date", "BT-26", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceReferencedDocument/ram:FormattedIssueDateTime/qdt:DateTimeString"},
	{"Art der vorausgegangenen Rechnung", "preceding invoice type code", "", "rsm:SupplyChainTradeTransaction/ram:ApplicableHeaderTradeSettlement/ram:InvoiceReferencedDocument/ram:TypeCode"},
	{"Dokumentname", "document name", "", "rsm:ExchangedDocument/ram:Name"},
	{"Prozesskennung", "Business process type", "BT-23", "rsm:ExchangedDocumentContext/ram:BusinessProcessSpecifiedDocumentContextParameter/ram:ID"},
	{"Spezifikationskennung", "Specification identifier", "BT-24", "rsm:ExchangedDocumentContext/ram:GuidelineSpecifiedDocumentContextParameter/ram:ID"},
}

const (
	ciiTx         = "rsm:SupplyChainTradeTransaction/"
	ciiAgreement  = ciiTx + "ram:ApplicableHeaderTradeAgreement"
	ciiDelivery   = ciiTx + "ram:ApplicableHeaderTradeDelivery"
	ciiSettlement = ciiTx + "ram:ApplicableHeaderTradeSettlement"
)

// build maps the tree onto the sections of the rendition.
func build(ctx context.Context, t *tree, lim limits) (*doc, error) {
	m := &mapper{t: t, paths: map[string][]seg{}}
	r := t.root
	d := &doc{}
	var typeCode, number *node
	if t.syntax == cii {
		d.syntax = "UN/CEFACT CII CrossIndustryInvoice"
		typeCode = m.first(r, "rsm:ExchangedDocument/ram:TypeCode")
		number = m.first(r, "rsm:ExchangedDocument/ram:ID")
	} else {
		d.syntax = "UBL Invoice"
		if t.syntax == ublCreditNote {
			d.syntax = "UBL CreditNote"
		}
		typeCode = m.first(r, "cbc:InvoiceTypeCode")
		if typeCode == nil {
			typeCode = m.first(r, "cbc:CreditNoteTypeCode")
		}
		number = m.first(r, "cbc:ID")
	}
	code := ""
	if typeCode != nil {
		code = typeCode.text
	}
	d.title = docTitle(t.syntax, code)
	if number != nil {
		d.number = number.text
	}
	add := func(title string) *section {
		s := &section{title: title}
		d.sections = append(d.sections, s)
		return s
	}

	inv := add("Rechnungsdaten / Invoice data")
	if t.syntax == cii {
		m.fields(inv, r, ciiHeader)
		for _, n := range m.find(r, "rsm:ExchangedDocument/ram:IncludedNote") {
			v := m.joined(n, "ram:Content")
			if sc := m.joined(n, "ram:SubjectCode", "ram:ContentCode"); sc != "" {
				v = "[" + strings.ReplaceAll(sc, "\n", ", ") + "] " + v
			}
			inv.kv(label("Bemerkung zur Rechnung", "Invoice note", "BT-21/BT-22"), v)
		}
		for _, n := range m.find(r, ciiAgreement+"/ram:AdditionalReferencedDocument[ram:TypeCode=130]") {
			inv.kv(label("Objektkennung", "Invoiced object identifier", "BT-18"), m.joined(n, "ram:IssuerAssignedID", "ram:ReferenceTypeCode", "ram:TypeCode"))
		}
		for _, n := range m.find(r, ciiAgreement+"/ram:AdditionalReferencedDocument[ram:TypeCode=50]") {
			inv.kv(label("Ausschreibung/Los", "Tender or lot reference", "BT-17"), m.joined(n, "ram:IssuerAssignedID", "ram:TypeCode"))
		}
	} else {
		m.fields(inv, r, ublHeader)
		for _, n := range m.find(r, "cac:AdditionalDocumentReference[cbc:DocumentTypeCode=130]") {
			inv.kv(label("Objektkennung", "Invoiced object identifier", "BT-18"), m.joined(n, "cbc:ID", "cbc:DocumentTypeCode"))
		}
	}

	parties := []struct {
		r         role
		ubl, ciiP string
	}{
		{sellerRole, "cac:AccountingSupplierParty/cac:Party", ciiAgreement + "/ram:SellerTradeParty"},
		{taxRepRole, "cac:TaxRepresentativeParty", ciiAgreement + "/ram:SellerTaxRepresentativeTradeParty"},
		{buyerRole, "cac:AccountingCustomerParty/cac:Party", ciiAgreement + "/ram:BuyerTradeParty"},
		{payeeRole, "cac:PayeeParty", ciiSettlement + "/ram:PayeeTradeParty"},
	}
	for _, p := range parties {
		path, fields := p.ubl, ublParty
		if t.syntax == cii {
			path, fields = p.ciiP, ciiParty
		}
		for _, n := range m.find(r, path) {
			s := add(p.r.title + " / " + p.r.en + " (" + p.r.bg + ")")
			m.party(s, n, p.r, fields)
		}
	}

	// delivery
	if t.syntax == cii {
		del := m.first(r, ciiDelivery)
		if del != nil {
			s := add(deliveryRole.title + " / " + deliveryRole.en + " (" + deliveryRole.bg + ")")
			for _, n := range m.find(del, "ram:ShipToTradeParty") {
				m.party(s, n, deliveryRole, ciiParty)
			}
			m.fields(s, del, []f{{"Lieferdatum", "Actual delivery date", "BT-72", "ram:ActualDeliverySupplyChainEvent/ram:OccurrenceDateTime/udt:DateTimeString"}})
			if len(s.items) == 0 {
				d.sections = d.sections[:len(d.sections)-1]
			}
		}
	} else {
		for _, n := range m.find(r, "cac:Delivery") {
			s := add(deliveryRole.title + " / " + deliveryRole.en + " (" + deliveryRole.bg + ")")
			m.fields(s, n, []f{
				{"Name des Empfängers", "Deliver to party name", "BT-70", "cac:DeliveryParty/cac:PartyName/cbc:Name"},
				{"Kennung des Lieferorts", "Deliver to location identifier", "BT-71", "cac:DeliveryLocation/cbc:ID"},
				{"Lieferdatum", "Actual delivery date", "BT-72", "cbc:ActualDeliveryDate"},
			})
			loc := m.first(n, "cac:DeliveryLocation/cac:Address")
			if loc != nil {
				var addr []partyField
				for _, pf := range ublParty {
					if strings.HasPrefix(pf.path, "cac:PostalAddress/") {
						pf.path = strings.TrimPrefix(pf.path, "cac:PostalAddress/")
						addr = append(addr, pf)
					}
				}
				m.party(s, loc, deliveryRole, addr)
			}
		}
	}

	if err := m.lines(ctx, d, lim); err != nil {
		return nil, err
	}
	m.allowances(add("Nachlässe und Zuschläge auf Dokumentenebene / Document level allowances and charges (BG-20, BG-21)"))
	m.totals(add("Gesamtbeträge / Document totals (BG-22)"))
	m.vat(add("Umsatzsteueraufschlüsselung / VAT breakdown (BG-23)"))
	m.payment(add("Zahlungsinformationen / Payment instructions (BG-16), Zahlungsbedingungen / Payment terms (BT-20)"))
	m.documents(add("Rechnungsbegründende Unterlagen / Additional supporting documents (BG-24)"))

	// drop empty sections
	kept := d.sections[:0]
	for _, s := range d.sections {
		if len(s.items) > 0 {
			kept = append(kept, s)
		}
	}
	d.sections = kept

	more := &section{title: "Weitere Angaben / Further information"}
	// grouped by parent element: its path once, then each name and value
	parent := ""
	for i, pv := range m.rest(r, false) {
		if i&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		p, name := pv[0], pv[0]
		if j := strings.LastIndexByte(strings.TrimSuffix(p, "/"), '/'); j > 0 {
			p, name = p[:j], p[j+1:]
		} else {
			p = ""
		}
		if p != parent {
			parent = p
			if p != "" {
				more.sub(p)
			}
		}
		more.kv(name, pv[1])
	}
	if t.skippedVals > 0 {
		more.note("… " + strconv.Itoa(t.skippedVals) + " weitere Werte nicht dargestellt (Grenze der Darstellung: " + strconv.Itoa(lim.maxValues) + " Werte) / further values not shown")
	}
	if len(more.items) > 0 {
		d.sections = append(d.sections, more)
	}
	return d, nil
}

var lineHead = []string{
	"Pos.\nLine (BT-126)",
	"Bezeichnung / Item name (BT-153)",
	"Menge\n(BT-129)",
	"Einheit\n(BT-130)",
	"Einzelpreis netto / Item net price (BT-146)",
	"Gesamt netto / Line net amount (BT-131)",
	"USt. / VAT (BT-151, BT-152)",
}

var lineWidths = []float64{19, 45, 16, 26, 25, 25, 24}

type lineSpec struct {
	elem, pos, name, qty, price, net, vatCat, vatRate, vatScheme string
	details                                                      []f
	allowance                                                    string
	allowanceFields                                              []f
	sub                                                          string // sub-lines, XRechnung's BG-DEX-01
}

var ublLine = lineSpec{
	pos: "cbc:ID", name: "cac:Item/cbc:Name", price: "cac:Price/cbc:PriceAmount", net: "cbc:LineExtensionAmount",
	vatCat: "cac:Item/cac:ClassifiedTaxCategory/cbc:ID", vatRate: "cac:Item/cac:ClassifiedTaxCategory/cbc:Percent",
	vatScheme: "cac:Item/cac:ClassifiedTaxCategory/cac:TaxScheme/cbc:ID",
	details: []f{
		{"Positionsnotiz", "Invoice line note", "BT-127", "cbc:Note"},
		{"Artikelbeschreibung", "Item description", "BT-154", "cac:Item/cbc:Description"},
		{"Artikelnummer des Verkäufers", "Item Seller's identifier", "BT-155", "cac:Item/cac:SellersItemIdentification/cbc:ID"},
		{"Artikelnummer des Käufers", "Item Buyer's identifier", "BT-156", "cac:Item/cac:BuyersItemIdentification/cbc:ID"},
		{"Artikelkennung", "Item standard identifier", "BT-157", "cac:Item/cac:StandardItemIdentification/cbc:ID"},
		{"Artikelklassifizierung", "Item classification identifier", "BT-158", "cac:Item/cac:CommodityClassification/cbc:ItemClassificationCode"},
		{"Herkunftsland", "Item country of origin", "BT-159", "cac:Item/cac:OriginCountry/cbc:IdentificationCode"},
		{"Artikeleigenschaft", "Item attribute name", "BT-160", "cac:Item/cac:AdditionalItemProperty/cbc:Name"},
		{"Wert der Eigenschaft", "Item attribute value", "BT-161", "cac:Item/cac:AdditionalItemProperty/cbc:Value"},
		{"Basismenge zum Preis", "Item price base quantity", "BT-149, BT-150", "cac:Price/cbc:BaseQuantity"},
		{"Preisnachlass", "Item price discount", "BT-147", "cac:Price/cac:AllowanceCharge/cbc:Amount"},
		{"Bruttopreis", "Item gross price", "BT-148", "cac:Price/cac:AllowanceCharge/cbc:BaseAmount"},
		{"Zu-/Abschlag am Preis", "Charge indicator", "", "cac:Price/cac:AllowanceCharge/cbc:ChargeIndicator"},
		{"Abrechnungszeitraum von", "Invoice line period start date", "BT-134", "cac:InvoicePeriod/cbc:StartDate"},
		{"Abrechnungszeitraum bis", "Invoice line period end date", "BT-135", "cac:InvoicePeriod/cbc:EndDate"},
		{"Bestellposition", "Referenced purchase order line reference", "BT-132", "cac:OrderLineReference/cbc:LineID"},
		{"Objektkennung", "Invoice line object identifier", "BT-128", "cac:DocumentReference/cbc:ID"},
		{"Dokumentart der Objektkennung", "document type code", "", "cac:DocumentReference/cbc:DocumentTypeCode"},
		{"Buchungsreferenz des Käufers", "Invoice line Buyer accounting reference", "BT-133", "cbc:AccountingCost"},
	},
	sub:       "cac:SubInvoiceLine",
	allowance: "cac:AllowanceCharge",
	allowanceFields: []f{
		{"Zuschlag (true) / Nachlass (false)", "Charge indicator", "", "cbc:ChargeIndicator"},
		{"Betrag", "amount", "BT-136/141", "cbc:Amount"},
		{"Grundbetrag", "base amount", "BT-137/142", "cbc:BaseAmount"},
		{"Prozentsatz", "percentage", "BT-138/143", "cbc:MultiplierFactorNumeric"},
		{"Grund", "reason", "BT-139/144", "cbc:AllowanceChargeReason"},
		{"Code", "reason code", "BT-140/145", "cbc:AllowanceChargeReasonCode"},
	},
}

const (
	ciiLA = "ram:SpecifiedLineTradeAgreement/"
	ciiLS = "ram:SpecifiedLineTradeSettlement/"
	ciiLP = "ram:SpecifiedTradeProduct/"
)

var ciiLine = lineSpec{
	elem: "ram:IncludedSupplyChainTradeLineItem",
	pos:  "ram:AssociatedDocumentLineDocument/ram:LineID", name: ciiLP + "ram:Name",
	qty: "ram:SpecifiedLineTradeDelivery/ram:BilledQuantity", price: ciiLA + "ram:NetPriceProductTradePrice/ram:ChargeAmount",
	net:    ciiLS + "ram:SpecifiedTradeSettlementLineMonetarySummation/ram:LineTotalAmount",
	vatCat: ciiLS + "ram:ApplicableTradeTax/ram:CategoryCode", vatRate: ciiLS + "ram:ApplicableTradeTax/ram:RateApplicablePercent",
	vatScheme: ciiLS + "ram:ApplicableTradeTax/ram:TypeCode",
	details: []f{
		{"Positionsnotiz", "Invoice line note", "BT-127", "ram:AssociatedDocumentLineDocument/ram:IncludedNote/ram:Content"},
		{"Betreff der Notiz", "note subject code", "", "ram:AssociatedDocumentLineDocument/ram:IncludedNote/ram:SubjectCode"},
		{"Artikelbeschreibung", "Item description", "BT-154", ciiLP + "ram:Description"},
		{"Artikelnummer des Verkäufers", "Item Seller's identifier", "BT-155", ciiLP + "ram:SellerAssignedID"},
		{"Artikelnummer des Käufers", "Item Buyer's identifier", "BT-156", ciiLP + "ram:BuyerAssignedID"},
		{"Artikelkennung", "Item standard identifier", "BT-157", ciiLP + "ram:GlobalID"},
		{"Artikelklassifizierung", "Item classification identifier", "BT-158", ciiLP + "ram:DesignatedProductClassification/ram:ClassCode"},
		{"Herkunftsland", "Item country of origin", "BT-159", ciiLP + "ram:OriginTradeCountry/ram:ID"},
		{"Artikeleigenschaft", "Item attribute name", "BT-160", ciiLP + "ram:ApplicableProductCharacteristic/ram:Description"},
		{"Wert der Eigenschaft", "Item attribute value", "BT-161", ciiLP + "ram:ApplicableProductCharacteristic/ram:Value"},
		{"Basismenge zum Preis", "Item price base quantity", "BT-149, BT-150", ciiLA + "ram:NetPriceProductTradePrice/ram:BasisQuantity"},
		{"Bruttopreis", "Item gross price", "BT-148", ciiLA + "ram:GrossPriceProductTradePrice/ram:ChargeAmount"},
		{"Basismenge zum Bruttopreis", "gross price base quantity", "", ciiLA + "ram:GrossPriceProductTradePrice/ram:BasisQuantity"},
		{"Zu-/Abschlag am Preis", "Charge indicator", "", ciiLA + "ram:GrossPriceProductTradePrice/ram:AppliedTradeAllowanceCharge/ram:ChargeIndicator/udt:Indicator"},
		{"Preisnachlass", "Item price discount", "BT-147", ciiLA + "ram:GrossPriceProductTradePrice/ram:AppliedTradeAllowanceCharge/ram:ActualAmount"},
		{"Bestellposition", "Referenced purchase order line reference", "BT-132", ciiLA + "ram:BuyerOrderReferencedDocument/ram:LineID"},
		{"Abrechnungszeitraum von", "Invoice line period start date", "BT-134", ciiLS + "ram:BillingSpecifiedPeriod/ram:StartDateTime/udt:DateTimeString"},
		{"Abrechnungszeitraum bis", "Invoice line period end date", "BT-135", ciiLS + "ram:BillingSpecifiedPeriod/ram:EndDateTime/udt:DateTimeString"},
		{"Objektkennung", "Invoice line object identifier", "BT-128", ciiLS + "ram:AdditionalReferencedDocument/ram:IssuerAssignedID"},
		{"Dokumentart der Objektkennung", "document type code", "", ciiLS + "ram:AdditionalReferencedDocument/ram:TypeCode"},
		{"Schema der Objektkennung", "Invoice line object identifier identification scheme", "BT-128-1", ciiLS + "ram:AdditionalReferencedDocument/ram:ReferenceTypeCode"},
		{"Buchungsreferenz des Käufers", "Invoice line Buyer accounting reference", "BT-133", ciiLS + "ram:ReceivableSpecifiedTradeAccountingAccount/ram:ID"},
		{"Art der Buchungsreferenz", "accounting account type code", "", ciiLS + "ram:ReceivableSpecifiedTradeAccountingAccount/ram:TypeCode"},
		{"Übergeordnete Position", "parent line identifier", "", "ram:AssociatedDocumentLineDocument/ram:ParentLineID"},
		{"Art der Position", "line status reason code", "", "ram:AssociatedDocumentLineDocument/ram:LineStatusReasonCode"},
	},
	allowance: ciiLS + "ram:SpecifiedTradeAllowanceCharge",
	allowanceFields: []f{
		{"Zuschlag (true) / Nachlass (false)", "Charge indicator", "", "ram:ChargeIndicator/udt:Indicator"},
		{"Betrag", "amount", "BT-136/141", "ram:ActualAmount"},
		{"Grundbetrag", "base amount", "BT-137/142", "ram:BasisAmount"},
		{"Prozentsatz", "percentage", "BT-138/143", "ram:CalculationPercent"},
		{"Grund", "reason", "BT-139/144", "ram:Reason"},
		{"Code", "reason code", "BT-140/145", "ram:ReasonCode"},
	},
}

func (m *mapper) lines(ctx context.Context, d *doc, lim limits) error {
	t, r := m.t, m.t.root
	spec := ublLine
	var lines []*node
	switch t.syntax {
	case ublInvoice:
		spec.qty = "cbc:InvoicedQuantity"
		lines = m.find(r, "cac:InvoiceLine")
	case ublCreditNote:
		spec.qty = "cbc:CreditedQuantity"
		lines = m.find(r, "cac:CreditNoteLine")
	case cii:
		spec = ciiLine
		lines = m.find(r, "rsm:SupplyChainTradeTransaction/ram:IncludedSupplyChainTradeLineItem")
	}
	if len(lines) == 0 && t.skippedLine == 0 {
		return nil
	}
	s := &section{title: "Rechnungspositionen / Invoice lines (BG-25)"}
	d.sections = append(d.sections, s)
	tb := &table{head: lineHead, widths: lineWidths, right: []bool{false, false, true, false, true, true, false}}
	for i, ln := range lines {
		if i&63 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		tb.rows = append(tb.rows, m.lineRows(ln, spec, 0)...)
	}
	s.items = append(s.items, item{kind: tableItem, table: tb})
	if t.skippedLine > 0 {
		s.note("… " + strconv.Itoa(t.skippedLine) + " weitere Positionen nicht dargestellt (Grenze der Darstellung: " + strconv.Itoa(lim.maxLines) + " Positionen) / further invoice lines not shown")
	}
	return nil
}

// lineRows is the row of one invoice line, followed by the rows of its
// sub-lines (XRechnung's cac:SubInvoiceLine, BG-DEX-01). The recursion is
// bounded by MaxDepth, as the tree is.
func (m *mapper) lineRows(ln *node, spec lineSpec, level int) []row {
	rw := row{cells: make([]string, 7)}
	rw.cells[0] = m.joined(ln, spec.pos)
	rw.cells[1] = strings.Repeat("› ", level) + m.joined(ln, spec.name)
	var units []string
	var qtys []string
	for _, q := range m.find(ln, spec.qty) {
		q.used = true
		qtys = append(qtys, q.text)
		for i := range q.attrs {
			a := &q.attrs[i]
			a.used = true
			u := a.value
			if a.name == "unitCode" {
				if nm := unitNames[u]; nm != "" {
					u += " (" + nm + ")"
				}
			} else {
				u = a.name + ": " + u
			}
			units = append(units, u)
		}
	}
	rw.cells[2] = strings.Join(qtys, "\n")
	rw.cells[3] = strings.Join(units, "\n")
	rw.cells[4] = m.joined(ln, spec.price)
	rw.cells[5] = m.joined(ln, spec.net)
	// "S 19 % VAT" on one line, the category's meaning below
	var vat, meaning []string
	for _, c := range m.find(ln, spec.vatCat) {
		v := m.show(c)
		if nm := vatCategories[c.text]; nm != "" {
			v = strings.TrimSuffix(v, " ("+nm+")") // CII's ram:CategoryCode brings it along
			meaning = append(meaning, "("+nm+")")
		}
		vat = append(vat, v)
	}
	for _, p := range m.find(ln, spec.vatRate) {
		vat = append(vat, m.show(p)+" %")
	}
	if sc := m.joined(ln, spec.vatScheme); sc != "" {
		vat = append(vat, strings.ReplaceAll(sc, "\n", " "))
	}
	rw.cells[6] = strings.Join(append([]string{strings.Join(vat, " ")}, meaning...), "\n")
	if level > 0 && ln.parent != nil {
		rw.detail = append(rw.detail, "Unterposition von / sub-line of: "+m.textAt(ln.parent, spec.pos))
	}
	rw.detail = append(rw.detail, m.inline(ln, spec.details)...)
	for _, a := range m.find(ln, spec.allowance) {
		parts := m.inline(a, spec.allowanceFields)
		for _, pv := range m.rest(a, true) {
			parts = append(parts, pv[0]+": "+pv[1])
		}
		rw.detail = append(rw.detail, "Nachlass/Zuschlag auf Positionsebene / Invoice line allowance or charge (BG-27, BG-28): "+strings.Join(parts, "; "))
	}
	var subs []row
	if spec.sub != "" {
		for _, sl := range m.find(ln, spec.sub) {
			subs = append(subs, m.lineRows(sl, spec, level+1)...)
		}
	}
	for _, pv := range m.rest(ln, true) {
		rw.detail = append(rw.detail, pv[0]+": "+pv[1])
	}
	return append([]row{rw}, subs...)
}

// textAt is the text at path below n as written, without marking it.
func (m *mapper) textAt(n *node, path string) string {
	if k := m.first(n, path); k != nil {
		return k.text
	}
	return ""
}

func (m *mapper) allowances(s *section) {
	r := m.t.root
	path, fs := "cac:AllowanceCharge", []f{
		{"Zuschlag (true) / Nachlass (false)", "Charge indicator", "", "cbc:ChargeIndicator"},
		{"Betrag", "amount", "BT-92/99", "cbc:Amount"},
		{"Grundbetrag", "base amount", "BT-93/100", "cbc:BaseAmount"},
		{"Prozentsatz", "percentage", "BT-94/101", "cbc:MultiplierFactorNumeric"},
		{"Umsatzsteuerkategorie", "VAT category code", "BT-95/102", "cac:TaxCategory/cbc:ID"},
		{"Umsatzsteuersatz", "VAT rate", "BT-96/103", "cac:TaxCategory/cbc:Percent"},
		{"Steuerschema", "tax scheme", "", "cac:TaxCategory/cac:TaxScheme/cbc:ID"},
		{"Grund", "reason", "BT-97/104", "cbc:AllowanceChargeReason"},
		{"Code", "reason code", "BT-98/105", "cbc:AllowanceChargeReasonCode"},
	}
	if m.t.syntax == cii {
		path, fs = ciiSettlement+"/ram:SpecifiedTradeAllowanceCharge", []f{
			{"Zuschlag (true) / Nachlass (false)", "Charge indicator", "", "ram:ChargeIndicator/udt:Indicator"},
			{"Betrag", "amount", "BT-92/99", "ram:ActualAmount"},
			{"Grundbetrag", "base amount", "BT-93/100", "ram:BasisAmount"},
			{"Prozentsatz", "percentage", "BT-94/101", "ram:CalculationPercent"},
			{"Umsatzsteuerkategorie", "VAT category code", "BT-95/102", "ram:CategoryTradeTax/ram:CategoryCode"},
			{"Umsatzsteuersatz", "VAT rate", "BT-96/103", "ram:CategoryTradeTax/ram:RateApplicablePercent"},
			{"Steuerart", "tax type", "", "ram:CategoryTradeTax/ram:TypeCode"},
			{"Grund", "reason", "BT-97/104", "ram:Reason"},
			{"Code", "reason code", "BT-98/105", "ram:ReasonCode"},
		}
	}
	for i, n := range m.find(r, path) {
		kind := "Nachlass / Document level allowance (BG-20)"
		if ind := m.first(n, fs[0].path); ind != nil && ind.text == "true" {
			kind = "Zuschlag / Document level charge (BG-21)"
		}
		s.sub(strconv.Itoa(i+1) + ". " + kind)
		m.fields(s, n, fs)
	}
}

func (m *mapper) totals(s *section) {
	r := m.t.root
	if m.t.syntax == cii {
		p := ciiSettlement + "/ram:SpecifiedTradeSettlementHeaderMonetarySummation/"
		m.fields(s, r, []f{
			{"Summe der Positionen netto", "Sum of Invoice line net amount", "BT-106", p + "ram:LineTotalAmount"},
			{"Summe der Nachlässe", "Sum of allowances on document level", "BT-107", p + "ram:AllowanceTotalAmount"},
			{"Summe der Zuschläge", "Sum of charges on document level", "BT-108", p + "ram:ChargeTotalAmount"},
			{"Gesamtbetrag ohne Umsatzsteuer", "Invoice total amount without VAT", "BT-109", p + "ram:TaxBasisTotalAmount"},
			{"Umsatzsteuer gesamt", "Invoice total VAT amount (in accounting currency)", "BT-110, BT-111", p + "ram:TaxTotalAmount"},
			{"Gesamtbetrag mit Umsatzsteuer", "Invoice total amount with VAT", "BT-112", p + "ram:GrandTotalAmount"},
			{"Vorauszahlung", "Paid amount", "BT-113", p + "ram:TotalPrepaidAmount"},
			{"Rundungsbetrag", "Rounding amount", "BT-114", p + "ram:RoundingAmount"},
			{"Fälliger Betrag", "Amount due for payment", "BT-115", p + "ram:DuePayableAmount"},
		})
		return
	}
	p := "cac:LegalMonetaryTotal/"
	m.fields(s, r, []f{
		{"Summe der Positionen netto", "Sum of Invoice line net amount", "BT-106", p + "cbc:LineExtensionAmount"},
		{"Summe der Nachlässe", "Sum of allowances on document level", "BT-107", p + "cbc:AllowanceTotalAmount"},
		{"Summe der Zuschläge", "Sum of charges on document level", "BT-108", p + "cbc:ChargeTotalAmount"},
		{"Gesamtbetrag ohne Umsatzsteuer", "Invoice total amount without VAT", "BT-109", p + "cbc:TaxExclusiveAmount"},
		{"Umsatzsteuer gesamt", "Invoice total VAT amount (in accounting currency)", "BT-110, BT-111", "cac:TaxTotal/cbc:TaxAmount"},
		{"Gesamtbetrag mit Umsatzsteuer", "Invoice total amount with VAT", "BT-112", p + "cbc:TaxInclusiveAmount"},
		{"Vorauszahlung", "Paid amount", "BT-113", p + "cbc:PrepaidAmount"},
		{"Rundungsbetrag", "Rounding amount", "BT-114", p + "cbc:PayableRoundingAmount"},
		{"Fälliger Betrag", "Amount due for payment", "BT-115", p + "cbc:PayableAmount"},
	})
}

func (m *mapper) vat(s *section) {
	r := m.t.root
	var subs []*node
	cat, rate, basis, amount, reason, code, scheme := "cac:TaxCategory/cbc:ID", "cac:TaxCategory/cbc:Percent", "cbc:TaxableAmount", "cbc:TaxAmount",
		"cac:TaxCategory/cbc:TaxExemptionReason", "cac:TaxCategory/cbc:TaxExemptionReasonCode", "cac:TaxCategory/cac:TaxScheme/cbc:ID"
	if m.t.syntax == cii {
		subs = m.find(r, ciiSettlement+"/ram:ApplicableTradeTax")
		cat, rate, basis, amount, reason, code, scheme = "ram:CategoryCode", "ram:RateApplicablePercent", "ram:BasisAmount", "ram:CalculatedAmount",
			"ram:ExemptionReason", "ram:ExemptionReasonCode", "ram:TypeCode"
	} else {
		subs = m.find(r, "cac:TaxTotal/cac:TaxSubtotal")
	}
	if len(subs) == 0 {
		return
	}
	tb := &table{
		head:   []string{"Kategorie / VAT category code (BT-118)", "Satz / rate % (BT-119)", "Steuerbasis / taxable amount (BT-116)", "Steuerbetrag / tax amount (BT-117)", "Befreiungsgrund / exemption reason (BT-120, BT-121)"},
		widths: []float64{40, 22, 34, 34, 50},
		right:  []bool{false, true, true, true, false},
	}
	for _, n := range subs {
		c := m.joined(n, cat)
		if nm := vatCategories[c]; nm != "" {
			c += " (" + nm + ")"
		}
		if sc := m.joined(n, scheme); sc != "" {
			c += "\n" + sc
		}
		rw := row{cells: []string{c, m.joined(n, rate), m.joined(n, basis), m.joined(n, amount), m.joined(n, reason, code)}}
		for _, pv := range m.rest(n, true) {
			if m.t.syntax == cii && (strings.HasPrefix(pv[0], "ram:TaxPointDate") || strings.HasPrefix(pv[0], "ram:DueDateTypeCode")) {
				continue // shown with the invoice data (BT-7, BT-8); rest marks it either way
			}
			rw.detail = append(rw.detail, pv[0]+": "+pv[1])
		}
		tb.rows = append(tb.rows, rw)
	}
	s.items = append(s.items, item{kind: tableItem, table: tb})
}

func (m *mapper) payment(s *section) {
	r := m.t.root
	if m.t.syntax == cii {
		set := m.first(r, ciiSettlement)
		m.fields(s, set, []f{
			{"Verwendungszweck", "Remittance information", "BT-83", "ram:PaymentReference"},
			{"Gläubiger-ID", "Bank assigned creditor identifier", "BT-90", "ram:CreditorReferenceID"},
		})
		means := m.find(set, "ram:SpecifiedTradeSettlementPaymentMeans")
		for i, n := range means {
			if len(means) > 1 {
				s.sub(strconv.Itoa(i+1) + ". Zahlungsmittel / payment means")
			}
			m.fields(s, n, []f{
				{"Code für das Zahlungsmittel", "Payment means type code", "BT-81", "ram:TypeCode"},
				{"Zahlungsmittel", "Payment means text", "BT-82", "ram:Information"},
				{"IBAN / Kontonummer", "Payment account identifier", "BT-84", "ram:PayeePartyCreditorFinancialAccount/ram:IBANID"},
				{"Kontonummer", "Payment account identifier", "BT-84", "ram:PayeePartyCreditorFinancialAccount/ram:ProprietaryID"},
				{"Kontoinhaber", "Payment account name", "BT-85", "ram:PayeePartyCreditorFinancialAccount/ram:AccountName"},
				{"BIC", "Payment service provider identifier", "BT-86", "ram:PayeeSpecifiedCreditorFinancialInstitution/ram:BICID"},
				{"Kartennummer", "Payment card primary account number", "BT-87", "ram:ApplicableTradeSettlementFinancialCard/ram:ID"},
				{"Karteninhaber", "Payment card holder name", "BT-88", "ram:ApplicableTradeSettlementFinancialCard/ram:CardholderName"},
				{"Belastetes Konto (IBAN)", "Debited account identifier", "BT-91", "ram:PayerPartyDebtorFinancialAccount/ram:IBANID"},
				{"BIC des Zahlers", "payer's bank", "", "ram:PayerSpecifiedDebtorFinancialInstitution/ram:BICID"},
			})
		}
		for _, n := range m.find(set, "ram:SpecifiedTradePaymentTerms") {
			m.fields(s, n, []f{
				{"Zahlungsbedingungen", "Payment terms", "BT-20", "ram:Description"},
				{"Mandatsreferenz", "Mandate reference identifier", "BT-89", "ram:DirectDebitMandateID"},
				{"Skonto: Basisdatum", "discount basis date", "", "ram:ApplicableTradePaymentDiscountTerms/ram:BasisDateTime/udt:DateTimeString"},
				{"Skonto: Frist", "discount period", "", "ram:ApplicableTradePaymentDiscountTerms/ram:BasisPeriodMeasure"},
				{"Skonto: Basisbetrag", "discount basis amount", "", "ram:ApplicableTradePaymentDiscountTerms/ram:BasisAmount"},
				{"Skonto: Prozentsatz", "discount percent", "", "ram:ApplicableTradePaymentDiscountTerms/ram:CalculationPercent"},
				{"Skonto: Betrag", "discount amount", "", "ram:ApplicableTradePaymentDiscountTerms/ram:ActualDiscountAmount"},
			})
		}
		return
	}
	means := m.find(r, "cac:PaymentMeans")
	for i, n := range means {
		if len(means) > 1 {
			s.sub(strconv.Itoa(i+1) + ". Zahlungsmittel / payment means")
		}
		m.fields(s, n, []f{
			{"Code für das Zahlungsmittel", "Payment means type code, text", "BT-81, BT-82", "cbc:PaymentMeansCode"},
			{"Verwendungszweck", "Remittance information", "BT-83", "cbc:PaymentID"},
			{"IBAN / Kontonummer", "Payment account identifier", "BT-84", "cac:PayeeFinancialAccount/cbc:ID"},
			{"Kontoinhaber", "Payment account name", "BT-85", "cac:PayeeFinancialAccount/cbc:Name"},
			{"BIC", "Payment service provider identifier", "BT-86", "cac:PayeeFinancialAccount/cac:FinancialInstitutionBranch/cbc:ID"},
			{"Kartennummer", "Payment card primary account number", "BT-87", "cac:CardAccount/cbc:PrimaryAccountNumberID"},
			{"Kartennetzwerk", "card network", "", "cac:CardAccount/cbc:NetworkID"},
			{"Karteninhaber", "Payment card holder name", "BT-88", "cac:CardAccount/cbc:HolderName"},
			{"Mandatsreferenz", "Mandate reference identifier", "BT-89", "cac:PaymentMandate/cbc:ID"},
			{"Belastetes Konto", "Debited account identifier", "BT-91", "cac:PaymentMandate/cac:PayerFinancialAccount/cbc:ID"},
		})
	}
	m.fields(s, r, []f{{"Zahlungsbedingungen", "Payment terms", "BT-20", "cac:PaymentTerms/cbc:Note"}})
	for _, n := range m.find(r, "cac:PrepaidPayment") {
		s.sub("Zahlung Dritter / Third party payment (BG-DEX-09)")
		m.fields(s, n, []f{
			{"Art der Zahlung", "Third party payment type", "BT-DEX-001", "cbc:ID"},
			{"Betrag", "Third party payment amount", "BT-DEX-002", "cbc:PaidAmount"},
			{"Beschreibung", "Third party payment description", "BT-DEX-003", "cbc:InstructionID"},
		})
	}
}

func (m *mapper) documents(s *section) {
	r := m.t.root
	path, fs := "cac:AdditionalDocumentReference[cbc:DocumentTypeCode!=130]", []f{
		{"Kennung", "Supporting document reference", "BT-122", "cbc:ID"},
		{"Dokumentart", "document type code", "", "cbc:DocumentTypeCode"},
		{"Beschreibung", "Supporting document description", "BT-123", "cbc:DocumentDescription"},
		{"Externer Ort", "External document location", "BT-124", "cac:Attachment/cac:ExternalReference/cbc:URI"},
		{"Anhang", "Attached document", "BT-125", "cac:Attachment/cbc:EmbeddedDocumentBinaryObject"},
	}
	if m.t.syntax == cii {
		path, fs = ciiAgreement+"/ram:AdditionalReferencedDocument", []f{
			{"Kennung", "Supporting document reference", "BT-122", "ram:IssuerAssignedID"},
			{"Dokumentart", "document type code", "", "ram:TypeCode"},
			{"Beschreibung", "Supporting document description", "BT-123", "ram:Name"},
			{"Externer Ort", "External document location", "BT-124", "ram:URIID"},
			{"Anhang", "Attached document", "BT-125", "ram:AttachmentBinaryObject"},
			{"Kennungsschema", "reference type code", "BT-18-1", "ram:ReferenceTypeCode"},
		}
	}
	for i, n := range m.find(r, path) {
		if n.used || allUsed(n) {
			continue // the invoiced object (BT-18) or tender (BT-17), shown with the invoice data
		}
		s.sub(strconv.Itoa(i+1) + ". Dokument / document")
		m.fields(s, n, fs)
	}
}

// allUsed says whether every value below n has been shown.
func allUsed(n *node) bool {
	stack := []*node{n}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		if (c.text != "" || c.binary) && !c.used {
			return false
		}
		stack = append(stack, c.kids...)
	}
	return true
}
