package importer

import (
	"context"
	"encoding/json"
	"errors"
	"testing"

	"github.com/mailgate/mailgate/connector"
)

// TestWithConnectorStore runs the state changes against the real
// connection store (CAS updates in KV, transition rules).
func TestWithConnectorStore(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	ctx := context.Background()
	store, err := connector.NewStore(ctx, e.js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := testConnection("")
	c.State = connector.StateActive
	c, err = store.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	e.conn = c
	want := deliverMix(t, e.mb, 10)
	mode := connector.AccessDenied
	broken := true
	e.mb.fault = func(op, arg string) error {
		if op == "delta" && broken {
			return connector.E("fake: delta", mode, errors.New("no"))
		}
		return nil
	}
	var openErr error
	mailboxes := MailboxesFunc(func(_ context.Context, cc connector.Connection) (Mailbox, error) {
		if cc.ID != c.ID {
			t.Errorf("opened %s", cc.ID)
		}
		return e.mb, openErr
	})
	im, err := New(ctx, e.js, Deps{Connections: store, Mailboxes: mailboxes, Store: e.store, Events: e.events},
		Config{Replica: "r1", Now: e.clock.Now, After: e.clock.After, FailAfter: 2})
	if err != nil {
		t.Fatal(err)
	}
	get := func() connector.Connection {
		c, err := store.Get(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	state := func() connector.State { return get().State }
	for range 2 {
		if _, err := im.SyncNow(ctx, c.ID); err == nil {
			t.Fatal("pass succeeded")
		}
	}
	if s := state(); s != connector.StateFailing {
		t.Fatalf("state %s, want failing", s)
	}
	// The kind is stored with the error, for the portal's advice (read
	// raw: the store would derive it from an old record's text).
	kv, err := e.js.KeyValue(ctx, connector.ConnectionsBucket)
	if err != nil {
		t.Fatal(err)
	}
	entry, err := kv.Get(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	var raw connector.Connection
	if err := json.Unmarshal(entry.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw.ErrorKind() != connector.AccessDenied || raw.LastError == "" {
		t.Errorf("failing: stored error %q of kind %q, want access_denied", raw.LastError, raw.LastErrorKind)
	}
	broken = false
	if _, err := im.SyncNow(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if s := state(); s != connector.StateActive {
		t.Fatalf("state %s, want active", s)
	}
	if c := get(); c.LastError != "" || c.LastErrorKind != "" {
		t.Errorf("recovered: error %q of kind %q left", c.LastError, c.LastErrorKind)
	}
	if n, _ := e.events.counts(); n != want.imported {
		t.Errorf("imported %d, want %d", n, want.imported)
	}
	// Consent revoked: the token refresh in Open fails for good.
	openErr = &connector.Error{Op: "connector: refresh token", Kind: connector.NeedsConsent, Code: "AADSTS70008"}
	deltas := e.mb.callCount("delta")
	if _, err := im.SyncNow(ctx, c.ID); !connector.IsKind(err, connector.NeedsConsent) || e.mb.callCount("delta") != deltas {
		t.Fatalf("err %v", err)
	}
	if s := state(); s != connector.StateNeedsConsent {
		t.Fatalf("state %s, want needs_consent", s)
	}
	if c := get(); c.ErrorKind() != connector.NeedsConsent {
		t.Errorf("needs_consent: kind %q", c.LastErrorKind)
	}
}
