package connector

import (
	"io"
	"time"
)

// Message is the part of a Graph message the importer needs.
type Message struct {
	ID                string // Graph item id (immutable id when requested); NOT identity
	InternetMessageID string // RFC 5322 Message-ID: identity of the mail
	Subject           string
	From              string // sender SMTP address
	FromName          string
	ReceivedAt        time.Time
	HasAttachments    bool
	IsRead            bool
	// BodyRefs holds the cid: references of an HTML body, space-separated
	// ("cid:logo@x cid:scan@y"): all the importer needs of a body, to tell
	// an image shown in it from an attached one. The rest of the body is
	// let go of as the delta page is read.
	BodyRefs       string
	Categories     []string // current categories
	ParentFolderID string
	Removed        bool // a delta "@removed" entry: never import it
}

// AttachmentType is Graph's @odata.type of an attachment.
type AttachmentType string

const (
	FileAttachment      AttachmentType = "#microsoft.graph.fileAttachment"
	ItemAttachment      AttachmentType = "#microsoft.graph.itemAttachment"
	ReferenceAttachment AttachmentType = "#microsoft.graph.referenceAttachment"
)

// Attachment is an attachment's metadata, with its bytes in Data when they
// came with it (Graph's contentBytes, kept by a Sink); otherwise the
// content is streamed with OpenAttachment.
type Attachment struct {
	ID          string
	Type        AttachmentType
	Name        string
	ContentType string // declared by the sender: a hint only
	Size        int64
	IsInline    bool
	ContentID   string
	Content     []byte  // the bytes of a file taken from a container attachment (S/MIME, an attached mail); nil otherwise
	Data        Content // the bytes, when fetched with the list (Attachments with a Sink) or Attachment; nil otherwise
}

// Content is the bytes of one attachment, kept by a Sink until Close.
type Content interface {
	Size() int64
	Close() error
}

// A Sink keeps the content of one attachment as it streams in: r yields
// the decoded bytes and ends with them. It must read r to its end or fail.
type Sink func(r io.Reader) (Content, error)

// DeltaPage is one page of a delta query over a mail folder. Exactly one of
// NextLink (more pages follow) and DeltaLink (the round is complete; keep it
// for the next round) is set.
type DeltaPage struct {
	Messages  []Message
	NextLink  string
	DeltaLink string
}
