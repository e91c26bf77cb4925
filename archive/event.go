package archive

import (
	"strings"
	"time"
)

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
	Invoice    *Invoice     `json:"invoice,omitempty"` // e-invoices only: the invoice's own data
	// Rendition is the readable PDF stored beside an XML-only e-invoice,
	// under the same document id; absent when none could be made.
	Rendition *Rendition `json:"rendition,omitempty"`
	// RelatedTo is, for a supporting document taken from inside an
	// e-invoice (BG-24), the invoice's document id.
	RelatedTo string `json:"relatedTo,omitempty"`
}

// Rendition is a stored readable rendering of an XML-only e-invoice.
type Rendition struct {
	Key         string `json:"key"`
	SHA256      string `json:"sha256"`
	ContentType string `json:"contentType"`
	Size        int64  `json:"size"`
}

// RenditionKey returns the key of the rendition of the document stored
// under key: beside it, the document's extension replaced by
// ".rendition.pdf" (<customer>/<yyyy>/<mm>/<sha256 of the XML>.rendition.pdf).
func RenditionKey(key string) string {
	if i := strings.LastIndexByte(key, '.'); i > strings.LastIndexByte(key, '/') {
		key = key[:i]
	}
	return key + ".rendition.pdf"
}

// Validation is the official rule sets' verdict on an e-invoice
// ([Invoice.Validation]).
type Validation struct {
	Rules []string `json:"rules"` // the rule sets applied, with versions
	// Valid is false exactly when an assertion flagged fatal fails; nil
	// when the invoice was not judged, with Reason.
	Valid  *bool  `json:"valid"`
	Class  string `json:"class,omitempty"`  // ValidationFormat or ValidationBusinessRule; absent when valid
	Reason string `json:"reason,omitempty"` // only when Valid is nil
	// Errors are the failed fatal assertions, Warnings those flagged
	// warning or information; each list holds at most MaxFindings, the
	// counts tell how many there were.
	Errors     []Finding `json:"errors"`
	Warnings   []Finding `json:"warnings"`
	ErrorCount int       `json:"errorCount"`
	// WarningCount is the number of warnings before the cap.
	WarningCount int `json:"warningCount"`
	// Truncated is true when a list was cut at MaxFindings.
	Truncated bool `json:"truncated,omitempty"`
}

// Validation classes, after the German finance ministry's letter of
// 15 Oct 2025.
const (
	ValidationFormat       = "format"
	ValidationBusinessRule = "business_rule"
)

// Bounds of a Validation, so an event stays small: at most MaxFindings
// errors and as many warnings, messages of at most MaxFindingMessage
// bytes.
const (
	MaxFindings       = 50
	MaxFindingMessage = 500
)

// Finding is one failed assertion, in the rule set's own words.
type Finding struct {
	Rule     string `json:"rule"`
	Flag     string `json:"flag,omitempty"` // fatal, warning or information
	Message  string `json:"message"`
	Location string `json:"location,omitempty"`
}

// Invoice is an e-invoice's own data, read from its XML (UBL, CII, or the
// XML embedded in a ZUGFeRD/Factur-X PDF). The json names are those of
// DESIGN.md; each comment names the EN 16931 business term. Absent fields
// are omitted. Amounts are decimal strings exactly as written in the XML,
// dates YYYY-MM-DD. The data is what the XML says: [Invoice.Checks] are
// mailgate's own checks; [Invoice.Validation] is the official rules' verdict.
type Invoice struct {
	Number         string   `json:"number,omitempty"`         // BT-1
	TypeCode       string   `json:"typeCode,omitempty"`       // BT-3, e.g. 380 invoice, 381 credit note
	IssueDate      string   `json:"issueDate,omitempty"`      // BT-2
	DueDate        string   `json:"dueDate,omitempty"`        // BT-9
	Currency       string   `json:"currency,omitempty"`       // BT-5
	BuyerReference string   `json:"buyerReference,omitempty"` // BT-10, the Leitweg-ID for German public buyers
	Seller         Party    `json:"seller,omitzero"`          // BT-27, BT-31, BT-32
	Buyer          Party    `json:"buyer,omitzero"`           // BT-44, BT-48
	Totals         Totals   `json:"totals,omitzero"`
	IBAN           []string `json:"iban,omitempty"`      // BT-84, every payment account
	Guideline      string   `json:"guideline,omitempty"` // BT-24, verbatim
	// Checks are the outcomes of mailgate's checks, one code each (see
	// the Check* constants).
	Checks []string `json:"checks,omitempty"`
	// DuplicateInvoiceOf is the id of an earlier document of the same
	// customer with the same seller, invoice number and issue year in
	// another file.
	DuplicateInvoiceOf string `json:"duplicateInvoiceOf,omitempty"`
	// Truncated names the lists cut at their bound (e.g. "iban": only the
	// first MaxInvoiceList accounts are listed), so an event stays small
	// whatever a file holds.
	Truncated []string `json:"truncated,omitempty"`
	// Validation is the official rule sets' verdict (EN 16931, and the
	// XRechnung CIUS when BT-24 names it).
	Validation *Validation `json:"validation,omitempty"`
}

// MaxInvoiceList bounds each list of [Invoice]; a list cut at it is named
// in [Invoice.Truncated].
const MaxInvoiceList = 20

// Party is the seller or the buyer of an invoice.
type Party struct {
	Name      string `json:"name,omitempty"`      // BT-27 / BT-44
	VATID     string `json:"vatId,omitempty"`     // BT-31 / BT-48
	TaxNumber string `json:"taxNumber,omitempty"` // BT-32 (seller only)
}

// Totals are an invoice's document totals as decimal strings.
type Totals struct {
	Net     string `json:"net,omitempty"`     // BT-109, total without VAT
	Tax     string `json:"tax,omitempty"`     // BT-110, VAT total in the invoice currency
	Gross   string `json:"gross,omitempty"`   // BT-112, total with VAT
	Payable string `json:"payable,omitempty"` // BT-115, amount due
}

// Check codes in [Invoice.Checks]. A code with a colon names what it is
// about, e.g. "mandatory_missing:BT-1".
const (
	// CheckMandatoryPresent: BT-1, BT-2, BT-3, BT-5, BT-24, BT-27, BT-44,
	// BT-109, BT-112 and BT-115 are all present.
	CheckMandatoryPresent = "mandatory_present"
	// CheckMandatoryMissing is followed by ":" and the business term that
	// is missing, once per missing term.
	CheckMandatoryMissing = "mandatory_missing"
	// CheckTotalsOK: BT-112 = BT-109 + BT-110 and BT-115 = BT-112 - BT-113
	// + BT-114, in exact decimal arithmetic (absent BT-110/113/114 count 0).
	CheckTotalsOK = "totals_ok"
	// CheckTotalsGross: BT-112 differs from BT-109 + BT-110.
	CheckTotalsGross = "totals_gross_mismatch"
	// CheckTotalsPayable: BT-115 differs from BT-112 - BT-113 + BT-114.
	CheckTotalsPayable = "totals_payable_mismatch"
	// CheckTotalsUnreadable: a total is missing or not a decimal number,
	// so the sums could not be checked.
	CheckTotalsUnreadable = "totals_unchecked"
	// CheckProfileNotEN16931: the profile is MINIMUM or BASIC WL, which do
	// not carry a full EN 16931 invoice and so are not valid e-invoices
	// for German B2B (§ 14 UStG); the PDF is the invoice.
	CheckProfileNotEN16931 = "profile_not_en16931"
	// CheckIncomplete: reading the invoice's data stopped at the
	// per-document time bound, so the data is what was read until then.
	CheckIncomplete = "data_incomplete"
)

// Skip reasons, machine-readable.
const (
	ReasonInline          = "inline_image"
	ReasonTooSmall        = "too_small"
	ReasonTypeNotAllowed  = "type_not_allowed"
	ReasonDisguised       = "disguised_executable"
	ReasonArchive         = "archive" // a ZIP, RAR, 7z, tar or compressed file; its content is not looked into
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
