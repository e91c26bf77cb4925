package xmltext

import (
	"encoding/xml"
	"strings"
	"testing"

	"golang.org/x/text/encoding/unicode"
)

func TestReadsWhatMailSends(t *testing.T) {
	utf16le, _ := unicode.UTF16(unicode.LittleEndian, unicode.UseBOM).NewEncoder().String(`<?xml version="1.0" encoding="UTF-16"?><a>Müller</a>`)
	utf16be, _ := unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM).NewEncoder().String(`<a>Müller</a>`)
	for name, in := range map[string]string{
		"UTF-8":             `<a>Müller</a>`,
		"UTF-8 with BOM":    string(BOM) + `<a>Müller</a>`,
		"UTF-16 LE, BOM":    utf16le,
		"UTF-16 BE, no BOM": utf16be,
		"ISO-8859-1":        "<?xml version=\"1.0\" encoding=\"ISO-8859-1\"?><a>M\xfcller</a>",
		"windows-1252":      "<?xml version=\"1.0\" encoding=\"windows-1252\"?><a>M\xfcller</a>",
	} {
		d := xml.NewDecoder(Reader(strings.NewReader(in)))
		d.CharsetReader = Charset
		var v struct {
			Text string `xml:",chardata"`
		}
		if err := d.Decode(&v); err != nil || v.Text != "Müller" {
			t.Errorf("%s: %q, %v", name, v.Text, err)
		}
	}
	d := xml.NewDecoder(Reader(strings.NewReader(`<?xml version="1.0" encoding="x-made-up"?><a/>`)))
	d.CharsetReader = Charset
	if err := d.Decode(new(struct{})); err == nil {
		t.Error("an unknown encoding was read")
	}
}
