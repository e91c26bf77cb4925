package importer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/connector"
)

// listCounting is the real connection store, counting the lists Run asks.
type listCounting struct {
	*connector.Store
	lists atomic.Int64
}

func (s *listCounting) List(ctx context.Context) ([]connector.Connection, error) {
	s.lists.Add(1)
	return s.Store.List(ctx)
}

// A running Run follows the connections bucket without listing it: a
// connection created is polled, paused is dropped, resumed is polled at
// once (its status says an hour from now), deleted is dropped, with the poll interval and the scan interval
// both an hour away.
func TestRunWatchesConnections(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	store, err := connector.NewStore(ctx, e.js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	conns := &listCounting{Store: store}
	mb1, mb2 := newFakeMailbox(), newFakeMailbox()
	mbs := fakeMailboxes{"con_w1": mb1, "con_w2": mb2}
	cfg := Config{Replica: "r1", SpoolDir: t.TempDir(), PollInterval: time.Hour, ScanInterval: time.Hour}
	im, err := New(ctx, e.js, Deps{Connections: conns, Mailboxes: mbs, Store: e.store, Events: e.events}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- im.Run(ctx) }()

	imported := func() int { n, _ := e.events.counts(); return n }
	mail := func(mb *fakeMailbox, i int) {
		mb.deliver("inbox", connector.Message{InternetMessageID: "<w" + string(rune('a'+i)) + "@x>", ReceivedAt: t0.Add(time.Duration(i) * time.Minute)},
			file("w.pdf", "application/pdf", pdfDoc(100+i)))
	}
	c1 := testConnection("con_w1")
	c1.CreatedAt = time.Time{}
	mail(mb1, 0)
	if _, err := store.Create(ctx, c1); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return imported() == 1 })
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 1 })

	setState := func(id string, s connector.State) {
		t.Helper()
		if _, err := store.Update(ctx, id, func(c *connector.Connection) error { c.State = s; return nil }); err != nil {
			t.Fatal(err)
		}
	}
	setState("con_w1", connector.StatePaused)
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 0 })
	mail(mb1, 1) // waits for the resume

	setState("con_w1", connector.StateActive) // due at once, not in an hour
	waitFor(t, func() bool { return imported() == 2 })
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 1 })

	if _, err := store.Delete(ctx, "con_w1", "test"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 0 })
	mail(mb1, 2) // never imported: its connection is deleted

	c2 := testConnection("con_w2")
	c2.CreatedAt = time.Time{}
	mail(mb2, 3)
	if _, err := store.Create(ctx, c2); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return imported() == 3 })
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 1 })
	if n := mb1.callCount("delta"); n != 2 {
		t.Errorf("the deleted connection's mailbox was asked %d delta rounds, want 2 (created, resumed)", n)
	}
	if n := conns.lists.Load(); n != 0 {
		t.Errorf("Run listed the connections %d times, want 0", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// breakingWatcher is a fake connection store whose first watch breaks
// after its first list.
type breakingWatcher struct {
	*fakeConnections
	calls atomic.Int64
	brk   chan struct{}
}

func (w *breakingWatcher) Watch(ctx context.Context, all func([]connector.Connection), _ func(connector.Connection)) error {
	list, err := w.fakeConnections.List(ctx)
	if err != nil {
		return err
	}
	all(list)
	if w.calls.Add(1) == 1 {
		select {
		case <-w.brk:
			return errors.New("watcher broke")
		case <-ctx.Done():
			return nil
		}
	}
	<-ctx.Done()
	return nil
}

// A watch that breaks is started again, and its whole list resyncs Run
// with what changed while it was down.
func TestRunResyncsAfterWatchBreaks(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 10)
	w := &breakingWatcher{fakeConnections: e.conns, brk: make(chan struct{})}
	im, err := New(context.Background(), e.js, Deps{Connections: w, Mailboxes: e.mbs, Store: e.store, Events: e.events},
		Config{Replica: "r1", SpoolDir: t.TempDir(), PollInterval: time.Hour, ScanInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- im.Run(ctx) }()
	waitFor(t, func() bool { n, _ := e.events.counts(); return n == want.imported })
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 1 })
	if _, err := e.conns.Update(ctx, e.conn.ID, func(c *connector.Connection) error { c.State = connector.StatePaused; return nil }); err != nil {
		t.Fatal(err)
	}
	close(w.brk) // the pause is not seen as a change, only in the next watch's list
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 0 })
	if n := w.calls.Load(); n != 2 {
		t.Errorf("%d watches, want 2", n)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
