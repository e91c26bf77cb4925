package xpath

import (
	"fmt"
	"math/big"
	"strconv"
	"strings"
)

// token kinds
const (
	tkEOF = iota
	tkName
	tkVar
	tkString
	tkNumber
	tkSym
)

type token struct {
	kind int
	s    string
	pos  int
}

func lex(src string) ([]token, error) {
	var toks []token
	i := 0
	for i < len(src) {
		c := src[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n' || c == '\r':
			i++
		case c == '(' && i+1 < len(src) && src[i+1] == ':':
			// comment (: … :), possibly nested
			depth, j := 0, i
			for j < len(src) {
				if strings.HasPrefix(src[j:], "(:") {
					depth++
					j += 2
				} else if strings.HasPrefix(src[j:], ":)") {
					depth--
					j += 2
					if depth == 0 {
						break
					}
				} else {
					j++
				}
			}
			if depth != 0 {
				return nil, fmt.Errorf("unclosed comment at %d", i)
			}
			i = j
		case c == '\'' || c == '"':
			j := i + 1
			var b strings.Builder
			for {
				if j >= len(src) {
					return nil, fmt.Errorf("unclosed string at %d", i)
				}
				if src[j] == c {
					if j+1 < len(src) && src[j+1] == c {
						b.WriteByte(c)
						j += 2
						continue
					}
					break
				}
				b.WriteByte(src[j])
				j++
			}
			toks = append(toks, token{tkString, b.String(), i})
			i = j + 1
		case isDigit(c) || (c == '.' && i+1 < len(src) && isDigit(src[i+1])):
			j := i
			for j < len(src) && isDigit(src[j]) {
				j++
			}
			if j < len(src) && src[j] == '.' {
				j++
				for j < len(src) && isDigit(src[j]) {
					j++
				}
			}
			if j < len(src) && (src[j] == 'e' || src[j] == 'E') {
				k := j + 1
				if k < len(src) && (src[k] == '+' || src[k] == '-') {
					k++
				}
				if k < len(src) && isDigit(src[k]) {
					for k < len(src) && isDigit(src[k]) {
						k++
					}
					j = k
				}
			}
			toks = append(toks, token{tkNumber, src[i:j], i})
			i = j
		case c == '$':
			j := i + 1
			for j < len(src) && (src[j] == ' ' || src[j] == '\t') {
				j++
			}
			name, n := lexQName(src[j:])
			if n == 0 {
				return nil, fmt.Errorf("variable without name at %d", i)
			}
			toks = append(toks, token{tkVar, name, i})
			i = j + n
		case isNameStart(c) || c == '*' && i+1 < len(src) && src[i+1] == ':' && i+2 < len(src) && isNameStart(src[i+2]):
			name, n := lexQName(src[i:])
			toks = append(toks, token{tkName, name, i})
			i += n
		default:
			for _, s := range []string{"!=", "<=", ">=", "<<", ">>", "//", "::", ".."} {
				if strings.HasPrefix(src[i:], s) {
					toks = append(toks, token{tkSym, s, i})
					i += len(s)
					goto next
				}
			}
			if strings.ContainsRune("()[],/@.|=<>+-*?", rune(c)) {
				toks = append(toks, token{tkSym, string(c), i})
				i++
				continue
			}
			return nil, fmt.Errorf("unexpected %q at %d", c, i)
		next:
		}
	}
	return append(toks, token{kind: tkEOF, pos: len(src)}), nil
}

func isDigit(c byte) bool { return c >= '0' && c <= '9' }

func isNameStart(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= 0x80
}

func isNameChar(c byte) bool { return isNameStart(c) || isDigit(c) || c == '-' || c == '.' }

// lexQName reads an NCName, a QName, prefix:* or *:local.
func lexQName(s string) (string, int) {
	ncname := func(s string) int {
		if s == "" || !isNameStart(s[0]) {
			return 0
		}
		j := 1
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		return j
	}
	if strings.HasPrefix(s, "*:") {
		n := ncname(s[2:])
		return s[:2+n], 2 + n
	}
	n := ncname(s)
	if n == 0 {
		return "", 0
	}
	if n+1 < len(s) && s[n] == ':' && s[n+1] != ':' {
		if s[n+1] == '*' {
			return s[:n+2], n + 2
		}
		if m := ncname(s[n+1:]); m > 0 {
			return s[:n+1+m], n + 1 + m
		}
	}
	return s[:n], n
}

// Env is what expressions are compiled against: the namespace prefixes
// and the functions the rule sets declare.
type Env struct {
	Namespaces map[string]string
	Functions  map[string]*Function // by "{uri}local"
}

// Function is a function the rule sets declare (xsl:function).
type Function struct {
	Params []string
	Body   *Expr
}

// Expr is a compiled expression.
type Expr struct {
	src  string
	root expr
}

func (e *Expr) String() string { return e.src }

type parser struct {
	posCalls int // calls of position() and last() so far
	toks     []token
	i        int
	env      *Env
	src      string
}

// Compile parses an expression.
func Compile(src string, env *Env) (*Expr, error) {
	toks, err := lex(src)
	if err != nil {
		return nil, fmt.Errorf("xpath: %s: %w", truncate(src, 80), err)
	}
	p := &parser{toks: toks, env: env, src: src}
	e, err := p.expr()
	if err == nil && p.peek().kind != tkEOF {
		err = p.errorf("unexpected %q", p.peek().s)
	}
	if err != nil {
		return nil, fmt.Errorf("xpath: %s: %w", truncate(src, 80), err)
	}
	return &Expr{src: src, root: e}, nil
}

// CompilePattern parses an XSLT pattern (a rule's context): a union of
// paths, each matched anywhere in the document unless it starts at the
// root.
func CompilePattern(src string, env *Env) (*Expr, error) {
	e, err := Compile(src, env)
	if err != nil {
		return nil, err
	}
	e.root = anchor(e.root)
	return e, nil
}

// anchor makes a relative path of a pattern match at any depth: "a/b"
// becomes "//a/b".
func anchor(e expr) expr {
	switch v := e.(type) {
	case *unionExpr:
		return &unionExpr{anchor(v.l), anchor(v.r), v.op}
	case *pathExpr:
		if v.abs == absNone {
			if _, ok := v.steps[0].(*axisStep); ok {
				return &pathExpr{abs: absRoot, steps: append(descendants(v.steps[0]), v.steps[1:]...)}
			}
		}
		return v
	case *axisStep:
		return &pathExpr{abs: absRoot, steps: descendants(v)}
	}
	return e
}

func (p *parser) peek() token { return p.toks[p.i] }
func (p *parser) peekAt(k int) token {
	if p.i+k < len(p.toks) {
		return p.toks[p.i+k]
	}
	return token{kind: tkEOF}
}
func (p *parser) advance() token { t := p.toks[p.i]; p.i++; return t }

func (p *parser) isSym(s string) bool  { t := p.peek(); return t.kind == tkSym && t.s == s }
func (p *parser) isName(s string) bool { t := p.peek(); return t.kind == tkName && t.s == s }

func (p *parser) expect(s string) error {
	if !p.isSym(s) {
		return p.errorf("expected %q, found %q", s, p.peek().s)
	}
	p.i++
	return nil
}

func (p *parser) expectName(s string) error {
	if !p.isName(s) {
		return p.errorf("expected %q, found %q", s, p.peek().s)
	}
	p.i++
	return nil
}

func (p *parser) errorf(format string, a ...any) error {
	return fmt.Errorf("at %d: %s", p.peek().pos, fmt.Sprintf(format, a...))
}

// Expr ::= ExprSingle ("," ExprSingle)*
func (p *parser) expr() (expr, error) {
	e, err := p.exprSingle()
	if err != nil {
		return nil, err
	}
	if !p.isSym(",") {
		return e, nil
	}
	s := &seqExpr{items: []expr{e}}
	for p.isSym(",") {
		p.i++
		e, err := p.exprSingle()
		if err != nil {
			return nil, err
		}
		s.items = append(s.items, e)
	}
	return s, nil
}

func (p *parser) exprSingle() (expr, error) {
	t, t1 := p.peek(), p.peekAt(1)
	if t.kind == tkName && t1.kind == tkVar {
		switch t.s {
		case "for":
			return p.binding(func(b []binding, body expr) expr { return &forExpr{b, body} }, "return")
		case "some":
			return p.binding(func(b []binding, body expr) expr { return &quantExpr{false, b, body} }, "satisfies")
		case "every":
			return p.binding(func(b []binding, body expr) expr { return &quantExpr{true, b, body} }, "satisfies")
		}
	}
	if t.kind == tkName && t.s == "if" && t1.kind == tkSym && t1.s == "(" {
		p.i += 2
		cond, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expect(")"); err != nil {
			return nil, err
		}
		if err := p.expectName("then"); err != nil {
			return nil, err
		}
		th, err := p.exprSingle()
		if err != nil {
			return nil, err
		}
		if err := p.expectName("else"); err != nil {
			return nil, err
		}
		el, err := p.exprSingle()
		if err != nil {
			return nil, err
		}
		return &ifExpr{cond, th, el}, nil
	}
	return p.or()
}

func (p *parser) binding(mk func([]binding, expr) expr, keyword string) (expr, error) {
	p.i++ // for, some, every
	var bs []binding
	for {
		v := p.advance()
		if v.kind != tkVar {
			return nil, p.errorf("expected a variable")
		}
		if err := p.expectName("in"); err != nil {
			return nil, err
		}
		in, err := p.exprSingle()
		if err != nil {
			return nil, err
		}
		bs = append(bs, binding{v.s, in})
		if !p.isSym(",") {
			break
		}
		p.i++
	}
	if err := p.expectName(keyword); err != nil {
		return nil, err
	}
	body, err := p.exprSingle()
	if err != nil {
		return nil, err
	}
	return mk(bs, body), nil
}

func (p *parser) or() (expr, error) {
	l, err := p.and()
	for err == nil && p.isName("or") {
		p.i++
		var r expr
		r, err = p.and()
		l = &logicExpr{false, l, r}
	}
	return l, err
}

func (p *parser) and() (expr, error) {
	l, err := p.comparison()
	for err == nil && p.isName("and") {
		p.i++
		var r expr
		r, err = p.comparison()
		l = &logicExpr{true, l, r}
	}
	return l, err
}

var generalOps = map[string]string{"=": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}
var valueOps = map[string]bool{"eq": true, "ne": true, "lt": true, "le": true, "gt": true, "ge": true}

func (p *parser) comparison() (expr, error) {
	l, err := p.rangeExpr()
	if err != nil {
		return nil, err
	}
	t := p.peek()
	switch {
	case t.kind == tkSym && generalOps[t.s] != "":
		p.i++
		r, err := p.rangeExpr()
		return &cmpExpr{op: generalOps[t.s], general: true, l: l, r: r}, err
	case t.kind == tkName && valueOps[t.s]:
		p.i++
		r, err := p.rangeExpr()
		return &cmpExpr{op: t.s, l: l, r: r}, err
	case t.kind == tkName && t.s == "is", t.kind == tkSym && (t.s == "<<" || t.s == ">>"):
		p.i++
		r, err := p.rangeExpr()
		return &nodeCmpExpr{op: t.s, l: l, r: r}, err
	}
	return l, nil
}

func (p *parser) rangeExpr() (expr, error) {
	l, err := p.additive()
	if err != nil || !p.isName("to") {
		return l, err
	}
	p.i++
	r, err := p.additive()
	return &rangeExpr{l, r}, err
}

func (p *parser) additive() (expr, error) {
	l, err := p.multiplicative()
	for err == nil && (p.isSym("+") || p.isSym("-")) {
		op := p.advance().s
		var r expr
		r, err = p.multiplicative()
		l = &arithExpr{op, l, r}
	}
	return l, err
}

func (p *parser) multiplicative() (expr, error) {
	l, err := p.union()
	for err == nil && (p.isSym("*") || p.isName("div") || p.isName("idiv") || p.isName("mod")) {
		op := p.advance().s
		var r expr
		r, err = p.union()
		l = &arithExpr{op, l, r}
	}
	return l, err
}

func (p *parser) union() (expr, error) {
	l, err := p.intersect()
	for err == nil && (p.isSym("|") || p.isName("union")) {
		p.i++
		var r expr
		r, err = p.intersect()
		l = &unionExpr{l, r, "union"}
	}
	return l, err
}

func (p *parser) intersect() (expr, error) {
	l, err := p.castable()
	for err == nil && (p.isName("intersect") || p.isName("except")) {
		op := p.advance().s
		var r expr
		r, err = p.castable()
		l = &unionExpr{l, r, op}
	}
	return l, err
}

func (p *parser) castable() (expr, error) {
	e, err := p.cast()
	if err != nil {
		return nil, err
	}
	if p.isName("castable") && p.peekAt(1).kind == tkName && p.peekAt(1).s == "as" {
		p.i += 2
		to, opt, err := p.singleType()
		return &castExpr{e: e, to: to, optional: opt, castable: true}, err
	}
	return e, nil
}

func (p *parser) cast() (expr, error) {
	e, err := p.unary()
	if err != nil {
		return nil, err
	}
	if p.isName("cast") && p.peekAt(1).kind == tkName && p.peekAt(1).s == "as" {
		p.i += 2
		to, opt, err := p.singleType()
		return &castExpr{e: e, to: to, optional: opt}, err
	}
	return e, nil
}

func (p *parser) singleType() (string, bool, error) {
	t := p.advance()
	if t.kind != tkName {
		return "", false, p.errorf("expected a type name")
	}
	to, err := p.atomicType(t.s)
	if err != nil {
		return "", false, err
	}
	opt := false
	if p.isSym("?") {
		p.i++
		opt = true
	}
	return to, opt, nil
}

func (p *parser) atomicType(qname string) (string, error) {
	prefix, local, ok := strings.Cut(qname, ":")
	if !ok || p.env.Namespaces[prefix] != nsXS {
		return "", p.errorf("unknown type %s", qname)
	}
	switch local {
	case tString, tDecimal, tInteger, tDouble, tBoolean, tDate, tUntyped:
		return local, nil
	}
	return "", p.errorf("type %s not supported", qname)
}

func (p *parser) unary() (expr, error) {
	neg := false
	n := 0
	for p.isSym("-") || p.isSym("+") {
		if p.advance().s == "-" {
			neg = !neg
		}
		n++
	}
	e, err := p.path()
	if err != nil || n == 0 {
		return e, err
	}
	return &negExpr{e, neg}, nil
}

const nsXS = "http://www.w3.org/2001/XMLSchema"
const nsFn = "http://www.w3.org/2005/xpath-functions"

func (p *parser) path() (expr, error) {
	var pe pathExpr
	switch {
	case p.isSym("/"):
		p.i++
		pe.abs = absRoot
		if !p.startsStep() {
			return &pathExpr{abs: absRoot}, nil
		}
	case p.isSym("//"):
		p.i++
		pe.abs = absRoot
		s, err := p.step()
		if err != nil {
			return nil, err
		}
		pe.steps = append(pe.steps, descendants(s)...)
	}
	if len(pe.steps) == 0 {
		s, err := p.step()
		if err != nil {
			return nil, err
		}
		pe.steps = append(pe.steps, s)
	}
	for p.isSym("/") || p.isSym("//") {
		desc := p.advance().s == "//"
		s, err := p.step()
		if err != nil {
			return nil, err
		}
		if desc {
			pe.steps = append(pe.steps, descendants(s)...)
		} else {
			pe.steps = append(pe.steps, s)
		}
	}
	if pe.abs == absNone && len(pe.steps) == 1 {
		if _, ok := pe.steps[0].(*axisStep); !ok {
			return pe.steps[0], nil
		}
	}
	return &pe, nil
}

// descendants is "//s": descendant-or-self::node()/s, or, where s is a
// child step by name whose predicates do not count positions, the same
// as descendant::s, which the name index answers without a walk.
func descendants(s expr) []expr {
	if a, ok := s.(*axisStep); ok && a.test.kind == testName && !a.test.anyLocal && !a.test.anySpace && !a.positional {
		switch a.axis {
		case axChild:
			return []expr{&axisStep{axis: axDescendant, test: a.test, preds: a.preds}}
		case axAttribute:
			return []expr{&axisStep{axis: axDescendantAttribute, test: a.test, preds: a.preds}}
		}
	}
	return []expr{&axisStep{axis: axDescendantOrSelf, test: nodeTest{kind: testNode}}, s}
}

func (p *parser) startsStep() bool {
	t := p.peek()
	switch t.kind {
	case tkName, tkVar, tkString, tkNumber:
		return true
	case tkSym:
		return t.s == "@" || t.s == "." || t.s == ".." || t.s == "*" || t.s == "("
	}
	return false
}

var axes = map[string]axis{
	"child": axChild, "attribute": axAttribute, "self": axSelf, "parent": axParent,
	"descendant": axDescendant, "descendant-or-self": axDescendantOrSelf,
	"ancestor": axAncestor, "ancestor-or-self": axAncestorOrSelf,
	"following-sibling": axFollowingSibling, "preceding-sibling": axPrecedingSibling,
	"following": axFollowing, "preceding": axPreceding,
}

var kindTests = map[string]int{"node": testNode, "text": testText, "element": testElement, "attribute": testAttribute}

func (p *parser) step() (expr, error) {
	t := p.peek()
	var s *axisStep
	switch {
	case t.kind == tkSym && t.s == "..":
		p.i++
		s = &axisStep{axis: axParent, test: nodeTest{kind: testNode}}
	case t.kind == tkSym && t.s == "@":
		p.i++
		test, err := p.nodeTest(axAttribute)
		if err != nil {
			return nil, err
		}
		s = &axisStep{axis: axAttribute, test: test}
	case t.kind == tkName && p.peekAt(1).kind == tkSym && p.peekAt(1).s == "::":
		ax, ok := axes[t.s]
		if !ok {
			return nil, p.errorf("unknown axis %s", t.s)
		}
		p.i += 2
		test, err := p.nodeTest(ax)
		if err != nil {
			return nil, err
		}
		s = &axisStep{axis: ax, test: test}
	case t.kind == tkSym && t.s == "*",
		t.kind == tkName && !(p.peekAt(1).kind == tkSym && p.peekAt(1).s == "("),
		t.kind == tkName && kindTests[t.s] != 0 && p.peekAt(1).kind == tkSym && p.peekAt(1).s == "(":
		test, err := p.nodeTest(axChild)
		if err != nil {
			return nil, err
		}
		ax := axChild
		if test.kind == testAttribute {
			ax = axAttribute
		}
		s = &axisStep{axis: ax, test: test}
	default:
		prim, err := p.primary()
		if err != nil {
			return nil, err
		}
		preds, err := p.predicates()
		if err != nil {
			return nil, err
		}
		if len(preds) == 0 {
			return prim, nil
		}
		return &filterExpr{prim, preds}, nil
	}
	before := p.posCalls
	preds, err := p.predicates()
	s.preds = preds
	s.positional = p.posCalls > before
	for _, e := range preds {
		s.positional = s.positional || dependsOnPosition(e)
	}
	return s, err
}

func (p *parser) predicates() ([]expr, error) {
	var preds []expr
	for p.isSym("[") {
		p.i++
		e, err := p.expr()
		if err != nil {
			return nil, err
		}
		if err := p.expect("]"); err != nil {
			return nil, err
		}
		preds = append(preds, e)
	}
	return preds, nil
}

func (p *parser) nodeTest(ax axis) (nodeTest, error) {
	t := p.advance()
	if t.kind == tkSym && t.s == "*" {
		return nodeTest{kind: testName, anySpace: true, anyLocal: true}, nil
	}
	if t.kind != tkName {
		return nodeTest{}, p.errorf("expected a node test, found %q", t.s)
	}
	if k := kindTests[t.s]; k != 0 && p.isSym("(") {
		p.i++
		if err := p.expect(")"); err != nil {
			return nodeTest{}, err
		}
		return nodeTest{kind: k}, nil
	}
	prefix, local, ok := strings.Cut(t.s, ":")
	if !ok {
		// An unprefixed name is in no namespace (XPath 2.0 in XSLT
		// without xpath-default-namespace).
		return nodeTest{kind: testName, local: prefix}, nil
	}
	nt := nodeTest{kind: testName, local: local}
	switch {
	case prefix == "*":
		nt.anySpace = true
	default:
		uri, ok := p.env.Namespaces[prefix]
		if !ok {
			return nodeTest{}, p.errorf("unknown namespace prefix %s", prefix)
		}
		nt.space = uri
	}
	if local == "*" {
		nt.anyLocal = true
	}
	return nt, nil
}

func (p *parser) primary() (expr, error) {
	t := p.advance()
	switch t.kind {
	case tkString:
		return &literal{t.s}, nil
	case tkNumber:
		return numberLiteral(t.s)
	case tkVar:
		return &varRef{name: t.s}, nil
	case tkSym:
		switch t.s {
		case ".":
			return &contextItem{}, nil
		case "(":
			if p.isSym(")") {
				p.i++
				return &seqExpr{}, nil
			}
			e, err := p.expr()
			if err != nil {
				return nil, err
			}
			return &parenExpr{e}, p.expect(")")
		}
	case tkName:
		if p.isSym("(") {
			return p.call(t.s)
		}
	}
	return nil, fmt.Errorf("at %d: unexpected %q", t.pos, t.s)
}

func numberLiteral(s string) (expr, error) {
	if strings.ContainsAny(s, "eE") {
		f, err := strconv.ParseFloat(s, 64)
		if err != nil {
			return nil, err
		}
		return &literal{f}, nil
	}
	r, ok := new(big.Rat).SetString(s)
	if !ok {
		return nil, fmt.Errorf("bad number %s", s)
	}
	return &literal{decimal{r: r, integer: !strings.Contains(s, ".")}}, nil
}

func (p *parser) call(name string) (expr, error) {
	p.i++ // (
	var args []expr
	for !p.isSym(")") {
		a, err := p.exprSingle()
		if err != nil {
			return nil, err
		}
		args = append(args, a)
		if p.isSym(",") {
			p.i++
			continue
		}
		if !p.isSym(")") {
			return nil, p.errorf("expected , or ) in call of %s", name)
		}
	}
	p.i++
	prefix, local, ok := strings.Cut(name, ":")
	uri := nsFn
	if ok {
		uri = p.env.Namespaces[prefix]
		if uri == "" {
			return nil, p.errorf("unknown namespace prefix %s", prefix)
		}
	} else {
		local = prefix
	}
	switch uri {
	case nsXS:
		to, err := p.atomicType(name)
		if err != nil {
			return nil, err
		}
		if len(args) != 1 {
			return nil, p.errorf("%s takes one argument", name)
		}
		return &castExpr{e: args[0], to: to, optional: true}, nil
	case nsFn:
		f, ok := builtins[local]
		if !ok {
			return nil, p.errorf("unknown function %s", name)
		}
		if len(args) < f.min || (f.max >= 0 && len(args) > f.max) {
			return nil, p.errorf("%s called with %d arguments", name, len(args))
		}
		if local == "position" || local == "last" {
			p.posCalls++
		}
		return &callExpr{name: local, fn: f.fn, args: args}, nil
	}
	key := "{" + uri + "}" + local
	uf, ok := p.env.Functions[key]
	if !ok {
		return nil, p.errorf("unknown function %s", name)
	}
	if len(args) != len(uf.Params) {
		return nil, p.errorf("%s called with %d arguments, takes %d", name, len(args), len(uf.Params))
	}
	return &userCall{name: name, fn: uf, args: args}, nil
}
