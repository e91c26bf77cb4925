package xpath

import (
	"cmp"
	"slices"
)

type axis int

const (
	axChild axis = iota
	axAttribute
	axSelf
	axParent
	axDescendant
	axDescendantOrSelf
	axAncestor
	axAncestorOrSelf
	axFollowingSibling
	axPrecedingSibling
	axFollowing
	axPreceding
	// axDescendantAttribute is "//@name": the attributes of the node and
	// of its descendants (the parser's shorthand, no axis of XPath's).
	axDescendantAttribute
)

func (a axis) reverse() bool {
	switch a {
	case axParent, axAncestor, axAncestorOrSelf, axPrecedingSibling, axPreceding:
		return true
	}
	return false
}

const (
	testName = iota + 1
	testNode
	testText
	testElement
	testAttribute
)

type nodeTest struct {
	kind     int
	space    string
	local    string
	anySpace bool
	anyLocal bool
}

func (t nodeTest) matches(n *Node, ax axis) bool {
	switch t.kind {
	case testNode:
		return true
	case testText:
		return n.Kind == TextNode
	case testElement:
		return n.Kind == ElementNode
	case testAttribute:
		return n.Kind == AttributeNode
	}
	// A name test selects the axis's principal node kind.
	want := ElementNode
	if ax == axAttribute || ax == axDescendantAttribute {
		want = AttributeNode
	}
	if n.Kind != want {
		return false
	}
	return (t.anyLocal || n.Local == t.local) && (t.anySpace || n.Space == t.space)
}

type axisStep struct {
	axis  axis
	test  nodeTest
	preds []expr
	// positional: a predicate may depend on its item's position, which
	// counts per parent (see parser.predicates).
	positional bool
}

// eval of a step on its own is the step from the context node.
func (s *axisStep) eval(c *Context, f focus, v *Vars) (seq, error) {
	n, ok := f.item.(*Node)
	if !ok {
		return nil, dynErr("XPTY0020", "a path step from an atomic value")
	}
	return s.from(c, n, v)
}

// from selects the step's nodes from n, in document order.
func (s *axisStep) from(c *Context, n *Node, v *Vars) (seq, error) {
	var out seq
	add := func(m *Node) {
		if s.test.matches(m, s.axis) {
			out = append(out, m)
		}
	}
	switch s.axis {
	case axChild:
		for _, m := range n.Children {
			add(m)
		}
	case axAttribute:
		for _, m := range n.Attrs {
			add(m)
		}
	case axSelf:
		add(n)
	case axParent:
		if n.Parent != nil {
			add(n.Parent)
		}
	case axDescendant, axDescendantOrSelf:
		if s.axis == axDescendant && s.test.kind == testName && !s.test.anyLocal && !s.test.anySpace && !s.positional && c.doc != nil {
			out = nodeSeq(c.doc.descendantsNamed(n, s.test, false))
			break
		}
		if s.axis == axDescendantOrSelf {
			add(n)
		}
		stack := make([]*Node, 0, 16)
		for i := len(n.Children) - 1; i >= 0; i-- {
			stack = append(stack, n.Children[i])
		}
		for len(stack) > 0 {
			m := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			add(m)
			for i := len(m.Children) - 1; i >= 0; i-- {
				stack = append(stack, m.Children[i])
			}
		}
		if err := c.tick(int(n.end - n.order)); err != nil {
			return nil, err
		}
	case axAncestor, axAncestorOrSelf:
		m := n
		if s.axis == axAncestor {
			m = n.Parent
		}
		for ; m != nil; m = m.Parent {
			add(m)
		}
	case axFollowingSibling, axPrecedingSibling:
		if n.Parent != nil && n.Kind != AttributeNode {
			sib := n.Parent.Children
			if s.axis == axFollowingSibling {
				for _, m := range sib[n.index+1:] {
					add(m)
				}
			} else {
				for i := int(n.index) - 1; i >= 0; i-- {
					add(sib[i])
				}
			}
		}
	case axDescendantAttribute:
		out = nodeSeq(c.doc.descendantsNamed(n, s.test, true))
	case axFollowing, axPreceding:
		if err := c.tick(int(c.doc.Root.end)); err != nil {
			return nil, err
		}
		if s.axis == axFollowing {
			walk(c.doc.Root, func(m *Node) {
				if m.order > n.end && m.Kind != AttributeNode {
					add(m)
				}
			})
		} else {
			anc := map[*Node]bool{}
			for a := n.Parent; a != nil; a = a.Parent {
				anc[a] = true
			}
			walk(c.doc.Root, func(m *Node) {
				if m.order < n.order && !anc[m] && m.Kind != AttributeNode && m.Kind != DocumentNode {
					add(m)
				}
			})
			// nearest first
			for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	if err := c.tick(len(out) + 1); err != nil {
		return nil, err
	}
	var err error
	for _, p := range s.preds {
		if out, err = filter(c, out, p, v); err != nil {
			return nil, err
		}
	}
	if s.axis.reverse() && len(out) > 1 {
		for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
			out[i], out[j] = out[j], out[i]
		}
	}
	return out, nil
}

const (
	absNone = iota
	absRoot // "/…", and "//…" with a descendant step first
)

type pathExpr struct {
	abs   int
	steps []expr
}

func (p *pathExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	var cur seq
	steps := p.steps
	switch p.abs {
	case absNone:
		first, err := steps[0].eval(c, f, v)
		if err != nil {
			return nil, err
		}
		cur, steps = first, steps[1:]
	default:
		n, ok := f.item.(*Node)
		if !ok {
			if c.doc == nil {
				return nil, dynErr("XPDY0050", "a path from the root without a context node")
			}
			n = c.doc.Root
		}
		for n.Parent != nil {
			n = n.Parent
		}
		cur = seq{n}
	}
	for i, st := range steps {
		var next seq
		allNodes := true
		for j, it := range cur {
			n, ok := it.(*Node)
			if !ok {
				return nil, dynErr("XPTY0019", "a path step from an atomic value")
			}
			var r seq
			var err error
			if as, ok := st.(*axisStep); ok {
				r, err = as.from(c, n, v)
			} else {
				r, err = st.eval(c, focus{n, j + 1, len(cur)}, v)
			}
			if err != nil {
				return nil, err
			}
			for _, x := range r {
				if _, ok := x.(*Node); !ok {
					allNodes = false
				}
			}
			next = append(next, r...)
		}
		if allNodes {
			if len(cur) > 1 {
				ns := make([]*Node, len(next))
				for k, x := range next {
					ns[k] = x.(*Node)
				}
				next = docOrder(ns)
			}
		} else if i < len(steps)-1 {
			return nil, dynErr("XPTY0019", "a path step from an atomic value")
		}
		cur = next
	}
	return cur, nil
}

func nodeSeq(ns []*Node) seq {
	out := make(seq, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}

// descendantsNamed answers descendant::name from the name index: the
// nodes of that name within n's subtree, in document order.
func (d *Document) descendantsNamed(n *Node, t nodeTest, attr bool) []*Node {
	ns := d.byName[nameKey{t.space, t.local, attr}]
	lo, _ := slices.BinarySearchFunc(ns, n.order+1, func(m *Node, o int32) int { return cmp.Compare(m.order, o) })
	hi, _ := slices.BinarySearchFunc(ns, n.end+1, func(m *Node, o int32) int { return cmp.Compare(m.order, o) })
	return ns[lo:hi]
}

// dependsOnPosition reports whether a predicate's value may be a number,
// which selects by position: a number, a variable, arithmetic, or a call
// of a function that returns one.
func dependsOnPosition(e expr) bool {
	switch v := e.(type) {
	case *literal:
		return isNumeric(v.v)
	case *varRef, *arithExpr, *negExpr, *ifExpr, *castExpr, *userCall, *filterExpr, *seqExpr:
		return true
	case *callExpr:
		switch v.name {
		case "position", "last", "number", "count", "sum", "round", "abs", "string-length", "floor", "ceiling":
			return true
		}
	case *parenExpr:
		return dependsOnPosition(v.e)
	}
	return false
}
