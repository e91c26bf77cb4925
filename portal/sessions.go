package portal

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/alexedwards/scs/v2"
	"github.com/nats-io/nats.go/jetstream"
)

// kvSessionStore is an scs.CtxStore on the KV bucket "sessions", so that
// several portal replicas share sessions. A value is the expiry (8 bytes,
// Unix nanoseconds) followed by scs's encoded data; the bucket's MaxAge
// removes what nobody deletes.
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
	return &kvSessionStore{kv: kv, now: now}, nil
}

func (s *kvSessionStore) FindCtx(ctx context.Context, token string) ([]byte, bool, error) {
	e, err := s.kv.Get(ctx, token)
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
	if _, err := s.kv.Put(ctx, token, append(v, b...)); err != nil {
		return fmt.Errorf("sessions: commit: %w", err)
	}
	return nil
}

func (s *kvSessionStore) DeleteCtx(ctx context.Context, token string) error {
	if err := s.kv.Purge(ctx, token); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return fmt.Errorf("sessions: delete: %w", err)
	}
	return nil
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
