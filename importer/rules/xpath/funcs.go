package xpath

import (
	"math"
	"math/big"
	"regexp"
	"strings"
	"sync"
	"unicode/utf8"
)

type builtin struct {
	min, max int // argument counts; max -1: any
	fn       func(c *Context, f focus, args []seq) (seq, error)
}

// builtins are the XPath functions the rule sets call (and a few of
// their kin), by local name in the fn namespace.
var builtins = map[string]builtin{
	"true":                 {0, 0, func(*Context, focus, []seq) (seq, error) { return seqTrue, nil }},
	"false":                {0, 0, func(*Context, focus, []seq) (seq, error) { return seqFalse, nil }},
	"not":                  {1, 1, fnNot},
	"boolean":              {1, 1, fnBoolean},
	"exists":               {1, 1, func(_ *Context, _ focus, a []seq) (seq, error) { return boolSeq(len(a[0]) > 0), nil }},
	"empty":                {1, 1, func(_ *Context, _ focus, a []seq) (seq, error) { return boolSeq(len(a[0]) == 0), nil }},
	"count":                {1, 1, func(_ *Context, _ focus, a []seq) (seq, error) { return seq{newInt(int64(len(a[0])))}, nil }},
	"position":             {0, 0, func(_ *Context, f focus, _ []seq) (seq, error) { return seq{newInt(int64(f.pos))}, nil }},
	"last":                 {0, 0, func(_ *Context, f focus, _ []seq) (seq, error) { return seq{newInt(int64(f.size))}, nil }},
	"string":               {0, 1, fnString},
	"data":                 {1, 1, func(_ *Context, _ focus, a []seq) (seq, error) { return atomize(a[0]), nil }},
	"normalize-space":      {0, 1, strFn(func(s string) item { return strings.Join(strings.FieldsFunc(s, isXMLSpace), " ") })},
	"upper-case":           {1, 1, strFn(func(s string) item { return strings.ToUpper(s) })},
	"lower-case":           {1, 1, strFn(func(s string) item { return strings.ToLower(s) })},
	"string-length":        {0, 1, strFn(func(s string) item { return newInt(int64(utf8.RuneCountInString(s))) })},
	"contains":             {2, 2, str2Fn(func(a, b string) item { return strings.Contains(a, b) })},
	"starts-with":          {2, 2, str2Fn(func(a, b string) item { return strings.HasPrefix(a, b) })},
	"ends-with":            {2, 2, str2Fn(func(a, b string) item { return strings.HasSuffix(a, b) })},
	"substring-before":     {2, 2, str2Fn(func(a, b string) item { x, _, _ := strings.Cut(a, b); return pick(strings.Contains(a, b), x) })},
	"substring-after":      {2, 2, str2Fn(func(a, b string) item { _, x, ok := strings.Cut(a, b); return pick(ok, x) })},
	"concat":               {2, -1, fnConcat},
	"string-join":          {2, 2, fnStringJoin},
	"substring":            {2, 3, fnSubstring},
	"translate":            {3, 3, fnTranslate},
	"matches":              {2, 3, fnMatches},
	"replace":              {3, 4, fnReplace},
	"tokenize":             {2, 3, fnTokenize},
	"string-to-codepoints": {1, 1, fnCodepoints},
	"codepoints-to-string": {1, 1, fnFromCodepoints},
	"distinct-values":      {1, 1, fnDistinct},
	"sum":                  {1, 2, fnSum},
	"round":                {1, 1, numFn(roundDecimal, func(f float64) float64 { return math.Floor(f + 0.5) })},
	"floor":                {1, 1, numFn(floorDecimal, math.Floor)},
	"ceiling":              {1, 1, numFn(ceilDecimal, math.Ceil)},
	"abs":                  {1, 1, numFn(func(r *big.Rat) *big.Rat { return new(big.Rat).Abs(r) }, math.Abs)},
	"number":               {0, 1, fnNumber},
	"name":                 {0, 1, nodeFn(func(n *Node) string { return qname(n) })},
	"local-name":           {0, 1, nodeFn(func(n *Node) string { return n.Local })},
	"namespace-uri":        {0, 1, nodeFn(func(n *Node) string { return n.Space })},
	"min":                  {1, 1, func(c *Context, f focus, a []seq) (seq, error) { return extreme(a[0], "lt") }},
	"max":                  {1, 1, func(c *Context, f focus, a []seq) (seq, error) { return extreme(a[0], "gt") }},
}

func pick(ok bool, s string) item {
	if ok {
		return s
	}
	return ""
}

func fnNot(_ *Context, _ focus, a []seq) (seq, error) {
	b, err := ebv(a[0])
	return boolSeq(!b), err
}

func fnBoolean(_ *Context, _ focus, a []seq) (seq, error) {
	b, err := ebv(a[0])
	return boolSeq(b), err
}

// oneString atomizes an argument that takes at most one item to its
// string value ("" for the empty sequence).
func oneString(s seq, fn string) (string, error) {
	switch len(s) {
	case 0:
		return "", nil
	case 1:
		return stringOf(atomize(s)[0]), nil
	}
	return "", dynErr("XPTY0004", "a sequence of more than one item is not allowed as an argument of %s()", fn)
}

func fnString(_ *Context, f focus, a []seq) (seq, error) {
	if len(a) == 0 {
		if f.item == nil {
			return nil, dynErr("XPDY0002", "no context item")
		}
		return seq{stringOf(f.item)}, nil
	}
	s, err := oneString(a[0], "string")
	return seq{s}, err
}

// strFn is a function of one string, the context item's by default.
func strFn(fn func(string) item) func(*Context, focus, []seq) (seq, error) {
	return func(_ *Context, f focus, a []seq) (seq, error) {
		var s string
		if len(a) == 0 {
			if f.item == nil {
				return nil, dynErr("XPDY0002", "no context item")
			}
			s = stringOf(f.item)
		} else {
			var err error
			if s, err = oneString(a[0], "string function"); err != nil {
				return nil, err
			}
		}
		return seq{fn(s)}, nil
	}
}

func str2Fn(fn func(a, b string) item) func(*Context, focus, []seq) (seq, error) {
	return func(_ *Context, _ focus, a []seq) (seq, error) {
		x, err := oneString(a[0], "string function")
		if err != nil {
			return nil, err
		}
		y, err := oneString(a[1], "string function")
		if err != nil {
			return nil, err
		}
		return seq{fn(x, y)}, nil
	}
}

func fnConcat(_ *Context, _ focus, a []seq) (seq, error) {
	var b strings.Builder
	for _, s := range a {
		x, err := oneString(s, "concat")
		if err != nil {
			return nil, err
		}
		b.WriteString(x)
	}
	return seq{b.String()}, nil
}

func fnStringJoin(_ *Context, _ focus, a []seq) (seq, error) {
	sep, err := oneString(a[1], "string-join")
	if err != nil {
		return nil, err
	}
	parts := make([]string, len(a[0]))
	for i, it := range atomize(a[0]) {
		parts[i] = stringOf(it)
	}
	return seq{strings.Join(parts, sep)}, nil
}

func fnSubstring(_ *Context, _ focus, a []seq) (seq, error) {
	s, err := oneString(a[0], "substring")
	if err != nil {
		return nil, err
	}
	start, err := oneDouble(a[1])
	if err != nil {
		return nil, err
	}
	rs := []rune(s)
	from := math.Floor(start + 0.5)
	to := math.Inf(1)
	if len(a) == 3 {
		l, err := oneDouble(a[2])
		if err != nil {
			return nil, err
		}
		to = from + math.Floor(l+0.5)
	}
	var b strings.Builder
	for i, r := range rs {
		p := float64(i + 1)
		if p >= from && p < to {
			b.WriteRune(r)
		}
	}
	return seq{b.String()}, nil
}

func oneDouble(s seq) (float64, error) {
	s = atomize(s)
	if len(s) != 1 {
		return math.NaN(), dynErr("XPTY0004", "one number expected, found %d items", len(s))
	}
	it, err := cast(s[0], tDouble)
	if err != nil {
		return 0, err
	}
	return it.(float64), nil
}

func fnTranslate(_ *Context, _ focus, a []seq) (seq, error) {
	s, err := oneString(a[0], "translate")
	if err != nil {
		return nil, err
	}
	from, _ := oneString(a[1], "translate")
	to, _ := oneString(a[2], "translate")
	fr, tr := []rune(from), []rune(to)
	var b strings.Builder
	for _, r := range s {
		i := strings.IndexRune(string(fr), r)
		if i < 0 {
			b.WriteRune(r)
			continue
		}
		k := len([]rune(string(fr)[:i]))
		if k < len(tr) {
			b.WriteRune(tr[k])
		}
	}
	return seq{b.String()}, nil
}

var regexCache sync.Map // pattern+flags → *regexp.Regexp

// compileRegex translates an XML Schema regular expression (as XPath's
// matches, replace and tokenize take them) to Go's RE2 syntax: the
// expressions the rule sets use are in the common subset.
func compileRegex(pattern, flags string) (*regexp.Regexp, error) {
	key := flags + "\x00" + pattern
	if re, ok := regexCache.Load(key); ok {
		return re.(*regexp.Regexp), nil
	}
	goFlags := ""
	for _, f := range flags {
		switch f {
		case 's', 'm', 'i':
			goFlags += string(f)
		case 'x':
			pattern = strings.Map(func(r rune) rune {
				if isXMLSpace(r) {
					return -1
				}
				return r
			}, pattern)
		default:
			return nil, dynErr("FORX0001", "invalid regular expression flag %q", f)
		}
	}
	src := pattern
	if goFlags != "" {
		src = "(?" + goFlags + ")" + pattern
	}
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, dynErr("FORX0002", "invalid regular expression %q", pattern)
	}
	regexCache.Store(key, re)
	return re, nil
}

func regexArgs(a []seq, flagsAt int, fn string) (string, *regexp.Regexp, error) {
	s, err := oneString(a[0], fn)
	if err != nil {
		return "", nil, err
	}
	pat, err := oneString(a[1], fn)
	if err != nil {
		return "", nil, err
	}
	flags := ""
	if len(a) > flagsAt {
		flags, _ = oneString(a[flagsAt], fn)
	}
	re, err := compileRegex(pat, flags)
	return s, re, err
}

func fnMatches(_ *Context, _ focus, a []seq) (seq, error) {
	s, re, err := regexArgs(a, 2, "matches")
	if err != nil {
		return nil, err
	}
	return boolSeq(re.MatchString(s)), nil
}

func fnReplace(_ *Context, _ focus, a []seq) (seq, error) {
	s, err := oneString(a[0], "replace")
	if err != nil {
		return nil, err
	}
	pat, _ := oneString(a[1], "replace")
	rep, _ := oneString(a[2], "replace")
	flags := ""
	if len(a) > 3 {
		flags, _ = oneString(a[3], "replace")
	}
	re, err := compileRegex(pat, flags)
	if err != nil {
		return nil, err
	}
	if re.MatchString("") {
		return nil, dynErr("FORX0003", "the pattern of replace() matches the empty string")
	}
	// XPath writes $1 for a group, \$ for a dollar; Go wants ${1}.
	var b strings.Builder
	for i := 0; i < len(rep); i++ {
		switch c := rep[i]; {
		case c == '\\' && i+1 < len(rep):
			i++
			if rep[i] == '$' {
				b.WriteString("$$")
			} else {
				b.WriteByte(rep[i])
			}
		case c == '$':
			j := i + 1
			for j < len(rep) && isDigit(rep[j]) {
				j++
			}
			if j == i+1 {
				return nil, dynErr("FORX0004", "invalid replacement string")
			}
			b.WriteString("${" + rep[i+1:j] + "}")
			i = j - 1
		default:
			b.WriteByte(c)
		}
	}
	return seq{re.ReplaceAllString(s, b.String())}, nil
}

func fnTokenize(_ *Context, _ focus, a []seq) (seq, error) {
	s, re, err := regexArgs(a, 2, "tokenize")
	if err != nil {
		return nil, err
	}
	if re.MatchString("") {
		return nil, dynErr("FORX0003", "the pattern of tokenize() matches the empty string")
	}
	if s == "" {
		return seq{}, nil
	}
	var out seq
	for _, t := range re.Split(s, -1) {
		out = append(out, t)
	}
	return out, nil
}

func fnCodepoints(_ *Context, _ focus, a []seq) (seq, error) {
	s, err := oneString(a[0], "string-to-codepoints")
	if err != nil {
		return nil, err
	}
	var out seq
	for _, r := range s {
		out = append(out, newInt(int64(r)))
	}
	return out, nil
}

func fnFromCodepoints(_ *Context, _ focus, a []seq) (seq, error) {
	var b strings.Builder
	for _, it := range atomize(a[0]) {
		d, err := cast(it, tInteger)
		if err != nil {
			return nil, err
		}
		b.WriteRune(rune(d.(decimal).r.Num().Int64()))
	}
	return seq{b.String()}, nil
}

func fnDistinct(_ *Context, _ focus, a []seq) (seq, error) {
	var out seq
	for _, it := range atomize(a[0]) {
		if u, ok := it.(untyped); ok {
			it = string(u)
		}
		dup := false
		for _, o := range out {
			if eq, err := compareAtomic("eq", it, o); err == nil && eq {
				dup = true
				break
			}
		}
		if !dup {
			out = append(out, it)
		}
	}
	return out, nil
}

// fnSum adds the values: untyped values as xs:double, an empty sequence
// is the integer 0 (or the second argument).
func fnSum(c *Context, _ focus, a []seq) (seq, error) {
	s := atomize(a[0])
	if len(s) == 0 {
		if len(a) == 2 {
			return a[1], nil
		}
		return seq{newInt(0)}, nil
	}
	if err := c.tick(len(s)); err != nil {
		return nil, err
	}
	var acc item
	for _, it := range s {
		if u, ok := it.(untyped); ok {
			var err error
			if it, err = cast(u, tDouble); err != nil {
				return nil, err
			}
		}
		if !isNumeric(it) {
			return nil, dynErr("FORG0006", "sum() of a %s", typeName(it))
		}
		if acc == nil {
			acc = it
			continue
		}
		var err error
		if acc, err = arith("+", acc, it); err != nil {
			return nil, err
		}
	}
	return seq{acc}, nil
}

// numFn is a function of one number: exact for decimals, on doubles
// otherwise; untyped values are xs:double.
func numFn(dec func(*big.Rat) *big.Rat, dbl func(float64) float64) func(*Context, focus, []seq) (seq, error) {
	return func(_ *Context, _ focus, a []seq) (seq, error) {
		s := atomize(a[0])
		if len(s) == 0 {
			return seq{}, nil
		}
		if len(s) > 1 {
			return nil, dynErr("XPTY0004", "a sequence of more than one item where one number is expected")
		}
		it := s[0]
		if u, ok := it.(untyped); ok {
			var err error
			if it, err = cast(u, tDouble); err != nil {
				return nil, err
			}
		}
		switch v := it.(type) {
		case decimal:
			return seq{decimal{dec(v.r), v.integer}}, nil
		case float64:
			return seq{dbl(v)}, nil
		}
		return nil, dynErr("XPTY0004", "a %s where a number is expected", typeName(it))
	}
}

func floorDecimal(r *big.Rat) *big.Rat {
	q, m := new(big.Int).DivMod(r.Num(), r.Denom(), new(big.Int))
	_ = m // DivMod is Euclidean: q is the floor for a positive denominator
	return new(big.Rat).SetInt(q)
}

func ceilDecimal(r *big.Rat) *big.Rat {
	f := floorDecimal(r)
	if f.Cmp(r) == 0 {
		return f
	}
	return f.Add(f, big.NewRat(1, 1))
}

// roundDecimal rounds half towards positive infinity, as XPath's round().
func roundDecimal(r *big.Rat) *big.Rat {
	return floorDecimal(new(big.Rat).Add(r, big.NewRat(1, 2)))
}

func fnNumber(_ *Context, f focus, a []seq) (seq, error) {
	var s seq
	if len(a) == 0 {
		s = seq{f.item}
	} else {
		s = atomize(a[0])
	}
	if len(s) != 1 || s[0] == nil {
		return seq{math.NaN()}, nil
	}
	it, err := cast(atomize(s)[0], tDouble)
	if err != nil {
		return seq{math.NaN()}, nil
	}
	return seq{it}, nil
}

func nodeFn(fn func(*Node) string) func(*Context, focus, []seq) (seq, error) {
	return func(_ *Context, f focus, a []seq) (seq, error) {
		var it item = f.item
		if len(a) == 1 {
			if len(a[0]) == 0 {
				return seq{""}, nil
			}
			if len(a[0]) > 1 {
				return nil, dynErr("XPTY0004", "a sequence of more than one node")
			}
			it = a[0][0]
		}
		n, ok := it.(*Node)
		if !ok {
			return nil, dynErr("XPTY0004", "not a node")
		}
		return seq{fn(n)}, nil
	}
}

func qname(n *Node) string {
	if n.Kind != ElementNode && n.Kind != AttributeNode {
		return ""
	}
	if n.Prefix != "" {
		return n.Prefix + ":" + n.Local
	}
	return n.Local
}

func extreme(s seq, op string) (seq, error) {
	s = atomize(s)
	var best item
	for _, it := range s {
		if u, ok := it.(untyped); ok {
			var err error
			if it, err = cast(u, tDouble); err != nil {
				return nil, err
			}
		}
		if best == nil {
			best = it
			continue
		}
		better, err := compareAtomic(op, it, best)
		if err != nil {
			return nil, err
		}
		if better {
			best = it
		}
	}
	if best == nil {
		return seq{}, nil
	}
	return seq{best}, nil
}
