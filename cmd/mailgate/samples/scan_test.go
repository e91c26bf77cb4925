package samples

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"testing"
)

// TestScanPDF checks the scan's size and that its cross-reference table
// points at its objects, as a PDF reader follows it.
func TestScanPDF(t *testing.T) {
	xrefRE := regexp.MustCompile(`startxref\n(\d+)\n%%EOF\n$`)
	entryRE := regexp.MustCompile(`(\d{10}) 00000 n `)
	for _, size := range []int{2000, 200_000, 1_500_000, 9_999_990} {
		b := ScanPDF(size, uint64(size), "RE-1")
		if d := len(b) - size; d < -8 || d > 8 {
			t.Errorf("ScanPDF(%d) is %d bytes", size, len(b))
		}
		m := xrefRE.FindSubmatch(b)
		if !bytes.HasPrefix(b, []byte("%PDF-1.7\n")) || m == nil {
			t.Fatalf("ScanPDF(%d): not a PDF: %q … %q", size, b[:16], b[len(b)-40:])
		}
		xref, _ := strconv.Atoi(string(m[1]))
		if !bytes.HasPrefix(b[xref:], []byte("xref\n")) {
			t.Errorf("ScanPDF(%d): startxref %d points at %q", size, xref, b[xref:xref+8])
		}
		for i, e := range entryRE.FindAllSubmatch(b[xref:], -1) {
			off, _ := strconv.Atoi(string(e[1]))
			if want := fmt.Sprintf("%d 0 obj\n", i+1); !bytes.HasPrefix(b[off:], []byte(want)) {
				t.Errorf("ScanPDF(%d): object %d at %d is %q", size, i+1, off, b[off:off+8])
			}
		}
	}
	if bytes.Equal(ScanPDF(5000, 1, "A")[600:], ScanPDF(5000, 2, "A")[600:]) {
		t.Error("two seeds gave the same scan")
	}
}
