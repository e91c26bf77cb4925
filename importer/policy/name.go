package policy

import (
	"io"
	"mime"
	"path"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxNameBytes is the longest file name SanitizeName returns.
const MaxNameBytes = 200

// maxExtBytes is the longest suffix kept as an extension when a name is cut.
const maxExtBytes = 16

// SanitizeName returns a file name that is safe to show and to store: RFC
// 2047 encoded words are decoded, path separators and control characters
// removed, surrounding blanks and leading dots trimmed, and the result cut to
// MaxNameBytes while keeping its extension. An empty result becomes
// "attachment.<ext>" (ext without a dot; "" gives "attachment").
func SanitizeName(name, ext string) string {
	dec := mime.WordDecoder{CharsetReader: passThroughCharset}
	if d, err := dec.DecodeHeader(name); err == nil {
		name = d
	}
	name = strings.ToValidUTF8(name, "")
	name = strings.Map(func(r rune) rune {
		switch {
		case r == '/' || r == '\\':
			return -1
		case unicode.IsControl(r), r == utf8.RuneError:
			return -1
		case unicode.Is(unicode.Cf, r): // bidi overrides hide a real extension
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	name = strings.TrimLeft(name, ". ")
	name = strings.TrimRight(name, " ")
	if len(name) > MaxNameBytes {
		e := path.Ext(name)
		if len(e) > maxExtBytes || len(e) == len(name) {
			e = ""
		}
		stem := name[:len(name)-len(e)]
		stem = cutUTF8(stem, MaxNameBytes-len(e))
		name = strings.TrimSpace(stem) + e
	}
	if name == "" || name == "." {
		ext = strings.TrimLeft(SanitizeExt(ext), ".")
		if ext == "" {
			return "attachment"
		}
		return "attachment." + ext
	}
	return name
}

// SanitizeText returns a text from a document (an invoice's number, a
// party's name) that is safe to show, as SanitizeName does for names:
// valid UTF-8, no format characters (Unicode category Cf: bidi overrides
// and isolates, zero-width characters, the byte order mark, …) and no
// control characters, where tabs and line breaks become spaces; runs of
// white space collapse to one, the ends are trimmed, and the result is
// cut to at most limit bytes.
func SanitizeText(s string, limit int) string {
	var b strings.Builder
	space := false
	for _, r := range strings.ToValidUTF8(s, "") {
		switch {
		case unicode.IsSpace(r):
			space = b.Len() > 0
			continue
		case unicode.IsControl(r), unicode.Is(unicode.Cf, r), r == utf8.RuneError:
			continue
		}
		n := utf8.RuneLen(r)
		if space {
			n++
		}
		if b.Len()+n > limit {
			break
		}
		if space {
			b.WriteByte(' ')
			space = false
		}
		b.WriteRune(r)
	}
	return b.String()
}

// SanitizeExt keeps only ASCII letters and digits of an extension.
func SanitizeExt(ext string) string {
	ext = strings.Map(func(r rune) rune {
		if r < utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r)) {
			return unicode.ToLower(r)
		}
		return -1
	}, ext)
	if len(ext) > maxExtBytes {
		ext = ext[:maxExtBytes]
	}
	return ext
}

// cutUTF8 cuts s to at most n bytes without splitting a rune.
func cutUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// passThroughCharset lets encoded words in charsets the standard library
// does not know (windows-1252, iso-8859-15, …) decode byte for byte; the
// name is made valid UTF-8 afterwards, so at worst a few letters are lost.
func passThroughCharset(_ string, input io.Reader) (io.Reader, error) {
	b, err := io.ReadAll(io.LimitReader(input, 4<<10))
	if err != nil {
		return nil, err
	}
	var sb strings.Builder
	for _, c := range b {
		sb.WriteRune(rune(c)) // Latin-1 code points equal their byte values
	}
	return strings.NewReader(sb.String()), nil
}
