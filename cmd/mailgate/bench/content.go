package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// pdfParts returns the head and tail of a one-page PDF whose page shows an
// image of n bytes (the body between them): a scanned invoice, the usual
// large attachment. Random image bytes make every document unique and
// incompressible, as JPEG scans are.
func pdfParts(n int, title string) (head, tail []byte) {
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

// pdfOverhead bounds len(head)+len(tail) of pdfParts.
const pdfOverhead = 1024

// makePDF writes a PDF of about size bytes into a and returns it.
func makePDF(a *arena, size int, seed uint64, title string) []byte {
	n := max(8, size-pdfOverhead/2)
	head, tail := pdfParts(n, title)
	b := a.alloc(len(head) + n + len(tail))
	copy(b, head)
	body := b[len(head) : len(head)+n]
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 'm', 'g'})
	_, _ = rng.Read(body)
	copy(b[len(head)+n:], tail)
	return b
}

// invoiceMail is mail i of a scenario with one PDF attachment.
func invoiceMail(i int, received time.Time, content []byte) graphtest.Mail {
	return graphtest.Mail{
		From:       "rechnung@lieferant.example",
		FromName:   "Lieferant GmbH",
		Subject:    fmt.Sprintf("Ihre Rechnung RE-2026-%05d", i),
		Body:       "Sehr geehrte Damen und Herren,\n\nanbei erhalten Sie Ihre Rechnung.\n\nMit freundlichen Grüßen\nLieferant GmbH",
		ReceivedAt: received,
		Attachments: []graphtest.Attachment{{
			Name: fmt.Sprintf("RE-2026-%05d.pdf", i), ContentType: "application/pdf", Content: content,
		}},
	}
}

func mkdir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	return nil
}
