package rendition

import (
	"math"
	"strings"

	"codeberg.org/go-pdf/fpdf"
	"golang.org/x/image/font/gofont/gobold"
	"golang.org/x/image/font/gofont/goregular"
	"golang.org/x/text/encoding/charmap"
)

// pen writes and measures text in one of two faces. A document whose
// every character is in Windows-1252 (PDF's WinAnsiEncoding: German, and
// the other Western European languages) is set in Helvetica, one of the
// fonts every PDF reader has built in: no font program to parse, subset,
// compress and embed, which was four fifths of a rendition's time. Any
// other document is set in the embedded Go fonts, which cover the Basic
// Multilingual Plane. The layout code passes UTF-8 either way; the pen
// encodes at the point of drawing and measuring.
type pen struct {
	f      *fpdf.Fpdf
	core   bool // Helvetica in WinAnsiEncoding
	family string
	bold   bool
	widths [2]*[256]int // core: glyph widths per WinAnsi byte, regular and bold
}

func newPen(f *fpdf.Fpdf, d *doc) *pen {
	if winAnsi(d) {
		return &pen{f: f, core: true, family: "Helvetica"}
	}
	f.AddUTF8FontFromBytes("go", "", goregular.TTF)
	f.AddUTF8FontFromBytes("go", "B", gobold.TTF)
	return &pen{f: f, family: "go"}
}

// winAnsi tells whether every text of d can be set in WinAnsiEncoding.
func winAnsi(d *doc) bool {
	texts := []string{d.title, d.number, d.syntax}
	for _, s := range d.sections {
		texts = append(texts, s.title)
		for _, it := range s.items {
			texts = append(texts, it.label, it.value)
			if t := it.table; t != nil {
				texts = append(texts, t.head...)
				for _, r := range t.rows {
					texts = append(texts, r.cells...)
					texts = append(texts, r.detail...)
				}
			}
		}
	}
	for _, s := range texts {
		for _, r := range s {
			if _, ok := charmap.Windows1252.EncodeRune(r); !ok {
				return false
			}
		}
	}
	return true
}

func (p *pen) font(style string, size float64) {
	p.bold = style == "B"
	p.f.SetFont(p.family, style, size)
}

// enc is s as the current face takes it.
func (p *pen) enc(s string) string {
	if !p.core {
		return s
	}
	b := make([]byte, 0, len(s))
	for _, r := range s {
		c, ok := charmap.Windows1252.EncodeRune(r)
		if !ok { // winAnsi let the document through: not reached
			c = '?'
		}
		b = append(b, c)
	}
	return string(b)
}

func (p *pen) width(s string) float64 { return p.f.GetStringWidth(p.enc(s)) }

func (p *pen) cell(w, h float64, s, border string, ln int, align string) {
	p.f.CellFormat(w, h, p.enc(s), border, ln, align, false, 0, "")
}

// split breaks s into lines of at most w mm, after the last space that
// fits or, in a word wider than w, inside it; each line break in s starts
// a new line. In the Go fonts it is fpdf's SplitText; in Helvetica it
// measures WinAnsi bytes, which SplitText, reading runes, cannot.
func (p *pen) split(s string, w float64) []string {
	if !p.core {
		return p.f.SplitText(s, w)
	}
	_, size := p.f.GetFontSize()
	most := int(math.Ceil((w - 2*p.f.GetCellMargin()) * 1000 / size))
	var lines []string
	for _, para := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		lines = append(lines, p.splitLine([]rune(para), most)...)
	}
	return lines
}

// splitLine breaks rs, a paragraph, into lines of at most most glyph units.
func (p *pen) splitLine(rs []rune, most int) []string {
	var lines []string
	start, space, used := 0, -1, 0
	for i := 0; i < len(rs); {
		if rs[i] == ' ' {
			space = i
		}
		used += p.glyph(rs[i])
		if used <= most {
			i++
			continue
		}
		end := i // rs[i] starts the next line
		switch {
		case space >= 0: // break at the space, which neither line keeps
			end, i = space, space+1
		case i == start: // not even one character fits: it goes alone
			end, i = i+1, i+1
		}
		lines = append(lines, string(rs[start:end]))
		start, space, used = i, -1, 0
	}
	if start < len(rs) {
		lines = append(lines, string(rs[start:]))
	}
	return lines
}

// glyph is the width of r in the current core face, in 1/1000 of the size.
func (p *pen) glyph(r rune) int {
	i := 0
	if p.bold {
		i = 1
	}
	if p.widths[i] == nil {
		p.widths[i] = new([256]int)
		for b := range 256 {
			p.widths[i][b] = p.f.GetStringSymbolWidth(string([]byte{byte(b)}))
		}
	}
	c, ok := charmap.Windows1252.EncodeRune(r)
	if !ok {
		c = '?'
	}
	return p.widths[i][c]
}
