package rendition

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestScreenshots regenerates docs/screenshots/rendition-*.png from two
// corpus invoices when RENDITION_SCREENSHOTS is set (like -update for
// golden files); RENDITION_KEEP=dir keeps the PDFs for a look.
func TestScreenshots(t *testing.T) {
	if os.Getenv("RENDITION_SCREENSHOTS") == "" {
		t.Skip("set RENDITION_SCREENSHOTS=1 to regenerate docs/screenshots/rendition-*.png")
	}
	bin, err := exec.LookPath("pdftoppm")
	if err != nil {
		t.Fatal("pdftoppm (poppler-utils) is needed")
	}
	for name, file := range map[string]string{
		"rendition-ubl": "kosit_01.01a-INVOICE_ubl.xml",
		"rendition-cii": "kosit_03.01a-INVOICE_uncefact.xml",
	} {
		data, err := os.ReadFile(filepath.Join(shared, "einvoices/files", file))
		if err != nil {
			t.Fatal(err)
		}
		pdf, err := PDF(context.Background(), data)
		if err != nil {
			t.Fatal(err)
		}
		dir := t.TempDir()
		if keep := os.Getenv("RENDITION_KEEP"); keep != "" {
			dir = keep
		}
		p := filepath.Join(dir, name+".pdf")
		if err := os.WriteFile(p, pdf, 0o644); err != nil {
			t.Fatal(err)
		}
		out := filepath.Join("../../docs/screenshots", name)
		if out, err := exec.Command(bin, "-png", "-r", "80", "-f", "1", "-l", "1", "-singlefile", p, out).CombinedOutput(); err != nil {
			t.Fatalf("pdftoppm: %v: %s", err, out)
		}
	}
}
