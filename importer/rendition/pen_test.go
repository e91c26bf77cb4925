package rendition

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestFaces: a document in Windows-1252 is set in the built-in Helvetica
// (no font program in the file), any other in the embedded Go fonts; in
// both every character comes out of the PDF as it went in, long words and
// the WinAnsi characters outside Latin-1 (€, „“, –, …) included.
func TestFaces(t *testing.T) {
	long := strings.Repeat("Donaudampfschifffahrtsgesellschaftskapitän", 6)
	western := strings.Replace(creditNote, "Ελληνικά, čeština, €", "Straße, 12 €, „Anführung“ – Ende… "+long, 1)
	for _, tc := range []struct {
		name, xml, want string
		embedded        bool
	}{
		{"Windows-1252", western, "Straße, 12 €, „Anführung“ – Ende…", false},
		{"Greek and Czech", creditNote, "Ελληνικά, čeština, €", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := PDF(context.Background(), []byte(tc.xml))
			if err != nil {
				t.Fatal(err)
			}
			if got := bytes.Contains(out, []byte("/FontFile2")); got != tc.embedded {
				t.Errorf("font program embedded: %v, want %v", got, tc.embedded)
			}
			if got := bytes.Contains(out, []byte("/BaseFont /Helvetica")); got == tc.embedded {
				t.Errorf("Helvetica used: %v, want %v", got, !tc.embedded)
			}
			s := text(t, out)
			if !strings.Contains(strings.Join(strings.Fields(s), " "), tc.want) { // lines joined
				t.Errorf("text lacks %q", tc.want)
			}
			if !tc.embedded && !strings.Contains(strings.Join(strings.Fields(s), ""), long) {
				t.Errorf("the long word lost characters where it was broken")
			}
		})
	}
}
