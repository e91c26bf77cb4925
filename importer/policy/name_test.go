package policy

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/mailgate/mailgate/archive"
)

func TestSanitizeName(t *testing.T) {
	long := strings.Repeat("ä", 150) + ".pdf"
	tests := []struct {
		name, in, ext, want string
	}{
		{"plain", "RE-2026-001.pdf", "pdf", "RE-2026-001.pdf"},
		{"rfc2047 utf-8 q", "=?utf-8?q?Rechnung_M=C3=A4rz.pdf?=", "pdf", "Rechnung März.pdf"},
		{"rfc2047 base64", "=?UTF-8?B?w5xiZXJzaWNodC5wZGY=?=", "pdf", "Übersicht.pdf"},
		{"rfc2047 latin1", "=?iso-8859-1?q?Geb=FChr.pdf?=", "pdf", "Gebühr.pdf"},
		{"rfc2047 windows-1252", "=?windows-1252?q?Geb=FChr.pdf?=", "pdf", "Gebühr.pdf"},
		{"path separators", "../../etc/passwd", "", "etcpasswd"},
		{"windows path", `C:\Users\a\rechnung.pdf`, "pdf", "C:Usersarechnung.pdf"},
		{"control chars", "re\x00ch\nnung\t.pdf", "pdf", "rechnung.pdf"},
		{"bidi override", "rechnung\u202Efdp.exe", "exe", "rechnungfdp.exe"},
		{"trimmed", "  rechnung.pdf  ", "pdf", "rechnung.pdf"},
		{"hidden dot file", ".htaccess", "", "htaccess"},
		{"empty", "", "pdf", "attachment.pdf"},
		{"only separators", "///", ".PDF", "attachment.pdf"},
		{"empty no ext", "", "", "attachment"},
		{"invalid utf-8", "re\xffchnung.pdf", "pdf", "rechnung.pdf"},
		{"long keeps extension", long, "pdf", strings.Repeat("ä", 98) + ".pdf"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := SanitizeName(tt.in, tt.ext); got != tt.want {
				t.Errorf("SanitizeName(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func FuzzSanitizeName(f *testing.F) {
	for _, s := range []string{"RE-2026-001.pdf", "=?utf-8?q?M=C3=A4rz.pdf?=", "../x", "", strings.Repeat("x", 300) + ".pdf", "a\u202Eb"} {
		f.Add(s, "pdf")
	}
	f.Fuzz(func(t *testing.T, in, ext string) {
		got := SanitizeName(in, ext)
		switch {
		case got == "":
			t.Fatal("empty name")
		case len(got) > MaxNameBytes:
			t.Fatalf("%d bytes", len(got))
		case !utf8.ValidString(got):
			t.Fatalf("invalid UTF-8 %q", got)
		case strings.ContainsAny(got, `/\`):
			t.Fatalf("path separator in %q", got)
		case strings.IndexFunc(got, unicode.IsControl) >= 0:
			t.Fatalf("control character in %q", got)
		case strings.HasPrefix(got, ".") || strings.TrimSpace(got) != got:
			t.Fatalf("untrimmed %q", got)
		}
	})
}

func TestDetectEInvoice(t *testing.T) {
	tests := []struct {
		name, in      string
		ok            bool
		syntax, profl string
	}{
		{"ubl", ublXML, true, SyntaxUBL, "XRECHNUNG 3.0"},
		{"ubl credit note", ublCreditNoteXML, true, SyntaxUBL, "EN 16931"},
		{"cii", ciiXML, true, SyntaxCII, "EN 16931"},
		{"cii with bom", "\xEF\xBB\xBF" + ciiXML, true, SyntaxCII, "EN 16931"},
		{"factur-x", facturXXML, true, SyntaxCII, "BASIC WL"},
		{"latin1 declared", `<?xml version="1.0" encoding="ISO-8859-1"?>` + ublCreditNoteXML, true, SyntaxUBL, "EN 16931"},
		{"ubl without customization id", `<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"><ID xmlns="x">1</ID></Invoice>`, true, SyntaxUBL, ""},
		{"Invoice in another namespace", `<Invoice xmlns="urn:example"><ID>1</ID></Invoice>`, false, "", ""},
		{"html", `<html><body>Invoice</body></html>`, false, "", ""},
		{"not xml", "%PDF-1.7", false, "", ""},
		{"empty", "", false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := DetectEInvoice(strings.NewReader(tt.in))
			if ok != tt.ok || got.Syntax != tt.syntax || got.Profile != tt.profl {
				t.Errorf("DetectEInvoice = %+v, %v; want %s %q %v", got, ok, tt.syntax, tt.profl, tt.ok)
			}
		})
	}
}

func TestProfileName(t *testing.T) {
	tests := map[string]string{
		"urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0":      "XRECHNUNG 3.0",
		"urn:cen.eu:en16931:2017#compliant#urn:xoev-de:kosit:standard:xrechnung_2.3": "XRECHNUNG 2.3",
		"urn:cen.eu:en16931:2017": "EN 16931",
		"urn:cen.eu:en16931:2017#conformant#urn:factur-x.eu:1p0:extended":            "EXTENDED",
		"urn:cen.eu:en16931:2017#compliant#urn:factur-x.eu:1p0:basic":                "BASIC",
		"urn:factur-x.eu:1p0:basicwl":                                                "BASIC WL",
		"urn:factur-x.eu:1p0:minimum":                                                "MINIMUM",
		"urn:cen.eu:en16931:2017#compliant#urn:fdc:peppol.eu:2017:poacc:billing:3.0": "PEPPOL BIS",
		"custom": "custom",
		"":       "",
	}
	for in, want := range tests {
		if got := ProfileName(in); got != want {
			t.Errorf("ProfileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func FuzzDetectEInvoice(f *testing.F) {
	for _, s := range []string{ublXML, ublCreditNoteXML, ciiXML, facturXXML, "<a/>", "", "\xEF\xBB\xBF<x",
		xrechnungUBL, zugferd1Invoice, ciiInvoice("1", "urn:factur-x.eu:1p0:minimum"), string(utf16LE(ublXML, true))} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var (
			inv EInvoice
			ok  bool
		)
		cpuBound(t, len(in), func() { inv, ok = DetectEInvoice(bytes.NewReader(in)) })
		if ok != (inv.Syntax != "") {
			t.Fatalf("ok=%v with syntax %q", ok, inv.Syntax)
		}
		if ok && inv.Syntax != SyntaxUBL && inv.Syntax != SyntaxCII {
			t.Fatalf("syntax %q", inv.Syntax)
		}
		if !utf8.ValidString(inv.Profile) || len(inv.Profile) > 100 {
			t.Fatalf("profile %q", inv.Profile)
		}
		if ok != (inv.Data != nil) {
			t.Fatalf("ok=%v with data %v", ok, inv.Data)
		}
		if ok {
			b, _ := json.Marshal(inv.Data)
			if !utf8.Valid(b) || len(inv.Data.Number) > 1024 || len(inv.Data.Seller.Name) > 1024 || len(inv.Data.IBAN) > archive.MaxInvoiceList {
				t.Fatalf("data %s", b)
			}
			for _, r := range inv.Data.Number + inv.Data.Seller.Name + inv.Data.Buyer.Name + strings.Join(inv.Data.IBAN, "") {
				if unicode.Is(unicode.Cf, r) || unicode.IsControl(r) {
					t.Fatalf("format or control character %U in %s", r, b)
				}
			}
		}
	})
}
