package xpath

import (
	"fmt"
	"math"
	"math/big"
	"strconv"
	"strings"
	"time"
)

// An item is a *Node or an atomic value: untyped (a node's value),
// string, bool, decimal (xs:integer and xs:decimal), float64 (xs:double)
// or date.
type item = any

// seq is a sequence of items.
type seq = []item

// untyped is xs:untypedAtomic, what a node atomizes to.
type untyped string

// decimal is an xs:decimal, exact; an xs:integer when integer is set.
type decimal struct {
	r       *big.Rat
	integer bool
}

// date is an xs:date.
type date struct {
	t  time.Time
	tz bool
}

// DynamicError is an error the rules raise while they run, such as a
// value that is no number where one is cast to xs:decimal. Saxon ends the
// transformation at the first; so do we.
type DynamicError struct {
	Code string // the XPath error code, e.g. "FORG0001"
	Msg  string
}

func (e *DynamicError) Error() string { return e.Code + ": " + e.Msg }

func dynErr(code, format string, a ...any) error {
	return &DynamicError{Code: code, Msg: fmt.Sprintf(format, a...)}
}

func newInt(i int64) decimal { return decimal{r: new(big.Rat).SetInt64(i), integer: true} }

// atomize turns a sequence into atomic values.
func atomize(s seq) seq {
	nodes := false
	for _, it := range s {
		if _, ok := it.(*Node); ok {
			nodes = true
			break
		}
	}
	if !nodes {
		return s
	}
	out := make(seq, len(s))
	for i, it := range s {
		if n, ok := it.(*Node); ok {
			out[i] = untyped(n.StringValue())
		} else {
			out[i] = it
		}
	}
	return out
}

// stringOf is an item's string value.
func stringOf(it item) string {
	switch v := it.(type) {
	case *Node:
		return v.StringValue()
	case untyped:
		return string(v)
	case string:
		return v
	case bool:
		if v {
			return "true"
		}
		return "false"
	case decimal:
		return decimalString(v)
	case float64:
		return doubleString(v)
	case date:
		if v.tz {
			return v.t.Format("2006-01-02Z07:00")
		}
		return v.t.Format("2006-01-02")
	}
	return fmt.Sprint(it)
}

func decimalString(d decimal) string {
	if d.r.IsInt() {
		return d.r.Num().String()
	}
	// A terminating decimal: print exactly, without trailing zeros.
	s := d.r.FloatString(40)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

// doubleString writes an xs:double as XPath 2.0 casts it to a string.
func doubleString(f float64) string {
	switch {
	case math.IsNaN(f):
		return "NaN"
	case math.IsInf(f, 1):
		return "INF"
	case math.IsInf(f, -1):
		return "-INF"
	case f == 0:
		if math.Signbit(f) {
			return "-0"
		}
		return "0"
	}
	if a := math.Abs(f); a >= 1e-6 && a < 1e6 {
		return strconv.FormatFloat(f, 'f', -1, 64)
	}
	s := strconv.FormatFloat(f, 'E', -1, 64)
	mant, exp, _ := strings.Cut(s, "E")
	if !strings.Contains(mant, ".") {
		mant += ".0"
	}
	e, _ := strconv.Atoi(exp)
	return mant + "E" + strconv.Itoa(e)
}

// ebv is the effective boolean value of a sequence.
func ebv(s seq) (bool, error) {
	if len(s) == 0 {
		return false, nil
	}
	if _, ok := s[0].(*Node); ok {
		return true, nil
	}
	if len(s) > 1 {
		return false, dynErr("FORG0006", "effective boolean value of a sequence of %d atomic values", len(s))
	}
	switch v := s[0].(type) {
	case bool:
		return v, nil
	case string:
		return v != "", nil
	case untyped:
		return v != "", nil
	case decimal:
		return v.r.Sign() != 0, nil
	case float64:
		return v != 0 && !math.IsNaN(v), nil
	}
	return false, dynErr("FORG0006", "effective boolean value of a %T", s[0])
}

func collapse(s string) string { return strings.TrimFunc(s, isXMLSpace) }

func isXMLSpace(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == '\r' }

// parseDecimal reads xs:decimal's lexical form.
func parseDecimal(s string) (decimal, bool) {
	s = collapse(s)
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || body == "" || body == "." {
		return decimal{}, false
	}
	dot := false
	for _, c := range body {
		switch {
		case c == '.' && !dot:
			dot = true
		case c >= '0' && c <= '9':
		default:
			return decimal{}, false
		}
	}
	if strings.HasPrefix(body, ".") {
		s = strings.Replace(s, ".", "0.", 1)
	}
	r, ok := new(big.Rat).SetString(strings.TrimSuffix(s, "."))
	return decimal{r: r}, ok
}

func parseInteger(s string) (decimal, bool) {
	s = collapse(s)
	body := strings.TrimLeft(s, "+-")
	if len(s)-len(body) > 1 || body == "" {
		return decimal{}, false
	}
	for _, c := range body {
		if c < '0' || c > '9' {
			return decimal{}, false
		}
	}
	r, ok := new(big.Rat).SetString(s)
	return decimal{r: r, integer: true}, ok
}

func parseDouble(s string) (float64, bool) {
	s = collapse(s)
	switch s {
	case "INF", "+INF":
		return math.Inf(1), true
	case "-INF":
		return math.Inf(-1), true
	case "NaN":
		return math.NaN(), true
	}
	if s == "" || strings.ContainsAny(s, "xXpP_") || strings.EqualFold(s, "inf") || strings.EqualFold(s, "infinity") || strings.EqualFold(s, "nan") {
		return 0, false
	}
	f, err := strconv.ParseFloat(s, 64)
	if err != nil {
		if ne, ok := err.(*strconv.NumError); ok && ne.Err == strconv.ErrRange {
			return f, true
		}
		return 0, false
	}
	return f, true
}

func parseDate(s string) (date, bool) {
	s = collapse(s)
	for _, layout := range []string{"2006-01-02", "2006-01-02Z07:00"} {
		if t, err := time.Parse(layout, s); err == nil {
			return date{t: t, tz: layout != "2006-01-02"}, true
		}
	}
	return date{}, false
}

// Type names of casts.
const (
	tString  = "string"
	tDecimal = "decimal"
	tInteger = "integer"
	tDouble  = "double"
	tBoolean = "boolean"
	tDate    = "date"
	tUntyped = "untypedAtomic"
)

// cast casts an atomic value to the named type (XPath 2.0's casting
// rules, for the types the rules use).
func cast(it item, to string) (item, error) {
	fail := func() (item, error) {
		return nil, dynErr("FORG0001", "cannot cast %q to xs:%s", truncate(stringOf(it), 40), to)
	}
	if to == tString {
		return stringOf(it), nil
	}
	if to == tUntyped {
		return untyped(stringOf(it)), nil
	}
	switch v := it.(type) {
	case untyped, string:
		s := stringOf(v)
		switch to {
		case tDecimal:
			if d, ok := parseDecimal(s); ok {
				return d, nil
			}
		case tInteger:
			if d, ok := parseInteger(s); ok {
				return d, nil
			}
		case tDouble:
			if f, ok := parseDouble(s); ok {
				return f, nil
			}
		case tBoolean:
			switch collapse(s) {
			case "true", "1":
				return true, nil
			case "false", "0":
				return false, nil
			}
		case tDate:
			if d, ok := parseDate(s); ok {
				return d, nil
			}
		}
		return fail()
	case decimal:
		switch to {
		case tDecimal:
			return decimal{r: v.r}, nil
		case tInteger:
			q := new(big.Int).Quo(v.r.Num(), v.r.Denom())
			return decimal{r: new(big.Rat).SetInt(q), integer: true}, nil
		case tDouble:
			f, _ := v.r.Float64()
			return f, nil
		case tBoolean:
			return v.r.Sign() != 0, nil
		}
	case float64:
		switch to {
		case tDouble:
			return v, nil
		case tDecimal, tInteger:
			if math.IsNaN(v) || math.IsInf(v, 0) {
				return fail()
			}
			r := new(big.Rat)
			r.SetFloat64(v)
			if to == tInteger {
				q := new(big.Int).Quo(r.Num(), r.Denom())
				return decimal{r: new(big.Rat).SetInt(q), integer: true}, nil
			}
			return decimal{r: r}, nil
		case tBoolean:
			return v != 0 && !math.IsNaN(v), nil
		}
	case bool:
		switch to {
		case tBoolean:
			return v, nil
		case tDecimal, tInteger:
			if v {
				return decimal{r: big.NewRat(1, 1), integer: to == tInteger}, nil
			}
			return decimal{r: new(big.Rat), integer: to == tInteger}, nil
		case tDouble:
			if v {
				return 1.0, nil
			}
			return 0.0, nil
		}
	case date:
		if to == tDate {
			return v, nil
		}
	}
	return nil, dynErr("XPTY0004", "cannot cast a %s to xs:%s", typeName(it), to)
}

func typeName(it item) string {
	switch v := it.(type) {
	case *Node:
		return "node"
	case untyped:
		return "xs:untypedAtomic"
	case string:
		return "xs:string"
	case bool:
		return "xs:boolean"
	case decimal:
		if v.integer {
			return "xs:integer"
		}
		return "xs:decimal"
	case float64:
		return "xs:double"
	case date:
		return "xs:date"
	}
	return fmt.Sprintf("%T", it)
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

func isNumeric(it item) bool {
	switch it.(type) {
	case decimal, float64:
		return true
	}
	return false
}

// numbers promotes two numeric values to a common type: both decimal
// (exact) or both double.
func promote(a, b item) (decimal, decimal, float64, float64, bool) {
	da, aDec := a.(decimal)
	db, bDec := b.(decimal)
	if aDec && bDec {
		return da, db, 0, 0, true
	}
	return decimal{}, decimal{}, toDouble(a), toDouble(b), false
}

func toDouble(it item) float64 {
	switch v := it.(type) {
	case float64:
		return v
	case decimal:
		f, _ := v.r.Float64()
		return f
	}
	return math.NaN()
}

// compareAtomic compares two atomic values after the promotions of a
// value comparison; op is one of "eq", "ne", "lt", "le", "gt", "ge".
func compareAtomic(op string, a, b item) (bool, error) {
	if ua, ok := a.(untyped); ok {
		a = string(ua)
	}
	if ub, ok := b.(untyped); ok {
		b = string(ub)
	}
	var c int
	switch {
	case isNumeric(a) && isNumeric(b):
		da, db, fa, fb, exact := promote(a, b)
		if exact {
			c = da.r.Cmp(db.r)
		} else {
			if math.IsNaN(fa) || math.IsNaN(fb) {
				return op == "ne", nil
			}
			switch {
			case fa < fb:
				c = -1
			case fa > fb:
				c = 1
			}
		}
	default:
		switch va := a.(type) {
		case string:
			vb, ok := b.(string)
			if !ok {
				return false, incomparable(a, b)
			}
			c = strings.Compare(va, vb)
		case bool:
			vb, ok := b.(bool)
			if !ok {
				return false, incomparable(a, b)
			}
			switch {
			case va == vb:
			case !va:
				c = -1
			default:
				c = 1
			}
		case date:
			vb, ok := b.(date)
			if !ok {
				return false, incomparable(a, b)
			}
			c = va.t.Compare(vb.t)
		default:
			return false, incomparable(a, b)
		}
	}
	switch op {
	case "eq":
		return c == 0, nil
	case "ne":
		return c != 0, nil
	case "lt":
		return c < 0, nil
	case "le":
		return c <= 0, nil
	case "gt":
		return c > 0, nil
	case "ge":
		return c >= 0, nil
	}
	return false, fmt.Errorf("xpath: unknown comparison %s", op)
}

func incomparable(a, b item) error {
	return dynErr("XPTY0004", "cannot compare %s with %s", typeName(a), typeName(b))
}

// generalPair prepares one pair of a general comparison: an untyped value
// takes the other's type (xs:double against a number, xs:string against
// a string or another untyped value).
func generalPair(a, b item) (item, item, error) {
	ua, aU := a.(untyped)
	ub, bU := b.(untyped)
	var err error
	switch {
	case aU && bU:
		return string(ua), string(ub), nil
	case aU:
		a, err = castUntypedLike(ua, b)
	case bU:
		b, err = castUntypedLike(ub, a)
	}
	return a, b, err
}

func castUntypedLike(u untyped, other item) (item, error) {
	switch other.(type) {
	case decimal, float64:
		return cast(u, tDouble)
	case bool:
		return cast(u, tBoolean)
	case date:
		return cast(u, tDate)
	}
	return string(u), nil
}
