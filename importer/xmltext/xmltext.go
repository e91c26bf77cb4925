// Package xmltext turns the bytes of an XML file from a mail into what
// encoding/xml reads: the byte order mark and UTF-16 dealt with before the
// decoder, the encodings an XML declaration may name decoded after it.
// The policy's e-invoice reader and the rules' parser share it, so both
// read a file the same way.
package xmltext

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"strings"

	"golang.org/x/text/encoding/htmlindex"
	"golang.org/x/text/encoding/unicode"
)

// BOM is UTF-8's byte order mark.
var BOM = []byte{0xEF, 0xBB, 0xBF}

// Reader returns r with a UTF-8 byte order mark dropped and UTF-16 (with
// a byte order mark or recognised by its first character '<') decoded to
// UTF-8.
func Reader(r io.Reader) io.Reader {
	br := bufio.NewReader(r)
	head, _ := br.Peek(4)
	switch {
	case bytes.HasPrefix(head, BOM):
		_, _ = br.Discard(len(BOM))
		return br
	case bytes.HasPrefix(head, []byte{0xFF, 0xFE}), bytes.HasPrefix(head, []byte{0xFE, 0xFF}):
		return unicode.UTF16(unicode.LittleEndian, unicode.ExpectBOM).NewDecoder().Reader(br)
	case bytes.HasPrefix(head, []byte{'<', 0}):
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM).NewDecoder().Reader(br)
	case bytes.HasPrefix(head, []byte{0, '<'}):
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM).NewDecoder().Reader(br)
	}
	return br
}

// ErrEncoding is Charset's error for a label it does not know.
var ErrEncoding = errors.New("xmltext: unknown encoding")

// Charset is an encoding/xml CharsetReader for the encodings an XML
// declaration may name (UTF-16 was decoded by Reader already).
func Charset(label string, in io.Reader) (io.Reader, error) {
	l := strings.ToLower(strings.TrimSpace(label))
	if strings.HasPrefix(l, "utf-16") || strings.HasPrefix(l, "utf16") || l == "utf-8" || l == "utf8" {
		return in, nil
	}
	enc, err := htmlindex.Get(l)
	if err != nil {
		return nil, ErrEncoding
	}
	return enc.NewDecoder().Reader(in), nil
}
