package portal

import (
	"context"
	"io"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// Identity is the Microsoft identity platform (*connector.Identity).
type Identity interface {
	AuthCodeURL(req connector.AuthRequest, loginHint string) string
	AdminConsentURL(tenant, state, redirectURL string) string
	Exchange(ctx context.Context, code string, req connector.AuthRequest) (connector.Consent, error)
	// SignInURL and VerifySignIn are an administrator's OpenID Connect
	// sign-in at a tenant's own endpoint: the proof that a tenant belongs
	// to the customer before an app-only connection through the
	// operator's app.
	SignInURL(tenant string, req connector.AuthRequest, loginHint string) string
	VerifySignIn(ctx context.Context, tenant, code string, req connector.AuthRequest) (connector.Consent, error)
}

// Tenants records which customer a Microsoft tenant belongs to
// (*connector.Store).
type Tenants interface {
	BindTenant(ctx context.Context, tenantID, customer, by string) (connector.TenantBinding, error)
	TenantOwner(ctx context.Context, tenantID string) (connector.TenantBinding, bool, error)
}

// Connections is the connection store (*connector.Store).
type Connections interface {
	Create(ctx context.Context, c connector.Connection) (connector.Connection, error)
	Get(ctx context.Context, id string) (connector.Connection, error)
	List(ctx context.Context) ([]connector.Connection, error)
	Update(ctx context.Context, id string, fn func(*connector.Connection) error) (connector.Connection, error)
	Delete(ctx context.Context, id, actor string) (connector.Connection, error)
}

// Codes issues and redeems one-time connection codes (*connector.Codes).
type Codes interface {
	Issue(ctx context.Context, customer, connectionID string) (code string, expiresAt time.Time, err error)
	Redeem(ctx context.Context, customer, code string) (connectionID string, err error)
}

// Sealer encrypts a connection's secrets before they are stored, bound to
// the connection and its customer (*connector.Sealer).
type Sealer interface {
	SealFor(customer, connectionID string, plain []byte) ([]byte, error)
}

// Tester checks that a connection can read and move mail in its mailbox.
type Tester interface {
	Test(ctx context.Context, c connector.Connection) (TestResult, error)
}

// TokenPrimer is what a Tester may also implement: it keeps the access
// token of a code exchange for the connection test that follows, so the
// test does not redeem the new refresh token straight away
// (*connector.Tokens.Prime behind cmd/mailgate's tester).
type TokenPrimer interface {
	Prime(connectionID string, tok *oauth2.Token)
}

// TestResult is the outcome of a connection test.
type TestResult struct {
	CanRead  bool   `json:"canRead"`
	CanWrite bool   `json:"canWrite"`
	Detail   string `json:"detail,omitempty"`
}

// Statuses reports what the importer knows about a connection.
type Statuses interface {
	Status(ctx context.Context, connectionID string) (ConnectionStatus, error)
	// Retry makes the connection's given-up mails due for new retries and
	// returns how many.
	Retry(ctx context.Context, connectionID string) (int, error)
}

// ConnectionStatus is the importer's view of one connection.
type ConnectionStatus struct {
	LastSync  time.Time
	NextSync  time.Time
	LastError string
	// LastErrorKind is the kind of LastError: a connector.Kind name, or
	// "infrastructure" for the operator's fault.
	LastErrorKind    string
	Imported         int64
	Skipped          int64
	SkippedByReason  map[string]int64
	BackfillDone     bool
	BackfillMessages int // mails done so far
	// BackfillMode is the connection's backfill mode ("new" has no
	// backfill to show); BackfillTotal the mails it covers (0: unknown),
	// BackfillDocuments the documents it imported, BackfillLeft the
	// estimated time left (0: no estimate yet).
	BackfillMode      string
	BackfillTotal     int
	BackfillDocuments int
	BackfillLeft      time.Duration
	Recent            []HistoryEntry
	// Parked mails failed on their own and wait for a retry; GivenUp
	// ones failed until the retry horizon and wait for a person's Retry.
	Parked      int
	GivenUp     int
	ParkedMails []ParkedMail
}

// ParkedMail is a mail that failed on its own.
type ParkedMail struct {
	Subject    string
	From       string
	ReceivedAt time.Time
	Attempts   int
	NextRetry  time.Time
	LastError  string
	GaveUp     bool
}

// HistoryEntry is one recent import or skip of a connection.
type HistoryEntry struct {
	Time       time.Time
	DocumentID string
	Name       string
	Kind       string // of an import: pdf, zugferd, xrechnung, image, eml, other
	Profile    string // e-invoice profile, when known
	Reason     string // empty for an import, an archive.Reason* for a skip
	Detail     string
	Subject    string
	// An e-invoice's number (BT-1), seller (BT-27) and gross amount
	// (BT-112, as written) with its currency (BT-5); empty otherwise.
	InvoiceNumber string
	Seller        string
	Gross         string
	Currency      string
	// The mail's sender and arrival.
	From       string
	ReceivedAt time.Time
	// ObjectKey is the stored document (imports only), RenditionKey its
	// readable rendition (XML-only e-invoices).
	ObjectKey    string
	RenditionKey string
	// The official rules' verdict on an e-invoice: Valid is nil when it
	// was not validated; Findings are the failed fatal rules (capped).
	Valid      *bool
	ErrorCount int
	Findings   []Finding
}

// Finding is one failed rule of an e-invoice, in the rule set's own words.
type Finding struct {
	Rule    string
	Message string
}

// History reads a connection's import history, oldest first
// (*importer.StatusReader behind cmd/mailgate's adapter): the import log's
// rows. Bounded by the importer (importer.MaxHistory per connection).
type History interface {
	History(ctx context.Context, connectionID string) ([]HistoryEntry, error)
}

// Documents reads stored documents for a download through the portal
// (archive.Store). An unknown key is an error wrapping archive.ErrNotFound.
type Documents interface {
	Get(ctx context.Context, key string) (io.ReadCloser, archive.Info, error)
}

// Events reads a customer's events after a stream sequence, for the pull
// feed (*archive.Feed).
type Events interface {
	Read(ctx context.Context, customer string, after uint64, limit int, wait time.Duration) ([]archive.FeedEvent, error)
}

// Audit records actions that do not change a connection's state
// (*archive.Publisher). State changes are published by the store itself.
type Audit interface {
	ConnectionChanged(ctx context.Context, d archive.ConnectionChanged) error
}

// Trigger asks the importer to poll a connection soon.
type Trigger interface {
	Trigger(connectionID string)
}

// Deps are the collaborators of the portal. Statuses, Audit, Trigger,
// Webhooks, History, Documents and Events may be nil.
type Deps struct {
	Identity    Identity
	Connections Connections
	Tenants     Tenants
	Codes       Codes
	Sealer      Sealer
	Tester      Tester
	Statuses    Statuses
	Audit       Audit
	Trigger     Trigger
	Webhooks    Webhooks // nil: no webhook API
	// History feeds the import log; nil: ConnectionStatus.Recent.
	History History
	// Documents serves downloads of imported documents; nil: none.
	Documents Documents
	// Events serves the pull feed GET /api/v1/events; nil: none.
	Events Events
}
