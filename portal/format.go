package portal

import (
	"regexp"
	"strings"
	"time"
)

// Dates, amounts and skip details as the page's language writes them:
// German pages in de-DE formats and the viewers' time zone
// (Config.TimeZone), English pages as before, in UTC.

// Date writes a point in time; "–" for none.
func (p page) Date(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	if p.Lang == "de" {
		return t.In(p.zone()).Format("02.01.2006, 15:04 Uhr")
	}
	return t.UTC().Format("2006-01-02 15:04 UTC")
}

// Day writes a calendar day.
func (p page) Day(t time.Time) string {
	if p.Lang == "de" {
		return t.In(p.zone()).Format("02.01.2006")
	}
	return t.UTC().Format("2006-01-02")
}

func (p page) zone() *time.Location {
	if p.loc == nil {
		return time.UTC
	}
	return p.loc
}

// Money writes an amount given as a decimal string as written in an
// invoice (BT-112 and the like) with its ISO 4217 currency: "6.938,45 €"
// on German pages, "€6,938.45" on English ones. The digits stay as
// written (no rounding); a string that is no plain decimal is shown as it
// is.
func (p page) Money(amount, currency string) string {
	neg := strings.HasPrefix(amount, "-")
	whole, frac, _ := strings.Cut(strings.TrimPrefix(amount, "-"), ".")
	if whole == "" || strings.Trim(whole, "0123456789") != "" || strings.Trim(frac, "0123456789") != "" {
		return strings.TrimSpace(amount + " " + currency)
	}
	group, point := ",", "."
	if p.Lang == "de" {
		group, point = ".", ","
	}
	var b strings.Builder
	if neg {
		b.WriteByte('-')
	}
	for i, r := range whole {
		if i > 0 && (len(whole)-i)%3 == 0 {
			b.WriteString(group)
		}
		b.WriteRune(r)
	}
	if frac != "" {
		b.WriteString(point + frac)
	}
	n := b.String()
	sym := currencySymbols[currency]
	switch {
	case p.Lang == "de" && sym != "":
		return n + "\u00a0" + sym
	case p.Lang == "de", sym == "":
		return strings.TrimSpace(n + "\u00a0" + currency)
	}
	if neg {
		return "-" + sym + n[1:]
	}
	return sym + n
}

var currencySymbols = map[string]string{"EUR": "€", "USD": "$", "GBP": "£", "CHF": "CHF"}

// detailLine is one form of the importer's skip details (importer/policy
// and importer's document and parked-mail code write them in English):
// the pattern of the English line and its German format, whose $n take
// the pattern's groups. The reason codes stay as they are; only the words
// for people are translated.
type detailLine struct {
	re *regexp.Regexp
	de string
}

var detailLines = []detailLine{
	{regexp.MustCompile(`^the attachment is a link to a cloud file, not a file$`), "Der Anhang ist ein Link auf eine Cloud-Datei, keine Datei"},
	{regexp.MustCompile(`^the attachment has no content$`), "Der Anhang hat keinen Inhalt"},
	{regexp.MustCompile(`^the mail has no content$`), "Die E-Mail hat keinen Inhalt"},
	{regexp.MustCompile(`^the attachment is an attached mail; saving mails as \.eml is off$`), "Der Anhang ist eine angehängte E-Mail; das Speichern von E-Mails als .eml ist ausgeschaltet"},
	{regexp.MustCompile(`^an S/MIME container \(smime\.p7m\) that could not be opened: the mail is encrypted, or the signature carries no content$`), "Ein S/MIME-Container (smime.p7m), der sich nicht öffnen ließ: Die E-Mail ist verschlüsselt, oder die Signatur enthält keinen Inhalt"},
	{regexp.MustCompile(`^the file is an archive \((.+)\); archives are not unpacked$`), "Die Datei ist ein Archiv ($1); Archive werden nicht entpackt"},
	{regexp.MustCompile(`^the file is an executable \((.+)\), whatever its name says$`), "Die Datei ist ein Programm ($1), was auch immer ihr Name sagt"},
	{regexp.MustCompile(`^the XML file is not an EN 16931 e-invoice \(UBL or CII\) but (.+); XML files are not archived$`), "Die XML-Datei ist keine E-Rechnung nach EN 16931 (UBL oder CII), sondern $1; XML-Dateien werden nicht archiviert"},
	{regexp.MustCompile(`^files of type (.+) are not archived$`), "Dateien vom Typ $1 werden nicht archiviert"},
	{regexp.MustCompile(`^the image is shown in the mail body \((cid:.*)\)$`), "Das Bild wird im Text der E-Mail angezeigt ($1)"},
	{regexp.MustCompile(`^the image is marked as part of the mail body$`), "Das Bild ist als Teil des E-Mail-Texts markiert"},
	{regexp.MustCompile(`^a small image \((\d+) bytes\) named like a signature logo$`), "Ein kleines Bild ($1 Byte), benannt wie ein Signatur-Logo"},
	{regexp.MustCompile(`^the image has (\d+) bytes, less than the (\d+) bytes a scanned document has$`), "Das Bild hat $1 Byte, weniger als die $2 Byte eines gescannten Dokuments"},
	{regexp.MustCompile(`^an image of (\d+)x(\d+) pixels, the shape of a logo or banner, named like a signature image$`), "Ein Bild von $1×$2 Pixeln, in der Form eines Logos oder Banners, benannt wie ein Signaturbild"},
	{regexp.MustCompile(`^the same file was archived before as (.+)$`), "Dieselbe Datei wurde schon als $1 archiviert"},
	// The error after the colon is technical and stays as written.
	{regexp.MustCompile(`^failed (\d+) times over ([^:]+): the mail could not be imported: (.*)$`), "$1-mal fehlgeschlagen in $2: Die E-Mail konnte nicht importiert werden: $3"},
	{regexp.MustCompile(`^failed (\d+) times over ([^:]+): (.*)$`), "$1-mal fehlgeschlagen in $2: $3"},
}

// Detail words a skip's detail line in the page's language; a line of a
// form not known here is shown as it is.
func (p page) Detail(s string) string {
	if p.Lang != "de" {
		return s
	}
	for _, d := range detailLines {
		if m := d.re.FindStringSubmatchIndex(s); m != nil {
			return string(d.re.ExpandString(nil, d.de, s, m))
		}
	}
	return s
}
