package connector

import "time"

// State is where a connection is in its life; see DESIGN.md "Connection states".
type State string

const (
	StatePending      State = "pending"       // consented, one-time code issued
	StateActive       State = "active"        // code redeemed, connection test passed
	StatePaused       State = "paused"        // stopped by a person
	StateNeedsConsent State = "needs_consent" // refresh token revoked/expired, secret expired
	StateFailing      State = "failing"       // repeated non-auth errors, see LastError
	StateDeleted      State = "deleted"       // tokens wiped
)

// Mode is how mailgate authenticates to the mailbox.
type Mode string

const (
	// Delegated uses a user's refresh token from the authorization code flow.
	Delegated Mode = "delegated"
	// AppOnly uses client credentials of an app registration (ours after admin
	// consent, or the customer's own).
	AppOnly Mode = "app_only"
)

// PostAction is what happens to a mail after all its documents are archived.
type PostAction string

const (
	PostMove     PostAction = "move"      // move to PostProcess.Folder (default "Archiviert")
	PostMarkRead PostAction = "mark_read" // set isRead
	PostCategory PostAction = "category"  // add PostProcess.Category
	PostNone     PostAction = "none"
)

// PostProcess says how a processed mail is marked in the mailbox.
type PostProcess struct {
	Action   PostAction `json:"action"`
	Folder   string     `json:"folder,omitempty"`
	Category string     `json:"category,omitempty"`
}

// BackfillMode says what the first sync of a connection imports.
type BackfillMode string

const (
	BackfillNew   BackfillMode = "new"   // only mail arriving after the connection
	BackfillSince BackfillMode = "since" // mail received since Backfill.Since
	BackfillAll   BackfillMode = "all"   // everything in the folder
)

// Backfill configures the first sync.
type Backfill struct {
	Mode  BackfillMode `json:"mode"`
	Since time.Time    `json:"since,omitempty"`
}

// Connection is one connected mailbox of one customer. Secrets are sealed
// (see Sealer) and never leave the process unsealed.
type Connection struct {
	ID        string `json:"id"`
	Customer  string `json:"customer"`
	TenantID  string `json:"tenantId"`
	Mailbox   string `json:"mailbox"` // SMTP address of the (shared) mailbox
	Folder    string `json:"folder"`  // folder to import from; "inbox" by default
	Mode      Mode   `json:"mode"`
	State     State  `json:"state"`
	LastError string `json:"lastError,omitempty"`
	// LastErrorKind is the Kind name (Kind.String) of the failure that
	// LastError tells, stored by whoever records the error, so that what
	// to do about it is chosen by kind, never from the text. Records
	// written before it existed get it once when read (see
	// legacyErrorKind).
	LastErrorKind string `json:"lastErrorKind,omitempty"`

	PostProcess PostProcess `json:"postProcess"`
	Backfill    Backfill    `json:"backfill"`

	// Delegated mode: who consented and the sealed refresh token.
	ConsentedBy  string `json:"consentedBy,omitempty"` // UPN of the consenting Microsoft account
	RefreshToken []byte `json:"refreshToken,omitempty"`

	// App-only mode: the app registration; ClientSecret is sealed and empty
	// when mailgate's own app is used after admin consent.
	ClientID        string    `json:"clientId,omitempty"`
	ClientSecret    []byte    `json:"clientSecret,omitempty"`
	SecretExpiresAt time.Time `json:"secretExpiresAt,omitempty"`

	TokenRefreshedAt time.Time `json:"tokenRefreshedAt,omitempty"`
	CreatedBy        string    `json:"createdBy"` // portal user who started the connection
	CreatedAt        time.Time `json:"createdAt"`
	UpdatedAt        time.Time `json:"updatedAt"`
	// UpdatedBy names who made the last change ("portal:alice", "api:<key id>",
	// "importer", "cli"); it becomes the actor of connection.changed events.
	UpdatedBy string `json:"updatedBy,omitempty"`
}

// SetError records a failure (empty text: none) with its kind.
func (c *Connection) SetError(text string, kind Kind) {
	if text == "" {
		c.LastError, c.LastErrorKind = "", ""
		return
	}
	c.LastError, c.LastErrorKind = text, kind.String()
}

// ErrorKind is the kind of LastError; Other when there is none.
func (c *Connection) ErrorKind() Kind { return ParseKind(c.LastErrorKind) }

// Importable reports whether the importer should work this connection.
func (c *Connection) Importable() bool { return c.State == StateActive }
