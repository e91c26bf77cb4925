package portal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"time"
)

// keptCode is a one-time code as the session holds it for the code page:
// sealed with a key derived from the session token, which only the
// browser's cookie carries (the sessions bucket is keyed by its hash). So
// the bucket holds no usable code, while the page can show it again on
// refresh until the connection is active.
type keptCode struct {
	Sealed    []byte    `json:"sealed"`
	ExpiresAt time.Time `json:"expiresAt"`
}

// codeAEAD is the cipher that seals the codes of the session with token.
func codeAEAD(token string) cipher.AEAD {
	key := sha256.Sum256([]byte("mailgate code page\x00" + token))
	block, _ := aes.NewCipher(key[:]) // a 32-byte key never fails
	aead, _ := cipher.NewGCM(block)
	return aead
}

// keepCode holds the code, sealed, in the session so the page can show it
// again on refresh; it is removed once the connection is active.
func (s *Server) keepCode(ctx context.Context, id, code string, exp time.Time) {
	token := s.sessions.Token(ctx)
	if token == "" {
		return // no session to bind it to; the page offers a new code
	}
	aead := codeAEAD(token)
	nonce := make([]byte, aead.NonceSize())
	_, _ = rand.Read(nonce)
	b, _ := json.Marshal(keptCode{Sealed: aead.Seal(nonce, nonce, []byte(code), []byte(id)), ExpiresAt: exp})
	s.sessions.Put(ctx, "code:"+id, string(b))
}

// keptCodeOf opens the code of connection id kept in the session, if any
// and not expired.
func (s *Server) keptCodeOf(ctx context.Context, id string) (string, time.Time, bool) {
	var k keptCode
	raw := s.sessions.GetString(ctx, "code:"+id)
	if raw == "" || json.Unmarshal([]byte(raw), &k) != nil || !s.now().Before(k.ExpiresAt) {
		return "", time.Time{}, false
	}
	aead := codeAEAD(s.sessions.Token(ctx))
	if len(k.Sealed) < aead.NonceSize() {
		return "", time.Time{}, false
	}
	code, err := aead.Open(nil, k.Sealed[:aead.NonceSize()], k.Sealed[aead.NonceSize():], []byte(id))
	if err != nil {
		return "", time.Time{}, false // sealed for a session token since renewed
	}
	return string(code), k.ExpiresAt, true
}
