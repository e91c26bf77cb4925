package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/internal/kvrec"
)

// KV bucket names.
const (
	bucketCursors = "cursors"
	bucketLeases  = "leases"
	bucketImports = "imports"
)

// Ledger record states.
const (
	stateDone    = "done"
	stateSkipped = "skipped"
)

// ledger is the importer's state in JetStream KV:
//
//	cursors  cursor.<connection>          delta link of the round in progress or done
//	         status.<connection>          Status
//	         backlog.<connection>         parked mails, pass at work (backlog)
//	leases   <connection>                 replica name, TTL
//	imports  <document id>                record: done / skipped
//	         sha.<customer>.<sha256>      first document id with that content
//	         inv.<customer>.<hash>        first document id with that seller's invoice number (invoices.go)
//	         mail.<mail key>              all documents of a mail done, mail post-processed
type ledger struct {
	cursors, leases, imports jetstream.KeyValue
}

// openLedger creates or updates the importer's buckets. With leaseTTL 0 it
// leaves the leases bucket alone: readers of status and history (the portal
// role, the CLI) must not change the TTL the importers run with.
func openLedger(ctx context.Context, js jetstream.JetStream, leaseTTL time.Duration, replicas int) (*ledger, error) {
	open := func(cfg jetstream.KeyValueConfig) (jetstream.KeyValue, error) {
		cfg.Storage = jetstream.FileStorage
		cfg.Replicas = max(replicas, 1)
		kv, err := js.CreateOrUpdateKeyValue(ctx, cfg)
		if err != nil {
			return nil, fmt.Errorf("importer: kv %s: %w", cfg.Bucket, err)
		}
		return boundedKV{KeyValue: kv, timeout: requestTimeout}, nil
	}
	var l ledger
	var err error
	if l.cursors, err = open(jetstream.KeyValueConfig{Bucket: bucketCursors, Description: "mailgate: delta cursors and import status per connection"}); err != nil {
		return nil, err
	}
	if leaseTTL > 0 {
		if l.leases, err = open(jetstream.KeyValueConfig{Bucket: bucketLeases, Description: "mailgate: importer leases per connection", TTL: leaseTTL}); err != nil {
			return nil, err
		}
	}
	if l.imports, err = open(jetstream.KeyValueConfig{Bucket: bucketImports, Description: "mailgate: import ledger per document"}); err != nil {
		return nil, err
	}
	return &l, nil
}

// requestTimeout bounds one request of the ledger. A request in flight
// when the connection to NATS breaks is lost: nats.go does not send it
// again after reconnecting, so its answer never comes, and without a bound
// of its own it would wait out its caller's deadline (ten minutes for a
// document in flight) while the server is long back.
const requestTimeout = 10 * time.Second

// boundedKV gives each Get, Put, Create, Update and Delete of a bucket at
// most timeout. One that runs out of it fails as a transient error, not as
// its caller's deadline, so the pass retries instead of taking it for a
// shutdown. Every failure but the answers a caller decides on (not found,
// exists, a revision conflict) is marked as the operator's (infraError):
// NATS is infrastructure, never an item's or a customer's fault. Every ledger write is safe to repeat: a Put writes the same
// value, and a Create or Update whose answer was lost fails as "exists"
// when repeated, which its callers handle.
type boundedKV struct {
	jetstream.KeyValue
	timeout time.Duration
}

func (kv boundedKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	return bounded(ctx, kv.timeout, func(ctx context.Context) (jetstream.KeyValueEntry, error) {
		return kv.KeyValue.Get(ctx, key)
	})
}

func (kv boundedKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	return bounded(ctx, kv.timeout, func(ctx context.Context) (uint64, error) {
		return kv.KeyValue.Put(ctx, key, value)
	})
}

func (kv boundedKV) Create(ctx context.Context, key string, value []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	return bounded(ctx, kv.timeout, func(ctx context.Context) (uint64, error) {
		return kv.KeyValue.Create(ctx, key, value, opts...)
	})
}

func (kv boundedKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	return bounded(ctx, kv.timeout, func(ctx context.Context) (uint64, error) {
		return kv.KeyValue.Update(ctx, key, value, revision)
	})
}

func (kv boundedKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	_, err := bounded(ctx, kv.timeout, func(ctx context.Context) (struct{}, error) {
		return struct{}{}, kv.KeyValue.Delete(ctx, key, opts...)
	})
	return err
}

func bounded[T any](ctx context.Context, timeout time.Duration, req func(context.Context) (T, error)) (T, error) {
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	v, err := req(rctx)
	if err != nil && rctx.Err() != nil && ctx.Err() == nil {
		err = connector.E("", connector.Transient,
			fmt.Errorf("NATS did not answer within %s: %w", timeout, nats.ErrTimeout))
	}
	switch {
	case err == nil, ctx.Err() != nil, errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrKeyDeleted),
		kvrec.Conflict(err):
		return v, err
	}
	return v, infra(componentNATS, err)
}

// record is the ledger entry of a document (or a skipped attachment).
type record struct {
	State       string    `json:"state"` // done | skipped
	Time        time.Time `json:"time"`
	Connection  string    `json:"connection"`
	Message     string    `json:"message"` // internetMessageId
	Name        string    `json:"name"`
	SHA256      string    `json:"sha256,omitempty"`
	Kind        string    `json:"kind,omitempty"`
	Bucket      string    `json:"bucket,omitempty"`
	Key         string    `json:"key,omitempty"`
	Reason      string    `json:"reason,omitempty"`
	Detail      string    `json:"detail,omitempty"`
	DuplicateOf string    `json:"duplicateOf,omitempty"`
}

// cursor is the committed position of a connection's delta rounds.
type cursor struct {
	Folder string `json:"folder"`
	// Link is the next link of the round in progress or the delta link of
	// the last complete round; "" starts a round.
	Link string `json:"link"`
	// Delta says Link is the delta link that ended a round (not a next
	// link within one). A round from it that brings nothing new leaves
	// the cursor as it is: Graph's delta links stay valid, and following
	// the same one again returns everything since.
	Delta bool `json:"delta,omitempty"`
	// Since is the receivedDateTime filter of the first round (backfill
	// "since"), or, for backfill "new", the time before which mail already
	// there is passed over.
	Since time.Time `json:"since,omitzero"`
	Mode  string    `json:"mode"`
	// Rounds counts completed rounds; 0 means the backfill is running.
	Rounds int `json:"rounds"`
	// Messages counts the messages of the backfill round so far.
	Messages int `json:"messages"`
	// Total is how many messages the backfill covers, asked once when it
	// starts (Counted); Documents counts the documents it imported so
	// far, committed with each page; StartedAt is its first pass.
	Total     int       `json:"total,omitempty"`
	Counted   bool      `json:"counted,omitempty"`
	Documents int       `json:"documents,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Progressed is when a backfill page was last committed.
	Progressed time.Time `json:"progressed,omitzero"`
}

func getJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) (rev uint64, found bool, err error) {
	e, err := kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("importer: kv get %s: %w", key, err)
	}
	if err := json.Unmarshal(e.Value(), v); err != nil {
		return 0, false, fmt.Errorf("importer: kv decode %s: %w", key, err)
	}
	return e.Revision(), true, nil
}

func putJSON(ctx context.Context, kv jetstream.KeyValue, key string, v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("importer: kv encode %s: %w", key, err)
	}
	if _, err := kv.Put(ctx, key, b); err != nil {
		return fmt.Errorf("importer: kv put %s: %w", key, err)
	}
	return nil
}

func (l *ledger) lookup(ctx context.Context, id string) (record, bool, error) {
	var r record
	_, found, err := getJSON(ctx, l.imports, id, &r)
	return r, found, err
}

func (l *ledger) record(ctx context.Context, id string, r record) error {
	return putJSON(ctx, l.imports, id, r)
}

func shaKey(customer, sha string) string { return "sha." + kvToken(customer) + "." + sha }

// shaOwner returns the first document of the customer with content sha,
// or "".
func (l *ledger) shaOwner(ctx context.Context, customer, sha string) (string, error) {
	key := shaKey(customer, sha)
	e, err := l.imports.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("importer: kv get %s: %w", key, err)
	}
	return string(e.Value()), nil
}

// claimSHA makes id the first document of the customer with content sha,
// unless another document already is; it returns the owner. Create keeps
// the first claim when replicas race.
func (l *ledger) claimSHA(ctx context.Context, customer, sha, id string) (string, error) {
	return l.claim(ctx, shaKey(customer, sha), id)
}

// claim makes id the owner of key in the imports bucket unless another
// id already is, and returns the owner: the content index and the
// invoice index (inv.<customer>.<hash>, see invoices.go) both use it.
func (l *ledger) claim(ctx context.Context, key, id string) (string, error) {
	_, err := l.imports.Create(ctx, key, []byte(id))
	if err == nil {
		return id, nil
	}
	if !kvrec.Conflict(err) {
		return "", fmt.Errorf("importer: kv claim %s: %w", key, err)
	}
	// In a cluster, KV reads may be served by a replica that has not yet
	// applied the entry that made Create fail; it arrives shortly.
	for wait := 20 * time.Millisecond; ; wait *= 2 {
		e, err := l.imports.Get(ctx, key)
		if err == nil {
			return string(e.Value()), nil
		}
		if !errors.Is(err, jetstream.ErrKeyNotFound) || wait > 2*time.Second {
			return "", fmt.Errorf("importer: kv get %s: %w", key, err)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(wait):
		}
	}
}

func (l *ledger) mailDone(ctx context.Context, key string) (bool, error) {
	_, err := l.imports.Get(ctx, "mail."+key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("importer: kv get mail.%s: %w", key, err)
	}
	return true, nil
}

func (l *ledger) markMail(ctx context.Context, key string, at time.Time) error {
	if _, err := l.imports.Put(ctx, "mail."+key, []byte(at.UTC().Format(time.RFC3339))); err != nil {
		return fmt.Errorf("importer: kv put mail.%s: %w", key, err)
	}
	return nil
}

func cursorKey(connID string) string { return "cursor." + kvToken(connID) }
func statusKey(connID string) string { return "status." + kvToken(connID) }

func (l *ledger) cursor(ctx context.Context, connID string) (cursor, uint64, error) {
	var c cursor
	rev, _, err := getJSON(ctx, l.cursors, cursorKey(connID), &c)
	return c, rev, err
}

// errCursorMoved means someone else committed the cursor since we read it:
// another replica works the connection (our lease was lost).
var errCursorMoved = errors.New("cursor moved by another replica")

// commitCursor writes c if the cursor is still at revision rev (0: absent)
// and returns the new revision.
func (l *ledger) commitCursor(ctx context.Context, connID string, c cursor, rev uint64) (uint64, error) {
	b, err := json.Marshal(c)
	if err != nil {
		return 0, fmt.Errorf("importer: encode cursor: %w", err)
	}
	key := cursorKey(connID)
	var nrev uint64
	if rev == 0 {
		nrev, err = l.cursors.Create(ctx, key, b)
	} else {
		nrev, err = l.cursors.Update(ctx, key, b, rev)
	}
	if kvrec.Conflict(err) {
		return 0, fmt.Errorf("importer: commit cursor %s: %w", connID, errCursorMoved)
	}
	if err != nil {
		return 0, fmt.Errorf("importer: commit cursor %s: %w", connID, err)
	}
	return nrev, nil
}

func (l *ledger) dropCursor(ctx context.Context, connID string, rev uint64) error {
	var opts []jetstream.KVDeleteOpt
	if rev != 0 {
		opts = append(opts, jetstream.LastRevision(rev))
	}
	err := l.cursors.Delete(ctx, cursorKey(connID), opts...)
	if kvrec.Conflict(err) {
		return fmt.Errorf("importer: drop cursor %s: %w", connID, errCursorMoved)
	}
	if err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("importer: drop cursor %s: %w", connID, err)
	}
	return nil
}

func (l *ledger) status(ctx context.Context, connID string) (Status, uint64, error) {
	var st Status
	rev, _, err := getJSON(ctx, l.cursors, statusKey(connID), &st)
	return st, rev, err
}

func (l *ledger) putStatus(ctx context.Context, st Status) error {
	return putJSON(ctx, l.cursors, statusKey(st.ConnectionID), st)
}
