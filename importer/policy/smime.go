package policy

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net/mail"
	"net/textproto"
	"strings"
)

// S/MIME. Graph hands a signed mail to the importer as one attachment
// named smime.p7m: for a clear-signed mail (multipart/signed) its content
// is the whole MIME message; for an opaque-signed one
// (application/pkcs7-mime; smime-type=signed-data) it is a CMS SignedData
// whose content is the MIME message. UnpackSMIME finds the files inside,
// which the importer then classifies one by one. The signature is not
// verified: mailgate archives what arrived, and the DMS keeps smime.p7m
// nowhere, since its files are the documents. An encrypted mail
// (enveloped-data) cannot be opened without the recipient's key
// (ErrSMIMEEncrypted); its smime.p7m goes through the policy as it is.

// Bounds of UnpackSMIME.
const (
	// MaxSMIMESize is the largest S/MIME container unpacked.
	MaxSMIMESize = 64 << 20
	maxMIMEDepth = 8
	maxMIMEParts = 100
	// maxBERNodes bounds the elements of one CMS structure: a signed
	// mail with its certificate chain has a few thousand, streamed BER
	// content adds one per segment of about a kilobyte.
	maxBERNodes = 1 << 18
)

// errUnpackDeadline says the unpacking met the document's deadline.
var errUnpackDeadline = errors.New("policy: container not unpacked within the document's time bound")

// ErrSMIMEEncrypted says the S/MIME container is encrypted.
var ErrSMIMEEncrypted = errors.New("policy: s/mime: the mail is encrypted")

// Part is a file found inside a container attachment.
type Part struct {
	Name        string
	ContentType string // as declared inside the container
	Content     []byte
}

// IsSMIME reports from an attachment's metadata whether it is an S/MIME
// container: named *.p7m, or declared application/pkcs7-mime or
// multipart/signed.
func IsSMIME(name, contentType string) bool {
	mt, _, _ := mime.ParseMediaType(contentType)
	switch strings.ToLower(mt) {
	case "application/pkcs7-mime", "application/x-pkcs7-mime", "multipart/signed":
		return true
	}
	return strings.HasSuffix(strings.ToLower(strings.TrimSpace(name)), ".p7m")
}

// UnpackSMIME returns the files inside an S/MIME container: a MIME
// message (multipart/signed or any multipart), a CMS SignedData in DER or
// BER, or either in base64. Body text without a file name is left out,
// as are attached mails and signatures. It ends with an error at ctx's
// end (the document's deadline); all it reads is bounded in size, depth,
// parts and CMS elements.
func UnpackSMIME(ctx context.Context, r io.Reader) ([]Part, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSMIMESize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: s/mime: read: %w", err)
	}
	if len(data) > MaxSMIMESize {
		return nil, errors.New("policy: s/mime: container too large")
	}
	var parts []Part
	if err := unpackContainer(ctx, data, 0, &parts); err != nil {
		return nil, err
	}
	return parts, nil
}

func unpackContainer(ctx context.Context, data []byte, depth int, parts *[]Part) error {
	if depth > maxMIMEDepth {
		return errors.New("policy: s/mime: nested too deep")
	}
	if ctx.Err() != nil {
		return errUnpackDeadline
	}
	trimmed := bytes.TrimSpace(data)
	if len(trimmed) > 0 && trimmed[0] == 0x30 {
		inner, err := cmsContent(trimmed)
		if err != nil {
			return err
		}
		return unpackContainer(ctx, inner, depth+1, parts)
	}
	if msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(data))); err == nil && msg.Header.Get("Content-Type") != "" {
		return walkMIME(ctx, textproto.MIMEHeader(msg.Header), msg.Body, depth, parts)
	}
	if der, err := base64.StdEncoding.DecodeString(string(bytes.Join(bytes.Fields(data), nil))); err == nil && len(der) > 0 && der[0] == 0x30 {
		return unpackContainer(ctx, der, depth+1, parts)
	}
	return errors.New("policy: s/mime: neither a MIME message nor CMS")
}

func walkMIME(ctx context.Context, h textproto.MIMEHeader, body io.Reader, depth int, parts *[]Part) error {
	if depth > maxMIMEDepth {
		return errors.New("policy: s/mime: nested too deep")
	}
	if ctx.Err() != nil {
		return errUnpackDeadline
	}
	ct := h.Get("Content-Type")
	if ct == "" {
		ct = "text/plain"
	}
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil {
		mt = "application/octet-stream"
	}
	mt = strings.ToLower(mt)
	switch {
	case strings.HasPrefix(mt, "multipart/"):
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextPart()
			if err == io.EOF {
				return nil
			}
			if err != nil {
				return fmt.Errorf("policy: s/mime: %s: %w", mt, err)
			}
			if err := walkMIME(ctx, p.Header, p, depth+1, parts); err != nil {
				return err
			}
		}
	case mt == "application/pkcs7-signature" || mt == "application/x-pkcs7-signature":
		return nil // the signature
	case mt == "message/rfc822":
		// A mail attached to the mail (forwarded as attachment): its
		// files are files of this one.
		content, err := io.ReadAll(transferDecoder(h.Get("Content-Transfer-Encoding"), body))
		if err != nil {
			return fmt.Errorf("policy: attached mail: %w", err)
		}
		msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(content)))
		if err != nil {
			return nil // not a mail after all: nothing to take from it
		}
		return walkMIME(ctx, textproto.MIMEHeader(msg.Header), msg.Body, depth+1, parts)
	}
	content, err := io.ReadAll(transferDecoder(h.Get("Content-Transfer-Encoding"), body))
	if err != nil {
		return fmt.Errorf("policy: s/mime: decode part: %w", err)
	}
	if mt == "application/pkcs7-mime" || mt == "application/x-pkcs7-mime" {
		return unpackContainer(ctx, content, depth+1, parts)
	}
	name := ""
	if _, dp, err := mime.ParseMediaType(h.Get("Content-Disposition")); err == nil {
		name = dp["filename"]
	}
	if name == "" {
		name = params["name"]
	}
	if name == "" {
		return nil // body text or an unnamed inline part
	}
	if len(*parts) >= maxMIMEParts {
		return errors.New("policy: s/mime: too many parts")
	}
	total := len(content)
	for _, p := range *parts {
		total += len(p.Content)
	}
	if total > MaxSMIMESize {
		return errors.New("policy: s/mime: parts too large")
	}
	*parts = append(*parts, Part{Name: name, ContentType: mt, Content: content})
	return nil
}

func transferDecoder(enc string, r io.Reader) io.Reader {
	switch strings.ToLower(strings.TrimSpace(enc)) {
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &spaceFilter{r: r})
	case "quoted-printable":
		return quotedprintable.NewReader(r)
	}
	return r
}

// spaceFilter drops the line breaks and spaces base64 bodies carry.
type spaceFilter struct{ r io.Reader }

func (f *spaceFilter) Read(p []byte) (int, error) {
	for {
		n, err := f.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			if c != '\r' && c != '\n' && c != ' ' && c != '\t' {
				p[k] = c
				k++
			}
		}
		if k > 0 || err != nil {
			return k, err
		}
	}
}

// CMS content types (RFC 5652), as DER-encoded OID contents.
var (
	oidData          = []byte{0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x01}
	oidSignedData    = []byte{0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x02}
	oidEnvelopedData = []byte{0x2A, 0x86, 0x48, 0x86, 0xF7, 0x0D, 0x01, 0x07, 0x03}
)

// cmsContent returns the encapsulated content of a CMS ContentInfo
// holding SignedData (or plain data). It reads BER, the indefinite
// lengths and constructed octet strings S/MIME writers stream, not only
// DER.
func cmsContent(b []byte) ([]byte, error) {
	budget := maxBERNodes
	ci, _, err := berRead(b, 0, &budget)
	if err != nil || ci.tag != 0x30 || len(ci.kids) < 2 || ci.kids[0].tag != 0x06 || ci.kids[1].tag != 0xA0 || len(ci.kids[1].kids) == 0 {
		return nil, errors.New("policy: s/mime: not a CMS ContentInfo")
	}
	content := ci.kids[1].kids[0]
	switch oid := ci.kids[0].content; {
	case bytes.Equal(oid, oidEnvelopedData):
		return nil, ErrSMIMEEncrypted
	case bytes.Equal(oid, oidData):
		return content.octets(), nil
	case !bytes.Equal(oid, oidSignedData):
		return nil, errors.New("policy: s/mime: unsupported CMS content type")
	}
	// SignedData: version, digestAlgorithms, encapContentInfo, …
	if content.tag != 0x30 || len(content.kids) < 3 {
		return nil, errors.New("policy: s/mime: malformed SignedData")
	}
	eci := content.kids[2]
	if eci.tag != 0x30 || len(eci.kids) < 2 || eci.kids[1].tag != 0xA0 || len(eci.kids[1].kids) == 0 {
		return nil, errors.New("policy: s/mime: detached signature without content")
	}
	return eci.kids[1].kids[0].octets(), nil
}

// berNode is one BER element: primitive content or constructed children.
type berNode struct {
	tag     byte
	content []byte
	kids    []berNode
}

// octets is an OCTET STRING's value, joined from the segments of a
// constructed one.
func (n berNode) octets() []byte {
	if n.tag&0x20 == 0 {
		return n.content
	}
	var out []byte
	for _, k := range n.kids {
		out = append(out, k.octets()...)
	}
	return out
}

// berRead reads one element from b and returns it and the bytes after it.
// budget counts down the elements still allowed.
func berRead(b []byte, depth int, budget *int) (berNode, []byte, error) {
	if depth > 64 {
		return berNode{}, nil, errors.New("ber: too deep")
	}
	if *budget--; *budget < 0 {
		return berNode{}, nil, errors.New("ber: too many elements")
	}
	if len(b) < 2 {
		return berNode{}, nil, io.ErrUnexpectedEOF
	}
	n := berNode{tag: b[0]}
	if b[0]&0x1F == 0x1F {
		return berNode{}, nil, errors.New("ber: high tag numbers unsupported")
	}
	l, i := int(b[1]), 2
	indefinite := false
	switch {
	case l == 0x80:
		indefinite = true
	case l > 0x80:
		k := l & 0x7F
		if k > 4 || len(b) < 2+k {
			return berNode{}, nil, errors.New("ber: bad length")
		}
		l = 0
		for _, c := range b[2 : 2+k] {
			l = l<<8 | int(c)
		}
		i = 2 + k
	}
	constructed := n.tag&0x20 != 0
	if indefinite {
		if !constructed {
			return berNode{}, nil, errors.New("ber: indefinite primitive")
		}
		rest := b[i:]
		for {
			if len(rest) >= 2 && rest[0] == 0 && rest[1] == 0 {
				return n, rest[2:], nil
			}
			kid, r, err := berRead(rest, depth+1, budget)
			if err != nil {
				return berNode{}, nil, err
			}
			n.kids = append(n.kids, kid)
			rest = r
		}
	}
	if l < 0 || i+l > len(b) {
		return berNode{}, nil, io.ErrUnexpectedEOF
	}
	n.content = b[i : i+l]
	if constructed {
		rest := n.content
		for len(rest) > 0 {
			kid, r, err := berRead(rest, depth+1, budget)
			if err != nil {
				return berNode{}, nil, err
			}
			n.kids = append(n.kids, kid)
			rest = r
		}
	}
	return n, b[i+l:], nil
}
