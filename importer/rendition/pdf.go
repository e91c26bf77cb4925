package rendition

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"codeberg.org/go-pdf/fpdf"
)

// Page geometry in mm (A4 portrait).
const (
	pageW, pageH        = 210.0, 297.0
	marginL, marginR    = 15.0, 15.0
	marginTop           = 24.0 // below the header
	bottom              = pageH - 16.0
	textW               = pageW - marginL - marginR
	labelW              = 72.0
	lineH               = 4.0
	smallH              = 3.5
	fontBody, fontSmall = 8.5, 7.0
)

// writer lays the doc out on pages; it breaks pages itself (auto page
// break is off) so label and value columns and table rows stay aligned.
type writer struct {
	f    *fpdf.Fpdf
	p    *pen
	ctx  context.Context
	head func() // a table's header, repeated after a page break
	n    int    // drawn rows, to check ctx now and then
}

func render(ctx context.Context, d *doc, created time.Time) ([]byte, error) {
	f := fpdf.New("P", "mm", "A4", "")
	f.SetCatalogSort(true)
	f.SetCreationDate(created)
	f.SetModificationDate(created)
	f.SetProducer("mailgate rendition", true)
	f.SetCreator("mailgate", true)
	f.SetTitle(drawable(d.title+" "+d.number), true)
	f.SetLang("de-DE")
	p := newPen(f, d)
	// Helvetica's pages are a few KB of text: zlib's writer, set up anew for
	// each page stream (1.2 MB of tables), cost more time than the 20 KB it
	// saved. The Go fonts' programs are large and stay compressed.
	f.SetCompression(!p.core)
	f.SetMargins(marginL, marginTop, marginR)
	f.SetAutoPageBreak(false, 0)
	f.AliasNbPages("{nb}")
	w := &writer{f: f, p: p, ctx: ctx}
	f.SetHeaderFunc(func() {
		p.font("B", 13)
		f.SetTextColor(20, 40, 80)
		f.SetXY(marginL, 10)
		title := d.title
		if d.number != "" {
			title += " Nr. " + d.number
		}
		p.cell(textW*0.68, 6, clip(p, title, textW*0.68), "", 0, "L")
		p.font("", fontSmall)
		f.SetTextColor(90, 90, 90)
		p.cell(textW*0.32, 6, "Lesbare Darstellung / readable rendition", "", 0, "R")
		f.SetXY(marginL, 16)
		p.cell(textW, 4, "aus der elektronischen Rechnung ("+d.syntax+"); maßgeblich ist die XML-Datei / the XML is authoritative", "", 0, "R")
		f.SetDrawColor(20, 40, 80)
		f.SetLineWidth(0.4)
		f.Line(marginL, 21, pageW-marginR, 21)
		f.SetTextColor(0, 0, 0)
		f.SetXY(marginL, marginTop)
	})
	f.SetFooterFunc(func() {
		p.font("", fontSmall)
		f.SetTextColor(90, 90, 90)
		f.SetXY(marginL, pageH-11)
		p.cell(textW, 4, fmt.Sprintf("Seite %d / {nb}", f.PageNo()), "", 0, "C")
		f.SetTextColor(0, 0, 0)
	})
	f.AddPage()
	for _, s := range d.sections {
		w.section(s.title)
		for _, it := range s.items {
			if err := w.tick(); err != nil {
				return nil, err
			}
			switch it.kind {
			case kvItem:
				w.kv(it.label, it.value)
			case subItem:
				w.sub(it.label)
			case noteItem:
				w.note(it.value)
			case tableItem:
				if err := w.table(it.table); err != nil {
					return nil, err
				}
			}
		}
		f.SetY(f.GetY() + 3)
	}
	if err := f.Error(); err != nil {
		return nil, fmt.Errorf("rendition: pdf: %w", err)
	}
	var buf bytes.Buffer
	if err := f.Output(&buf); err != nil {
		return nil, fmt.Errorf("rendition: pdf: %w", err)
	}
	return buf.Bytes(), nil
}

func (w *writer) tick() error {
	w.n++
	if w.n&127 == 0 {
		return w.ctx.Err()
	}
	return nil
}

// room breaks the page when h mm do not fit any more.
func (w *writer) room(h float64) {
	if w.f.GetY()+h > bottom {
		w.f.AddPage()
		if w.head != nil {
			w.head()
		}
	}
}

func (w *writer) section(title string) {
	f, p := w.f, w.p
	p.font("B", 10)
	lines := p.split(title, textW-4)
	h := float64(len(lines))*5 + 2
	w.room(h + 8*lineH) // never a heading alone at a page's foot: room for a table's header and a row
	f.SetFillColor(222, 230, 242)
	f.SetTextColor(20, 40, 80)
	y := f.GetY()
	f.Rect(marginL, y, textW, h, "F")
	for i, l := range lines {
		f.SetXY(marginL+2, y+1+float64(i)*5)
		p.cell(textW-4, 5, l, "", 0, "L")
	}
	f.SetTextColor(0, 0, 0)
	f.SetXY(marginL, y+h+1.5)
}

func (w *writer) sub(title string) {
	f, p := w.f, w.p
	p.font("B", fontBody)
	lines := wrapPath(p, title, textW)
	if len(lines) > 12 { // a hostile path: its start and end tell where it is
		lines = append(append(lines[:6:6], "…"), lines[len(lines)-5:]...)
	}
	h := float64(len(lines)) * lineH
	w.room(h + 2*lineH)
	y := f.GetY() + 1
	for i, l := range lines {
		f.SetXY(marginL, y+float64(i)*lineH)
		p.cell(textW, lineH, l, "", 0, "L")
	}
	f.SetDrawColor(200, 200, 200)
	f.SetLineWidth(0.2)
	f.Line(marginL, y+h, pageW-marginR, y+h)
	f.SetXY(marginL, y+h+0.8)
}

// wrapPath wraps like wrap, but breaks an element path after a '/'
// rather than inside a name.
func wrapPath(p *pen, s string, w float64) []string {
	if !strings.HasPrefix(s, "/") || strings.ContainsAny(s, " \n") {
		return wrap(p, s, w)
	}
	s = drawable(s)
	avail := w - 2*p.f.GetCellMargin()
	var out []string
	cur := ""
	for _, seg := range strings.SplitAfter(s, "/") {
		if seg == "" {
			continue
		}
		if cur != "" && p.width(cur+seg) > avail {
			out = append(out, cur)
			cur = ""
		}
		cur += seg
		if p.width(cur) > avail { // one name wider than the column
			parts := p.split(cur, w)
			out = append(out, parts[:len(parts)-1]...)
			cur = parts[len(parts)-1]
		}
	}
	if cur != "" {
		out = append(out, cur)
	}
	return out
}

func (w *writer) note(text string) {
	f, p := w.f, w.p
	p.font("B", fontBody)
	f.SetTextColor(150, 30, 30)
	for _, l := range wrap(p, text, textW) {
		w.room(lineH)
		f.SetX(marginL)
		p.cell(textW, lineH, l, "", 1, "L")
	}
	f.SetTextColor(0, 0, 0)
}

// kv writes a label and its value in two columns; a value longer than a
// page continues on the next one.
func (w *writer) kv(label, value string) {
	f, p := w.f, w.p
	p.font("", fontSmall)
	ls := wrapPath(p, label, labelW-2)
	p.font("", fontBody)
	vs := wrap(p, value, textW-labelW)
	n := max(len(ls), len(vs))
	h := float64(n)*lineH + 0.8
	if h <= bottom-marginTop {
		w.room(h)
	}
	y := f.GetY()
	if y+h <= bottom {
		// labels first, then the value: text extraction keeps each whole
		p.font("", fontSmall)
		f.SetTextColor(85, 85, 85)
		for i, l := range ls {
			f.SetXY(marginL, y+0.3+float64(i)*lineH)
			p.cell(labelW-2, lineH, l, "", 0, "L")
		}
		p.font("", fontBody)
		f.SetTextColor(0, 0, 0)
		for i, l := range vs {
			f.SetXY(marginL+labelW, y+float64(i)*lineH)
			p.cell(textW-labelW, lineH, l, "", 0, "L")
		}
		n = 0
		y += h - 0.8
	}
	for i := 0; i < n; i++ {
		if y+lineH > bottom {
			w.room(bottom) // forces the break
			y = f.GetY()
		}
		if i < len(ls) {
			p.font("", fontSmall)
			f.SetTextColor(85, 85, 85)
			f.SetXY(marginL, y+0.3)
			p.cell(labelW-2, lineH, ls[i], "", 0, "L")
		}
		if i < len(vs) {
			p.font("", fontBody)
			f.SetTextColor(0, 0, 0)
			f.SetXY(marginL+labelW, y)
			p.cell(textW-labelW, lineH, vs[i], "", 0, "L")
		}
		y += lineH
	}
	f.SetTextColor(0, 0, 0)
	f.SetDrawColor(235, 235, 235)
	f.SetLineWidth(0.1)
	f.Line(marginL, y+0.4, pageW-marginR, y+0.4)
	f.SetXY(marginL, y+0.8)
}

// table writes rows under a header that repeats on every page; a row's
// details run full width below it and may continue on the next page.
func (w *writer) table(t *table) error {
	f, p := w.f, w.p
	head := func() {
		p.font("B", fontSmall)
		var cols [][]string
		n := 0
		for i, h := range t.head {
			c := wrap(p, h, t.widths[i]-1.5)
			cols = append(cols, c)
			n = max(n, len(c))
		}
		hh := float64(n)*smallH + 1.5
		y := f.GetY()
		f.SetFillColor(238, 241, 246)
		f.Rect(marginL, y, textW, hh, "F")
		x := marginL
		for i, c := range cols {
			for j, l := range c {
				f.SetXY(x+0.5, y+0.7+float64(j)*smallH)
				p.cell(t.widths[i]-1, smallH, l, "", 0, align(t, i))
			}
			x += t.widths[i]
		}
		f.SetXY(marginL, y+hh+0.5)
	}
	w.room(6 * lineH)
	head()
	w.head = head
	defer func() { w.head = nil }()
	for _, r := range t.rows {
		if err := w.tick(); err != nil {
			return err
		}
		var cols [][]cline
		n := 0
		for i, c := range r.cells {
			cl := fit(p, c, t.widths[i]-1.5)
			if len(cl) > 40 { // a hostile name: the cell says where the rest is
				cl = append(cl[:39], cline{"… (Fortsetzung unten)", fontBody})
				r.detail = append([]string{"Fortsetzung / continued: " + c}, r.detail...)
			}
			cols = append(cols, cl)
			n = max(n, len(cl))
		}
		p.font("", fontSmall)
		var det []string
		for _, d := range r.detail {
			det = append(det, wrap(p, d, textW-6)...)
		}
		h := float64(n)*lineH + float64(len(det))*smallH + 1.5
		if h <= bottom-marginTop-20 {
			w.room(h)
		} else {
			w.room(float64(n)*lineH + 1)
		}
		y := f.GetY()
		p.font("", fontBody)
		x := marginL
		for i, c := range cols {
			for j, l := range c {
				f.SetFontSize(l.size)
				f.SetXY(x+0.5, y+0.5+float64(j)*lineH)
				p.cell(t.widths[i]-1, lineH, l.s, "", 0, align(t, i))
			}
			x += t.widths[i]
		}
		f.SetFontSize(fontBody)
		y += float64(n)*lineH + 0.5
		p.font("", fontSmall)
		f.SetTextColor(60, 60, 60)
		for _, l := range det {
			if y+smallH > bottom {
				f.SetXY(marginL, y)
				w.room(bottom)
				p.font("", fontSmall)
				f.SetTextColor(60, 60, 60)
				y = f.GetY()
			}
			f.SetXY(marginL+6, y)
			p.cell(textW-6, smallH, l, "", 0, "L")
			y += smallH
		}
		f.SetTextColor(0, 0, 0)
		f.SetDrawColor(210, 210, 210)
		f.SetLineWidth(0.15)
		f.Line(marginL, y+0.5, pageW-marginR, y+0.5)
		f.SetXY(marginL, y+1)
	}
	return nil
}

func align(t *table, i int) string {
	if i < len(t.right) && t.right[i] {
		return "R"
	}
	return "L"
}

// drawable replaces what fpdf cannot draw: its Unicode fonts cover the
// Basic Multilingual Plane only (a rune beyond it panics in fpdf), so an
// emoji or a rare CJK character is written as its code point, "[U+1F600]".
func drawable(s string) string {
	ok := true
	for _, r := range s {
		if r > 0xffff {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if r > 0xffff {
			fmt.Fprintf(&b, "[U+%X]", r)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// cline is one line of a table cell with its font size.
type cline struct {
	s    string
	size float64
}

// fit lays a table cell out in w mm: a paragraph a little too wide for
// its column is set smaller rather than broken (a number split over two
// lines misleads), a longer one wraps.
func fit(p *pen, text string, w float64) []cline {
	const smallest = 6.5
	p.font("", fontBody)
	var out []cline
	for _, para := range strings.Split(drawable(text), "\n") {
		avail := w - 2*p.f.GetCellMargin()
		if wd := p.width(para); wd > avail && fontBody*avail/wd >= smallest {
			out = append(out, cline{para, math.Floor(fontBody*avail/wd*10) / 10})
			continue
		}
		for _, l := range wrap(p, para, w) {
			out = append(out, cline{l, fontBody})
		}
	}
	return out
}

// wrap splits text into lines that fit w mm in the current font, keeping
// its own line breaks.
func wrap(p *pen, text string, w float64) []string {
	text = drawable(text)
	var out []string
	for _, para := range strings.Split(text, "\n") {
		para = strings.TrimRight(para, " ")
		if para == "" {
			out = append(out, "")
			continue
		}
		out = append(out, p.split(para, w)...)
	}
	return out
}

// clip shortens a one-line text to w mm.
func clip(p *pen, s string, w float64) string {
	s = drawable(s)
	if p.width(s) <= w {
		return s
	}
	r := []rune(s)
	for len(r) > 0 && p.width(string(r)+"…") > w {
		r = r[:len(r)-1]
	}
	return string(r) + "…"
}
