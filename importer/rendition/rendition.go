package rendition

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ContentType is the media type of a rendition.
const ContentType = "application/pdf"

// Bounds of one rendition. Mail content comes from anyone: these keep a
// hostile file's cost bounded in time, memory and pages.
const (
	// MaxInput is the largest XML rendered.
	MaxInput = 32 << 20
	// MaxLines is the number of invoice lines shown; further lines are
	// counted in a visible note.
	MaxLines = 10000
	// MaxValues is the number of values (element texts and attributes)
	// kept; further ones are counted in a visible note.
	MaxValues = 50000
	// MaxValueRunes is the length at which one value is cut, with a note.
	MaxValueRunes = 10000
	// MaxDepth is the deepest nesting accepted; invoices nest about 10 deep.
	MaxDepth = 256
)

type limits struct {
	maxLines, maxValues, maxValueRunes, maxDepth int
}

var defaultLimits = limits{maxLines: MaxLines, maxValues: MaxValues, maxValueRunes: MaxValueRunes, maxDepth: MaxDepth}

// PDF renders the e-invoice XML as a PDF. ctx bounds its time. The same
// input gives the same bytes (the creation date is the invoice's issue
// date), so a retry stores the same content-addressed object.
func PDF(ctx context.Context, xml []byte) ([]byte, error) {
	return renderPDF(ctx, xml, defaultLimits)
}

// ErrRender: the PDF library failed on this input (a bug to report, not
// the sender's fault); PDF recovers such a panic into this error, so a
// hostile mail never takes the importer down.
var ErrRender = errors.New("rendition: rendering failed")

func renderPDF(ctx context.Context, xml []byte, lim limits) (out []byte, err error) {
	defer func() {
		if r := recover(); r != nil {
			out, err = nil, fmt.Errorf("%w: %v", ErrRender, r)
		}
	}()
	if len(xml) > MaxInput {
		return nil, fmt.Errorf("%w: %d bytes, at most %d", ErrTooLarge, len(xml), MaxInput)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	t, err := parse(ctx, xml, lim)
	if err != nil {
		return nil, err
	}
	d, err := build(ctx, t, lim)
	if err != nil {
		return nil, err
	}
	if r := []rune(d.number); len(r) > 200 {
		d.number = string(r[:200]) + "…"
	}
	return render(ctx, d, issued(t))
}

// issued is the invoice's issue date (BT-2) at midnight UTC, or a fixed
// date when it has none: the PDF's creation date must not be the clock's.
func issued(t *tree) time.Time {
	m := &mapper{t: t, paths: map[string][]seg{}}
	var v string
	if t.syntax == cii {
		if n := m.first(t.root, "rsm:ExchangedDocument/ram:IssueDateTime/udt:DateTimeString"); n != nil {
			v = n.text
		}
		if tm, err := time.Parse("20060102", v); err == nil {
			return tm
		}
	} else if n := m.first(t.root, "cbc:IssueDate"); n != nil {
		if tm, err := time.Parse("2006-01-02", n.text); err == nil {
			return tm
		}
	}
	return time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
}
