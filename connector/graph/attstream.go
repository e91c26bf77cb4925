package graph

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"

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
// in any order of properties. Each contentBytes string is decoded on the
// fly and handed to the sink; nothing else is kept beyond maxValue.
type listParser struct {
	r      *bufio.Reader
	sink   connector.Sink
	budget int    // bytes left for the value being read
	tmp    []byte // a string being read
	out    []connector.Attachment
	next   string
	kept   int // bytes of metadata the listing may still keep
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
	p := &listParser{r: bufio.NewReaderSize(r, 64<<10), sink: sink, kept: kept}
	if err := p.page(); err != nil {
		closeAll(p.out)
		return nil, "", 0, err
	}
	return p.out, p.next, p.kept, nil
}

// parseAttachment parses one attachment, the answer of …/attachments/{id}.
// On error it has closed the Content the sink made.
func parseAttachment(r io.Reader, sink connector.Sink) (connector.Attachment, error) {
	p := &listParser{r: bufio.NewReaderSize(r, 64<<10), sink: sink, kept: maxKept, budget: maxValue}
	c, err := p.nonSpace()
	if err == nil && c != '{' {
		err = syntaxf("want an object, got %q", c)
	}
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
	p.budget = maxValue
	c, err := p.nonSpace()
	if err != nil {
		return err
	}
	if c != '{' {
		return syntaxf("want an object, got %q", c)
	}
	err = p.object(func(key string, c byte) error {
		switch key {
		case "value":
			return p.values(c)
		case "@odata.nextLink":
			s, err := p.stringOrNull(c)
			p.next = s
			return err
		}
		return p.skip(c, 0)
	})
	if err != nil {
		return err
	}
	return p.end()
}

// end reads what follows the top-level object: only white space.
func (p *listParser) end() error {
	for {
		c, err := p.r.ReadByte()
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

// object reads the members of an object whose '{' has been read; fn gets
// each key and the first byte of its value and must read the value. The
// budget starts anew for each member.
func (p *listParser) object(fn func(key string, c byte) error) error {
	return p.list('}', func(c byte) error {
		p.budget = maxValue
		if c != '"' {
			return syntaxf("want a key, got %q", c)
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		if c, err = p.colon(); err != nil {
			return err
		}
		return fn(key, c)
	})
}

// list reads the elements of an array, or the members of an object, whose
// opening byte has been read, up to close: elem reads each one, given its
// first byte.
func (p *listParser) list(close byte, elem func(c byte) error) error {
	c, err := p.nonSpace()
	if err != nil {
		return err
	}
	if c == close {
		return nil
	}
	for {
		if err := elem(c); err != nil {
			return err
		}
		if c, err = p.nonSpace(); err != nil {
			return err
		}
		if c == close {
			return nil
		}
		if c != ',' {
			return syntaxf("want ',' or '%c', got %q", close, c)
		}
		if c, err = p.nonSpace(); err != nil {
			return err
		}
	}
}

// colon reads the ':' after a member's key and returns the first byte of
// its value.
func (p *listParser) colon() (byte, error) {
	c, err := p.nonSpace()
	if err != nil {
		return 0, err
	}
	if c != ':' {
		return 0, syntaxf("want ':', got %q", c)
	}
	return p.nonSpace()
}

// values reads the "value" array.
func (p *listParser) values(c byte) error {
	if c == 'n' {
		return p.literal(c, "null")
	}
	if c != '[' {
		return syntaxf("value: want an array, got %q", c)
	}
	return p.list(']', func(c byte) error {
		if c != '{' {
			return syntaxf("value: want an object, got %q", c)
		}
		if err := p.attachment(); err != nil {
			return err
		}
		p.budget = maxValue
		return nil
	})
}

// attachment reads one element of "value" (its '{' has been read) and
// appends it to p.out, with the sink's Content for contentBytes.
func (p *listParser) attachment() error {
	var a connector.Attachment
	seen := false
	err := p.object(func(key string, c byte) error {
		var err error
		switch key {
		case "@odata.type":
			var t string
			t, err = p.stringOrNull(c)
			a.Type = connector.AttachmentType(t)
		case "id":
			a.ID, err = p.stringOrNull(c)
		case "name":
			a.Name, err = p.stringOrNull(c)
		case "contentType":
			a.ContentType, err = p.stringOrNull(c)
		case "contentId":
			a.ContentID, err = p.stringOrNull(c)
		case "size":
			a.Size, err = p.integer(c)
		case "isInline":
			a.IsInline, err = p.boolean(c)
		case "contentBytes":
			if seen {
				return syntaxf("contentBytes twice in one attachment")
			}
			seen = true
			if c == 'n' {
				return p.literal(c, "null")
			}
			if c != '"' {
				return syntaxf("contentBytes: want a string, got %q", c)
			}
			a.Data, err = p.content()
		default:
			// lastModifiedDateTime, @odata.mediaContentType,
			// contentLocation, an expanded item, anything new.
			err = p.skip(c, 0)
		}
		return err
	})
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

// content hands the contentBytes string (its '"' has been read) to the sink.
func (p *listParser) content() (connector.Content, error) {
	d := &b64Reader{r: p.r}
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

// readByte reads one byte of a bounded value.
func (p *listParser) readByte() (byte, error) {
	if p.budget <= 0 {
		return 0, syntaxf("a value is over %d bytes", maxValue)
	}
	p.budget--
	c, err := p.r.ReadByte()
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	return c, err
}

func (p *listParser) nonSpace() (byte, error) {
	for {
		c, err := p.readByte()
		if err != nil || !isSpace(c) {
			return c, err
		}
	}
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// str reads a string whose '"' has been read, JSON escapes decoded.
func (p *listParser) str() (string, error) {
	p.tmp = append(p.tmp[:0], '"')
	esc, plain := false, true
	for {
		c, err := p.readByte()
		if err != nil {
			return "", err
		}
		p.tmp = append(p.tmp, c)
		switch {
		case esc:
			esc = false
		case c == '\\':
			esc, plain = true, false
		case c == '"':
			if plain {
				return string(p.tmp[1 : len(p.tmp)-1]), nil
			}
			var s string
			if err := json.Unmarshal(p.tmp, &s); err != nil {
				return "", syntaxf("string: %v", err)
			}
			return s, nil
		case c < 0x20:
			return "", syntaxf("control character in a string")
		case c >= 0x80:
			plain = false // let encoding/json check the UTF-8
		}
	}
}

func (p *listParser) stringOrNull(c byte) (string, error) {
	switch c {
	case '"':
		return p.str()
	case 'n':
		return "", p.literal(c, "null")
	}
	return "", syntaxf("want a string, got %q", c)
}

// literal reads the rest of true, false or null, whose first byte is c.
func (p *listParser) literal(c byte, want string) error {
	if c != want[0] {
		return syntaxf("want %s", want)
	}
	for i := 1; i < len(want); i++ {
		c, err := p.readByte()
		if err != nil {
			return err
		}
		if c != want[i] {
			return syntaxf("want %s", want)
		}
	}
	return p.endOfToken()
}

// endOfToken checks that a literal or number is not followed by more of it.
func (p *listParser) endOfToken() error {
	b, err := p.r.Peek(1)
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	if err != nil {
		return err
	}
	if isTokenByte(b[0]) {
		return syntaxf("unexpected %q after a value", b[0])
	}
	return nil
}

func isTokenByte(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c == '.' || c == '-' || c == '+'
}

// number reads a JSON number whose first byte is c.
func (p *listParser) number(c byte) (string, error) {
	p.tmp = append(p.tmp[:0], c)
	for {
		b, err := p.r.Peek(1)
		if err == io.EOF {
			return "", io.ErrUnexpectedEOF
		}
		if err != nil {
			return "", err
		}
		if !isTokenByte(b[0]) {
			break
		}
		c, err := p.readByte()
		if err != nil {
			return "", err
		}
		p.tmp = append(p.tmp, c)
	}
	if !json.Valid(p.tmp) {
		return "", syntaxf("bad number %q", p.tmp)
	}
	return string(p.tmp), nil
}

func (p *listParser) integer(c byte) (int64, error) {
	if c == 'n' {
		return 0, p.literal(c, "null")
	}
	if c != '-' && (c < '0' || c > '9') {
		return 0, syntaxf("want a number, got %q", c)
	}
	s, err := p.number(c)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return 0, syntaxf("size %s: not an integer", s)
	}
	return n, nil
}

func (p *listParser) boolean(c byte) (bool, error) {
	switch c {
	case 't':
		return true, p.literal(c, "true")
	case 'f':
		return false, p.literal(c, "false")
	case 'n':
		return false, p.literal(c, "null")
	}
	return false, syntaxf("want a boolean, got %q", c)
}

// skip reads and checks a value whose first byte is c without keeping it.
func (p *listParser) skip(c byte, depth int) error {
	if depth > maxDepth {
		return syntaxf("values nested deeper than %d", maxDepth)
	}
	switch {
	case c == '"':
		esc := false
		for {
			c, err := p.readByte()
			if err != nil {
				return err
			}
			switch {
			case esc:
				esc = false
				if err := p.skipEscape(c); err != nil {
					return err
				}
			case c == '\\':
				esc = true
			case c == '"':
				return nil
			case c < 0x20:
				return syntaxf("control character in a string")
			}
		}
	case c == '{':
		return p.skipObject(depth)
	case c == '[':
		return p.list(']', func(c byte) error { return p.skip(c, depth+1) })
	case c == 't':
		return p.literal(c, "true")
	case c == 'f':
		return p.literal(c, "false")
	case c == 'n':
		return p.literal(c, "null")
	case c == '-' || c >= '0' && c <= '9':
		_, err := p.number(c)
		return err
	}
	return syntaxf("unexpected %q", c)
}

// skipEscape checks an escape of a skipped string after its '\\', whose
// next byte is c: one of JSON's, and \u with four hex digits.
func (p *listParser) skipEscape(c byte) error {
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return nil
	case 'u':
		for range 4 {
			h, err := p.readByte()
			if err != nil {
				return err
			}
			if !(h >= '0' && h <= '9' || h >= 'a' && h <= 'f' || h >= 'A' && h <= 'F') {
				return syntaxf("bad \\u escape")
			}
		}
		return nil
	}
	return syntaxf("bad escape \\%c", c)
}

func (p *listParser) skipObject(depth int) error {
	return p.list('}', func(c byte) error {
		if c != '"' {
			return syntaxf("want a key, got %q", c)
		}
		if err := p.skip(c, depth+1); err != nil {
			return err
		}
		c, err := p.colon()
		if err != nil {
			return err
		}
		return p.skip(c, depth+1)
	})
}

// b64Reader yields the decoded bytes of a contentBytes string whose '"'
// has been read from r, and leaves r after the closing '"'. It scans the
// buffered input for '"' and '\' and decodes runs of whole quanta straight
// from r's buffer into the caller's: no call and no copy per byte. Only a
// quantum cut by an escape or the end of the buffer is gathered byte by
// byte.
type b64Reader struct {
	r      *bufio.Reader
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
		if _, err := d.r.Peek(1); err != nil {
			d.err = unexpected(err)
			break
		}
		buf, _ := d.r.Peek(d.r.Buffered())
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
			d.r.Discard(k)
			buf, stop = buf[k:], stop-k
		}
		// The rest of a quantum (up to 3 characters) waits in quad.
		d.nq = copy(d.quad[:], buf[:stop])
		d.r.Discard(stop)
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
