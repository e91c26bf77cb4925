package importer

import (
	"context"
	"io"
	"strconv"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
)

// Container attachments. S/MIME mail arrives as one attachment,
// smime.p7m, holding the mail's real attachments; a mail forwarded as an
// attachment (an item attachment) holds its own. Those files are the
// documents: each goes through document on its own, with its own id
// (from its content and name, under the outer mail), ledger record and
// event, as if attached directly; a file attached both directly and in
// the forwarded mail is one document. The container itself is no
// document, except an attached mail when mails are saved as .eml. A
// container that cannot be opened (encrypted, broken, an attached
// calendar item) goes through the policy as it is.

// containerParts unpacks a container attachment; ok is false for any
// other attachment or when no file could be taken from it.
func (p *pass) containerParts(ctx context.Context, a connector.Attachment, sp spooled) (parts []policy.Part, ok bool) {
	unpack := policy.UnpackSMIME
	switch {
	case a.Type == connector.ItemAttachment:
		unpack = policy.UnpackMessage
	case !policy.IsSMIME(a.Name, a.ContentType):
		return nil, false
	}
	r := sp.Reader()
	if _, err := r.Seek(0, io.SeekStart); err != nil {
		return nil, false
	}
	parts, err := unpack(ctx, r)
	if err != nil || len(parts) == 0 {
		if err != nil {
			p.im.log.Info("importer: container attachment not unpacked", "connection_id", p.conn.ID, "error", err)
		}
		return nil, false
	}
	return parts, true
}

// keepContainer reports whether the container is a document itself after
// its parts: an attached mail, when mails are saved as .eml.
func (p *pass) keepContainer(a connector.Attachment) bool {
	return a.Type == connector.ItemAttachment && p.im.cfg.Policy.SaveEML
}

// documentParts takes the parts of a container through document one
// after the other, in the container's document slot. A part's error is
// the container's: the mail keeps it as the attachment that failed.
func (p *pass) documentParts(ctx context.Context, m connector.Message, mailID string, container job, parts []policy.Part, seen func(id string) bool) error {
	for i, part := range parts {
		j := job{part: true, att: connector.Attachment{
			ID: container.att.ID + "/" + strconv.Itoa(i), Type: connector.FileAttachment, Name: part.Name,
			ContentType: part.ContentType, Size: int64(len(part.Content)), Content: part.Content,
		}, deadline: container.deadline}
		if err := p.document(ctx, m, mailID, j, seen); err != nil {
			return err
		}
	}
	return nil
}
