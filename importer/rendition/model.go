package rendition

import (
	"strconv"
	"strings"
)

// doc is what the PDF shows, independent of the syntax it came from.
type doc struct {
	title    string // Rechnung, Gutschrift, …
	number   string // BT-1
	syntax   string // "UBL Invoice", …
	sections []*section
}

type section struct {
	title string
	items []item
}

type itemKind int

const (
	kvItem itemKind = iota
	subItem
	tableItem
	noteItem
)

type item struct {
	kind         itemKind
	label, value string
	table        *table
}

type table struct {
	head   []string
	widths []float64 // mm, summing to the text width
	right  []bool    // right-aligned columns (amounts)
	rows   []row
}

type row struct {
	cells  []string
	detail []string // full-width lines under the row
}

func (s *section) kv(label, value string) {
	if value == "" {
		return
	}
	s.items = append(s.items, item{kind: kvItem, label: label, value: value})
}

func (s *section) sub(title string) { s.items = append(s.items, item{kind: subItem, label: title}) }

func (s *section) note(text string) { s.items = append(s.items, item{kind: noteItem, value: text}) }

// f is one business term: German label, the standard's English name, its
// BT or BG id, and where it is relative to the node it is looked up from.
type f struct {
	de, en, bt, path string
}

func (x f) label() string { return label(x.de, x.en, x.bt) }

func label(de, en, bt string) string {
	s := de
	if en != "" {
		s += " / " + en
	}
	if bt != "" {
		s += " (" + bt + ")"
	}
	return s
}

// seg is one step of a path: an element name with an optional predicate
// on a child path or attribute ("cac:PartyTaxScheme[cac:TaxScheme/cbc:ID=VAT]",
// "ram:ID[@schemeID!=VA]").
type seg struct {
	name   string
	pred   string
	negate bool
	val    string
}

type mapper struct {
	t     *tree
	paths map[string][]seg
}

func (m *mapper) segs(path string) []seg {
	if s, ok := m.paths[path]; ok {
		return s
	}
	var out []seg
	depth, start := 0, 0
	split := func(p string) {
		s := seg{name: p}
		if i := strings.IndexByte(p, '['); i >= 0 && strings.HasSuffix(p, "]") {
			s.name = p[:i]
			pred := p[i+1 : len(p)-1]
			if j := strings.Index(pred, "!="); j >= 0 {
				s.pred, s.val, s.negate = pred[:j], pred[j+2:], true
			} else if j := strings.IndexByte(pred, '='); j >= 0 {
				s.pred, s.val = pred[:j], pred[j+1:]
			}
		}
		out = append(out, s)
	}
	for i := 0; i < len(path); i++ {
		switch path[i] {
		case '[':
			depth++
		case ']':
			depth--
		case '/':
			if depth == 0 {
				split(path[start:i])
				start = i + 1
			}
		}
	}
	split(path[start:])
	m.paths[path] = out
	return out
}

// find returns the nodes at path below n, in document order.
func (m *mapper) find(n *node, path string) []*node {
	if n == nil {
		return nil
	}
	cur := []*node{n}
	for _, s := range m.segs(path) {
		var next []*node
		for _, c := range cur {
			for _, k := range c.kids {
				if k.name == s.name && m.holds(k, s) {
					next = append(next, k)
				}
			}
		}
		if len(next) == 0 {
			return nil
		}
		cur = next
	}
	return cur
}

func (m *mapper) first(n *node, path string) *node {
	if r := m.find(n, path); len(r) > 0 {
		return r[0]
	}
	return nil
}

func (m *mapper) holds(n *node, s seg) bool {
	if s.pred == "" {
		return true
	}
	eq := false
	if strings.HasPrefix(s.pred, "@") {
		for _, a := range n.attrs {
			if a.name == s.pred[1:] && a.value == s.val {
				eq = true
			}
		}
	} else {
		for _, k := range m.find(n, s.pred) {
			if k.text == s.val {
				eq = true
			}
		}
	}
	return eq != s.negate
}

// show returns n's value as the rendition writes it (dates as DD.MM.YYYY,
// codes with their meaning, attributes beside) and marks it shown.
func (m *mapper) show(n *node) string {
	n.used = true
	var b strings.Builder
	date := false
	switch {
	case n.binary:
		// file name and type first, then the size; the content is not shown
		var named []string
		for _, want := range []string{"filename", "mimeCode"} {
			for i := range n.attrs {
				a := &n.attrs[i]
				if a.name == want && a.cut == 0 {
					a.used = true
					named = append(named, a.value)
				}
			}
		}
		if len(named) > 0 {
			b.WriteString(strings.Join(named, ", ") + ", ")
		}
		b.WriteString(strconv.Itoa(n.binarySize) + " Bytes (eingebettet; Base64-Inhalt nicht dargestellt / embedded, content not shown)")
	default:
		v := n.text
		if d, ok := formatDate(n); ok {
			v, date = d, true
		}
		b.WriteString(v)
		b.WriteString(cutNote(n.truncated))
		if c := codeMeaning(n.name, n.text); c != "" {
			b.WriteString(" (" + c + ")")
		}
	}
	var extra []string
	for i := range n.attrs {
		a := &n.attrs[i]
		if n.binary && a.used {
			continue // named above
		}
		a.used = true
		if a.cut > 0 {
			extra = append(extra, attrLabel(a.name)+": "+a.value+cutNote(a.cut))
			continue
		}
		switch {
		case a.name == "format" && date:
			// consumed by the date conversion
		case a.name == "currencyID":
			b.WriteString(" " + a.value)
		case a.name == "unitCode":
			b.WriteString(" " + a.value)
			if u := unitNames[a.value]; u != "" {
				b.WriteString(" (" + u + ")")
			}
		default:
			extra = append(extra, attrLabel(a.name)+": "+a.value)
		}
	}
	if len(extra) > 0 {
		b.WriteString(" [" + strings.Join(extra, ", ") + "]")
	}
	return b.String()
}

func attrLabel(name string) string {
	switch name {
	case "schemeID":
		return "Schema / scheme"
	case "listID":
		return "Liste / list"
	case "mimeCode":
		return "MIME-Typ"
	case "filename":
		return "Dateiname / filename"
	case "name":
		return "Name"
	}
	return name
}

// formatDate turns a date value into DD.MM.YYYY: UBL's YYYY-MM-DD in an
// element named …Date, CII's format 102 (YYYYMMDD).
func formatDate(n *node) (string, bool) {
	v := n.text
	if strings.HasSuffix(n.name, "Date") && len(v) == 10 && v[4] == '-' && v[7] == '-' && digits(v[:4]+v[5:7]+v[8:]) {
		return v[8:] + "." + v[5:7] + "." + v[:4], true
	}
	if strings.HasSuffix(n.name, "DateTimeString") || strings.HasSuffix(n.name, "DateString") {
		for _, a := range n.attrs {
			if a.name == "format" && a.value == "102" && len(v) == 8 && digits(v) {
				return v[6:] + "." + v[4:6] + "." + v[:4], true
			}
		}
	}
	return "", false
}

func digits(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return s != ""
}

// fields adds a row to s for every node each field finds below n.
func (m *mapper) fields(s *section, n *node, fs []f) {
	for _, x := range fs {
		for _, v := range m.find(n, x.path) {
			s.kv(x.label(), m.show(v))
		}
	}
}

// inline writes the fields found below n as "label: value" strings.
func (m *mapper) inline(n *node, fs []f) []string {
	var out []string
	for _, x := range fs {
		for _, v := range m.find(n, x.path) {
			out = append(out, x.label()+": "+m.show(v))
		}
	}
	return out
}

// joined shows the values at paths below n, one per line.
func (m *mapper) joined(n *node, paths ...string) string {
	var vs []string
	for _, p := range paths {
		for _, v := range m.find(n, p) {
			vs = append(vs, m.show(v))
		}
	}
	return strings.Join(vs, "\n")
}

// rest lists every value below n that nothing showed yet, with its path
// relative to n (or absolute when rel is false), and marks it shown.
func (m *mapper) rest(n *node, rel bool) [][2]string {
	var out [][2]string
	stack := []*node{n}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		p := ""
		where := func() string {
			if p == "" {
				if rel && c != n {
					p = c.relPath(n)
				} else {
					p = c.path()
				}
			}
			return p
		}
		if !c.used && (c.text != "" || c.binary) {
			out = append(out, [2]string{where(), m.show(c)})
		} else {
			for i := range c.attrs {
				a := &c.attrs[i]
				if !a.used {
					a.used = true
					out = append(out, [2]string{where() + "/@" + a.name, a.value + cutNote(a.cut)})
				}
			}
		}
		for i := len(c.kids) - 1; i >= 0; i-- {
			stack = append(stack, c.kids[i])
		}
	}
	return out
}

// cutNote says how much of a value the bound left out.
func cutNote(n int) string {
	if n == 0 {
		return ""
	}
	return " … (" + strconv.Itoa(n) + " weitere Zeichen nicht dargestellt / further characters not shown)"
}
