package portal

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/internal/kvrec"
)

// APIKey is a DMS API key. Only the SHA-256 of its secret is stored.
type APIKey struct {
	ID        string    `json:"id"`
	Customer  string    `json:"customer"`
	Name      string    `json:"name"`
	CreatedAt time.Time `json:"createdAt"`
	Revoked   bool      `json:"revoked"`
}

type storedKey struct {
	APIKey
	Hash string `json:"hash"` // hex SHA-256 of the whole secret
}

// APIKeys is the API key store on the KV bucket "apikeys".
type APIKeys struct {
	kv jetstream.KeyValue
}

// errBadKey is the one answer for a malformed, unknown or revoked key.
var errBadKey = errors.New("invalid api key")

const keyPrefix = "mgk_"

// NewAPIKeys opens (or creates) the KV bucket "apikeys".
func NewAPIKeys(ctx context.Context, js jetstream.JetStream) (*APIKeys, error) {
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{Bucket: "apikeys", Description: "mailgate DMS API keys (hashes)"})
	if err != nil {
		return nil, fmt.Errorf("apikeys: open bucket: %w", err)
	}
	return &APIKeys{kv: kv}, nil
}

func hashSecret(secret string) string {
	sum := sha256.Sum256([]byte(secret))
	return hex.EncodeToString(sum[:])
}

// Create makes a key for customer. The secret ("mgk_<id>_<random>") is
// returned once and never stored.
func (k *APIKeys) Create(ctx context.Context, customer, name string) (string, APIKey, error) {
	if connector.ValidCustomer(customer) != nil {
		return "", APIKey{}, fmt.Errorf("apikeys: create: %w", invalid("customer must be 1-63 of a-z 0-9 _ - starting with a letter or digit"))
	}
	id := hex.EncodeToString(randomBytes(8))
	secret := keyPrefix + id + "_" + hex.EncodeToString(randomBytes(24))
	key := APIKey{ID: id, Customer: customer, Name: name, CreatedAt: time.Now().UTC()}
	b, err := json.Marshal(storedKey{APIKey: key, Hash: hashSecret(secret)})
	if err != nil {
		return "", APIKey{}, fmt.Errorf("apikeys: create: %w", err)
	}
	if _, err := k.kv.Create(ctx, id, b); err != nil {
		return "", APIKey{}, fmt.Errorf("apikeys: create: %w", err)
	}
	return secret, key, nil
}

func (k *APIKeys) get(ctx context.Context, id string) (storedKey, uint64, error) {
	var rec storedKey
	e, err := k.kv.Get(ctx, id)
	if err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			return rec, 0, errNotFound
		}
		return rec, 0, err
	}
	if err := json.Unmarshal(e.Value(), &rec); err != nil {
		return rec, 0, err
	}
	return rec, e.Revision(), nil
}

// List returns all keys (without hashes), oldest first.
func (k *APIKeys) List(ctx context.Context) ([]APIKey, error) {
	lister, err := k.kv.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("apikeys: list: %w", err)
	}
	var out []APIKey
	for id := range lister.Keys() {
		rec, _, err := k.get(ctx, id)
		if errors.Is(err, errNotFound) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("apikeys: list: %w", err)
		}
		out = append(out, rec.APIKey)
	}
	slices.SortFunc(out, func(a, b APIKey) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Revoke marks a key revoked; it stays listed.
func (k *APIKeys) Revoke(ctx context.Context, id string) error {
	rec := kvrec.Record[storedKey]{KV: k.kv, Codec: kvrec.JSON[storedKey]()}
	if _, _, err := rec.Update(ctx, id, func(r *storedKey, _ uint64) error {
		r.Revoked = true
		return nil
	}); err != nil {
		if errors.Is(err, jetstream.ErrKeyNotFound) || errors.Is(err, jetstream.ErrInvalidKey) {
			err = errNotFound
		}
		return fmt.Errorf("apikeys: revoke %s: %w", id, err)
	}
	return nil
}

// Verify returns the key a secret belongs to. Malformed, unknown and revoked
// secrets all get errBadKey.
func (k *APIKeys) Verify(ctx context.Context, secret string) (APIKey, error) {
	rest, ok := strings.CutPrefix(secret, keyPrefix)
	if !ok {
		return APIKey{}, errBadKey
	}
	id, _, ok := strings.Cut(rest, "_")
	if !ok || len(id) != 16 {
		return APIKey{}, errBadKey
	}
	rec, _, err := k.get(ctx, id)
	if errors.Is(err, errNotFound) {
		return APIKey{}, errBadKey
	}
	if err != nil {
		return APIKey{}, fmt.Errorf("apikeys: verify: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(rec.Hash), []byte(hashSecret(secret))) != 1 || rec.Revoked {
		return APIKey{}, errBadKey
	}
	return rec.APIKey, nil
}

// randomBytes returns n bytes from crypto/rand, which never fails.
func randomBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}
