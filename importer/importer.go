package importer

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"sync"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
)

// Mailbox is one connected mailbox, as the importer uses it. It is
// implemented by *graph.Mailbox.
type Mailbox interface {
	Delta(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error)
	// CountMessages tells how many messages of folder a backfill covers:
	// all of them with since zero, else those received at or after since.
	CountMessages(ctx context.Context, folder string, since time.Time) (int, error)
	// Message reads one message by its (immutable) id, for the retry of a
	// parked mail.
	Message(ctx context.Context, messageID string) (connector.Message, error)
	// Attachments lists a message's attachments; with a sink, with their
	// bytes (Attachment.Data), in one request.
	Attachments(ctx context.Context, messageID string, sink connector.Sink) ([]connector.Attachment, error)
	// Attachment reads one attachment with its contentId and its bytes.
	Attachment(ctx context.Context, messageID, attachmentID string, sink connector.Sink) (connector.Attachment, error)
	OpenAttachment(ctx context.Context, messageID, attachmentID string) (io.ReadCloser, error)
	OpenMessage(ctx context.Context, messageID string) (io.ReadCloser, error)
	Move(ctx context.Context, messageID, folderID string) (string, error)
	MarkRead(ctx context.Context, messageID string) error
	AddCategory(ctx context.Context, messageID, category string, existing []string) error
	EnsureFolder(ctx context.Context, name string) (string, error)
}

// Mailboxes opens the mailbox of a connection.
type Mailboxes interface {
	Open(ctx context.Context, c connector.Connection) (Mailbox, error)
}

// MailboxesFunc adapts a function to Mailboxes, e.g. one that builds a
// *graph.Mailbox from graph.Client.Mailbox and connector.Tokens.
type MailboxesFunc func(ctx context.Context, c connector.Connection) (Mailbox, error)

// Open calls f.
func (f MailboxesFunc) Open(ctx context.Context, c connector.Connection) (Mailbox, error) {
	return f(ctx, c)
}

// Connections is the connection store (*connector.Store).
type Connections interface {
	List(ctx context.Context) ([]connector.Connection, error)
	Get(ctx context.Context, id string) (connector.Connection, error)
	Update(ctx context.Context, id string, fn func(*connector.Connection) error) (connector.Connection, error)
}

// ConnectionWatcher is a connection store Run can follow instead of listing
// it every ScanInterval (*connector.Store). Watch calls all once with every
// connection when it has caught up, then changed with each connection as
// it changes, until ctx ends (nil) or the watch breaks (an error).
type ConnectionWatcher interface {
	Watch(ctx context.Context, all func([]connector.Connection), changed func(connector.Connection)) error
}

// Store keeps documents (archive's *S3Store and *DirStore).
type Store interface {
	Put(ctx context.Context, key string, body io.Reader, size int64, sha256hex string, meta archive.Meta) (archive.ObjectRef, error)
	Bucket() string
}

// Events announces documents (*archive.Publisher).
// Imported and Skipped must de-duplicate by id (Nats-Msg-Id).
type Events interface {
	Imported(ctx context.Context, id string, d archive.Imported) error
	Skipped(ctx context.Context, id string, d archive.Skipped) error
	// AnnouncedSince returns the ids of the customer's document events
	// published since the time given, for a replay that may lie beyond
	// the stream's duplicate window.
	AnnouncedSince(ctx context.Context, customer string, since time.Time) (map[string]bool, error)
}

// DefaultRetryFor is how long a failing mail is retried by default before
// it is given up: three days, longer than Microsoft's own outages.
const DefaultRetryFor = 72 * time.Hour

// PolicyConfig says which attachments become documents.
type PolicyConfig struct {
	MinImageSize     int64    // smallest image archived; default 10 KiB
	AllowTypes       []string // further sniffed MIME types archived as kind "other"
	ImportDuplicates bool     // archive a file again when the customer already has the same SHA-256
	SaveEML          bool     // archive mails without attachments and attached mails as .eml
	MaxAttempts      int      // tries of a failing mail before it is given up (recorded as failed); default 5
	// RetryFor is how long a failing mail is retried at least before it
	// is given up, so an outage (attachment downloads failing for a day in
	// Exchange Online) never uses up its attempts; default DefaultRetryFor.
	RetryFor time.Duration
	// ContentTimeout bounds the reading of one attachment's content, its
	// parts' included (policy.Config.ContentTimeout); default 10s.
	ContentTimeout time.Duration
}

// Config configures an Importer. The zero value of every field means its
// default.
type Config struct {
	Replica           string        // this replica's name; default hostname-pid
	Replicas          int           // NATS replicas of the KV buckets (cluster); default 1
	PollInterval      time.Duration // idle poll; default 1m
	LeaseTTL          time.Duration // default 30s, renewed every TTL/3; also the replicas' heartbeat TTL (replicas.go)
	Workers           int           // connections worked at once; default 8
	MailWorkers       int           // mails of a page, and documents of a pass, in flight at once; default 8, at most 8
	AttachmentWorkers int           // attachments of one mail in parallel; default 2, at most 4
	Policy            PolicyConfig
	SpoolDir          string // temporary files; "" = os.TempDir()
	SpoolMemory       int64  // bytes of an attachment kept in memory; default 1 MiB
	Logger            *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Probe, if set, checks the operator's infrastructure from outside a
	// pass (what readiness checks) and answers the failing components by
	// ComponentDisk, ComponentStorage, ComponentNATS; a scrape of
	// mailgate_infrastructure_up calls it.
	Probe func(ctx context.Context) map[string]error
	// Now is the clock; default time.Now.
	Now func() time.Time
	// After waits for a duration (backoff between retries); default
	// time.After. Tests inject a clock.
	After func(time.Duration) <-chan time.Time
	// ScanInterval is how often Run lists connections when it cannot
	// watch them (see ConnectionWatcher), how long it waits before
	// watching again after a watch broke, and when it looks again at a
	// connection a pass could not work; default 5s (at most PollInterval).
	ScanInterval time.Duration
	// FailAfter is how many failed passes in a row mark a connection
	// failing; default 5. Faults of the operator's infrastructure and of
	// single mails never count.
	FailAfter int
	// MaxPassPages and MaxPassTime bound one pass: after that many pages
	// or that long it commits and yields, due again at once behind the
	// other due connections, so a long backfill shares the workers;
	// defaults 20 pages and 2 minutes.
	MaxPassPages int
	MaxPassTime  time.Duration
	// DuplicateWindow is the event stream's duplicate window; default
	// archive.DefaultDuplicateWindow. A pass that died mid-work longer
	// than half of it ago is resumed by asking the stream what it
	// announced (see backlog.Working).
	DuplicateWindow time.Duration
	// Validator judges every e-invoice (the XML files and the XML inside
	// ZUGFeRD PDFs) by the official rules, for data.invoice.validation;
	// nil judges none. One for the process (rules.Default()).
	Validator Validator
	// Render renders an XML-only e-invoice as a readable PDF, stored
	// beside it and announced as data.rendition (rendition.PDF); nil
	// renders none.
	Render func(ctx context.Context, xml []byte) ([]byte, error)
	// EInvoiceTimeout bounds the validation and the rendition of one
	// document, each; default DefaultEInvoiceTimeout. EInvoiceMaxXML is
	// the largest XML validated or rendered; default
	// DefaultEInvoiceMaxXML.
	EInvoiceTimeout time.Duration
	EInvoiceMaxXML  int64
	// Step, when set, is called after each step of the document and page
	// flow ("stored", "rendition_stored", "published", "recorded", …);
	// an error aborts the pass there, like a crash. It is for the crash
	// tests of the built binary (cmd/mailgate's crashpoint build tag).
	Step func(step string) error
}

func (c *Config) setDefaults() {
	if c.Replica == "" {
		host, _ := os.Hostname()
		c.Replica = fmt.Sprintf("%s-%d", host, os.Getpid())
	}
	if c.PollInterval <= 0 {
		c.PollInterval = time.Minute
	}
	if c.LeaseTTL <= 0 {
		c.LeaseTTL = 30 * time.Second
	}
	if c.Workers <= 0 {
		// Most passes are idle polls of one request each, and Graph's
		// limit of 4 requests in flight is per mailbox, so many
		// connections may be worked at once.
		c.Workers = 8
	}
	if c.MailWorkers <= 0 {
		// Graph allows 4 requests in flight per mailbox, the Graph client
		// keeps to that, and a document spends half its time after its
		// download (store, event, ledger): twice as many documents keep
		// the mailbox's 4 slots busy.
		c.MailWorkers = 8
	}
	// More would only queue at the client's limiter, holding spools.
	c.MailWorkers = min(c.MailWorkers, 8)
	if c.AttachmentWorkers <= 0 {
		c.AttachmentWorkers = 2
	}
	c.AttachmentWorkers = min(c.AttachmentWorkers, 4)
	if c.Policy.MaxAttempts <= 0 {
		c.Policy.MaxAttempts = 5
	}
	if c.Policy.RetryFor <= 0 {
		c.Policy.RetryFor = DefaultRetryFor
	}
	if c.SpoolMemory <= 0 {
		c.SpoolMemory = 1 << 20
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.After == nil {
		c.After = time.After
	}
	if c.ScanInterval <= 0 {
		c.ScanInterval = 5 * time.Second
	}
	c.ScanInterval = min(c.ScanInterval, c.PollInterval)
	if c.FailAfter <= 0 {
		c.FailAfter = 5
	}
	if c.MaxPassPages <= 0 {
		c.MaxPassPages = 20
	}
	if c.MaxPassTime <= 0 {
		c.MaxPassTime = 2 * time.Minute
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = archive.DefaultDuplicateWindow
	}
	if c.EInvoiceTimeout <= 0 {
		c.EInvoiceTimeout = DefaultEInvoiceTimeout
	}
	if c.EInvoiceMaxXML <= 0 {
		c.EInvoiceMaxXML = DefaultEInvoiceMaxXML
	}
}

// Deps are the importer's collaborators.
type Deps struct {
	Connections Connections
	Mailboxes   Mailboxes
	Store       Store
	Events      Events
}

// Errors callers may check with errors.Is.
var (
	// ErrLeased means another replica works the connection right now.
	ErrLeased = errors.New("importer: connection leased by another replica")
	// ErrNotImportable means the connection's state forbids importing
	// (paused, needs_consent, deleted).
	ErrNotImportable = errors.New("connection not importable")
)

// Importer runs sync passes over connections. Create it with New.
type Importer struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	policy  *policy.Policy
	ledger  *ledger
	history *history
	metrics *metrics
	backoff backoff
	trigger chan string

	// hook, when set by tests, is called after each step of the document
	// and page flow; an error aborts the pass there, like a crash.
	hook func(step string) error

	shaLocks keyLocks // content hashes being checked and claimed
	faults   faults   // infrastructure faults not yet seen cleared

	mu   sync.Mutex
	held map[string]bool // connections whose lease this process holds
	// quietAt is, per connection, the cursor a pass of this process left
	// (or peek read) with nothing parked: peek starts from it without
	// reading the cursor and the backlog (peek.go). Under mu.
	quietAt map[string]peeked
}

// New creates or updates the KV buckets "cursors", "leases" (with TTL) and
// "imports" and returns an importer. It starts nothing; call Run.
func New(ctx context.Context, js jetstream.JetStream, deps Deps, cfg Config) (*Importer, error) {
	if deps.Connections == nil || deps.Mailboxes == nil || deps.Store == nil || deps.Events == nil {
		return nil, errors.New("importer: new: missing dependency")
	}
	cfg.setDefaults()
	l, err := openLedger(ctx, js, cfg.LeaseTTL, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	h, err := openHistory(ctx, js, cfg.Replicas)
	if err != nil {
		return nil, err
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, err
	}
	im := &Importer{
		history: h,
		cfg:     cfg,
		deps:    deps,
		log:     cfg.Logger,
		policy: policy.New(policy.Config{
			MinImageSize: cfg.Policy.MinImageSize,
			AllowTypes:   cfg.Policy.AllowTypes,
			SaveEML:      cfg.Policy.SaveEML,
			// One deadline covers every reader of a document's content.
			ContentTimeout: cfg.Policy.ContentTimeout,
		}),
		ledger:  l,
		metrics: m,
		backoff: backoff{base: time.Second, max: 30 * time.Minute, rand: rand.Float64},
		trigger: make(chan string, 64),
		hook:    cfg.Step,
		held:    make(map[string]bool),
		quietAt: make(map[string]peeked),
	}
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newInfraUpCollector(im)); err != nil {
			return nil, fmt.Errorf("importer: metrics: %w", err)
		}
	}
	return im, nil
}

// Trigger asks Run to poll the connection soon (after redeem, "poll now").
// It never blocks; when many triggers are queued, the extra ones are dropped
// and the connections are found by the next scan.
func (im *Importer) Trigger(connectionID string) {
	select {
	case im.trigger <- connectionID:
	default:
	}
}

// SyncNow runs one full pass over the connection now, taking its lease:
// passes that yield (MaxPassPages, MaxPassTime) are followed by the next
// at once, until the delta round is done, and their results are summed.
// It fails with ErrLeased when another replica holds the lease and with
// ErrNotImportable when the connection is paused, needs consent or deleted.
func (im *Importer) SyncNow(ctx context.Context, connectionID string) (PassResult, error) {
	c, err := im.deps.Connections.Get(ctx, connectionID)
	if err != nil {
		return PassResult{}, fmt.Errorf("importer: sync %s: %w", connectionID, err)
	}
	switch c.State {
	case connector.StatePaused, connector.StateNeedsConsent, connector.StateDeleted:
		return PassResult{}, fmt.Errorf("importer: sync %s: %w (%s)", connectionID, ErrNotImportable, c.State)
	}
	var total PassResult
	for {
		res, _, err := im.syncPass(ctx, c, nil)
		total.add(res)
		if err != nil || !res.Yielded {
			return total, err
		}
	}
}

// Status returns the persisted status of a connection; a connection never
// synced has a zero Status with its id.
func (im *Importer) Status(ctx context.Context, connectionID string) (Status, error) {
	st, _, err := im.ledger.status(ctx, connectionID)
	if err != nil {
		return Status{}, err
	}
	st.ConnectionID = connectionID
	return st, nil
}

// errHook marks an error a test's hook returned: a simulated crash, which
// ends the pass wherever it is, like a real one.
var errHook = errors.New("importer: hook")

func (im *Importer) step(name string) error {
	if im.hook == nil {
		return nil
	}
	if err := im.hook(name); err != nil {
		return fmt.Errorf("%w %s: %w", errHook, name, err)
	}
	return nil
}
