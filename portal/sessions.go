package portal

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/nats-io/nats.go/jetstream"
)

// kvSessionStore is an scs.CtxStore on the KV bucket "sessions", so that
// several portal replicas share sessions. A value is the expiry (8 bytes,
// Unix nanoseconds) followed by scs's encoded data; the bucket's MaxAge
// removes what nobody deletes. An entry's key is the SHA-256 of the session
// token, never the token itself: whoever can read the bucket cannot present
// a stored session as a cookie.
type kvSessionStore struct {
	kv  jetstream.KeyValue
	now func() time.Time
}

var _ scs.CtxStore = (*kvSessionStore)(nil)

// sessionBucketTTL bounds how long an abandoned session stays in the bucket;
// it is longer than any session lifetime.
const sessionBucketTTL = 48 * time.Hour

func newKVSessionStore(ctx context.Context, js jetstream.JetStream, now func() time.Time) (*kvSessionStore, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: "sessions", Description: "mailgate portal sessions", TTL: sessionBucketTTL,
	})
	if err != nil {
		return nil, fmt.Errorf("sessions: open bucket: %w", err)
	}
	purgeRawTokenKeys(ctx, kv)
	return &kvSessionStore{kv: kv, now: now}, nil
}

func (s *kvSessionStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, sessionKey(token))
	if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("sessions: find: %w", err)
	}
	v := e.Value()
	if len(v) < 8 {
		return nil, false, nil
	}
	expiry := time.Unix(0, int64(binary.BigEndian.Uint64(v[:8])))
	if !s.now().Before(expiry) {
		return nil, false, nil
	}
	return v[8:], true, nil
}

func (s *kvSessionStore) CommitCtx(ctx context.Context, token string, b []byte, expiry time.Time) error {
	v := make([]byte, 8, 8+len(b))
	binary.BigEndian.PutUint64(v, uint64(expiry.UnixNano()))
	if _, err := s.kv.Put(ctx, sessionKey(token), append(v, b...)); err != nil {
		return fmt.Errorf("sessions: commit: %w", err)
	}
	return nil
}

func (s *kvSessionStore) DeleteCtx(ctx context.Context, token string) error {
	if err := s.kv.Purge(ctx, sessionKey(token)); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("sessions: delete: %w", err)
	}
	return nil
}

// purgeRawTokenKeys removes sessions that earlier versions stored under
// the raw token, so that no live session id stays readable in the bucket;
// their users sign in again. Best effort: the bucket's MaxAge removes any
// left over.
func purgeRawTokenKeys(ctx context.Context, kv jetstream.KeyValue) {
	keys, err := kv.ListKeys(ctx)
	if err != nil {
		return
	}
	defer keys.Stop()
	for k := range keys.Keys() {
		if _, err := hex.DecodeString(k); err != nil || len(k) != 2*sha256.Size {
			_ = kv.Purge(ctx, k)
		}
	}
}

// sessionKey is the bucket key of a session token.
func sessionKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// The context-free methods exist only to satisfy scs.Store; scs calls the
// Ctx variants when a store has them.
func (s *kvSessionStore) Find(token string) ([]byte, bool, error) {
	return s.FindCtx(context.Background(), token)
}

func (s *kvSessionStore) Commit(token string, b []byte, expiry time.Time) error {
	return s.CommitCtx(context.Background(), token, b, expiry)
}

func (s *kvSessionStore) Delete(token string) error {
	return s.DeleteCtx(context.Background(), token)
}
