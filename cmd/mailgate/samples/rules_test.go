package samples

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The official rule sets and their Saxon runner, beside the repository.
const (
	validator = "../../../../shared/einvoice-rules/validate"
	saxonJar  = "/usr/share/java/Saxon-HE.jar"
)

// TestEInvoiceSamplesPassOfficialRules runs the official EN 16931 and
// XRechnung rules (Saxon-HE, ../shared/einvoice-rules/validate) over every
// kind of e-invoice the demo ships, as the demo's mails carry them: the
// XRechnung attachment and the XML embedded in the ZUGFeRD PDF, for two
// senders each. No fatal rule may fail. Without Java and Saxon it skips,
// except under CI, where it fails.
func TestEInvoiceSamplesPassOfficialRules(t *testing.T) {
	_, javaErr := exec.LookPath("java")
	_, saxonErr := os.Stat(saxonJar)
	_, rulesErr := os.Stat(validator)
	if javaErr != nil || saxonErr != nil || rulesErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI needs Java, Saxon-HE and the official rules: java %v, saxon %v, rules %v", javaErr, saxonErr, rulesErr)
		}
		t.Skipf("no Java, Saxon-HE or official rules here: java %v, saxon %v, rules %v", javaErr, saxonErr, rulesErr)
	}
	dir := t.TempDir()
	received := time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)
	var files []string
	kinds := map[string]int{}
	for i := range 16 {
		m := Sample(i, received)
		for j, a := range m.Attachments {
			kind := ""
			if j < len(m.Expect) {
				kind = m.Expect[j].Kind
			}
			var xml []byte
			switch kind {
			case "xrechnung":
				xml = a.Content
			case "zugferd":
				xml = embeddedXML(t, a.Content)
			default:
				continue
			}
			if kinds[kind] == 2 {
				continue
			}
			kinds[kind]++
			f := filepath.Join(dir, strings.TrimSuffix(a.Name, filepath.Ext(a.Name))+"-"+kind+".xml")
			if err := os.WriteFile(f, xml, 0o600); err != nil {
				t.Fatal(err)
			}
			files = append(files, f)
		}
	}
	if kinds["xrechnung"] != 2 || kinds["zugferd"] != 2 {
		t.Fatalf("samples hold %v e-invoices, want 2 XRechnung and 2 ZUGFeRD", kinds)
	}
	out, err := exec.CommandContext(t.Context(), validator, files...).CombinedOutput()
	if err != nil {
		t.Fatalf("validate: %v\n%s", err, out)
	}
	lines := strings.Split(strings.TrimRight(string(out), "\n"), "\n")
	if len(lines) != len(files) {
		t.Fatalf("validate printed %d lines for %d files:\n%s", len(lines), len(files), out)
	}
	for _, l := range lines {
		f := strings.Split(l, "\t")
		if len(f) < 3 {
			t.Fatalf("validate: %q", l)
		}
		if f[2] != "" {
			t.Errorf("%s (%s) fails fatal rules %s", filepath.Base(f[0]), f[1], f[2])
		}
		t.Logf("%s: %s, no fatal rule fails; warnings: %q", filepath.Base(f[0]), f[1], f[3:])
	}
}

// embeddedXML takes the CII XML out of a sample ZUGFeRD PDF, whose
// embedded file stream is not compressed.
func embeddedXML(t *testing.T, pdf []byte) []byte {
	t.Helper()
	const end = "</rsm:CrossIndustryInvoice>"
	i, j := bytes.Index(pdf, []byte("<?xml")), bytes.Index(pdf, []byte(end))
	if i < 0 || j < i {
		t.Fatal("the ZUGFeRD sample carries no CII XML")
	}
	return pdf[i : j+len(end)]
}
