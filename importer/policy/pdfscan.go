package policy

import (
	"bytes"
	"compress/zlib"
	"context"
	"io"
	"slices"
	"strconv"
	"unicode/utf16"
)

// The lenient scan reads a PDF the way a forgiving viewer does when its
// cross-reference table is broken: it finds every "N G obj" in the bytes
// (a later definition of a number replaces an earlier one, as an
// incremental update does), opens object streams (/Type /ObjStm), and
// follows every file specification's /EF entry to its embedded file
// stream. It knows FlateDecode and unfiltered streams, no encryption, and
// bounds all it decompresses. It is linear in the file's size: an object
// is parsed no further than the next object's header (so a string left
// open does not run to the end of the file, once for every header), an
// object stream's object no further than the next one's offset, each
// offset once, and it ends with its context (the document's deadline).

// Bounds of the lenient scan.
const (
	scanMaxObjStm = 16 << 20 // decoded bytes of one object stream
	scanBudget    = 64 << 20 // decoded bytes of all object streams
	scanMaxObjs   = 200000
	// scanMaxLengths bounds the definitions of an indirect /Length tried.
	scanMaxLengths = 8
	// scanCtxEvery is how many objects the scan reads between looks at
	// its deadline.
	scanCtxEvery = 256
)

type (
	pdfName string
	pdfStr  string
	pdfRef  struct{ num, gen int }
	pdfDict map[pdfName]any
)

// pdfObj is an indirect object: its value and, for a stream, the raw
// (still encoded) stream bytes.
type pdfObj struct {
	val    any
	stream []byte
}

// objHeaders finds the "N G obj" headers: for each, the offset of N,
// the number N and the offset after "obj". A byte search for "obj" and a
// look back is many times faster than a regular expression over binary
// content.
func objHeaders(pdf []byte, limit int) []objHeader {
	var out []objHeader
	for i := 0; len(out) < limit; {
		k := bytes.Index(pdf[i:], []byte("obj"))
		if k < 0 {
			break
		}
		at := i + k
		i = at + 3
		if i < len(pdf) && !isPDFDelim(pdf[i]) {
			continue // objstm, …
		}
		j := at
		back := func(digits bool) (start int, ok bool) {
			end := j
			for j > 0 && end-j <= 10 && (digits && isDigit(pdf[j-1]) || !digits && isPDFSpace(pdf[j-1])) {
				j--
			}
			return j, j < end && end-j <= 10
		}
		if _, ok := back(false); !ok {
			continue
		}
		if _, ok := back(true); !ok { // generation
			continue
		}
		if _, ok := back(false); !ok {
			continue
		}
		numEnd := j
		start, ok := back(true)
		if !ok || (start > 0 && !isPDFDelim(pdf[start-1])) {
			continue
		}
		num, err := strconv.Atoi(string(pdf[start:numEnd]))
		if err != nil {
			continue
		}
		out = append(out, objHeader{start: start, num: num, body: i})
	}
	return out
}

type objHeader struct{ start, num, body int }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// scanAttachments returns the embedded files the lenient scan finds, with
// the content of the first named like an e-invoice whose content decodes.
// At ctx's end it returns what it found until then.
func scanAttachments(ctx context.Context, pdf []byte) []attachment {
	objs := scanObjects(ctx, pdf)
	var out []attachment
	budget, found := scanBudget, false
	var visit func(v any, depth int)
	visit = func(v any, depth int) {
		if depth > 32 {
			return
		}
		switch t := v.(type) {
		case pdfDict:
			if ef, ok := t["EF"].(pdfDict); ok {
				name := pdfText(t["UF"])
				if name == "" {
					name = pdfText(t["F"])
				}
				a := attachment{name: name}
				if isZUGFeRDName(name) && !found && budget > 0 {
					for _, k := range []pdfName{"UF", "F"} {
						if ref, ok := ef[k].(pdfRef); ok {
							if o, ok := objs[ref.num]; ok && o.stream != nil {
								a.data = decodeStream(o.val, o.stream, min(maxEmbeddedXML, budget))
								budget -= max(len(a.data), len(o.stream))
								found = a.data != nil
								break
							}
						}
					}
				}
				out = append(out, a)
			}
			for _, e := range t {
				visit(e, depth+1)
			}
		case []any:
			for _, e := range t {
				visit(e, depth+1)
			}
		}
	}
	n := 0
	for _, o := range objs {
		if n++; n%scanCtxEvery == 0 && ctx.Err() != nil {
			break
		}
		visit(o.val, 0)
	}
	// Named e-invoices with content first.
	for i, a := range out {
		if isZUGFeRDName(a.name) && a.data != nil {
			out[0], out[i] = out[i], out[0]
			break
		}
	}
	return out
}

// scanObjects finds the indirect objects, the last definition of each
// number winning, and the objects inside object streams.
func scanObjects(ctx context.Context, pdf []byte) map[int]pdfObj {
	objs := map[int]pdfObj{}
	pos := map[int]int{} // where each number was last defined
	var streams []int    // object numbers of object streams
	headers := objHeaders(pdf, scanMaxObjs)
	// An object's value ends before the next header: a string or
	// dictionary left open stops there instead of at the end of the file.
	value := func(k int) (any, *pdfParser, bool) {
		end := len(pdf)
		if k+1 < len(headers) {
			end = headers[k+1].start
		}
		p := &pdfParser{b: pdf[:end], i: min(headers[k].body, end)}
		v, ok := p.value(0)
		return v, p, ok
	}
	// Integer objects first: a stream's /Length is often one, written
	// after the stream. The last definitions are kept, and the one that
	// ends the stream at "endstream" is taken.
	ints := map[int][]int{}
	for k, h := range headers {
		if k%scanCtxEvery == 0 && ctx.Err() != nil {
			return objs
		}
		if v, _, ok := value(k); ok {
			if n, ok := v.(int); ok {
				l := ints[h.num]
				if len(l) >= scanMaxLengths {
					l = l[1:]
				}
				ints[h.num] = append(l, n)
			}
		}
	}
	end := 0
	for k, h := range headers {
		if k%scanCtxEvery == 0 && ctx.Err() != nil {
			return objs
		}
		if h.start < end {
			continue // inside the previous object's stream (an embedded PDF's objects)
		}
		num := h.num
		v, p, ok := value(k)
		if !ok {
			continue
		}
		o := pdfObj{val: v}
		if d, ok := v.(pdfDict); ok {
			sp := &pdfParser{b: pdf, i: p.i} // the stream may hold what looks like headers
			o.stream, end = sp.stream(d, ints)
			if d["Type"] == pdfName("ObjStm") {
				streams = append(streams, num)
			}
		}
		objs[num], pos[num] = o, h.start
	}
	budget := scanBudget
	for _, sn := range streams {
		if ctx.Err() != nil {
			return objs
		}
		o := objs[sn]
		d, _ := o.val.(pdfDict)
		n, _ := d["N"].(int)
		first, _ := d["First"].(int)
		data := decodeStream(d, o.stream, min(scanMaxObjStm, budget))
		budget -= len(data)
		if data == nil || n <= 0 || first <= 0 || first > len(data) {
			continue
		}
		type entry struct{ num, off int }
		var entries []entry
		hp := &pdfParser{b: data[:first]}
		for range n {
			num, ok1 := hp.value(0)
			off, ok2 := hp.value(0)
			on, _ := num.(int)
			oo, _ := off.(int)
			if !ok1 || !ok2 || first+oo >= len(data) || oo < 0 {
				break
			}
			entries = append(entries, entry{on, first + oo})
		}
		// Each object ends where the next offset begins, and each offset
		// is parsed once, whatever order or repetition the header claims.
		offs := make([]int, 0, len(entries))
		for _, e := range entries {
			offs = append(offs, e.off)
		}
		slices.Sort(offs)
		offs = slices.Compact(offs)
		type value struct {
			v  any
			ok bool
		}
		parsed := make(map[int]value, len(offs))
		for k, e := range entries {
			if k%scanCtxEvery == 0 && ctx.Err() != nil {
				return objs
			}
			if p, ok := pos[e.num]; ok && p > pos[sn] {
				continue // redefined later in an incremental update
			}
			v, done := parsed[e.off]
			if !done {
				i, _ := slices.BinarySearch(offs, e.off)
				end := len(data)
				if i+1 < len(offs) {
					end = offs[i+1]
				}
				vp := &pdfParser{b: data[:end], i: e.off}
				v.v, v.ok = vp.value(0)
				parsed[e.off] = v
			}
			if v.ok {
				objs[e.num], pos[e.num] = pdfObj{val: v.v}, pos[sn]
			}
		}
	}
	return objs
}

// decodeStream undoes the stream's filter: none or FlateDecode (without
// predictor, as embedded files and object streams are written). nil for
// anything else.
func decodeStream(dict any, raw []byte, limit int) []byte {
	d, _ := dict.(pdfDict)
	var filters []any
	switch f := d["Filter"].(type) {
	case nil:
	case pdfName:
		filters = []any{f}
	case []any:
		filters = f
	default:
		return nil
	}
	data := raw
	for _, f := range filters {
		switch f {
		case pdfName("FlateDecode"), pdfName("Fl"):
			zr, err := zlib.NewReader(bytes.NewReader(data))
			if err != nil {
				return nil
			}
			out, _ := io.ReadAll(io.LimitReader(zr, int64(limit))) // keep what a damaged stream gives
			if len(out) == 0 {
				return nil
			}
			data = out
		default:
			return nil
		}
	}
	if len(data) > limit {
		data = data[:limit]
	}
	return data
}

// pdfText decodes a PDF text string: UTF-16BE with a byte order mark, or
// PDFDocEncoding (read as Latin-1, which agrees on the names we look for).
func pdfText(v any) string {
	s, ok := v.(pdfStr)
	if !ok {
		return ""
	}
	b := []byte(s)
	if len(b) >= 2 && b[0] == 0xFE && b[1] == 0xFF {
		u := make([]uint16, 0, len(b)/2)
		for i := 2; i+1 < len(b); i += 2 {
			u = append(u, uint16(b[i])<<8|uint16(b[i+1]))
		}
		return string(utf16.Decode(u))
	}
	r := make([]rune, len(b))
	for i, c := range b {
		r[i] = rune(c)
	}
	return string(r)
}

// pdfParser reads PDF object syntax from b at i.
type pdfParser struct {
	b []byte
	i int
}

func isPDFSpace(c byte) bool {
	return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\f' || c == 0
}

func isPDFDelim(c byte) bool {
	return isPDFSpace(c) || bytes.IndexByte([]byte("()<>[]{}/%"), c) >= 0
}

func (p *pdfParser) skip() {
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case isPDFSpace(c):
			p.i++
		case c == '%':
			for p.i < len(p.b) && p.b[p.i] != '\n' && p.b[p.i] != '\r' {
				p.i++
			}
		default:
			return
		}
	}
}

// value parses one object; ok is false at a syntax error or the end.
func (p *pdfParser) value(depth int) (any, bool) {
	if depth > 64 {
		return nil, false
	}
	p.skip()
	if p.i >= len(p.b) {
		return nil, false
	}
	switch c := p.b[p.i]; {
	case c == '<' && p.i+1 < len(p.b) && p.b[p.i+1] == '<':
		p.i += 2
		d := pdfDict{}
		for {
			p.skip()
			if p.i+1 < len(p.b) && p.b[p.i] == '>' && p.b[p.i+1] == '>' {
				p.i += 2
				return d, true
			}
			k, ok := p.value(depth + 1)
			name, isName := k.(pdfName)
			if !ok || !isName {
				return nil, false
			}
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			d[name] = v
		}
	case c == '[':
		p.i++
		var a []any
		for {
			p.skip()
			if p.i < len(p.b) && p.b[p.i] == ']' {
				p.i++
				return a, true
			}
			v, ok := p.value(depth + 1)
			if !ok {
				return nil, false
			}
			a = append(a, v)
		}
	case c == '(':
		return p.literal()
	case c == '<':
		return p.hex()
	case c == '/':
		p.i++
		var n []byte
		for p.i < len(p.b) && !isPDFDelim(p.b[p.i]) {
			if p.b[p.i] == '#' && p.i+2 < len(p.b) {
				if v, err := strconv.ParseUint(string(p.b[p.i+1:p.i+3]), 16, 8); err == nil {
					n = append(n, byte(v))
					p.i += 3
					continue
				}
			}
			n = append(n, p.b[p.i])
			p.i++
		}
		return pdfName(n), true
	case c == '+' || c == '-' || c == '.' || ('0' <= c && c <= '9'):
		start := p.i
		for p.i < len(p.b) && !isPDFDelim(p.b[p.i]) {
			p.i++
		}
		tok := string(p.b[start:p.i])
		n, err := strconv.Atoi(tok)
		if err != nil {
			f, err := strconv.ParseFloat(tok, 64)
			return f, err == nil
		}
		// "num gen R" is a reference.
		save := p.i
		p.skip()
		gs := p.i
		for p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '9' {
			p.i++
		}
		if p.i > gs {
			gen, _ := strconv.Atoi(string(p.b[gs:p.i]))
			p.skip()
			if p.i < len(p.b) && p.b[p.i] == 'R' && (p.i+1 == len(p.b) || isPDFDelim(p.b[p.i+1])) {
				p.i++
				return pdfRef{n, gen}, true
			}
		}
		p.i = save
		return n, true
	default:
		start := p.i
		for p.i < len(p.b) && !isPDFDelim(p.b[p.i]) {
			p.i++
		}
		switch string(p.b[start:p.i]) {
		case "true":
			return true, true
		case "false":
			return false, true
		case "null":
			return nil, true
		}
		return nil, false
	}
}

func (p *pdfParser) literal() (any, bool) {
	p.i++ // (
	var s []byte
	depth := 1
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		switch c {
		case '\\':
			if p.i >= len(p.b) {
				return nil, false
			}
			e := p.b[p.i]
			p.i++
			switch e {
			case 'n':
				s = append(s, '\n')
			case 'r':
				s = append(s, '\r')
			case 't':
				s = append(s, '\t')
			case 'b':
				s = append(s, '\b')
			case 'f':
				s = append(s, '\f')
			case '\r':
				if p.i < len(p.b) && p.b[p.i] == '\n' {
					p.i++
				}
			case '\n':
			default:
				if '0' <= e && e <= '7' {
					v := int(e - '0')
					for k := 0; k < 2 && p.i < len(p.b) && '0' <= p.b[p.i] && p.b[p.i] <= '7'; k++ {
						v = v*8 + int(p.b[p.i]-'0')
						p.i++
					}
					s = append(s, byte(v))
				} else {
					s = append(s, e)
				}
			}
		case '(':
			depth++
			s = append(s, c)
		case ')':
			depth--
			if depth == 0 {
				return pdfStr(s), true
			}
			s = append(s, c)
		default:
			s = append(s, c)
		}
	}
	return nil, false
}

func (p *pdfParser) hex() (any, bool) {
	p.i++ // <
	var s []byte
	hi := -1
	for p.i < len(p.b) {
		c := p.b[p.i]
		p.i++
		var v int
		switch {
		case c == '>':
			if hi >= 0 {
				s = append(s, byte(hi<<4))
			}
			return pdfStr(s), true
		case '0' <= c && c <= '9':
			v = int(c - '0')
		case 'a' <= c && c <= 'f':
			v = int(c-'a') + 10
		case 'A' <= c && c <= 'F':
			v = int(c-'A') + 10
		case isPDFSpace(c):
			continue
		default:
			return nil, false
		}
		if hi < 0 {
			hi = v
		} else {
			s = append(s, byte(hi<<4|v))
			hi = -1
		}
	}
	return nil, false
}

// stream reads the stream that follows a dictionary, if any, and returns
// its raw bytes and the offset after it. /Length is trusted when it ends
// at "endstream"; otherwise the bytes up to "endstream" are taken.
func (p *pdfParser) stream(d pdfDict, ints map[int][]int) ([]byte, int) {
	p.skip()
	if !bytes.HasPrefix(p.b[p.i:], []byte("stream")) {
		return nil, p.i
	}
	start := p.i + len("stream")
	if bytes.HasPrefix(p.b[start:], []byte("\r\n")) {
		start += 2
	} else if start < len(p.b) && (p.b[start] == '\n' || p.b[start] == '\r') {
		start++
	}
	var lengths []int
	switch l := d["Length"].(type) {
	case int:
		lengths = []int{l}
	case pdfRef:
		lengths = ints[l.num]
	}
	for _, n := range lengths {
		if n < 0 || start+n > len(p.b) {
			continue
		}
		rest := bytes.TrimLeft(p.b[start+n:min(len(p.b), start+n+64)], " \r\n\t")
		if bytes.HasPrefix(rest, []byte("endstream")) {
			return p.b[start : start+n], start + n
		}
	}
	e := bytes.Index(p.b[start:], []byte("endstream"))
	if e < 0 {
		return p.b[start:], len(p.b)
	}
	data := p.b[start : start+e]
	data = bytes.TrimSuffix(data, []byte("\n"))
	data = bytes.TrimSuffix(data, []byte("\r"))
	return data, start + e
}
