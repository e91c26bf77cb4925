package importer

import (
	"context"
	"io"
	"strconv"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
)

// S/MIME mail arrives as one attachment, smime.p7m, holding the mail's
// real attachments. Those are the documents: each goes through document
// on its own, with its own id (from its content and name), ledger record
// and event, as if attached directly. The container itself is no
// document. A container that cannot be opened (encrypted, broken) goes
// through the policy as it is.

// smimeParts unpacks an S/MIME container attachment; ok is false for any
// other attachment or when nothing could be unpacked.
func (p *pass) smimeParts(a connector.Attachment, sp spooled) (parts []policy.Part, ok bool) {
	if !policy.IsSMIME(a.Name, a.ContentType) {
		return nil, false
	}
	r := sp.Reader()
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, false
	}
	parts, err := policy.UnpackSMIME(r)
	if err != nil || len(parts) == 0 {
		p.im.log.Info("importer: s/mime container not unpacked", "connection_id", p.conn.ID, "error", err, "parts", len(parts))
		return nil, false
	}
	return parts, true
}

// documentParts takes the parts of a container through document one
// after the other, in the container's document slot.
func (p *pass) documentParts(ctx context.Context, m connector.Message, mailID string, container job, attKey string, f failure, parts []policy.Part, seen func(id string) bool) (bool, error) {
	failed := false
	for i, part := range parts {
		j := job{part: true, att: connector.Attachment{
			ID: container.att.ID + "/" + strconv.Itoa(i), Type: connector.FileAttachment, Name: part.Name,
			ContentType: part.ContentType, Size: int64(len(part.Content)), Content: part.Content,
		}}
		pf, err := p.document(ctx, m, mailID, j, seen)
		if err != nil {
			return pf, err
		}
		failed = failed || pf
	}
	if !failed && f.Attempts > 0 {
		return false, p.im.ledger.clearFailure(ctx, attKey)
	}
	return failed, nil
}
