package archive

import "time"

// Event types, also the last two tokens of the NATS subject
// mailgate.<customer>.<type-suffix>.
const (
	TypeImported          = "mailgate.document.imported"
	TypeSkipped           = "mailgate.document.skipped"
	TypeConnectionChanged = "mailgate.connection.changed"
)

// Event is a CloudEvents 1.0 envelope in structured JSON mode. Data is one of
// *Imported, *Skipped or *ConnectionChanged, chosen by Type.
type Event struct {
	SpecVersion     string    `json:"specversion"` // always "1.0"
	ID              string    `json:"id"`          // document id (or a unique id for connection events)
	Source          string    `json:"source"`      // mailgate/<customer>/<connection>
	Type            string    `json:"type"`
	Time            time.Time `json:"time"`
	DataContentType string    `json:"datacontenttype"` // "application/json"
	Data            any       `json:"data"`
}

// MessageInfo describes the mail a document came from.
type MessageInfo struct {
	InternetMessageID string    `json:"internetMessageId"`
	From              string    `json:"from"`
	Subject           string    `json:"subject"`
	ReceivedAt        time.Time `json:"receivedAt"`
}

// Document kinds.
const (
	KindPDF       = "pdf"
	KindZUGFeRD   = "zugferd"
	KindXRechnung = "xrechnung"
	KindImage     = "image"
	KindEML       = "eml"
	KindOther     = "other"
)

// DocumentInfo describes one archived document.
type DocumentInfo struct {
	Name                string `json:"name"`
	Size                int64  `json:"size"`
	SHA256              string `json:"sha256"`
	ContentType         string `json:"contentType"`         // sniffed
	DeclaredContentType string `json:"declaredContentType"` // as the sender declared it
	Kind                string `json:"kind"`                // pdf|zugferd|xrechnung|image|eml|other
	Profile             string `json:"profile,omitempty"`   // e-invoice profile when cheap to tell (e.g. "EN 16931", "XRECHNUNG")
	Syntax              string `json:"syntax,omitempty"`    // "UBL" or "CII" for XML e-invoices
}

// ObjectRef locates a stored document.
type ObjectRef struct {
	Bucket string `json:"bucket"`
	Key    string `json:"key"`
}

// Imported is the data of a document.imported event.
type Imported struct {
	Customer   string       `json:"customer"`
	Connection string       `json:"connection"`
	Mailbox    string       `json:"mailbox"`
	Message    MessageInfo  `json:"message"`
	Document   DocumentInfo `json:"document"`
	Object     ObjectRef    `json:"object"`
}

// Skip reasons, machine-readable.
const (
	ReasonInline          = "inline_image"
	ReasonTooSmall        = "too_small"
	ReasonTypeNotAllowed  = "type_not_allowed"
	ReasonDisguised       = "disguised_executable"
	ReasonDuplicate       = "duplicate_of"
	ReasonReference       = "reference_attachment"
	ReasonFailed          = "failed" // gave up after repeated failures; Detail has the error
	ReasonEmpty           = "empty"
	ReasonItemAttachment  = "item_attachment"
	ReasonSignatureLogo   = "signature_logo"
	ReasonUnsupportedMail = "no_attachments"
)

// Skipped is the data of a document.skipped event.
type Skipped struct {
	Customer    string      `json:"customer"`
	Connection  string      `json:"connection"`
	Mailbox     string      `json:"mailbox"`
	Message     MessageInfo `json:"message"`
	Name        string      `json:"name"`
	Size        int64       `json:"size"`
	SHA256      string      `json:"sha256,omitempty"`
	ContentType string      `json:"contentType,omitempty"`
	Reason      string      `json:"reason"`
	Detail      string      `json:"detail,omitempty"`      // human-readable explanation
	DuplicateOf string      `json:"duplicateOf,omitempty"` // with ReasonDuplicate: the earlier document id
}

// ConnectionChanged is the data of a connection.changed event; it doubles as
// the audit record for connect, redeem, pause and disconnect.
type ConnectionChanged struct {
	Customer   string `json:"customer"`
	Connection string `json:"connection"`
	Mailbox    string `json:"mailbox"`
	From       string `json:"from,omitempty"` // previous state
	To         string `json:"to"`             // new state
	Action     string `json:"action"`         // connect, redeem, pause, resume, disconnect, reconnect, needs_consent, failing, recovered
	Actor      string `json:"actor,omitempty"`
	Error      string `json:"error,omitempty"`
}
