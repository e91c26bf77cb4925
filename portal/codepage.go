package portal

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/mailgate/mailgate/connector"
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

// issueCode issues a one-time code for c and keeps it in the session for
// the code page; on failure it answers the request and reports false.
func (s *Server) issueCode(w http.ResponseWriter, r *http.Request, c connector.Connection) bool {
	code, exp, err := s.deps.Codes.Issue(r.Context(), c.Customer, c.ID)
	if err != nil {
		s.fail(w, r, fmt.Errorf("issue code: %w", err))
		return false
	}
	s.keepCode(r.Context(), c.ID, code, exp)
	return true
}

type codeData struct {
	C         connector.Connection
	Code      string
	ExpiresAt time.Time
	Active    bool
}

// refresh makes the code page reload every 5 seconds until it is connected.
func (d codeData) refresh() int {
	if d.Active {
		return 0
	}
	return 5
}

func (s *Server) showCode(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	d := codeData{C: c}
	switch c.State {
	case connector.StatePending:
		if code, exp, ok := s.keptCodeOf(ctx, c.ID); ok {
			d.Code, d.ExpiresAt = code, exp
		}
	case connector.StateActive:
		s.sessions.Remove(ctx, "code:"+c.ID)
		d.Active = true
	default:
		http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID), http.StatusSeeOther)
		return
	}
	s.render(w, r, http.StatusOK, "code", "code.page_title", d)
}

// reissueCode gives a pending connection a new code when the old one expired.
func (s *Server) reissueCode(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if c.State != connector.StatePending {
		http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID), http.StatusSeeOther)
		return
	}
	if !s.issueCode(w, r, c) {
		return
	}
	http.Redirect(w, r, "/connections/"+url.PathEscape(c.ID)+"/code", http.StatusSeeOther)
}

// demoRedeem redeems the code as the DMS would (demo installations only).
func (s *Server) demoRedeem(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	id := r.PostFormValue("id")
	if _, err := s.ownConnection(ctx, u.Customer, id); err != nil {
		s.fail(w, r, err)
		return
	}
	if _, _, err := s.activation.Redeem(ctx, u.Customer, r.PostFormValue("code"), u.actor()); err != nil {
		s.fail(w, r, err)
		return
	}
	http.Redirect(w, r, "/connections/"+url.PathEscape(id)+"/code", http.StatusSeeOther)
}
