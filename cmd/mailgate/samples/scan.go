package samples

import (
	"fmt"
	"math/rand/v2"
)

// ScanPDFParts returns the head and tail of a one-page PDF whose page shows
// an image of n bytes (the body between them): a scanned invoice, the usual
// large attachment. Callers fill the body with random bytes, which make
// every document unique and incompressible, as JPEG scans are.
func ScanPDFParts(n int, title string) (head, tail []byte) {
	var offs [4]int
	var h []byte
	add := func(s string) { h = append(h, s...) }
	add("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n")
	offs[0] = len(h)
	add("1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n")
	offs[1] = len(h)
	add("2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n")
	offs[2] = len(h)
	add(fmt.Sprintf("3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] /Resources << /XObject << /Im1 4 0 R >> >> /Title (%s) >>\nendobj\n", title))
	offs[3] = len(h)
	filter := "/DCTDecode"
	add(fmt.Sprintf("4 0 obj\n<< /Type /XObject /Subtype /Image /Width 2480 /Height 3508 /ColorSpace /DeviceRGB /BitsPerComponent 8 /Filter %s /Length %d >>\nstream\n", filter, n))
	xref := len(h) + n + len("\nendstream\nendobj\n")
	t := "\nendstream\nendobj\nxref\n0 5\n0000000000 65535 f \n"
	for _, o := range offs {
		t += fmt.Sprintf("%010d 00000 n \n", o)
	}
	t += fmt.Sprintf("trailer\n<< /Size 5 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", xref)
	return h, []byte(t)
}

// ScanPDFOverhead bounds len(head)+len(tail) of ScanPDFParts.
const ScanPDFOverhead = 1024

// ScanPDF is a scanned invoice of about size bytes (at least
// ScanPDFOverhead): a valid one-page PDF around an image stream of random
// bytes from seed.
func ScanPDF(size int, seed uint64, title string) []byte {
	// The lengths in head and tail have about as many digits for size as
	// for the body's length.
	head, tail := ScanPDFParts(size, title)
	n := max(8, size-len(head)-len(tail))
	head, tail = ScanPDFParts(n, title)
	b := make([]byte, len(head)+n+len(tail))
	copy(b, head)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 's', 'c', 'a', 'n'})
	_, _ = rng.Read(b[len(head) : len(head)+n])
	copy(b[len(head)+n:], tail)
	return b
}
