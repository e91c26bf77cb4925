package portal

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/url"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// scanKV reports every KV bucket's key or value that contains one of the
// needles, as an attacker who can read the buckets would find it.
func scanKV(t *testing.T, js jetstream.JetStream, needles ...string) []string {
	t.Helper()
	ctx := t.Context()
	var found []string
	buckets := 0
	for name := range js.KeyValueStoreNames(ctx).Name() {
		buckets++
		kv, err := js.KeyValue(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		keys, err := kv.ListKeys(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for k := range keys.Keys() {
			e, err := kv.Get(ctx, k)
			if errors.Is(err, jetstream.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range needles {
				if strings.Contains(k, n) || strings.Contains(string(e.Value()), n) {
					found = append(found, name+"/"+k)
				}
			}
		}
	}
	if buckets < 3 {
		t.Fatalf("only %d KV buckets to scan", buckets)
	}
	return found
}

// TestNoCodeOrSessionIDInKV runs the wizard to the code page and then reads
// every KV bucket: neither the one-time code nor the session cookie's value
// is stored anywhere, while the page still shows the code on refresh.
func TestNoCodeOrSessionIDInKV(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn(graphtest.DefaultUser)
	r := b.consent(b.startWizard(wizardForm(graphtest.DefaultMailbox)), graphtest.DefaultUser, true)
	m := codeRE.FindStringSubmatch(b.get(r.location()).body)
	if m == nil {
		t.Fatal("no code on the page")
	}
	code := m[1]
	u, _ := url.Parse(e.ts.URL)
	var session string
	for _, c := range b.c.Jar.Cookies(u) {
		if c.Name == "mailgate_session" || strings.Contains(c.Name, "session") {
			session = c.Value
		}
	}
	if len(session) < 20 || len(code) < 10 {
		t.Fatalf("session cookie %q, code %q", session, code)
	}
	if found := scanKV(t, e.js, code, session); len(found) > 0 {
		t.Errorf("code or session id stored in %v", found)
	}
	// The session is stored, under the token's hash; the page shows the
	// code again on refresh.
	kv, err := e.js.KeyValue(t.Context(), "sessions")
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(session))
	if _, err := kv.Get(t.Context(), hex.EncodeToString(sum[:])); err != nil {
		t.Errorf("session not stored under the hash of its token: %v", err)
	}
	if m := codeRE.FindStringSubmatch(b.get(r.location()).body); m == nil || m[1] != code {
		t.Errorf("code page after refresh shows %v, want the code", m)
	}
}

// TestRawTokenSessionsPurged: sessions an earlier version stored under
// the raw token are removed when the portal starts.
func TestRawTokenSessionsPurged(t *testing.T) {
	e := newEnv(t)
	kv, err := e.js.KeyValue(t.Context(), "sessions")
	if err != nil {
		t.Fatal(err)
	}
	const raw = "Yb2o8sQn1e4m3tR0cZ5xW7uV9pLkJhGfDsAaQwErTy0"
	if _, err := kv.Put(t.Context(), raw, []byte("old session")); err != nil {
		t.Fatal(err)
	}
	if _, err := newKVSessionStore(context.Background(), e.js, e.srv.now); err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Get(t.Context(), raw); !errors.Is(err, jetstream.ErrKeyNotFound) {
		t.Errorf("raw-token session still stored: %v", err)
	}
}
