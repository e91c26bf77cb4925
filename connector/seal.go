package connector

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
)

// KeySize is the length of a sealing key in bytes (AES-256).
const KeySize = 32

// keyIDLen is the length of the hex key id that prefixes every sealed value.
const keyIDLen = 8

// Sealer encrypts secrets at rest with AES-256-GCM. A connection's secret
// (refresh token, client secret) is sealed by SealFor as
//
//	"v2." | key id (8 hex chars) | nonce (12 bytes) | ciphertext and tag
//
// with the key id, the customer and the connection id as additional
// authenticated data: a value copied into another connection's entry, or
// another customer's, does not open there. Seal makes the older, unbound
// form
//
//	key id (8 hex chars) | nonce (12 bytes) | ciphertext and tag
//
// whose only additional data is the key id; OpenFor still accepts it and
// tells the caller to seal it again bound (see Tokens). The key id is the
// hex of the first 4 bytes of SHA-256(key). Sealing always uses the current
// key; opening accepts the current and any old key, so keys can be rotated
// by restarting with the new key as current and the previous one as old.
type Sealer struct {
	current string                 // key id of the current key
	aeads   map[string]cipher.AEAD // by key id
}

// NewSealer returns a Sealer that seals with current and opens with current
// or any of old. Every key must be KeySize bytes.
func NewSealer(current []byte, old ...[]byte) (*Sealer, error) {
	s := &Sealer{aeads: make(map[string]cipher.AEAD, 1+len(old))}
	for i, key := range append([][]byte{current}, old...) {
		if len(key) != KeySize {
			return nil, fmt.Errorf("connector: sealer: key %d is %d bytes, want %d", i, len(key), KeySize)
		}
		block, err := aes.NewCipher(key)
		if err != nil {
			return nil, fmt.Errorf("connector: sealer: %w", err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("connector: sealer: %w", err)
		}
		id := keyID(key)
		if i == 0 {
			s.current = id
		}
		if _, dup := s.aeads[id]; !dup {
			s.aeads[id] = aead
		}
	}
	return s, nil
}

func keyID(key []byte) string {
	sum := sha256.Sum256(key)
	return hex.EncodeToString(sum[:4])
}

// Seal encrypts plain with the current key, bound to nothing but the key.
// Secrets of a connection are sealed with SealFor.
func (s *Sealer) Seal(plain []byte) ([]byte, error) {
	aead := s.aeads[s.current]
	out := make([]byte, keyIDLen+aead.NonceSize(), keyIDLen+aead.NonceSize()+len(plain)+aead.Overhead())
	copy(out, s.current)
	nonce := out[keyIDLen:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("connector: seal: %w", err)
	}
	return aead.Seal(out, nonce, plain, out[:keyIDLen]), nil
}

// boundPrefix marks a value sealed for one connection of one customer.
const boundPrefix = "v2."

// boundAD is the additional data of a value sealed for a connection.
func boundAD(keyID, customer, connectionID string) []byte {
	return []byte("mailgate sealed v2\x00" + keyID + "\x00" + customer + "\x00" + connectionID)
}

// SealFor encrypts plain with the current key for connection connectionID
// of customer; only OpenFor with the same two opens it.
func (s *Sealer) SealFor(customer, connectionID string, plain []byte) ([]byte, error) {
	if customer == "" || connectionID == "" {
		return nil, errors.New("connector: seal: customer and connection id are required")
	}
	aead := s.aeads[s.current]
	head := len(boundPrefix) + keyIDLen
	out := make([]byte, head+aead.NonceSize(), head+aead.NonceSize()+len(plain)+aead.Overhead())
	copy(out, boundPrefix+s.current)
	nonce := out[head:]
	if _, err := rand.Read(nonce); err != nil {
		return nil, fmt.Errorf("connector: seal: %w", err)
	}
	return aead.Seal(out, nonce, plain, boundAD(s.current, customer, connectionID)), nil
}

// OpenFor decrypts a secret of connection connectionID of customer. A value
// sealed for another connection or customer does not open (ErrSealed).
// A value in the unbound form of Seal, from before secrets were bound,
// opens with reseal true: the caller should store it again, sealed with
// SealFor, so it is accepted unbound only until then.
func (s *Sealer) OpenFor(customer, connectionID string, sealed []byte) (plain []byte, reseal bool, err error) {
	rest, bound := bytes.CutPrefix(sealed, []byte(boundPrefix))
	if !bound {
		plain, err := s.Open(sealed)
		return plain, err == nil, err
	}
	if len(rest) < keyIDLen {
		return nil, false, ErrSealed
	}
	id := string(rest[:keyIDLen])
	aead, ok := s.aeads[id]
	if !ok || len(rest) < keyIDLen+aead.NonceSize()+aead.Overhead() {
		return nil, false, ErrSealed
	}
	nonce := rest[keyIDLen : keyIDLen+aead.NonceSize()]
	plain, err = aead.Open(nil, nonce, rest[keyIDLen+aead.NonceSize():], boundAD(id, customer, connectionID))
	if err != nil {
		return nil, false, ErrSealed
	}
	return plain, false, nil
}

// ErrSealed is returned by Open for a value that is not a sealed value, was
// sealed with an unknown key, or was tampered with.
var ErrSealed = errors.New("connector: open sealed value: malformed, unknown key or tampered")

// Open decrypts a value made by Seal with any key the Sealer knows.
func (s *Sealer) Open(sealed []byte) ([]byte, error) {
	if len(sealed) < keyIDLen {
		return nil, ErrSealed
	}
	aead, ok := s.aeads[string(sealed[:keyIDLen])]
	if !ok || len(sealed) < keyIDLen+aead.NonceSize()+aead.Overhead() {
		return nil, ErrSealed
	}
	nonce := sealed[keyIDLen : keyIDLen+aead.NonceSize()]
	plain, err := aead.Open(nil, nonce, sealed[keyIDLen+aead.NonceSize():], sealed[:keyIDLen])
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}

// ParseKey decodes a sealing key given as base64 (standard or URL alphabet,
// padded or not) of exactly KeySize bytes. Errors never contain the input.
func ParseKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return nil, errors.New("connector: secret key is empty")
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		key, err := enc.DecodeString(s)
		if err != nil {
			continue
		}
		if len(key) != KeySize {
			return nil, fmt.Errorf("connector: secret key decodes to %d bytes, want %d (generate one with: openssl rand -base64 32)", len(key), KeySize)
		}
		return key, nil
	}
	return nil, fmt.Errorf("connector: secret key is not valid base64 (generate one with: openssl rand -base64 32)")
}
