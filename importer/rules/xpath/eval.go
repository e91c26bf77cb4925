package xpath

import (
	"context"
	"errors"
	"math/big"
	"slices"
)

// Context is what an expression is evaluated in: the document, the
// context node, the variables in scope, and the deadline.
type Context struct {
	ctx     context.Context
	doc     *Document
	globals *Vars
	steps   int
	// Lenient turns dynamic errors inside predicates into false: XSLT
	// patterns (rule contexts) do not match where their predicates fail.
	lenient bool
}

// NewContext starts an evaluation of expressions against doc, bounded
// by ctx.
func NewContext(ctx context.Context, doc *Document) *Context {
	return &Context{ctx: ctx, doc: doc}
}

// SetGlobals makes vars visible everywhere, in functions too.
func (c *Context) SetGlobals(vars *Vars) { c.globals = vars }

// Vars are variable bindings, innermost first.
type Vars struct {
	name string
	val  seq
	err  error // the value's error, raised where the variable is used
	up   *Vars
}

// Bind returns the bindings with name bound to the value of e.
func (v *Vars) bind(name string, val seq) *Vars { return &Vars{name: name, val: val, up: v} }

func (v *Vars) lookup(name string) (*Vars, bool) {
	for ; v != nil; v = v.up {
		if v.name == name {
			return v, true
		}
	}
	return nil, false
}

// Value is the result of an expression.
type Value struct{ s seq }

// Bind returns vars with name bound to val, or to err: as XSLT
// evaluates variables lazily, an error counts only where the variable is
// used.
func Bind(vars *Vars, name string, val Value, err error) *Vars {
	v := vars.bind(name, val.s)
	v.err = err
	return v
}

// Nodes returns the nodes of the value, in its order.
func (v Value) Nodes() []*Node {
	var out []*Node
	for _, it := range v.s {
		if n, ok := it.(*Node); ok {
			out = append(out, n)
		}
	}
	return out
}

// String is the value's string value as xsl:value-of writes it: the
// items' string values separated by spaces.
func (v Value) String() string {
	var b []byte
	for i, it := range v.s {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, stringOf(it)...)
	}
	return string(b)
}

// Eval evaluates e with n as the context node.
func (c *Context) Eval(e *Expr, n *Node, vars *Vars) (Value, error) {
	f := focus{item: n, pos: 1, size: 1}
	if n == nil {
		f = focus{}
	}
	s, err := e.root.eval(c, f, vars)
	return Value{s}, err
}

// Bool evaluates e and returns its effective boolean value.
func (c *Context) Bool(e *Expr, n *Node, vars *Vars) (bool, error) {
	v, err := c.Eval(e, n, vars)
	if err != nil {
		return false, err
	}
	return ebv(v.s)
}

// Match returns the nodes a pattern (CompilePattern) matches, in
// document order. A predicate that fails on a node does not match it.
func (c *Context) Match(e *Expr, vars *Vars) ([]*Node, error) {
	c.lenient = true
	defer func() { c.lenient = false }()
	v, err := c.Eval(e, c.doc.Root, vars)
	if err != nil {
		return nil, err
	}
	return v.Nodes(), nil
}

// tick counts work and checks the deadline every so often.
func (c *Context) tick(n int) error {
	c.steps += n
	if c.steps >= 4096 {
		c.steps = 0
		if err := c.ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// focus is the context item with its position and size.
type focus struct {
	item      item
	pos, size int
}

type expr interface {
	eval(c *Context, f focus, v *Vars) (seq, error)
}

type literal struct{ v item }

// eval returns a sequence of its own: callers build new sequences and
// never write to the ones they get.
func (l *literal) eval(*Context, focus, *Vars) (seq, error) { return seq{l.v}, nil }

// The two boolean results, shared: no caller writes to a sequence it got.
var (
	seqTrue  = seq{true}
	seqFalse = seq{false}
)

func boolSeq(b bool) seq {
	if b {
		return seqTrue
	}
	return seqFalse
}

type varRef struct{ name string }

func (r *varRef) eval(c *Context, _ focus, v *Vars) (seq, error) {
	if b, ok := v.lookup(r.name); ok {
		return b.val, b.err
	}
	if b, ok := c.globals.lookup(r.name); ok {
		return b.val, b.err
	}
	return nil, dynErr("XPST0008", "variable $%s is not declared", r.name)
}

type contextItem struct{}

func (contextItem) eval(_ *Context, f focus, _ *Vars) (seq, error) {
	if f.item == nil {
		return nil, dynErr("XPDY0002", "no context item")
	}
	return seq{f.item}, nil
}

type parenExpr struct{ e expr }

func (p *parenExpr) eval(c *Context, f focus, v *Vars) (seq, error) { return p.e.eval(c, f, v) }

type seqExpr struct{ items []expr }

func (s *seqExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	var out seq
	for _, e := range s.items {
		r, err := e.eval(c, f, v)
		if err != nil {
			return nil, err
		}
		out = append(out, r...)
	}
	return out, nil
}

type binding struct {
	name string
	in   expr
}

type forExpr struct {
	vars []binding
	ret  expr
}

func (e *forExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	var out seq
	err := iterate(c, e.vars, f, v, func(v *Vars) (bool, error) {
		r, err := e.ret.eval(c, f, v)
		out = append(out, r...)
		return true, err
	})
	return out, err
}

type quantExpr struct {
	every bool
	vars  []binding
	test  expr
}

func (e *quantExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	result := e.every
	err := iterate(c, e.vars, f, v, func(v *Vars) (bool, error) {
		r, err := e.test.eval(c, f, v)
		if err != nil {
			return false, err
		}
		b, err := ebv(r)
		if err != nil {
			return false, err
		}
		if b != e.every {
			result = b
			return false, nil
		}
		return true, nil
	})
	return boolSeq(result), err
}

// iterate binds each variable of bs in turn to each item of its
// sequence and calls fn for every combination until fn returns false.
func iterate(c *Context, bs []binding, f focus, v *Vars, fn func(*Vars) (bool, error)) error {
	if len(bs) == 0 {
		_, err := fn(v)
		return err
	}
	_, err := iterate1(c, bs, f, v, fn)
	return err
}

func iterate1(c *Context, bs []binding, f focus, v *Vars, fn func(*Vars) (bool, error)) (bool, error) {
	in, err := bs[0].in.eval(c, f, v)
	if err != nil {
		return false, err
	}
	for _, it := range in {
		if err := c.tick(1); err != nil {
			return false, err
		}
		inner := v.bind(bs[0].name, seq{it})
		var more bool
		if len(bs) == 1 {
			more, err = fn(inner)
		} else {
			more, err = iterate1(c, bs[1:], f, inner, fn)
		}
		if err != nil || !more {
			return false, err
		}
	}
	return true, nil
}

type ifExpr struct{ cond, then, els expr }

func (e *ifExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	r, err := e.cond.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	b, err := ebv(r)
	if err != nil {
		return nil, err
	}
	if b {
		return e.then.eval(c, f, v)
	}
	return e.els.eval(c, f, v)
}

type logicExpr struct {
	and  bool
	l, r expr
}

func (e *logicExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	l, err := e.l.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	b, err := ebv(l)
	if err != nil {
		return nil, err
	}
	if b != e.and { // false and …, true or …
		return boolSeq(b), nil
	}
	r, err := e.r.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	b, err = ebv(r)
	return boolSeq(b), err
}

type cmpExpr struct {
	op      string // eq, ne, lt, le, gt, ge
	general bool
	l, r    expr
}

func (e *cmpExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	l, r, err := operands(c, f, v, e.l, e.r)
	if err != nil {
		return nil, err
	}
	if !e.general {
		if len(l) == 0 || len(r) == 0 {
			return seq{}, nil
		}
		if len(l) > 1 || len(r) > 1 {
			return nil, dynErr("XPTY0004", "a value comparison of a sequence of more than one item")
		}
		b, err := compareAtomic(e.op, l[0], r[0])
		return boolSeq(b), err
	}
	if err := c.tick(len(l) * len(r)); err != nil {
		return nil, err
	}
	for _, a := range l {
		for _, b := range r {
			x, y, err := generalPair(a, b)
			if err != nil {
				return nil, err
			}
			ok, err := compareAtomic(e.op, x, y)
			if err != nil {
				return nil, err
			}
			if ok {
				return seqTrue, nil
			}
		}
	}
	return seqFalse, nil
}

// operands evaluates the two operands of a comparison or an arithmetic
// operator, atomized.
func operands(c *Context, f focus, v *Vars, le, re expr) (seq, seq, error) {
	l, err := le.eval(c, f, v)
	if err != nil {
		return nil, nil, err
	}
	r, err := re.eval(c, f, v)
	if err != nil {
		return nil, nil, err
	}
	return atomize(l), atomize(r), nil
}

type nodeCmpExpr struct {
	op   string
	l, r expr
}

func (e *nodeCmpExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	l, err := e.l.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	r, err := e.r.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 || len(r) == 0 {
		return seq{}, nil
	}
	a, ok1 := l[0].(*Node)
	b, ok2 := r[0].(*Node)
	if len(l) > 1 || len(r) > 1 || !ok1 || !ok2 {
		return nil, dynErr("XPTY0004", "%s needs two single nodes", e.op)
	}
	switch e.op {
	case "is":
		return boolSeq(a == b), nil
	case "<<":
		return boolSeq(a.order < b.order), nil
	}
	return boolSeq(a.order > b.order), nil
}

type rangeExpr struct{ l, r expr }

func (e *rangeExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	a, err := singleInteger(c, e.l, f, v)
	if err != nil {
		return nil, err
	}
	b, err := singleInteger(c, e.r, f, v)
	if err != nil || a == nil || b == nil {
		return seq{}, err
	}
	lo, hi := a.Int64(), b.Int64()
	if hi-lo > 1<<20 {
		return nil, dynErr("XPDY0130", "range of %d items", hi-lo)
	}
	var out seq
	for i := lo; i <= hi; i++ {
		out = append(out, newInt(i))
	}
	return out, nil
}

func singleInteger(c *Context, e expr, f focus, v *Vars) (*big.Int, error) {
	s, err := e.eval(c, f, v)
	if err != nil || len(s) == 0 {
		return nil, err
	}
	s = atomize(s)
	if len(s) > 1 {
		return nil, dynErr("XPTY0004", "a sequence where one integer is expected")
	}
	it, err := cast(s[0], tInteger)
	if err != nil {
		return nil, err
	}
	return it.(decimal).r.Num(), nil
}

type negExpr struct {
	e   expr
	neg bool
}

func (e *negExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	s, err := e.e.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	s = atomize(s)
	if len(s) == 0 {
		return s, nil
	}
	if len(s) > 1 {
		return nil, dynErr("XPTY0004", "unary minus of a sequence")
	}
	x := s[0]
	if u, ok := x.(untyped); ok {
		if x, err = cast(u, tDouble); err != nil {
			return nil, err
		}
	}
	if !e.neg {
		return seq{x}, nil
	}
	switch n := x.(type) {
	case decimal:
		return seq{decimal{r: new(big.Rat).Neg(n.r), integer: n.integer}}, nil
	case float64:
		return seq{-n}, nil
	}
	return nil, dynErr("XPTY0004", "unary minus of a %s", typeName(x))
}

type arithExpr struct {
	op   string
	l, r expr
}

func (e *arithExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	l, r, err := operands(c, f, v, e.l, e.r)
	if err != nil {
		return nil, err
	}
	if len(l) == 0 || len(r) == 0 {
		return seq{}, nil
	}
	if len(l) > 1 || len(r) > 1 {
		return nil, dynErr("XPTY0004", "arithmetic on a sequence of more than one item")
	}
	res, err := arith(e.op, l[0], r[0])
	if err != nil {
		return nil, err
	}
	return seq{res}, nil
}

func arith(op string, a, b item) (item, error) {
	var err error
	if u, ok := a.(untyped); ok {
		if a, err = cast(u, tDouble); err != nil {
			return nil, err
		}
	}
	if u, ok := b.(untyped); ok {
		if b, err = cast(u, tDouble); err != nil {
			return nil, err
		}
	}
	if !isNumeric(a) || !isNumeric(b) {
		return nil, dynErr("XPTY0004", "arithmetic on %s and %s", typeName(a), typeName(b))
	}
	da, db, fa, fb, exact := promote(a, b)
	if !exact {
		switch op {
		case "+":
			return fa + fb, nil
		case "-":
			return fa - fb, nil
		case "*":
			return fa * fb, nil
		case "div":
			return fa / fb, nil
		case "mod":
			return fmod(fa, fb), nil
		case "idiv":
			if fb == 0 {
				return nil, dynErr("FOAR0001", "integer division by zero")
			}
			return cast(fa/fb, tInteger)
		}
	}
	integer := da.integer && db.integer
	z := new(big.Rat)
	switch op {
	case "+":
		return decimal{z.Add(da.r, db.r), integer}, nil
	case "-":
		return decimal{z.Sub(da.r, db.r), integer}, nil
	case "*":
		return decimal{z.Mul(da.r, db.r), integer}, nil
	case "div":
		if db.r.Sign() == 0 {
			return nil, dynErr("FOAR0001", "division by zero")
		}
		return decimal{r: z.Quo(da.r, db.r)}, nil
	case "idiv", "mod":
		if db.r.Sign() == 0 {
			return nil, dynErr("FOAR0001", "division by zero")
		}
		q := new(big.Rat).Quo(da.r, db.r)
		qi := new(big.Int).Quo(q.Num(), q.Denom()) // truncates toward zero
		if op == "idiv" {
			return decimal{new(big.Rat).SetInt(qi), true}, nil
		}
		m := new(big.Rat).Sub(da.r, new(big.Rat).Mul(db.r, new(big.Rat).SetInt(qi)))
		return decimal{m, integer}, nil
	}
	return nil, dynErr("XPST0003", "unknown operator %s", op)
}

func fmod(a, b float64) float64 {
	q := a / b
	if q < 0 {
		q = -float64(int64(-q))
	} else {
		q = float64(int64(q))
	}
	return a - b*q
}

type unionExpr struct {
	l, r expr
	op   string // union, intersect, except
}

func (e *unionExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	l, err := e.l.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	r, err := e.r.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	ln, err := nodesOf(l, e.op)
	if err != nil {
		return nil, err
	}
	rn, err := nodesOf(r, e.op)
	if err != nil {
		return nil, err
	}
	var out []*Node
	switch e.op {
	case "union":
		out = append(ln, rn...)
	default:
		in := make(map[*Node]bool, len(rn))
		for _, n := range rn {
			in[n] = true
		}
		for _, n := range ln {
			if in[n] == (e.op == "intersect") {
				out = append(out, n)
			}
		}
	}
	return docOrder(out), nil
}

func nodesOf(s seq, op string) ([]*Node, error) {
	out := make([]*Node, 0, len(s))
	for _, it := range s {
		n, ok := it.(*Node)
		if !ok {
			return nil, dynErr("XPTY0004", "%s of a sequence that is not all nodes", op)
		}
		out = append(out, n)
	}
	return out, nil
}

// docOrder sorts nodes into document order without duplicates.
func docOrder(ns []*Node) seq {
	slices.SortFunc(ns, func(a, b *Node) int { return int(a.order - b.order) })
	ns = slices.Compact(ns)
	out := make(seq, len(ns))
	for i, n := range ns {
		out[i] = n
	}
	return out
}

type castExpr struct {
	e                  expr
	to                 string
	optional, castable bool
}

func (e *castExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	s, err := e.e.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	s = atomize(s)
	switch {
	case len(s) == 0:
		if e.castable {
			return boolSeq(e.optional), nil
		}
		if e.optional {
			return seq{}, nil
		}
		return nil, dynErr("XPTY0004", "cast of an empty sequence to xs:%s", e.to)
	case len(s) > 1:
		if e.castable {
			return seqFalse, nil
		}
		return nil, dynErr("XPTY0004", "cast of a sequence of %d items to xs:%s", len(s), e.to)
	}
	r, err := cast(s[0], e.to)
	if e.castable {
		return boolSeq(err == nil), nil
	}
	if err != nil {
		return nil, err
	}
	return seq{r}, nil
}

type filterExpr struct {
	e     expr
	preds []expr
}

func (e *filterExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	s, err := e.e.eval(c, f, v)
	if err != nil {
		return nil, err
	}
	for _, p := range e.preds {
		if s, err = filter(c, s, p, v); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// filter keeps the items of s for which the predicate holds.
func filter(c *Context, s seq, p expr, v *Vars) (seq, error) {
	var out seq
	for i, it := range s {
		if err := c.tick(1); err != nil {
			return nil, err
		}
		r, err := p.eval(c, focus{it, i + 1, len(s)}, v)
		keep := false
		if err == nil {
			if len(r) == 1 && isNumeric(r[0]) {
				keep = toDouble(r[0]) == float64(i+1)
			} else {
				keep, err = ebv(r)
			}
		}
		if err != nil {
			var de *DynamicError
			if c.lenient && errors.As(err, &de) {
				continue
			}
			return nil, err
		}
		if keep {
			out = append(out, it)
		}
	}
	return out, nil
}

type callExpr struct {
	name string
	fn   func(c *Context, f focus, args []seq) (seq, error)
	args []expr
}

func (e *callExpr) eval(c *Context, f focus, v *Vars) (seq, error) {
	args := make([]seq, len(e.args))
	for i, a := range e.args {
		s, err := a.eval(c, f, v)
		if err != nil {
			return nil, err
		}
		args[i] = s
	}
	return e.fn(c, f, args)
}

type userCall struct {
	name string
	fn   *Function
	args []expr
}

func (e *userCall) eval(c *Context, f focus, v *Vars) (seq, error) {
	var scope *Vars
	for i, a := range e.args {
		s, err := a.eval(c, f, v)
		if err != nil {
			return nil, err
		}
		scope = scope.bind(e.fn.Params[i], s)
	}
	// A function body has no focus.
	return e.fn.Body.root.eval(c, focus{}, scope)
}
