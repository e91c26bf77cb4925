package importer

import (
	"path"
	"strings"

	"github.com/mailgate/mailgate/connector"
)

// Graph reports hasAttachments false for a mail whose attachments are all
// inline, and some mail programs (Apple Mail among them) send a PDF
// inline. An HTML mail that references inline parts (cid:) therefore has
// its attachments listed all the same (one more Graph request for such a
// mail), and its inline attachments other than body images are examined
// like any other. When only body images are there, the mail is left
// alone as before: no events, no ledger record, no post-processing. A
// plain-text mail says nothing of inline parts and is not listed.

// inlineImageMax is the largest image read on its own with its contentId
// when the list with the bytes broke off: a body's images are small, and
// a larger one goes without its contentId and is judged by its inline
// flag, size and shape.
const inlineImageMax = 3 << 20

// looksLikeImage reports whether the sender declared an image, by content
// type or file name. It only decides whether the contentId is fetched;
// the policy sniffs the real type either way.
func looksLikeImage(a connector.Attachment) bool {
	if strings.HasPrefix(strings.ToLower(a.ContentType), "image/") {
		return true
	}
	switch strings.ToLower(path.Ext(a.Name)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".tif", ".tiff", ".webp", ".heic":
		return true
	}
	return false
}

// mayBeInlineOnly reports whether a mail without attachments may still
// carry inline ones: its HTML body references content ids.
func mayBeInlineOnly(m connector.Message) bool {
	return !m.HasAttachments && m.BodyRefs != ""
}

// bodyImage reports whether an inline attachment declares itself an
// image: part of the mail's body, not a document, in a mail that has no
// real attachments.
func bodyImage(a connector.Attachment) bool {
	if !a.IsInline || a.Type != connector.FileAttachment {
		return false
	}
	if strings.HasPrefix(strings.ToLower(strings.TrimSpace(a.ContentType)), "image/") {
		return true
	}
	switch strings.ToLower(path.Ext(a.Name)) {
	case ".png", ".jpg", ".jpeg", ".gif", ".bmp", ".webp", ".svg":
		return true
	}
	return false
}
