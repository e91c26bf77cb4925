package rendition

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"
)

// FuzzPDF: no input panics (a recovered one is ErrRender, a failure
// here) or takes over 5 s; an input is either rendered as a PDF or
// refused with one of the package's errors.
func FuzzPDF(f *testing.F) {
	f.Add([]byte(creditNote))
	f.Add([]byte(ciiInvoice))
	f.Add(manyLines(3))
	f.Add([]byte(ublHead + "<cac:InvoiceLine><cac:SubInvoiceLine><cbc:ID>1</cbc:ID></cac:SubInvoiceLine></cac:InvoiceLine></Invoice>"))
	f.Fuzz(func(t *testing.T, in []byte) {
		type res struct {
			out []byte
			err error
		}
		ch := make(chan res, 1)
		go func() {
			out, err := PDF(context.Background(), in)
			ch <- res{out, err}
		}()
		var out []byte
		var err error
		select {
		case r := <-ch:
			out, err = r.out, r.err
		case <-time.After(5 * time.Second):
			t.Fatalf("took over 5 s on %d bytes", len(in))
		}
		if err != nil {
			if !errors.Is(err, ErrNotXML) && !errors.Is(err, ErrNotInvoice) && !errors.Is(err, ErrTooDeep) && !errors.Is(err, ErrTooLarge) {
				t.Fatalf("unexpected error kind: %v", err)
			}
			return
		}
		if !bytes.HasPrefix(out, []byte("%PDF-")) || !bytes.HasSuffix(bytes.TrimSpace(out), []byte("%%EOF")) {
			t.Fatalf("not a PDF: %q…", out[:min(len(out), 20)])
		}
		if page, err := HTML(context.Background(), in); err != nil || !bytes.HasPrefix(page, []byte("<!DOCTYPE html>")) {
			t.Fatalf("PDF rendered, HTML not: %v", err)
		}
	})
}
