package policy

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
)

// zugferdNames are the embedded file names of ZUGFeRD 1/2, Factur-X and
// XRechnung-in-PDF, compared case-insensitively.
var zugferdNames = []string{"factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml"}

// hintNeedles are looked for (lower case) by the byte scan: the file names
// (in the XMP metadata PDF/A-3 requires), an embedded files name tree, or
// object streams, whose compressed content could hide either. Names written
// as hex or UTF-16 strings are covered by the name tree marker.
var hintNeedles = [][]byte{
	[]byte("factur-x.xml"), []byte("zugferd-invoice.xml"), []byte("xrechnung.xml"),
	[]byte("/embeddedfiles"), []byte("/objstm"),
}

// maxEmbeddedXML bounds how much of an embedded invoice is read for its
// profile.
const maxEmbeddedXML = 4 << 20

// zugferdHint scans the whole PDF for the embedded invoice names. It reads
// in chunks with an overlap so a name split between chunks is still found.
func zugferdHint(r io.Reader) (bool, error) {
	const chunk = 64 << 10
	overlap := 0
	for _, n := range hintNeedles {
		overlap = max(overlap, len(n)-1)
	}
	buf := make([]byte, chunk+overlap)
	keep := 0
	for {
		n, err := r.Read(buf[keep:])
		if n > 0 {
			// Lower-case ASCII in place: bytes.ToLower would grow binary
			// (non-UTF-8) content, and a PDF is mostly binary.
			end := keep + n
			for i, c := range buf[keep:end] {
				if 'A' <= c && c <= 'Z' {
					buf[keep+i] = c + ('a' - 'A')
				}
			}
			for _, needle := range hintNeedles {
				if bytes.Contains(buf[:end], needle) {
					return true, nil
				}
			}
			keep = min(overlap, end)
			copy(buf, buf[end-keep:end])
		}
		if err == io.EOF {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("policy: scan pdf: %w", err)
		}
	}
}

// pdfcpuOnce guards the one global setting pdfcpu needs: without it the
// first configuration writes a config directory under the user's home.
var pdfcpuOnce sync.Once

func pdfcpuConfig() *model.Configuration {
	pdfcpuOnce.Do(api.DisableConfigDir)
	conf := model.NewDefaultConfiguration()
	conf.ValidationMode = model.ValidationRelaxed
	return conf
}

// embeddedInvoice lists the PDF's embedded files with pdfcpu and returns the
// e-invoice among them. found is false when there is none or the PDF cannot
// be read (an encrypted or broken PDF is still a PDF).
func embeddedInvoice(rs io.ReadSeeker) (inv EInvoice, name string, found bool) {
	defer func() {
		if recover() != nil { // pdfcpu on hostile input: treat as plain PDF
			inv, name, found = EInvoice{}, "", false
		}
	}()
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return EInvoice{}, "", false
	}
	aa, err := api.ExtractAttachmentsRaw(rs, "", nil, pdfcpuConfig())
	if err != nil {
		return EInvoice{}, "", false
	}
	for _, a := range aa {
		if !isZUGFeRDName(a.FileName) {
			continue
		}
		if a.Reader != nil {
			inv, _ = DetectEInvoice(io.LimitReader(a.Reader, maxEmbeddedXML))
		}
		if inv.Syntax == "" {
			inv.Syntax = SyntaxCII
		}
		return inv, a.FileName, true
	}
	return EInvoice{}, "", false
}

func isZUGFeRDName(name string) bool {
	l := strings.ToLower(name)
	for _, n := range zugferdNames {
		if l == n {
			return true
		}
	}
	return false
}
