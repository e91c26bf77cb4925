package bench

import (
	"fmt"
	"math/rand/v2"
	"os"
	"time"

	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// pdfOverhead bounds the PDF around a scan's image bytes.
const pdfOverhead = samples.ScanPDFOverhead

// makePDF writes a PDF of about size bytes into a and returns it.
func makePDF(a *arena, size int, seed uint64, title string) []byte {
	n := max(8, size-pdfOverhead/2)
	head, tail := samples.ScanPDFParts(n, title)
	b := a.alloc(len(head) + n + len(tail))
	copy(b, head)
	body := b[len(head) : len(head)+n]
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 'm', 'g'})
	_, _ = rng.Read(body)
	copy(b[len(head)+n:], tail)
	return b
}

// makeJPEG writes a phone photo of about size bytes into a: a JPEG header
// of 4032×3024 pixels, as a phone takes them, then noise.
func makeJPEG(a *arena, size int, seed uint64) []byte {
	head := []byte{
		0xFF, 0xD8, // SOI
		0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, // APP0
		0xFF, 0xC0, 0x00, 0x11, 8, 0x0B, 0xD0, 0x0F, 0xC0, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, // SOF0 3024×4032
	}
	b := a.alloc(max(size, len(head)+2))
	copy(b, head)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), byte(seed >> 16), byte(seed >> 24), 'j', 'p'})
	_, _ = rng.Read(b[len(head) : len(b)-2])
	copy(b[len(b)-2:], []byte{0xFF, 0xD9}) // EOI
	return b
}

// photoMail is mail i of a scenario with the photos of a paper invoice
// taken with a phone, one per page.
func photoMail(i int, received time.Time, photos [][]byte) graphtest.Mail {
	m := graphtest.Mail{
		From:       "buchhaltung@kunde.example",
		FromName:   "Buchhaltung",
		Subject:    fmt.Sprintf("Belege Reise %d", i),
		Body:       "Hallo,\n\nanbei die Belege als Fotos.\n\nGesendet von meinem iPhone",
		ReceivedAt: received,
	}
	for k, p := range photos {
		m.Attachments = append(m.Attachments, graphtest.Attachment{
			Name: fmt.Sprintf("IMG_%04d.JPG", 1000*i+k), ContentType: "image/jpeg", Content: p,
		})
	}
	return m
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
