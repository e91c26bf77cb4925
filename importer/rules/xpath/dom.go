// Package xpath evaluates the subset of XPath 2.0 that the official
// e-invoice rule sets are written in (the CEN EN 16931 Schematron and
// KoSIT's XRechnung Schematron, both with queryBinding xslt2): path
// expressions on every axis they use, general and value comparisons with
// XPath 2.0's type promotion (untyped values compare as strings, as
// xs:double against numbers), exact xs:decimal arithmetic, for, some,
// every, if, casts, and the functions those files call.
//
// Documents are read into a small tree of their own (Parse), bounded in
// nodes and depth; evaluation is bounded by a context and never recurses
// on the input's depth.
package xpath

import (
	"bytes"
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/importer/xmltext"
)

// NodeKind tells the kinds of nodes in a tree.
type NodeKind uint8

// Node kinds.
const (
	DocumentNode NodeKind = iota
	ElementNode
	AttributeNode
	TextNode
)

// Node is a node of a parsed document. Element and attribute names are
// namespace URI (Space) and local name; Prefix is the prefix as written,
// kept only to name locations.
type Node struct {
	Kind     NodeKind
	Space    string
	Local    string
	Prefix   string
	Data     string // text of a text node, value of an attribute
	Parent   *Node
	Attrs    []*Node
	Children []*Node

	order int32 // position in document order
	end   int32 // the largest order in the node's subtree
	index int32 // position among the parent's children
	str   *string

	nsDecls [][2]string // the namespaces the element declares: prefix, URI
}

type nameKey struct {
	space, local string
	attr         bool
}

// Document is a parsed XML document.
type Document struct {
	Root   *Node // the document node
	byName map[nameKey][]*Node
	nodes  int
}

// Limits bound what Parse accepts.
type Limits struct {
	Nodes int // elements, attributes and text nodes
	Depth int // element nesting
}

// ErrLimit is wrapped by Parse's error for a document over its Limits.
var ErrLimit = errors.New("over the bound")

// Parse reads an XML document. It resolves no external entities and
// accepts only XML's predefined ones. The input may start with a byte
// order mark and be UTF-16 or any encoding its declaration names.
func Parse(ctx context.Context, r io.Reader, lim Limits) (*Document, error) {
	d := xml.NewDecoder(xmltext.Reader(r))
	d.CharsetReader = xmltext.Charset
	d.Strict = true
	doc := &Document{byName: map[nameKey][]*Node{}}
	root := &Node{Kind: DocumentNode}
	doc.Root = root
	cur := root
	depth := 0
	var order int32
	next := func() int32 { order++; return order }
	var text strings.Builder
	flush := func() {
		if text.Len() == 0 {
			return
		}
		if cur != root {
			t := &Node{Kind: TextNode, Data: text.String(), Parent: cur, order: next()}
			t.end = t.order
			t.index = int32(len(cur.Children))
			cur.Children = append(cur.Children, t)
			doc.nodes++
		}
		text.Reset()
	}
	sawRoot := false
	for tokens := 0; ; tokens++ {
		if tokens&4095 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		tok, err := d.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("not well-formed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			flush()
			if cur == root && sawRoot {
				return nil, errors.New("not well-formed XML: more than one root element")
			}
			sawRoot = true
			depth++
			if lim.Depth > 0 && depth > lim.Depth {
				return nil, fmt.Errorf("elements nested deeper than %d: %w", lim.Depth, ErrLimit)
			}
			e := &Node{Kind: ElementNode, Local: t.Name.Local, Prefix: t.Name.Space, Parent: cur, order: next()}
			e.index = int32(len(cur.Children))
			cur.Children = append(cur.Children, e)
			for _, a := range t.Attr {
				switch {
				case a.Name.Space == "xmlns":
					e.nsDecls = append(e.nsDecls, [2]string{a.Name.Local, a.Value})
					continue
				case a.Name.Space == "" && a.Name.Local == "xmlns":
					e.nsDecls = append(e.nsDecls, [2]string{"", a.Value})
					continue
				}
				e.Attrs = append(e.Attrs, &Node{Kind: AttributeNode, Local: a.Name.Local, Prefix: a.Name.Space, Data: a.Value, Parent: e})
			}
			doc.nodes += 1 + len(e.Attrs)
			if lim.Nodes > 0 && doc.nodes > lim.Nodes {
				return nil, fmt.Errorf("more than %d nodes: %w", lim.Nodes, ErrLimit)
			}
			// Namespaces are resolved by a second decoder pass below;
			// RawToken keeps prefixes, which locations want.
			e.Space = "\x00" + t.Name.Space
			for _, a := range e.Attrs {
				a.order = next()
				a.end = a.order
			}
			cur = e
		case xml.EndElement:
			flush()
			if cur == root || t.Name.Local != cur.Local || t.Name.Space != cur.Prefix {
				return nil, fmt.Errorf("not well-formed XML: unexpected end element </%s>", t.Name.Local)
			}
			cur.end = order
			cur = cur.Parent
			depth--
		case xml.CharData:
			if cur == root {
				if len(bytes.TrimSpace(t)) > 0 {
					return nil, errors.New("not well-formed XML: text outside the root element")
				}
				continue
			}
			text.Write(t)
			if lim.Nodes > 0 && text.Len() > 64<<20 {
				return nil, fmt.Errorf("text over 64 MiB: %w", ErrLimit)
			}
		}
	}
	if cur != root {
		return nil, errors.New("not well-formed XML: unexpected end of input")
	}
	if !sawRoot {
		return nil, errors.New("not well-formed XML: no root element")
	}
	root.end = order
	if err := resolveNamespaces(root); err != nil {
		return nil, err
	}
	// The name index, in document order.
	walk(root, func(n *Node) {
		if n.Kind == ElementNode || n.Kind == AttributeNode {
			k := nameKey{n.Space, n.Local, n.Kind == AttributeNode}
			doc.byName[k] = append(doc.byName[k], n)
		}
	})
	return doc, nil
}

// resolveNamespaces gives every element and attribute its namespace URI
// from the xmlns declarations in scope (RawToken leaves them as prefixes).
// It walks with an explicit stack: the input's depth is not the
// program's.
func resolveNamespaces(root *Node) error {
	type frame struct {
		n     *Node
		scope map[string]string
	}
	base := map[string]string{"xml": "http://www.w3.org/XML/1998/namespace"}
	stack := []frame{{root, base}}
	for len(stack) > 0 {
		f := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		for _, c := range f.n.Children {
			if c.Kind != ElementNode {
				continue
			}
			scope := f.scope
			if decl := c.nsDecls; len(decl) > 0 {
				scope = make(map[string]string, len(f.scope)+len(decl))
				for k, v := range f.scope {
					scope[k] = v
				}
				for _, d := range decl {
					scope[d[0]] = d[1]
				}
			}
			prefix := strings.TrimPrefix(c.Space, "\x00")
			uri, ok := scope[prefix]
			if !ok && prefix != "" {
				return fmt.Errorf("not well-formed XML: undeclared namespace prefix %q", prefix)
			}
			c.Space = uri
			for _, a := range c.Attrs {
				if a.Prefix != "" {
					u, ok := scope[a.Prefix]
					if !ok {
						return fmt.Errorf("not well-formed XML: undeclared namespace prefix %q", a.Prefix)
					}
					a.Space = u
				}
			}
			stack = append(stack, frame{c, scope})
		}
	}
	return nil
}

// walk calls fn on n and every node below it in document order, without
// recursion.
func walk(n *Node, fn func(*Node)) {
	stack := []*Node{n}
	for len(stack) > 0 {
		n := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		fn(n)
		for _, a := range n.Attrs {
			fn(a)
		}
		for i := len(n.Children) - 1; i >= 0; i-- {
			stack = append(stack, n.Children[i])
		}
	}
}

// StringValue is the node's string value: the text of all its descendant
// text nodes for an element or the document, its value otherwise.
func (n *Node) StringValue() string {
	switch n.Kind {
	case AttributeNode, TextNode:
		return n.Data
	}
	if n.str != nil {
		return *n.str
	}
	var s string
	if len(n.Children) == 1 && n.Children[0].Kind == TextNode {
		s = n.Children[0].Data
	} else {
		var b strings.Builder
		walk(n, func(d *Node) {
			if d.Kind == TextNode {
				b.WriteString(d.Data)
			}
		})
		s = b.String()
	}
	n.str = &s
	return s
}

// Path names the node for a person: element names as written, with the
// position among same-named siblings where there are several, e.g.
// "/Invoice/cac:InvoiceLine[2]/cbc:ID".
func (n *Node) Path() string {
	var parts []string
	for c := n; c != nil && c.Kind != DocumentNode; c = c.Parent {
		name := c.Local
		if c.Prefix != "" {
			name = c.Prefix + ":" + c.Local
		}
		switch c.Kind {
		case AttributeNode:
			name = "@" + name
		case TextNode:
			name = "text()"
		case ElementNode:
			if p := c.Parent; p != nil && p.Kind == ElementNode {
				pos, same := 0, 0
				for _, s := range p.Children {
					if s.Kind == ElementNode && s.Local == c.Local && s.Space == c.Space {
						same++
						if s == c {
							pos = same
						}
					}
				}
				if same > 1 {
					name += fmt.Sprintf("[%d]", pos)
				}
			}
		}
		parts = append(parts, name)
	}
	var b strings.Builder
	for i := len(parts) - 1; i >= 0; i-- {
		b.WriteByte('/')
		b.WriteString(parts[i])
	}
	if b.Len() == 0 {
		return "/"
	}
	return b.String()
}

// Declared returns the namespaces the element declares, as prefix and
// URI ("" for the default namespace).
func (n *Node) Declared() [][2]string { return n.nsDecls }

// Element returns the document's root element.
func (d *Document) Element() *Node {
	for _, c := range d.Root.Children {
		if c.Kind == ElementNode {
			return c
		}
	}
	return nil
}

// Nodes is the number of nodes read.
func (d *Document) Nodes() int { return d.nodes }
