package rendition

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/mailgate/mailgate/importer/xmltext"
)

// Namespaces of the two syntaxes, and the prefixes names are written with
// whatever prefixes the sender chose.
const (
	nsUBLInvoice    = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
	nsUBLCreditNote = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
	nsCII           = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
)

var knownPrefixes = map[string]string{
	nsUBLInvoice:    "",
	nsUBLCreditNote: "",
	"urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2":     "cbc",
	"urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2": "cac",
	"urn:oasis:names:specification:ubl:schema:xsd:CommonExtensionComponents-2": "ext",
	nsCII: "rsm",
	"urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100": "ram",
	"urn:un:unece:uncefact:data:standard:UnqualifiedDataType:100":                        "udt",
	"urn:un:unece:uncefact:data:standard:QualifiedDataType:100":                          "qdt",
	"http://www.w3.org/2001/XMLSchema-instance":                                          "xsi",
	"http://www.w3.org/XML/1998/namespace":                                               "xml",
}

// syntax tells the three document kinds apart.
type syntax int

const (
	ublInvoice syntax = iota + 1
	ublCreditNote
	cii
)

// attr is one attribute of an element; used is set once the rendition shows it.
type attr struct {
	name, value string
	cut         int // runes dropped beyond maxValueRunes
	used        bool
}

// node is one element. The tree is built without recursion and walked
// without recursion, so its depth costs heap, never stack.
type node struct {
	name   string // canonical prefix:local
	index  int    // 1-based among siblings of the same name
	text   string // trimmed character data; empty for a binary object
	attrs  []attr
	kids   []*node
	parent *node
	used   bool

	binary     bool // a base64 binary object: text is dropped, size kept
	binarySize int  // decoded size in bytes
	truncated  int  // runes of text dropped beyond maxValueRunes
}

// tree is a parsed invoice with what the bounds left out.
type tree struct {
	root        *node
	syntax      syntax
	values      int // values kept (texts and attributes)
	skippedLine int // invoice lines beyond maxLines, not kept
	skippedVals int // values beyond maxValues (outside skipped lines), not kept
}

// binaryElements carry base64 content (BT-125 and its CII twin).
var binaryElements = map[string]bool{
	"cbc:EmbeddedDocumentBinaryObject": true,
	"ram:AttachmentBinaryObject":       true,
}

// lineParents names the element under which each syntax puts its lines.
func isLine(parent *node, name string, s syntax) bool {
	switch s {
	case ublInvoice:
		return name == "cac:InvoiceLine" && parent.parent == nil
	case ublCreditNote:
		return name == "cac:CreditNoteLine" && parent.parent == nil
	case cii:
		return name == "ram:IncludedSupplyChainTradeLineItem" && parent.name == "rsm:SupplyChainTradeTransaction"
	}
	return false
}

type frame struct {
	n     *node
	text  bytes.Buffer
	seen  map[string]int
	drop  int // runes of text not kept (beyond the bound)
	b64   int // base64 characters (without whitespace) of a binary object
	b64eq int // trailing '=' seen
}

// parse reads the XML as a token stream into a bounded tree.
func parse(ctx context.Context, data []byte, lim limits) (*tree, error) {
	d := xml.NewDecoder(xmltext.Reader(bytes.NewReader(data)))
	d.Strict = true
	d.CharsetReader = xmltext.Charset
	prefixes := map[string]string{} // sender's prefixes for unknown namespaces
	name := func(n xml.Name) string {
		if n.Space == "" {
			return n.Local
		}
		p, ok := knownPrefixes[n.Space]
		if !ok {
			p = prefixes[n.Space]
		}
		local := n.Local
		if len(local) > 200 { // names are not values, but come from anyone too
			local = local[:200] + "…"
		}
		if p == "" {
			return local
		}
		return p + ":" + local
	}

	t := &tree{}
	var stack []*frame
	skipDepth := 0 // >0 while inside a subtree that is not kept
	skipIsLine := false
	tokens := 0
	for {
		tokens++
		if tokens&1023 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("%w: %v", ErrNotXML, err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			if len(stack)+skipDepth >= lim.maxDepth {
				return nil, fmt.Errorf("%w: deeper than %d levels", ErrTooDeep, lim.maxDepth)
			}
			if skipDepth > 0 {
				skipDepth++
				if !skipIsLine {
					t.skippedVals += countValues(tok)
				}
				continue
			}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" && a.Value != "" {
					if _, ok := prefixes[a.Value]; !ok {
						prefixes[a.Value] = a.Name.Local
					}
				}
			}
			if len(stack) == 0 {
				if t.root != nil {
					return nil, fmt.Errorf("%w: more than one root", ErrNotXML)
				}
				switch {
				case tok.Name.Space == nsUBLInvoice && tok.Name.Local == "Invoice":
					t.syntax = ublInvoice
				case tok.Name.Space == nsUBLCreditNote && tok.Name.Local == "CreditNote":
					t.syntax = ublCreditNote
				case tok.Name.Space == nsCII && tok.Name.Local == "CrossIndustryInvoice":
					t.syntax = cii
				default:
					return nil, fmt.Errorf("%w: root element {%s}%s", ErrNotInvoice, tok.Name.Space, tok.Name.Local)
				}
			}
			nm := name(tok.Name)
			var parent *frame
			if len(stack) > 0 {
				parent = stack[len(stack)-1]
				if isLine(parent.n, nm, t.syntax) {
					if parent.seen[nm] >= lim.maxLines || t.values >= lim.maxValues {
						t.skippedLine++
						skipDepth, skipIsLine = 1, true
						continue
					}
				}
				if t.values >= lim.maxValues {
					t.skippedVals += countValues(tok)
					skipDepth, skipIsLine = 1, false
					continue
				}
			}
			n := &node{name: nm, binary: binaryElements[nm]}
			for _, a := range tok.Attr {
				if a.Name.Space == "xmlns" || (a.Name.Space == "" && a.Name.Local == "xmlns") {
					continue
				}
				if t.values >= lim.maxValues {
					t.skippedVals++
					continue
				}
				v, cut := capRunes(normSpace(a.Value), lim.maxValueRunes)
				n.attrs = append(n.attrs, attr{name: name(a.Name), value: v, cut: cut})
				t.values++
			}
			fr := &frame{n: n}
			if parent != nil {
				n.parent = parent.n
				if parent.seen == nil {
					parent.seen = map[string]int{}
				}
				parent.seen[nm]++
				n.index = parent.seen[nm]
				parent.n.kids = append(parent.n.kids, n)
			} else {
				t.root = n
			}
			stack = append(stack, fr)
		case xml.EndElement:
			if skipDepth > 0 {
				skipDepth--
				continue
			}
			fr := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			n := fr.n
			if n.binary {
				n.binarySize = fr.b64/4*3 - fr.b64eq
				if fr.b64%4 != 0 {
					n.binarySize = fr.b64 * 3 / 4
				}
				t.values++
				continue
			}
			s := normText(fr.text.String())
			if s != "" {
				n.text, n.truncated = capRunes(s, lim.maxValueRunes)
				n.truncated += fr.drop
				t.values++
			}
		case xml.CharData:
			if skipDepth > 0 || len(stack) == 0 {
				continue
			}
			fr := stack[len(stack)-1]
			if fr.n.binary {
				for _, c := range tok {
					switch {
					case c == '=':
						fr.b64++
						fr.b64eq++
					case c == ' ' || c == '\n' || c == '\r' || c == '\t':
					default:
						fr.b64++
					}
				}
				continue
			}
			if fr.text.Len() < 4*lim.maxValueRunes+4 {
				fr.text.Write(tok)
			} else {
				fr.drop += utf8.RuneCount(tok)
			}
		}
	}
	if t.root == nil {
		return nil, fmt.Errorf("%w: no root element", ErrNotXML)
	}
	return t, nil
}

func countValues(tok xml.StartElement) int {
	n := 1 // its text, most often
	for _, a := range tok.Attr {
		if a.Name.Space != "xmlns" && a.Name.Local != "xmlns" {
			n++
		}
	}
	return n
}

// normText trims a text and turns tabs and other control characters into
// spaces, keeping line breaks (a note's paragraphs).
func normText(s string) string {
	s = strings.TrimSpace(s)
	if s == "" {
		return ""
	}
	s = strings.ReplaceAll(s, "\r\n", "\n")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n':
			b.WriteRune('\n')
		case r < 0x20 || r == 0x7f || r == '\r':
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// normSpace collapses all whitespace to single spaces (attribute values).
func normSpace(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// capRunes cuts s to at most max runes and says how many it dropped.
func capRunes(s string, max int) (string, int) {
	if len(s) <= max {
		return s, 0
	}
	n := 0
	for i := range s {
		if n == max {
			return s[:i], len([]rune(s[i:]))
		}
		n++
	}
	return s, 0
}

// Sentinel errors of PDF; callers tell them apart with errors.Is.
var (
	// ErrTooLarge: the input is over the size bound.
	ErrTooLarge = errors.New("rendition: input too large")
	// ErrNotXML: the input is not well-formed XML.
	ErrNotXML = errors.New("rendition: not well-formed XML")
	// ErrNotInvoice: well-formed XML, but not a UBL Invoice, UBL CreditNote or CII CrossIndustryInvoice.
	ErrNotInvoice = errors.New("rendition: not a UBL or CII invoice")
	// ErrTooDeep: nesting deeper than any invoice has.
	ErrTooDeep = errors.New("rendition: nesting too deep")
)

// path is the element's path from the root with indexes on repeated names.
func (n *node) path() string {
	var parts []string
	for m := n; m != nil; m = m.parent {
		p := m.name
		if m.parent != nil && (m.index > 1 || siblingsNamed(m.parent, m.name) > 1) {
			p += "[" + strconv.Itoa(m.index) + "]"
		}
		parts = append(parts, p)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	return b.String()
}

// relPath is the path of n below the ancestor a.
func (n *node) relPath(a *node) string {
	full, base := n.path(), a.path()
	return strings.TrimPrefix(full, base+"/")
}

func siblingsNamed(p *node, name string) int {
	c := 0
	for _, k := range p.kids {
		if k.name == name {
			c++
			if c > 1 {
				return c
			}
		}
	}
	return c
}
