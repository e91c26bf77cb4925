package connector

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/internal/kvrec"
)

// ConnectionsBucket is the JetStream KV bucket holding one entry per connection.
const ConnectionsBucket = "connections"

// StoreOptions configures a Store.
type StoreOptions struct {
	// Replicas of the bucket in a NATS cluster; 0 means 1.
	Replicas int
	// OnChange is called after a committed state change (before.State !=
	// after.State) and after Create (before is the zero Connection), in the
	// goroutine that made the change. The portal and importer use it to
	// publish connection.changed.
	OnChange func(ctx context.Context, before, after Connection)
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Store keeps connections in the KV bucket "connections". Every change is a
// compare-and-set on the entry's revision, so replicas never overwrite each
// other. Deleted connections stay in the bucket (state deleted, secrets
// wiped) so their history remains.
type Store struct {
	kv       jetstream.KeyValue
	onChange func(ctx context.Context, before, after Connection)
	now      func() time.Time
}

// NewStore creates or updates the connections bucket and returns a Store on it.
func NewStore(ctx context.Context, js jetstream.JetStream, opts StoreOptions) (*Store, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      ConnectionsBucket,
		Description: "mailgate connections",
		History:     5,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("connector: store: bucket %s: %w", ConnectionsBucket, err)
	}
	now := opts.Now
	if now == nil {
		now = time.Now
	}
	return &Store{kv: kv, onChange: opts.OnChange, now: now}, nil
}

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewID returns a new connection id, for a caller that must seal the
// connection's secrets (SealFor) before it creates the connection.
func NewID() string { return newID() }

// newID returns "con_" and 26 lowercase base32 characters (128 random bits).
func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	id := idEncoding.EncodeToString(b[:])
	lower := make([]byte, len(id))
	for i := range len(id) {
		c := id[i]
		if c >= 'A' && c <= 'Z' {
			c += 'a' - 'A'
		}
		lower[i] = c
	}
	return "con_" + string(lower)
}

var customerRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// ValidCustomer checks a customer id. Customer ids are NATS subject tokens
// (mailgate.<customer>.>), so they are restricted to lower-case letters,
// digits, '_' and '-', starting with a letter or digit, at most 63 long.
func ValidCustomer(id string) error {
	if !customerRE.MatchString(id) {
		return &Error{Op: "connector: customer", Kind: Invalid,
			Err: fmt.Errorf("invalid customer id %q: want 1-63 of a-z 0-9 _ - starting with a letter or digit", id)}
	}
	return nil
}

// transitions lists the allowed state changes; see DESIGN.md "Connection states".
var transitions = map[State][]State{
	StatePending:      {StateActive, StateFailing, StateNeedsConsent},
	StateActive:       {StatePaused, StateNeedsConsent, StateFailing},
	StatePaused:       {StateActive, StateNeedsConsent},
	StateFailing:      {StateActive, StatePaused, StateNeedsConsent},
	StateNeedsConsent: {StateActive, StatePending},
}

// ValidTransition reports whether a connection may move from one state to
// another. Staying in the same state is always allowed, any state may move to
// deleted, and deleted is final.
func ValidTransition(from, to State) bool {
	if from == to {
		return true
	}
	if from == StateDeleted {
		return false
	}
	if to == StateDeleted {
		return true
	}
	for _, s := range transitions[from] {
		if s == to {
			return true
		}
	}
	return false
}

func validState(s State) bool {
	switch s {
	case StatePending, StateActive, StatePaused, StateNeedsConsent, StateFailing, StateDeleted:
		return true
	}
	return false
}

func notFound(op, id string) error {
	return &Error{Op: op, Kind: NotFound, Err: fmt.Errorf("connection %s not found", id)}
}

// Create stores a new connection. It assigns an ID if c.ID is empty, sets
// CreatedAt and UpdatedAt, and defaults State to pending and Folder to
// "inbox". An existing ID is refused with Kind Invalid.
func (s *Store) Create(ctx context.Context, c Connection) (Connection, error) {
	const op = "connector: create connection"
	if err := ValidCustomer(c.Customer); err != nil {
		return Connection{}, err
	}
	if c.ID == "" {
		c.ID = newID()
	}
	if strings.HasPrefix(c.ID, tenantPrefix) {
		return Connection{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("connection id %q is reserved", c.ID)}
	}
	if c.State == "" {
		c.State = StatePending
	}
	if !validState(c.State) {
		return Connection{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("unknown state %q", c.State)}
	}
	if c.Folder == "" {
		c.Folder = "inbox"
	}
	now := s.now().UTC()
	c.CreatedAt, c.UpdatedAt = now, now
	if c.UpdatedBy == "" {
		c.UpdatedBy = c.CreatedBy
	}
	data, err := json.Marshal(c)
	if err != nil {
		return Connection{}, fmt.Errorf("%s: %w", op, err)
	}
	if _, err := s.kv.Create(ctx, c.ID, data); err != nil {
		if kvrec.Conflict(err) {
			return Connection{}, &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("connection %s exists", c.ID)}
		}
		return Connection{}, fmt.Errorf("%s %s: %w", op, c.ID, err)
	}
	if s.onChange != nil {
		s.onChange(ctx, Connection{}, c)
	}
	return c, nil
}

// get reads a connection and the revision it was read at.
func (s *Store) get(ctx context.Context, op, id string) (Connection, uint64, error) {
	if strings.HasPrefix(id, tenantPrefix) {
		return Connection{}, 0, notFound(op, id)
	}
	e, err := s.kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return Connection{}, 0, notFound(op, id)
		}
		return Connection{}, 0, fmt.Errorf("%s %s: %w", op, id, err)
	}
	var c Connection
	if err := json.Unmarshal(e.Value(), &c); err != nil {
		return Connection{}, 0, fmt.Errorf("%s %s: decode: %w", op, id, err)
	}
	if c.LastError != "" && c.LastErrorKind == "" {
		c.LastErrorKind = legacyErrorKind(c.LastError).String()
	}
	return c, e.Revision(), nil
}

// Get returns one connection; an unknown id is an *Error of Kind NotFound.
// Deleted connections are returned with State deleted.
func (s *Store) Get(ctx context.Context, id string) (Connection, error) {
	c, _, err := s.get(ctx, "connector: get connection", id)
	return c, err
}

// List returns all connections, deleted ones included, oldest first.
func (s *Store) List(ctx context.Context) ([]Connection, error) {
	const op = "connector: list connections"
	keys, err := s.kv.Keys(ctx)
	if err != nil {
		if errors.Is(err, jetstream.ErrNoKeysFound) {
			return []Connection{}, nil
		}
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	out := make([]Connection, 0, len(keys))
	for _, k := range keys {
		if strings.HasPrefix(k, tenantPrefix) {
			continue // a tenant binding, not a connection
		}
		c, _, err := s.get(ctx, op, k)
		if IsKind(err, NotFound) {
			continue // removed between listing and reading
		}
		if err != nil {
			return nil, err
		}
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].CreatedAt.Equal(out[j].CreatedAt) {
			return out[i].CreatedAt.Before(out[j].CreatedAt)
		}
		return out[i].ID < out[j].ID
	})
	return out, nil
}

// Update changes a connection with compare-and-set: it reads the entry, lets
// fn change a fresh copy, and writes it only if nobody wrote in between;
// otherwise it reads again and calls fn again. So fn may run more than once
// and must not have side effects beyond the Connection. An error from fn
// aborts the update and is returned as is. A state change that
// ValidTransition refuses is an *Error of Kind Invalid; conflicts on every
// attempt kvrec allows are an *Error of Kind Transient. ID and CreatedAt
// cannot be changed; UpdatedAt is set.
func (s *Store) Update(ctx context.Context, id string, fn func(*Connection) error) (Connection, error) {
	const op = "connector: update connection"
	if strings.HasPrefix(id, tenantPrefix) {
		return Connection{}, notFound(op, id)
	}
	var before Connection
	var aborted bool // fn or the transition check refused: its error goes back as is
	rec := kvrec.Record[Connection]{KV: s.kv, Codec: kvrec.JSON[Connection]()}
	after, _, err := rec.Update(ctx, id, func(c *Connection, _ uint64) error {
		before = *c
		after := cloneConnection(before) // fn must not change before's slices
		if err := fn(&after); err != nil {
			aborted = true
			return err
		}
		if !validState(after.State) || !ValidTransition(before.State, after.State) {
			aborted = true
			return &Error{Op: op, Kind: Invalid,
				Err: fmt.Errorf("connection %s: state %s cannot change to %s", id, before.State, after.State)}
		}
		after.ID, after.CreatedAt = before.ID, before.CreatedAt
		after.UpdatedAt = s.now().UTC()
		*c = after
		return nil
	})
	switch {
	case aborted:
		return Connection{}, err
	case errors.Is(err, jetstream.ErrKeyNotFound), errors.Is(err, jetstream.ErrInvalidKey):
		return Connection{}, notFound(op, id)
	case errors.Is(err, kvrec.ErrContended):
		return Connection{}, &Error{Op: op, Kind: Transient, Err: err}
	case err != nil:
		return Connection{}, fmt.Errorf("%s: %w", op, err)
	}
	if s.onChange != nil && before.State != after.State {
		s.onChange(ctx, before, after)
	}
	return after, nil
}

// Delete moves a connection to deleted and wipes its secrets (the sealed
// refresh token and client secret). The entry is kept, so the connection
// still shows in lists and its history remains. actor becomes UpdatedBy.
func (s *Store) Delete(ctx context.Context, id, actor string) (Connection, error) {
	return s.Update(ctx, id, func(c *Connection) error {
		c.State = StateDeleted
		wipe(c.RefreshToken)
		wipe(c.ClientSecret)
		c.RefreshToken, c.ClientSecret = nil, nil
		c.UpdatedBy = actor
		return nil
	})
}

func wipe(b []byte) {
	for i := range b {
		b[i] = 0
	}
}

// cloneConnection copies c so that no slice is shared with the copy.
func cloneConnection(c Connection) Connection {
	c.RefreshToken = cloneBytes(c.RefreshToken)
	c.ClientSecret = cloneBytes(c.ClientSecret)
	return c
}

func cloneBytes(b []byte) []byte {
	if b == nil {
		return nil
	}
	return append([]byte(nil), b...)
}

// legacyErrorKind is the kind of a LastError stored before
// LastErrorKind existed, when only the text was kept. The importer stored
// an *Error's text, which names its kind (Error.Error), and token
// refusals carried their AADSTS code. It is the only place that reads an
// error's text; new records carry their kind.
func legacyErrorKind(lastError string) Kind {
	e := strings.ToLower(lastError)
	switch {
	case strings.Contains(e, "needs_consent"), strings.Contains(e, "aadsts"):
		return NeedsConsent
	case strings.Contains(e, "access_denied"):
		return AccessDenied
	case strings.Contains(e, "not_found"):
		return NotFound
	case strings.Contains(e, "throttled"):
		return Throttled
	case strings.Contains(e, "transient"):
		return Transient
	}
	return Other
}
