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
