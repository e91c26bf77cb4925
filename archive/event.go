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
	Invoice    *Invoice     `json:"invoice,omitempty"` // e-invoices only: the invoice's own data
}

// Invoice is an e-invoice's own data, read from its XML (UBL, CII, or the
// XML embedded in a ZUGFeRD/Factur-X PDF). The json names are those of
// DESIGN.md; each comment names the EN 16931 business term. Absent fields
// are omitted. Amounts are decimal strings exactly as written in the XML,
// dates YYYY-MM-DD. The data is what the XML says: mailgate runs the
// [Invoice.Checks] listed there, not a full (KoSIT) validation.
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
	// customer with the same seller and invoice number in another file.
	DuplicateInvoiceOf string `json:"duplicateInvoiceOf,omitempty"`
	// Truncated names the lists cut at their bound (e.g. "iban": only the
	// first MaxInvoiceList accounts are listed), so an event stays small
	// whatever a file holds.
	Truncated []string `json:"truncated,omitempty"`
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
