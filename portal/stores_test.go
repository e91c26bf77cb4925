package portal

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive/archivetest"
)

func TestUsers(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	u, err := NewUsers(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	if err := u.Add(ctx, "Alice@Acme.example", "acme", pw, []string{"mailbox-connect"}); err != nil {
		t.Fatal(err)
	}
	if err := u.Add(ctx, "alice@acme.example", "acme", pw, nil); !errors.Is(err, ErrUserExists) {
		t.Errorf("duplicate name (other case): %v, want ErrUserExists", err)
	}
	for _, bad := range []struct{ name, customer, password string }{
		{"", "acme", pw}, {"x", "", pw}, {"x", "Acme Corp", pw}, {"x", "acme", "short"}, {"x", "acme", strings.Repeat("p", 73)},
	} {
		var inv *invalidError
		if err := u.Add(ctx, bad.name, bad.customer, bad.password, nil); !errors.As(err, &inv) {
			t.Errorf("Add(%q, %q, %d chars): %v, want invalid", bad.name, bad.customer, len(bad.password), err)
		}
	}
	got, err := u.Authenticate(ctx, "alice@acme.example", pw)
	if err != nil || got.Name != "Alice@Acme.example" || got.Customer != "acme" || !got.InGroup("mailbox-connect") || got.PasswordHash != nil {
		t.Errorf("authenticate: %+v %v", got, err)
	}
	for _, c := range []struct{ name, password string }{{"alice@acme.example", "wrong password"}, {"nobody", pw}, {"", ""}} {
		if _, err := u.Authenticate(ctx, c.name, c.password); !errors.Is(err, errBadLogin) {
			t.Errorf("authenticate %q: %v, want errBadLogin", c.name, err)
		}
	}
	list, err := u.List(ctx)
	if err != nil || len(list) != 1 {
		t.Fatalf("list: %v %v", list, err)
	}
	b, _ := json.Marshal(list)
	if strings.Contains(string(b), "$2a$") || strings.Contains(strings.ToLower(string(b)), "hash") {
		t.Errorf("user JSON carries the hash: %s", b)
	}
	if err := u.Remove(ctx, "ALICE@acme.example"); err != nil {
		t.Fatal(err)
	}
	if err := u.Remove(ctx, "alice@acme.example"); !errors.Is(err, errNotFound) {
		t.Errorf("remove twice: %v", err)
	}
	if _, err := u.Authenticate(ctx, "alice@acme.example", pw); !errors.Is(err, errBadLogin) {
		t.Errorf("removed user authenticates: %v", err)
	}
}

func TestAPIKeys(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	k, err := NewAPIKeys(ctx, js)
	if err != nil {
		t.Fatal(err)
	}
	secret, key, err := k.Create(ctx, "acme", "dms prod")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, "mgk_"+key.ID+"_") || len(secret) < 40 {
		t.Errorf("secret %q", secret)
	}
	e, _ := k.kv.Get(ctx, key.ID)
	if strings.Contains(string(e.Value()), secret[len("mgk_")+17:]) {
		t.Error("stored value contains the secret")
	}
	got, err := k.Verify(ctx, secret)
	if err != nil || got.ID != key.ID || got.Customer != "acme" {
		t.Errorf("verify: %+v %v", got, err)
	}
	secret2, _, _ := k.Create(ctx, "globex", "other")
	list, err := k.List(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("list: %v %v", list, err)
	}
	if err := k.Revoke(ctx, key.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Verify(ctx, secret); !errors.Is(err, errBadKey) {
		t.Errorf("revoked key verifies: %v", err)
	}
	if _, err := k.Verify(ctx, secret2); err != nil {
		t.Errorf("other key after revoke: %v", err)
	}
	if err := k.Revoke(ctx, "0000000000000000"); !errors.Is(err, errNotFound) {
		t.Errorf("revoke unknown: %v", err)
	}
	list, _ = k.List(ctx)
	if !list[0].Revoked && !list[1].Revoked {
		t.Error("revoked key not listed as revoked")
	}
}

func TestKVSessionStore(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	now := time.Now()
	clock := func() time.Time { return now }
	s, err := newKVSessionStore(ctx, js, clock)
	if err != nil {
		t.Fatal(err)
	}
	if _, found, err := s.FindCtx(ctx, "missing"); found || err != nil {
		t.Errorf("missing: %v %v", found, err)
	}
	if _, found, err := s.FindCtx(ctx, "bad token with spaces"); found || err != nil {
		t.Errorf("malformed token: %v %v", found, err)
	}
	if err := s.CommitCtx(ctx, "tok", []byte("data"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	// A second replica on the same bucket sees the session.
	other, _ := newKVSessionStore(ctx, js, clock)
	if b, found, err := other.FindCtx(ctx, "tok"); !found || err != nil || string(b) != "data" {
		t.Errorf("find: %q %v %v", b, found, err)
	}
	now = now.Add(2 * time.Minute)
	if _, found, _ := s.FindCtx(ctx, "tok"); found {
		t.Error("expired session found")
	}
	if err := s.CommitCtx(ctx, "tok", []byte("new"), now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteCtx(ctx, "tok"); err != nil {
		t.Fatal(err)
	}
	if _, found, _ := s.FindCtx(ctx, "tok"); found {
		t.Error("deleted session found")
	}
	if err := s.DeleteCtx(ctx, "never"); err != nil {
		t.Errorf("delete missing: %v", err)
	}
}

func TestSessionsSharedAcrossReplicas(t *testing.T) {
	e := newEnv(t)
	b := e.loggedIn("alice")
	// A second portal on the same JetStream serves the same session.
	srv2, err := New(t.Context(), e.js, e.srv.deps, Config{PublicURL: e.ts.URL, Logger: e.srv.log})
	if err != nil {
		t.Fatal(err)
	}
	e.handler.set(srv2.Handler())
	if r := b.get("/connections"); r.status != 200 {
		t.Errorf("replica 2: %d, want 200", r.status)
	}
}

func TestGroupCode(t *testing.T) {
	for in, want := range map[string]string{"ABCDEFGHJK": "ABCD EFGH JK", "ABCD-EFGH": "ABCD-EFGH", "": ""} {
		if got := groupCode(in); got != want {
			t.Errorf("groupCode(%q) = %q, want %q", in, got, want)
		}
	}
}
