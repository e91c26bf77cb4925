package rendition

// The meanings of the codes a reader meets most; the code itself is always
// shown as written, the meaning beside it. Unknown codes stand alone.

var typeCodes = map[string]string{
	"326": "Teilrechnung",
	"380": "Rechnung",
	"381": "Gutschrift",
	"383": "Belastungsanzeige",
	"384": "Rechnungskorrektur",
	"386": "Vorauszahlungsrechnung",
	"389": "Selbst ausgestellte Rechnung",
	"751": "Rechnungsinformation",
	"875": "Teilrechnung (Bau)",
	"876": "Teilschlussrechnung (Bau)",
	"877": "Schlussrechnung (Bau)",
}

var paymentMeans = map[string]string{
	"1":   "nicht definiert",
	"10":  "Barzahlung",
	"20":  "Scheck",
	"30":  "Überweisung",
	"31":  "Auslandsüberweisung",
	"42":  "Zahlung auf Bankkonto",
	"48":  "Bankkarte",
	"49":  "Lastschrift",
	"54":  "Kreditkarte",
	"55":  "Debitkarte",
	"57":  "Dauerauftrag",
	"58":  "SEPA-Überweisung",
	"59":  "SEPA-Lastschrift",
	"68":  "Online-Zahlung",
	"97":  "Verrechnung",
	"ZZZ": "gegenseitig vereinbart",
}

var vatCategories = map[string]string{
	"S":  "Normalsatz",
	"Z":  "Nullsatz",
	"E":  "steuerbefreit",
	"AE": "Umkehrung der Steuerschuldnerschaft",
	"K":  "innergemeinschaftliche Lieferung",
	"G":  "Ausfuhr außerhalb der EU",
	"O":  "nicht steuerbar",
	"L":  "IGIC (Kanarische Inseln)",
	"M":  "IPSI (Ceuta und Melilla)",
}

var unitNames = map[string]string{
	"C62": "Stück",
	"H87": "Stück",
	"EA":  "Stück",
	"XPP": "Stück",
	"HUR": "Stunde",
	"MIN": "Minute",
	"DAY": "Tag",
	"WEE": "Woche",
	"MON": "Monat",
	"ANN": "Jahr",
	"KGM": "Kilogramm",
	"GRM": "Gramm",
	"TNE": "Tonne",
	"MTR": "Meter",
	"KMT": "Kilometer",
	"MTK": "Quadratmeter",
	"MTQ": "Kubikmeter",
	"LTR": "Liter",
	"KWH": "Kilowattstunde",
	"LS":  "Pauschale",
	"SET": "Satz",
	"P1":  "Prozent",
	"XBX": "Kiste",
	"XPK": "Packung",
	"XPA": "Päckchen",
}

// codeMeaning names the meaning of a code by the element it sits in.
func codeMeaning(elem, code string) string {
	switch elem {
	case "cbc:InvoiceTypeCode", "cbc:CreditNoteTypeCode":
		return typeCodes[code]
	case "cbc:PaymentMeansCode":
		return paymentMeans[code]
	case "ram:TypeCode":
		// the same element name carries document types, payment means and tax types
		if t := typeCodes[code]; t != "" {
			return t
		}
		return paymentMeans[code]
	case "ram:CategoryCode":
		return vatCategories[code]
	case "cbc:ID":
		return ""
	}
	return ""
}

// docTitle is the page header's title for a type code.
func docTitle(s syntax, code string) string {
	switch code {
	case "381":
		return "Gutschrift"
	case "384":
		return "Rechnungskorrektur"
	case "389":
		return "Gutschrift (Selbstfakturierung)"
	case "326", "875", "876":
		return "Teilrechnung"
	case "877":
		return "Schlussrechnung"
	case "386":
		return "Vorauszahlungsrechnung"
	}
	if s == ublCreditNote {
		return "Gutschrift"
	}
	return "Rechnung"
}
