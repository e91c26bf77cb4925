package connector

import (
	"context"
	"testing"
	"time"
)

// Watch gives the whole bucket once, then each change; tenant bindings
// are not connections.
func TestStoreWatch(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, _ := newTestStore(t)
	old, err := s.Create(ctx, Connection{Customer: "acme", Mailbox: "a@acme.example", State: StateActive})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.BindTenant(ctx, "11111111-1111-1111-1111-111111111111", "acme", "test"); err != nil {
		t.Fatal(err)
	}
	alls := make(chan []Connection, 1)
	changes := make(chan Connection, 10)
	done := make(chan error, 1)
	go func() {
		done <- s.Watch(ctx, func(all []Connection) { alls <- all }, func(c Connection) { changes <- c })
	}()
	all := <-alls
	if len(all) != 1 || all[0].ID != old.ID || all[0].State != StateActive {
		t.Fatalf("initial list %+v, want the one connection", all)
	}
	next := func() Connection {
		t.Helper()
		select {
		case c := <-changes:
			return c
		case <-time.After(10 * time.Second):
			t.Fatal("no change seen")
			return Connection{}
		}
	}
	c, err := s.Create(ctx, Connection{Customer: "acme", Mailbox: "b@acme.example", State: StateActive})
	if err != nil {
		t.Fatal(err)
	}
	if got := next(); got.ID != c.ID || got.State != StateActive {
		t.Errorf("created: %+v", got)
	}
	if _, err := s.Update(ctx, old.ID, func(c *Connection) error { c.State = StatePaused; return nil }); err != nil {
		t.Fatal(err)
	}
	if got := next(); got.ID != old.ID || got.State != StatePaused {
		t.Errorf("paused: %+v", got)
	}
	if _, err := s.Delete(ctx, c.ID, "test"); err != nil {
		t.Fatal(err)
	}
	if got := next(); got.ID != c.ID || got.State != StateDeleted {
		t.Errorf("deleted: %+v", got)
	}
	if err := s.kv.Purge(ctx, old.ID); err != nil {
		t.Fatal(err)
	}
	if got := next(); got.ID != old.ID || got.State != StateDeleted {
		t.Errorf("purged: %+v", got)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Watch after cancel: %v", err)
	}
}
