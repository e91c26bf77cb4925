package graph

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/connector"
)

// maxValue bounds every value of an attachment listing except contentBytes:
// metadata, unknown properties (skipped, never kept whole), the next link.
const maxValue = 1 << 20

// maxDepth bounds the nesting of skipped values.
const maxDepth = 64

// maxKept bounds what a listing keeps of its attachments' metadata, all
// pages together: each attachment costs attachmentCost and the length of
// its strings. Graph's metadata is a few hundred bytes an attachment.
const (
	maxKept        = 8 << 20
	attachmentCost = 256
)

// maxPages bounds the pages of one listing: a next link that leads back
// to its own page must not loop for as long as the context allows.
const maxPages = 100

// syntaxError is a listing that is not the JSON Graph sends: Invalid.
type syntaxError struct{ msg string }

func (e *syntaxError) Error() string { return "attachment listing: " + e.msg }

func syntaxf(format string, args ...any) error {
	return &syntaxError{msg: fmt.Sprintf(format, args...)}
}

// sinkError is a failure of the Sink itself.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "attachment sink: " + e.err.Error() }
func (e *sinkError) Unwrap() error { return e.err }

// classifyList classifies a failure while parsing a listing: the stream's
// own errors are already classified, a cut body is Transient, a malformed
// one Invalid, a failing Sink is Other unless it classified its error.
func classifyList(op string, err error) error {
	var ce *connector.Error
	var se *syntaxError
	var ke *sinkError
	switch {
	case errors.As(err, &ce):
		return ce
	case errors.As(err, &se):
		return connector.E(op, connector.Invalid, err)
	case errors.As(err, &ke):
		return connector.E(op, connector.Other, err)
	}
	// io.ErrUnexpectedEOF and other read failures.
	return connector.E(op, connector.Transient, err)
}

// listParser reads one page of …/messages/{id}/attachments without $select:
//
//	{"@odata.context":…, "value":[{…},{…}], "@odata.nextLink":…}
//
// in any order of properties. A json.Decoder reads the grammar and every
// value but contentBytes, each bounded by maxValue. At the key contentBytes
// the parser takes the stream back from the decoder (with what it read
// ahead), decodes the string on the fly into the sink, and continues with
// a new decoder: one can't skip what it has not read, so the new one first
// reads prefix, the nesting the old one was in, and then the stream.
type listParser struct {
	s      *input
	dec    *json.Decoder
	f      *feed  // what dec reads
	prefix string // the nesting of an attachment's contentBytes, in JSON
	replay int    // the tokens of prefix
	sink   connector.Sink
	out    []connector.Attachment
	next   string
	kept   int // bytes of metadata the listing may still keep
}

// listPrefix and onePrefix are the nesting of contentBytes in a listing
// and in an attachment read alone, and their tokens.
const (
	listPrefix, listTokens = `{"value":[{"contentBytes":`, 5
	onePrefix, oneTokens   = `{"contentBytes":`, 2
)

func newListParser(r io.Reader, sink connector.Sink, kept int, prefix string, replay int) *listParser {
	p := &listParser{s: &input{r: bufio.NewReaderSize(r, 64<<10)}, sink: sink, kept: kept, prefix: prefix, replay: replay}
	p.decoder("")
	return p
}

// parseAttachments parses one page, the only one of its listing.
func parseAttachments(r io.Reader, sink connector.Sink) (atts []connector.Attachment, next string, err error) {
	atts, next, _, err = parsePage(r, sink, maxKept)
	return atts, next, err
}

// parsePage parses one page, which may keep kept bytes of metadata, and
// returns what the next pages may keep. On error it has closed every
// Content the sink made for this page and returns no attachments.
func parsePage(r io.Reader, sink connector.Sink, kept int) (atts []connector.Attachment, next string, left int, err error) {
	p := newListParser(r, sink, kept, listPrefix, listTokens)
	if err := p.page(); err != nil {
		closeAll(p.out)
		return nil, "", 0, err
	}
	return p.out, p.next, p.kept, nil
}

// parseAttachment parses one attachment, the answer of …/attachments/{id}.
// On error it has closed the Content the sink made.
func parseAttachment(r io.Reader, sink connector.Sink) (connector.Attachment, error) {
	p := newListParser(r, sink, maxKept, onePrefix, oneTokens)
	err := p.open()
	if err == nil {
		err = p.attachment()
	}
	if err == nil {
		err = p.end()
	}
	if err != nil {
		closeAll(p.out)
		return connector.Attachment{}, err
	}
	return p.out[0], nil
}

// closeAll closes the contents of atts.
func closeAll(atts []connector.Attachment) {
	for i := range atts {
		if atts[i].Data != nil {
			atts[i].Data.Close()
			atts[i].Data = nil
		}
	}
}

func (p *listParser) page() error {
	if err := p.open(); err != nil {
		return err
	}
	for {
		key, ok, err := p.member()
		if err != nil || !ok {
			if err == nil {
				err = p.end()
			}
			return err
		}
		switch key {
		case "value":
			err = p.values()
		case "@odata.nextLink":
			err = decode(p, &p.next, startString)
		default:
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// decoder starts a new decoder on pre and the rest of the stream.
func (p *listParser) decoder(pre string) {
	p.f = &feed{pre: pre, s: p.s, limit: int64(len(pre)) + maxValue}
	p.dec = json.NewDecoder(p.f)
	p.dec.UseNumber() // a skipped 1e400 is JSON, no float64
}

// budget lets the decoder read maxValue bytes more: the member or element
// that follows, with the white space around it.
func (p *listParser) budget() { p.f.limit = p.dec.InputOffset() + maxValue }

// The bytes a value may start with, where only some types are allowed.
const (
	startString = `"n`
	startNumber = `-0123456789n`
	startBool   = `tfn`
)

// token reads the next token, a value starting with one of starts (if
// not "").
func (p *listParser) token(starts string) (json.Token, error) {
	t, err := p.dec.Token()
	return t, p.cut(err, starts)
}

// decode reads the next value into *v; null is v's zero value.
func decode[T any](p *listParser, v *T, starts string) error {
	var x T
	if err := p.dec.Decode(&x); err != nil {
		return p.cut(err, starts)
	}
	*v = x
	return nil
}

// cut is jsonError, but a body cut in a value whose first byte is none
// of starts is Invalid, as it would be whole: a decoder checks the type
// of a value only once it has read all of it.
func (p *listParser) cut(err error, starts string) error {
	err = jsonError(err)
	if err != io.ErrUnexpectedEOF || starts == "" {
		return err
	}
	begun := p.dec.Buffered() // the value begun, after white space
	var b [64]byte
	for {
		n, _ := begun.Read(b[:])
		if n == 0 {
			return err
		}
		if v := bytes.TrimLeft(b[:n], " \t\r\n"); len(v) > 0 {
			if !strings.ContainsRune(starts, rune(v[0])) {
				return syntaxf("unexpected %q", v[0])
			}
			return err
		}
	}
}

// jsonError makes what the decoder returns the parser's error: malformed
// JSON or a value of the wrong type is a syntaxError, a body that ends
// early io.ErrUnexpectedEOF; the stream's own errors pass unchanged.
func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case err == io.EOF:
		return io.ErrUnexpectedEOF
	case errors.As(err, &se), errors.As(err, &te):
		return syntaxf("%v", err)
	}
	return err
}

// open reads the '{' of the top-level object. Its first byte is checked
// by hand: a decoder would read a whole value first, and a body cut in
// some other value would seem a listing cut short.
func (p *listParser) open() error {
	c, err := p.s.nonSpace(maxValue)
	if err == nil && c != '{' {
		err = syntaxf("want an object, got %q", c)
	}
	if err != nil {
		return err
	}
	p.budget()
	_, err = p.token("")
	return err
}

// member reads the key of an object's next member, or (ok false) its end.
func (p *listParser) member() (key string, ok bool, err error) {
	p.budget()
	t, err := p.token("")
	key, ok = t.(string) // else '}': the decoder allows nothing else
	return key, ok, err
}

// end reads what follows the top-level object: only white space. A decoder
// would hold it whole.
func (p *listParser) end() error {
	p.s.giveBack(p.dec.Buffered())
	for {
		c, err := p.s.ReadByte()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		if !isSpace(c) {
			return syntaxf("data after the object")
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// values reads the "value" array.
func (p *listParser) values() error {
	t, err := p.token("[n")
	if err != nil || t == nil { // null
		return err
	}
	if t != json.Delim('[') {
		return syntaxf("value: want an array, got %v", t)
	}
	for {
		p.budget()
		t, err := p.token("{]")
		switch {
		case err != nil:
			return err
		case t == json.Delim(']'):
			return nil
		case t != json.Delim('{'):
			return syntaxf("value: want an object, got %v", t)
		}
		if err := p.attachment(); err != nil {
			return err
		}
	}
}

// attachment reads the members of one attachment (its '{' has been read)
// and appends it to p.out, with the sink's Content for contentBytes.
func (p *listParser) attachment() error {
	var a connector.Attachment
	err := p.members(&a)
	if err == nil {
		p.kept -= attachmentCost + len(a.Type) + len(a.ID) + len(a.Name) + len(a.ContentType) + len(a.ContentID)
		if p.kept < 0 {
			err = syntaxf("the attachments' metadata is over %d bytes", maxKept)
		}
	}
	if err != nil {
		if a.Data != nil {
			a.Data.Close()
		}
		return err
	}
	p.out = append(p.out, a)
	return nil
}

func (p *listParser) members(a *connector.Attachment) error {
	seen := false
	for {
		key, ok, err := p.member()
		if err != nil || !ok {
			return err
		}
		switch key {
		case "@odata.type":
			err = decode(p, &a.Type, startString)
		case "id":
			err = decode(p, &a.ID, startString)
		case "name":
			err = decode(p, &a.Name, startString)
		case "contentType":
			err = decode(p, &a.ContentType, startString)
		case "contentId":
			err = decode(p, &a.ContentID, startString)
		case "size":
			err = decode(p, &a.Size, startNumber)
		case "isInline":
			err = decode(p, &a.IsInline, startBool)
		case "contentBytes":
			if seen {
				return syntaxf("contentBytes twice in one attachment")
			}
			seen = true
			a.Data, err = p.contentBytes()
		default:
			// lastModifiedDateTime, @odata.mediaContentType,
			// contentLocation, an expanded item, anything new.
			err = p.skip()
		}
		if err != nil {
			return err
		}
	}
}

// skip reads a value without keeping it: no value in it deeper than
// maxDepth.
func (p *listParser) skip() error {
	depth := 0
	for {
		t, err := p.token("")
		if err != nil {
			return err
		}
		switch t {
		case json.Delim('}'), json.Delim(']'):
			depth--
		default:
			if depth > maxDepth {
				return syntaxf("values nested deeper than %d", maxDepth)
			}
			if t == json.Delim('{') || t == json.Delim('[') {
				depth++
			}
		}
		if depth == 0 {
			return nil
		}
	}
}

// contentBytes reads the value of contentBytes, whose key the decoder has
// read: a string streams into the sink, anything else a new decoder reads
// (null is no content).
func (p *listParser) contentBytes() (connector.Content, error) {
	p.s.giveBack(p.dec.Buffered())
	c, err := p.s.valueAfterColon(maxValue)
	if err != nil {
		return nil, err
	}
	if c != '"' {
		if err := p.resume(p.prefix, p.replay); err != nil {
			return nil, err
		}
		t, err := p.token("n")
		if err == nil && t != nil {
			err = syntaxf("contentBytes: want a string, got %v", t)
		}
		return nil, err
	}
	p.s.discard(1)
	data, err := p.content()
	if err == nil {
		err = p.resume(p.prefix+`""`, p.replay+1)
	}
	if err != nil {
		if data != nil {
			data.Close()
		}
		return nil, err
	}
	return data, nil
}

// resume reads on with a new decoder, which reads pre and its first tokens.
func (p *listParser) resume(pre string, tokens int) error {
	p.decoder(pre)
	for range tokens {
		if _, err := p.token(""); err != nil {
			return err
		}
	}
	p.budget()
	return nil
}

// content hands the contentBytes string (its '"' has been read) to the sink.
func (p *listParser) content() (connector.Content, error) {
	d := &b64Reader{r: p.s}
	c, err := p.sink(d)
	if d.err != nil {
		// The sink failed because the listing did, or read past a failure.
		if c != nil {
			c.Close()
		}
		return nil, d.err
	}
	if err != nil {
		if c != nil {
			c.Close()
		}
		return nil, &sinkError{err: err}
	}
	if c == nil {
		return nil, &sinkError{err: errors.New("no content and no error")}
	}
	if !d.finished() {
		// A sink may stop after the last byte without asking for EOF.
		var one [1]byte
		n, _ := d.Read(one[:])
		switch {
		case d.err != nil:
			c.Close()
			return nil, d.err
		case n > 0 || !d.finished():
			c.Close()
			return nil, &sinkError{err: errors.New("stopped before the end of the content")}
		}
	}
	return c, nil
}

// feed is what a decoder reads: pre, then the stream, limit bytes in all.
type feed struct {
	pre   string
	s     *input
	n     int64 // bytes read
	limit int64
}

func (f *feed) Read(q []byte) (int, error) {
	if f.n >= f.limit {
		return 0, syntaxf("a value is over %d bytes", maxValue)
	}
	q = q[:min(int64(len(q)), f.limit-f.n)]
	var n int
	var err error
	if len(f.pre) > 0 {
		n = copy(q, f.pre)
		f.pre = f.pre[n:]
	} else {
		n, err = f.s.Read(q)
	}
	f.n += int64(n)
	return n, err
}

// input is the body as the parser reads it: first what a decoder read
// ahead and gave back, then the rest.
type input struct {
	back []byte
	r    *bufio.Reader
}

// giveBack puts what a decoder read ahead (its Buffered) before the rest.
func (s *input) giveBack(ahead io.Reader) {
	b, _ := io.ReadAll(ahead) // a bytes.Reader
	s.back = append(b, s.back...)
}

func (s *input) Read(q []byte) (int, error) {
	if len(s.back) > 0 {
		n := copy(q, s.back)
		s.back = s.back[n:]
		return n, nil
	}
	return s.r.Read(q)
}

func (s *input) ReadByte() (byte, error) {
	if len(s.back) > 0 {
		c := s.back[0]
		s.back = s.back[1:]
		return c, nil
	}
	return s.r.ReadByte()
}

// window returns bytes that are buffered, at least one, without reading
// them.
func (s *input) window() ([]byte, error) {
	if len(s.back) > 0 {
		return s.back, nil
	}
	if _, err := s.r.Peek(1); err != nil {
		return nil, err
	}
	return s.r.Peek(s.r.Buffered())
}

// discard reads n bytes of the window.
func (s *input) discard(n int) {
	if len(s.back) > 0 {
		s.back = s.back[n:]
		return
	}
	s.r.Discard(n)
}

// valueAfterColon reads the white space, ':' and white space that follow
// a key, at most max bytes, and returns the first byte of the value,
// unread.
func (s *input) valueAfterColon(max int) (byte, error) {
	c, err := s.nonSpace(max)
	if err == nil && c != ':' {
		err = syntaxf("want ':', got %q", c)
	}
	if err != nil {
		return 0, err
	}
	s.discard(1)
	return s.nonSpace(max)
}

// nonSpace reads white space, at most max bytes, and returns the byte
// after it, unread.
func (s *input) nonSpace(max int) (byte, error) {
	for range max {
		w, err := s.window()
		if err != nil {
			return 0, unexpected(err)
		}
		if !isSpace(w[0]) {
			return w[0], nil
		}
		s.discard(1)
	}
	return 0, syntaxf("a value is over %d bytes", max)
}

// b64Reader yields the decoded bytes of a contentBytes string whose '"'
// has been read from r, and leaves r after the closing '"'. It scans the
// buffered input for '"' and '\' and decodes runs of whole quanta straight
// from r's buffer into the caller's: no call and no copy per byte. Only a
// quantum cut by an escape or the end of the buffer is gathered byte by
// byte.
type b64Reader struct {
	r      *input
	quad   [4]byte // a quantum being gathered: quad[:nq]
	nq     int
	stage  [768]byte // decoded for a Read of fewer than 3 bytes
	out    []byte    // staged bytes not yet returned
	end    bool      // the closing '"' has been read
	padded bool      // a decoded quantum ended with '=': nothing may follow
	err    error
}

func (d *b64Reader) Read(q []byte) (int, error) {
	if len(d.out) > 0 {
		n := copy(q, d.out)
		d.out = d.out[n:]
		return n, nil
	}
	if len(q) == 0 {
		return 0, nil
	}
	for {
		if d.err != nil {
			return 0, d.err
		}
		if d.end {
			return 0, io.EOF
		}
		if len(q) >= 3 {
			if n := d.decode(q); n > 0 {
				return n, nil
			}
			continue
		}
		if m := d.decode(d.stage[:]); m > 0 {
			n := copy(q, d.stage[:m])
			d.out = d.stage[n:m]
			return n, nil
		}
	}
}

// finished reports whether the string was read to its end and returned.
func (d *b64Reader) finished() bool { return d.end && d.err == nil && len(d.out) == 0 }

// decode decodes into dst (len(dst) >= 3) until it is full, the string
// ends or an error occurs, and returns the bytes written.
func (d *b64Reader) decode(dst []byte) int {
	n := 0
	for !d.end && d.err == nil && len(dst)-n >= 3 {
		if d.nq > 0 {
			d.gather()
			if d.nq == 4 {
				n += d.flush(dst[n:])
			}
			continue
		}
		buf, err := d.r.window()
		if err != nil {
			d.err = unexpected(err)
			break
		}
		if most := (len(dst) - n) / 3 * 4; len(buf) > most {
			buf = buf[:most]
		}
		// The backslash first: the quote scan then stops at it, so
		// frequent escapes don't rescan the buffer.
		stop := bytes.IndexByte(buf, '\\')
		if stop < 0 {
			stop = len(buf)
		}
		if q := bytes.IndexByte(buf[:stop], '"'); q >= 0 {
			stop = q
		}
		if k := stop - stop%4; k > 0 {
			// base64.Decode skips raw line breaks; in a JSON string
			// they are control characters.
			if bytes.IndexByte(buf[:k], '\n') >= 0 || bytes.IndexByte(buf[:k], '\r') >= 0 {
				d.err = syntaxf("contentBytes: control character in a string")
				break
			}
			if d.padded {
				d.err = syntaxf("contentBytes: base64 after padding")
				break
			}
			m, err := base64.StdEncoding.Decode(dst[n:], buf[:k])
			if err != nil {
				d.err = syntaxf("contentBytes: %v", err)
				break
			}
			d.padded = buf[k-1] == '='
			n += m
			d.r.discard(k)
			buf, stop = buf[k:], stop-k
		}
		// The rest of a quantum (up to 3 characters) waits in quad.
		d.nq = copy(d.quad[:], buf[:stop])
		d.r.discard(stop)
		if stop < len(buf) {
			d.gather() // the quote or an escape
			if d.nq == 4 {
				n += d.flush(dst[n:])
			}
		}
	}
	if d.end && d.err == nil && d.nq > 0 {
		d.err = syntaxf("contentBytes: base64 cut short (%d characters left)", d.nq)
	}
	return n
}

// gather reads one character of a quantum: plain, escaped or the end.
func (d *b64Reader) gather() {
	c, err := d.r.ReadByte()
	if err != nil {
		d.err = unexpected(err)
		return
	}
	switch {
	case c == '"':
		d.end = true
		return
	case c < 0x20:
		d.err = syntaxf("contentBytes: control character in a string")
		return
	case c == '\\':
		var keep bool
		if c, keep, err = d.escape(); err != nil {
			d.err = err
			return
		}
		if !keep {
			return
		}
	}
	d.quad[d.nq] = c
	d.nq++
}

// flush decodes the gathered quantum into dst.
func (d *b64Reader) flush(dst []byte) int {
	d.nq = 0
	if d.padded {
		d.err = syntaxf("contentBytes: base64 after padding")
		return 0
	}
	m, err := base64.StdEncoding.Decode(dst, d.quad[:])
	if err != nil {
		d.err = syntaxf("contentBytes: %v", err)
		return 0
	}
	d.padded = d.quad[3] == '='
	return m
}

// escape reads an escape sequence inside contentBytes after its '\'.
// Only escapes that can stand for base64 are allowed: "\/", "\uXXXX" of a
// base64 character, and line breaks (dropped, as base64 decoders do).
func (d *b64Reader) escape() (c byte, keep bool, err error) {
	if c, err = d.r.ReadByte(); err != nil {
		return 0, false, unexpected(err)
	}
	switch c {
	case '/':
		return '/', true, nil
	case 'n', 'r':
		return 0, false, nil
	case 'u':
		var v rune
		for range 4 {
			h, err := d.r.ReadByte()
			if err != nil {
				return 0, false, unexpected(err)
			}
			switch {
			case h >= '0' && h <= '9':
				h -= '0'
			case h >= 'a' && h <= 'f':
				h -= 'a' - 10
			case h >= 'A' && h <= 'F':
				h -= 'A' - 10
			default:
				return 0, false, syntaxf("contentBytes: bad \\u escape")
			}
			v = v<<4 | rune(h)
		}
		switch {
		case v == '\n' || v == '\r':
			return 0, false, nil
		case v == '+' || v == '/' || v == '=' || v >= '0' && v <= '9' || v >= 'A' && v <= 'Z' || v >= 'a' && v <= 'z':
			return byte(v), true, nil
		}
		return 0, false, syntaxf("contentBytes: \\u%04x is not base64", v)
	}
	return 0, false, syntaxf("contentBytes: \\%c is not base64", c)
}

func unexpected(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}
