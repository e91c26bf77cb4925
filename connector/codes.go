package connector

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/internal/kvrec"
)

// CodesBucket is the JetStream KV bucket holding one-time connection codes.
const CodesBucket = "codes"

// A connection code is codeData symbols of Crockford base32 (5 bits each,
// 115 random bits) and one Crockford check symbol (the code's value modulo
// 37), shown in groups of four: K7QM-2XH9-A4TR-8BNC-W3DE-QY6F.
const (
	codeData    = 23
	codeSymbols = codeData + 1
	codeGroup   = 4
)

// crockford holds the 32 symbols of Crockford's base32 and, after them, the
// five extra check symbols for the values 32..36.
const crockford = "0123456789ABCDEFGHJKMNPQRSTVWXYZ*~$=U"

// ErrInvalidCode is the one answer to a code that is malformed, unknown,
// expired, already used or issued to another customer, so the answer tells
// an attacker nothing.
var ErrInvalidCode error = &Error{Op: "connector: redeem code", Kind: Invalid, Code: "invalid_code",
	Err: errors.New("invalid, expired or used connection code")}

// CodesOptions configures Codes.
type CodesOptions struct {
	TTL      time.Duration    // lifetime of a code; 0 means 10 minutes
	Replicas int              // of the bucket in a NATS cluster; 0 means 1
	Now      func() time.Time // clock; nil means time.Now
}

// Codes issues and redeems one-time connection codes. Only the SHA-256 of a
// code is stored (as the key), with the customer, the connection and the
// expiry as the value; the bucket's TTL removes codes nobody redeemed. A
// connection has one valid code at a time: issuing one revokes the earlier.
type Codes struct {
	kv  jetstream.KeyValue
	ttl time.Duration
	now func() time.Time
}

type codeEntry struct {
	Customer     string    `json:"customer"`
	ConnectionID string    `json:"connectionId"`
	ExpiresAt    time.Time `json:"expiresAt"`
}

// NewCodes creates or updates the codes bucket and returns Codes on it.
func NewCodes(ctx context.Context, js jetstream.JetStream, opts CodesOptions) (*Codes, error) {
	if opts.TTL <= 0 {
		opts.TTL = 10 * time.Minute
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      CodesBucket,
		Description: "mailgate one-time connection codes (SHA-256 keys)",
		History:     1,
		TTL:         opts.TTL,
		Storage:     jetstream.FileStorage,
		Replicas:    opts.Replicas,
	})
	if err != nil {
		return nil, fmt.Errorf("connector: codes: bucket %s: %w", CodesBucket, err)
	}
	return &Codes{kv: kv, ttl: opts.TTL, now: opts.Now}, nil
}

// Issue makes a new code for a connection of customer. The returned code is
// grouped for display; it is shown once and cannot be recovered.
func (c *Codes) Issue(ctx context.Context, customer, connectionID string) (string, time.Time, error) {
	const op = "connector: issue code"
	if err := ValidCustomer(customer); err != nil {
		return "", time.Time{}, err
	}
	if connectionID == "" {
		return "", time.Time{}, &Error{Op: op, Kind: Invalid, Err: errors.New("empty connection id")}
	}
	code := newCode()
	expires := c.now().Add(c.ttl).UTC()
	data, err := json.Marshal(codeEntry{Customer: customer, ConnectionID: connectionID, ExpiresAt: expires})
	if err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	key := codeKey(code)
	if _, err := c.kv.Create(ctx, key, data); err != nil {
		return "", time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	if err := c.makeCurrent(ctx, connectionID, key); err != nil {
		_ = c.kv.Delete(ctx, key)
		return "", time.Time{}, fmt.Errorf("%s: %w", op, err)
	}
	return groupCode(code), expires, nil
}

// currentPrefix marks the entry naming a connection's current code (by its
// key): issuing a code revokes the earlier ones. Code keys are hex, so the
// prefix never collides with one.
const currentPrefix = "conn."

// makeCurrent records key as the connection's only valid code, with
// compare-and-set so that of two concurrent issues the later write wins and
// the other code is revoked, and deletes the code it replaces. Redeem
// refuses any code that is not current, even if the delete was lost.
func (c *Codes) makeCurrent(ctx context.Context, connectionID, key string) error {
	var old string
	rec := kvrec.Record[string]{KV: c.kv, Codec: kvrec.Text(), Create: true}
	if _, _, err := rec.Update(ctx, currentPrefix+connectionID, func(cur *string, _ uint64) error {
		old, *cur = *cur, key
		return nil
	}); err != nil {
		return fmt.Errorf("record current code: %w", err)
	}
	if old != "" && old != key {
		_ = c.kv.Delete(ctx, old) // revoked; Redeem refuses it anyway
	}
	return nil
}

// current reports whether key is the connection's current code. A
// connection without the record (a code from before it existed) accepts it.
func (c *Codes) current(ctx context.Context, connectionID, key string) (bool, error) {
	e, err := c.kv.Get(ctx, currentPrefix+connectionID)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return true, nil
	}
	if err != nil {
		return false, err
	}
	return string(e.Value()) == key, nil
}

// Redeem consumes a code of customer and returns its connection id. Of many
// concurrent redeemers exactly one wins: the code is deleted with the
// revision it was read at, and only one such delete can succeed.
//
// A code of another customer is refused with ErrInvalidCode WITHOUT being
// consumed: consuming it would let anyone holding an API key burn codes of
// other customers by guessing or replaying them.
func (c *Codes) Redeem(ctx context.Context, customer, code string) (string, error) {
	const op = "connector: redeem code"
	norm, err := ParseCode(code)
	if err != nil {
		return "", ErrInvalidCode
	}
	key := codeKey(norm)
	e, err := c.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", ErrInvalidCode
	}
	if err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	}
	var ce codeEntry
	if err := json.Unmarshal(e.Value(), &ce); err != nil {
		return "", ErrInvalidCode
	}
	if !c.now().Before(ce.ExpiresAt) {
		// Expired: the bucket TTL removes it soon; removing it now is harmless.
		_ = c.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		return "", ErrInvalidCode
	}
	if ce.Customer != customer {
		return "", ErrInvalidCode
	}
	if ok, err := c.current(ctx, ce.ConnectionID, key); err != nil {
		return "", fmt.Errorf("%s: %w", op, err)
	} else if !ok {
		// Revoked by a newer code of the connection.
		_ = c.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision()))
		return "", ErrInvalidCode
	}
	if err := c.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil {
		if kvrec.Conflict(err) {
			return "", ErrInvalidCode // another redeemer won
		}
		return "", fmt.Errorf("%s: %w", op, err)
	}
	return ce.ConnectionID, nil
}

// codeKey is the KV key of a normalised code: SHA-256, hex.
func codeKey(norm string) string {
	sum := sha256.Sum256([]byte(norm))
	return hex.EncodeToString(sum[:])
}

// newCode returns a normalised code (no dashes). Codes whose check symbol
// would be one of Crockford's extra symbols (*~$=U) are drawn again, so every
// code shown is letters and digits only; that costs 0.2 of 115 bits.
func newCode() string {
	var raw [codeData]byte
	b := make([]byte, codeSymbols)
	for {
		_, _ = rand.Read(raw[:]) // crypto/rand.Read never fails on supported platforms
		for i, r := range raw {
			b[i] = crockford[r&31]
		}
		chk := checkValue(b[:codeData])
		if chk < 32 {
			b[codeData] = crockford[chk]
			return string(b)
		}
	}
}

// checkValue is the code's value modulo 37 (Crockford's check symbol).
func checkValue(symbols []byte) int {
	r := 0
	for _, s := range symbols {
		r = (r*32 + strings.IndexByte(crockford[:32], s)) % 37
	}
	return r
}

func groupCode(norm string) string {
	var sb strings.Builder
	for i := 0; i < len(norm); i += codeGroup {
		if i > 0 {
			sb.WriteByte('-')
		}
		sb.WriteString(norm[i:min(i+codeGroup, len(norm))])
	}
	return sb.String()
}

// ParseCode normalises a code typed or pasted by a person: it trims, upper-
// cases, drops spaces and dashes, reads O as 0 and I and L as 1 (Crockford),
// and checks the length and the check symbol. It returns the code without
// grouping.
func ParseCode(s string) (string, error) {
	const op = "connector: parse code"
	b := make([]byte, 0, codeSymbols)
	for _, r := range strings.TrimSpace(s) {
		switch {
		case r == '-' || r == ' ' || r == '\t':
			continue
		case r >= 'a' && r <= 'z':
			r -= 'a' - 'A'
		}
		switch r {
		case 'O':
			r = '0'
		case 'I', 'L':
			r = '1'
		}
		if r > 0x7f || !strings.ContainsRune(crockford, r) {
			return "", &Error{Op: op, Kind: Invalid, Err: errors.New("code contains a character that is not part of a code")}
		}
		if len(b) == codeSymbols {
			return "", &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("code is longer than %d characters", codeSymbols)}
		}
		b = append(b, byte(r))
	}
	if len(b) != codeSymbols {
		return "", &Error{Op: op, Kind: Invalid, Err: fmt.Errorf("code has %d characters, want %d", len(b), codeSymbols)}
	}
	for _, s := range b[:codeData] {
		if strings.IndexByte(crockford[:32], s) < 0 {
			return "", &Error{Op: op, Kind: Invalid, Err: errors.New("code contains a check symbol before its end")}
		}
	}
	if crockford[checkValue(b[:codeData])] != b[codeData] {
		return "", &Error{Op: op, Kind: Invalid, Err: errors.New("code check symbol does not match: mistyped?")}
	}
	return string(b), nil
}
