package policy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/pdfcpu/pdfcpu/pkg/api"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/model"
	"github.com/pdfcpu/pdfcpu/pkg/pdfcpu/types"
)

// zugferdNames are the embedded file names of ZUGFeRD 1.0
// (ZUGFeRD-invoice.xml), ZUGFeRD 2.0 (zugferd-invoice.xml), ZUGFeRD
// 2.1+/Factur-X (factur-x.xml) and XRechnung-in-PDF (xrechnung.xml),
// compared case-insensitively.
var zugferdNames = []string{"factur-x.xml", "zugferd-invoice.xml", "xrechnung.xml"}

// hintNeedles are looked for (lower case) by the byte scan: the file names
// (in the XMP metadata PDF/A-3 requires), an embedded files name tree, or
// object streams, whose compressed content could hide either. Names written
// as hex or UTF-16 strings are covered by the name tree marker.
var hintNeedles = [][]byte{
	[]byte("factur-x.xml"), []byte("zugferd-invoice.xml"), []byte("xrechnung.xml"),
	[]byte("/embeddedfiles"), []byte("/objstm"),
}

// maxEmbeddedXML bounds how much of an embedded invoice is read.
const maxEmbeddedXML = 4 << 20

// Defaults of the bounds on reading a PDF's embedded files.
const (
	// DefaultPDFMaxSize is the largest PDF whose embedded files are
	// read; a larger one is a plain PDF. ZUGFeRD PDFs are a few MiB.
	DefaultPDFMaxSize = 32 << 20
	// DefaultPDFTimeout bounds the PDF reader's time per PDF; a PDF that
	// takes longer is a plain PDF.
	DefaultPDFTimeout = 10 * time.Second
	// pdfReaders is how many PDF readers run at once. A reader that
	// overran its time holds its slot until it really ends, so runaway
	// readers can never pile up.
	pdfReaders = 4
)

// errPDFBound says the PDF was over the size or time bound.
var errPDFBound = errors.New("policy: pdf over the reader's bound")

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

// pdfcpuConfig reads without validation (ReadContext does not validate):
// real ZUGFeRD PDFs declare %PDF-1.3 yet carry PDF/A-3 entries such as
// /AFRelationship, which validation refuses. An empty user password opens
// PDFs encrypted only against changes.
func pdfcpuConfig() *model.Configuration {
	pdfcpuOnce.Do(api.DisableConfigDir)
	conf := model.NewDefaultConfiguration()
	conf.ValidationMode = model.ValidationRelaxed
	conf.Cmd = model.EXTRACTATTACHMENTS
	return conf
}

// embeddedInvoice finds the e-invoice embedded in a PDF: first with pdfcpu
// (no validation, bounded in time), then, when pdfcpu cannot read the
// file, with a lenient scan of its objects. found is false when there is
// none, or when the PDF is over the size or time bound: a PDF is still a
// PDF.
func (p *Policy) embeddedInvoice(ctx context.Context, rs io.ReadSeeker, size int64) (inv EInvoice, name string, found bool) {
	if size > p.pdfMaxSize {
		return EInvoice{}, "", false
	}
	if _, err := rs.Seek(0, io.SeekStart); err != nil {
		return EInvoice{}, "", false
	}
	// pdfcpu gets its own copy: a reader that overran its time goes on
	// in the background and must not share the caller's file offset.
	pdf, err := io.ReadAll(io.LimitReader(rs, p.pdfMaxSize+1))
	if err != nil || int64(len(pdf)) > p.pdfMaxSize {
		return EInvoice{}, "", false
	}
	aa, err := p.pdfAttachments(ctx, pdf)
	if errors.Is(err, errPDFBound) || ctx.Err() != nil {
		return EInvoice{}, "", false
	}
	if err == nil {
		if inv, name, found := invoiceAmong(ctx, aa); found {
			return inv, name, true
		}
	}
	// pdfcpu could not read the file or found no invoice where the
	// objects may still hold one (a broken name tree, a damaged xref).
	aa = scanAttachments(ctx, pdf)
	if ctx.Err() != nil {
		return EInvoice{}, "", false
	}
	return invoiceAmong(ctx, aa)
}

func invoiceAmong(ctx context.Context, aa []attachment) (EInvoice, string, bool) {
	for _, a := range aa {
		if !isZUGFeRDName(a.name) {
			continue
		}
		inv, _, _ := parseEInvoice(ctx, bytes.NewReader(a.data))
		if inv.Syntax == "" {
			inv.Syntax = SyntaxCII
		}
		inv.XML = a.data
		return inv, a.name, true
	}
	return EInvoice{}, "", false
}

// attachment is an embedded file: its name and (decoded) content.
type attachment struct {
	name string
	data []byte
}

// pdfAttachments lists the embedded files with pdfcpu within the time
// bound, the document's deadline (ctx) and the reader slots. errPDFBound
// when over a bound.
func (p *Policy) pdfAttachments(ctx context.Context, pdf []byte) ([]attachment, error) {
	timer := time.NewTimer(p.pdfTimeout)
	defer timer.Stop()
	select {
	case p.pdfSlots <- struct{}{}:
	case <-timer.C:
		return nil, errPDFBound
	case <-ctx.Done():
		return nil, errPDFBound
	}
	// The reader runs on its own context: one that overran its time goes
	// on until pdfcpu looks at it, holding its slot, not the caller.
	rctx, cancel := context.WithCancel(context.Background())
	type result struct {
		aa  []attachment
		err error
	}
	done := make(chan result, 1)
	go func() {
		defer func() { <-p.pdfSlots }()
		defer cancel()
		var res result
		defer func() {
			if v := recover(); v != nil { // pdfcpu on hostile input
				res = result{err: fmt.Errorf("policy: pdf reader panic: %v", v)}
			}
			done <- res
		}()
		res.aa, res.err = readAttachments(rctx, pdf)
	}()
	select {
	case res := <-done:
		return res.aa, res.err
	case <-timer.C:
	case <-ctx.Done():
	}
	cancel() // stops pdfcpu's reading; its slot frees when it returns
	return nil, errPDFBound
}

// readAttachments reads the PDF with pdfcpu without validation and walks
// the EmbeddedFiles name tree and the catalog's /AF list (PDF/A-3
// associated files) itself: pdfcpu's own attachment listing needs a
// validated document. pdfcpu resolves cross-reference streams, object
// streams, incremental updates and encryption with an empty user
// password.
func readAttachments(ctx context.Context, pdf []byte) ([]attachment, error) {
	pc, err := pdfcpu.ReadWithContext(ctx, bytes.NewReader(pdf), pdfcpuConfig())
	if err != nil {
		return nil, fmt.Errorf("policy: read pdf: %w", err)
	}
	xrt := pc.XRefTable
	cat, err := xrt.Catalog()
	if err != nil || cat == nil {
		return nil, fmt.Errorf("policy: pdf catalog: %v", err)
	}
	var specs []types.Object
	seen := map[types.IndirectRef]bool{} // name tree nodes and file specifications
	var node func(o types.Object, depth int)
	node = func(o types.Object, depth int) {
		if ref, ok := o.(types.IndirectRef); ok {
			if seen[ref] {
				return
			}
			seen[ref] = true
		}
		d, err := xrt.DereferenceDict(o)
		if err != nil || d == nil || depth > 16 {
			return
		}
		if names, err := xrt.DereferenceArray(d["Names"]); err == nil {
			for i := 1; i < len(names); i += 2 {
				specs = append(specs, names[i])
			}
		}
		if kids, err := xrt.DereferenceArray(d["Kids"]); err == nil {
			for _, k := range kids {
				node(k, depth+1)
			}
		}
	}
	if nd, err := xrt.DereferenceDict(cat["Names"]); err == nil && nd != nil {
		node(nd["EmbeddedFiles"], 0)
	}
	if af, err := xrt.DereferenceArray(cat["AF"]); err == nil {
		specs = append(specs, af...)
	}
	var out []attachment
	for _, o := range specs {
		if ref, ok := o.(types.IndirectRef); ok {
			if seen[ref] {
				continue // in the name tree and in /AF
			}
			seen[ref] = true
		}
		spec, err := xrt.DereferenceDict(o)
		if err != nil || spec == nil {
			continue
		}
		var a attachment
		for _, k := range []string{"UF", "F"} {
			if v, ok := spec[k]; ok && a.name == "" {
				a.name, _ = xrt.DereferenceStringOrHexLiteral(v, model.V10, nil)
			}
		}
		if isZUGFeRDName(a.name) {
			a.data = fileSpecContent(xrt, spec)
		}
		out = append(out, a)
	}
	if len(out) == 0 && len(specs) > 0 {
		return nil, errors.New("policy: pdf attachments: no readable file specification")
	}
	return out, nil
}

// fileSpecContent decodes a file specification's embedded file (EF/F,
// else EF/UF), up to maxEmbeddedXML bytes.
func fileSpecContent(xrt *model.XRefTable, spec types.Dict) []byte {
	ef, err := xrt.DereferenceDict(spec["EF"])
	if err != nil || ef == nil {
		return nil
	}
	for _, k := range []string{"F", "UF"} {
		sd, _, err := xrt.DereferenceStreamDict(ef[k])
		if err != nil || sd == nil {
			continue
		}
		if len(sd.FilterPipeline) == 0 {
			return sd.Raw[:min(len(sd.Raw), maxEmbeddedXML)]
		}
		if b, err := sd.DecodeLengthWithLimit(-1, maxEmbeddedXML); err == nil {
			return b
		}
	}
	return nil
}

func isZUGFeRDName(name string) bool {
	l := strings.ToLower(strings.TrimSpace(name))
	for _, n := range zugferdNames {
		if l == n {
			return true
		}
	}
	return false
}
