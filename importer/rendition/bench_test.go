package rendition

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkPDF renders a typical XRechnung and the largest XML file of
// the corpus.
func BenchmarkPDF(b *testing.B) {
	invoices, _ := corpus(b)
	largest, size := "", int64(0)
	for _, f := range invoices {
		if st, err := os.Stat(f); err == nil && st.Size() > size {
			largest, size = f, st.Size()
		}
	}
	for _, c := range []struct{ name, file string }{
		{"typical", filepath.Join(shared, "einvoices/files/kosit_01.01a-INVOICE_ubl.xml")},
		{"largest", largest},
	} {
		data, err := os.ReadFile(c.file)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var out []byte
			for b.Loop() {
				if out, err = PDF(context.Background(), data); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(len(out)), "pdf-bytes")
			b.Logf("%s: %d bytes of XML", filepath.Base(c.file), len(data))
		})
	}
}
