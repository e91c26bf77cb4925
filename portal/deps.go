package portal

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// Identity is the Microsoft identity platform (*connector.Identity).
type Identity interface {
	AuthCodeURL(req connector.AuthRequest, loginHint string) string
	AdminConsentURL(tenant, state, redirectURL string) string
	Exchange(ctx context.Context, code string, req connector.AuthRequest) (connector.Consent, error)
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

// Sealer encrypts secrets before they are stored (*connector.Sealer).
type Sealer interface {
	Seal(plain []byte) ([]byte, error)
}

// Tester checks that a connection can read and move mail in its mailbox.
type Tester interface {
	Test(ctx context.Context, c connector.Connection) (TestResult, error)
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
}

// ConnectionStatus is the importer's view of one connection.
type ConnectionStatus struct {
	LastSync         time.Time
	NextSync         time.Time
	LastError        string
	Imported         int64
	Skipped          int64
	SkippedByReason  map[string]int64
	BackfillDone     bool
	BackfillMessages int
	Recent           []HistoryEntry
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

// Deps are the collaborators of the portal. Statuses, Audit, Trigger and
// Webhooks may be nil.
type Deps struct {
	Identity    Identity
	Connections Connections
	Codes       Codes
	Sealer      Sealer
	Tester      Tester
	Statuses    Statuses
	Audit       Audit
	Trigger     Trigger
	Webhooks    Webhooks // nil: no webhook API
}
