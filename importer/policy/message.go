package policy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/mail"
	"net/textproto"
)

// UnpackMessage returns the files of a MIME mail: what Graph gives for an
// item attachment (a mail forwarded as an attachment) at its $value. Body
// text and images without a file name are left out; files of mails
// attached inside it, and of S/MIME parts, are taken too. An attached
// mail without files yields none.
func UnpackMessage(ctx context.Context, r io.Reader) ([]Part, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSMIMESize+1))
	if err != nil {
		return nil, fmt.Errorf("policy: attached mail: read: %w", err)
	}
	if len(data) > MaxSMIMESize {
		return nil, errors.New("policy: attached mail: too large")
	}
	msg, err := mail.ReadMessage(bufio.NewReader(bytes.NewReader(data)))
	if err != nil {
		return nil, fmt.Errorf("policy: attached mail: %w", err)
	}
	var parts []Part
	if err := walkMIME(ctx, textproto.MIMEHeader(msg.Header), msg.Body, 0, &parts); err != nil {
		return nil, err
	}
	return parts, nil
}
