package graphtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/textproto"
	"time"
)

// buildMIME renders a mail (with its attachments) as an RFC 5322 message.
func buildMIME(m Mail) []byte {
	var b bytes.Buffer
	atts := make([]Attachment, len(m.Attachments))
	copy(atts, m.Attachments)
	_ = writeMIME(&b, m, atts)
	return b.Bytes()
}

// writeMIME streams a mail as MIME; attachment content is base64-encoded on
// the fly, never copied whole.
func writeMIME(w io.Writer, m Mail, atts []Attachment) error {
	from := m.From
	if m.FromName != "" {
		from = mime.QEncoding.Encode("utf-8", m.FromName) + " <" + m.From + ">"
	}
	received := m.ReceivedAt
	if received.IsZero() {
		received = time.Unix(0, 0)
	}
	ctype := "text/plain"
	if m.BodyHTML {
		ctype = "text/html"
	}
	hdr := fmt.Sprintf("From: %s\r\nSubject: %s\r\nDate: %s\r\nMessage-ID: %s\r\nMIME-Version: 1.0\r\n",
		from, mime.QEncoding.Encode("utf-8", m.Subject), received.Format(time.RFC1123Z), m.InternetMessageID)
	if len(atts) == 0 {
		_, err := fmt.Fprintf(w, "%sContent-Type: %s; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n%s\r\n", hdr, ctype, m.Body)
		return err
	}
	mw := multipart.NewWriter(w)
	if _, err := fmt.Fprintf(w, "%sContent-Type: multipart/mixed; boundary=%q\r\n\r\n", hdr, mw.Boundary()); err != nil {
		return err
	}
	body := textproto.MIMEHeader{}
	body.Set("Content-Type", ctype+"; charset=utf-8")
	body.Set("Content-Transfer-Encoding", "8bit")
	pw, err := mw.CreatePart(body)
	if err != nil {
		return err
	}
	if _, err := io.WriteString(pw, m.Body); err != nil {
		return err
	}
	for _, a := range atts {
		h := textproto.MIMEHeader{}
		disp := "attachment"
		if a.Inline {
			disp = "inline"
		}
		switch {
		case a.Item != nil:
			h.Set("Content-Type", "message/rfc822")
			h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": a.Name}))
			pw, err := mw.CreatePart(h)
			if err != nil {
				return err
			}
			if err := writeMIME(pw, *a.Item, a.Item.Attachments); err != nil {
				return err
			}
		case a.ReferenceURL != "":
			// Exchange renders reference attachments as a link in the body.
			continue
		default:
			ct := a.ContentType
			if ct == "" {
				ct = "application/octet-stream"
			}
			h.Set("Content-Type", mime.FormatMediaType(ct, map[string]string{"name": a.Name}))
			h.Set("Content-Disposition", mime.FormatMediaType(disp, map[string]string{"filename": a.Name}))
			h.Set("Content-Transfer-Encoding", "base64")
			if a.ContentID != "" {
				h.Set("Content-ID", "<"+a.ContentID+">")
			}
			pw, err := mw.CreatePart(h)
			if err != nil {
				return err
			}
			enc := base64.NewEncoder(base64.StdEncoding, &lineWriter{w: pw})
			if _, err := enc.Write(a.Content); err != nil {
				return err
			}
			if err := enc.Close(); err != nil {
				return err
			}
		}
	}
	return mw.Close()
}

// lineWriter breaks base64 output into 76-character lines.
type lineWriter struct {
	w   io.Writer
	col int
}

func (l *lineWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		chunk := 76 - l.col
		if chunk > len(p) {
			chunk = len(p)
		}
		if _, err := l.w.Write(p[:chunk]); err != nil {
			return n, err
		}
		n += chunk
		l.col += chunk
		p = p[chunk:]
		if l.col == 76 {
			if _, err := io.WriteString(l.w, "\r\n"); err != nil {
				return n, err
			}
			l.col = 0
		}
	}
	return n, nil
}
