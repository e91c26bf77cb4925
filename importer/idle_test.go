package importer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/connector"
)

// countingKV counts the reads and writes a bucket is asked for.
type countingKV struct {
	jetstream.KeyValue
	reads, writes *atomic.Int64
}

func (c countingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	c.reads.Add(1)
	return c.KeyValue.Get(ctx, key)
}

func (c countingKV) Put(ctx context.Context, key string, v []byte) (uint64, error) {
	c.writes.Add(1)
	return c.KeyValue.Put(ctx, key, v)
}

func (c countingKV) Create(ctx context.Context, key string, v []byte, opts ...jetstream.KVCreateOpt) (uint64, error) {
	c.writes.Add(1)
	return c.KeyValue.Create(ctx, key, v, opts...)
}

func (c countingKV) Update(ctx context.Context, key string, v []byte, rev uint64) (uint64, error) {
	c.writes.Add(1)
	return c.KeyValue.Update(ctx, key, v, rev)
}

func (c countingKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	c.writes.Add(1)
	return c.KeyValue.Delete(ctx, key, opts...)
}

type kvCounts struct{ reads, writes atomic.Int64 }

// countKV wraps the importer's buckets: data (cursors, imports) and
// leases are counted apart.
func countKV(im *Importer) (data, leases *kvCounts) {
	data, leases = new(kvCounts), new(kvCounts)
	im.ledger.cursors = countingKV{im.ledger.cursors, &data.reads, &data.writes}
	im.ledger.imports = countingKV{im.ledger.imports, &data.reads, &data.writes}
	im.ledger.leases = countingKV{im.ledger.leases, &leases.reads, &leases.writes}
	return data, leases
}

// streamSeq is the last sequence of a KV bucket's stream: it grows with
// every write that reaches the disk.
func streamSeq(t *testing.T, js jetstream.JetStream, bucket string) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), "KV_"+bucket)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.LastSeq
}

// An idle poll, a delta round that brings nothing new, writes nothing to
// the cursors and imports buckets: the delta link stays, and the status
// is not rewritten for LastSync and NextSync alone. What comes later is
// still found from the kept link, and the status still tells it.
func TestIdlePollWritesNothing(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", Subject: "A", ReceivedAt: t0}, file("a.pdf", "application/pdf", pdfDoc(1)))
	im := e.importer(t, "r1", nil)
	if res := e.sync(t, im); res.Imported != 1 {
		t.Fatalf("first pass imported %d, want 1", res.Imported)
	}
	data, leases := countKV(im)
	cursors, imports := streamSeq(t, e.js, bucketCursors), streamSeq(t, e.js, bucketImports)
	const polls = 20
	for range polls {
		e.clock.After(time.Minute)
		if res := e.sync(t, im); res.Messages != 0 || res.Pages != 1 {
			t.Fatalf("idle pass: %+v", res)
		}
	}
	if got := streamSeq(t, e.js, bucketCursors) - cursors; got != 0 {
		t.Errorf("%d writes reached the cursors bucket in %d idle polls, want 0", got, polls)
	}
	if got := streamSeq(t, e.js, bucketImports) - imports; got != 0 {
		t.Errorf("%d writes reached the imports bucket in %d idle polls, want 0", got, polls)
	}
	if w := data.writes.Load(); w != 0 {
		t.Errorf("%d data KV writes in %d idle polls, want 0", w, polls)
	}
	t.Logf("per idle poll: %.1f data KV reads, %.1f lease writes, %.1f lease reads",
		float64(data.reads.Load())/polls, float64(leases.writes.Load())/polls, float64(leases.reads.Load())/polls)

	// The kept delta link still brings what is new, and a change is written.
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", Subject: "B", ReceivedAt: t0.Add(time.Hour)}, file("b.pdf", "application/pdf", pdfDoc(2)))
	if res := e.sync(t, im); res.Imported != 1 {
		t.Fatalf("pass after the idle ones imported %d, want 1", res.Imported)
	}
	st, err := im.Status(context.Background(), e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if st.Imported != 2 || len(st.Recent) != 2 {
		t.Errorf("status: imported %d, recent %d; want 2, 2", st.Imported, len(st.Recent))
	}
	if data.writes.Load() == 0 {
		t.Error("a pass that imported wrote nothing")
	}
	// Idle again: nothing written once more.
	w := data.writes.Load()
	e.clock.After(time.Minute)
	e.sync(t, im)
	if got := data.writes.Load() - w; got != 0 {
		t.Errorf("idle pass after an import wrote %d times, want 0", got)
	}
}

// A round that lists only removals is idle too, and a failing round is
// still written: the status shows the error, and the recovery clears it.
func TestIdlePollRemovalsAndErrors(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	id := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", Subject: "A", ReceivedAt: t0}, file("a.pdf", "application/pdf", pdfDoc(1)))
	im := e.importer(t, "r1", nil)
	e.sync(t, im)
	data, _ := countKV(im)
	e.mb.personMove(id, "elsewhere")
	e.clock.After(time.Minute)
	if res := e.sync(t, im); res.Messages != 0 {
		t.Fatalf("removal round: %+v", res)
	}
	if w := data.writes.Load(); w != 0 {
		t.Errorf("a round of removals wrote %d times, want 0", w)
	}

	e.mb.mu.Lock()
	e.mb.fault = func(op, _ string) error {
		if op == "delta" {
			return connector.E("fake", connector.Invalid, errors.New("broken"))
		}
		return nil
	}
	e.mb.mu.Unlock()
	e.clock.After(time.Minute)
	if _, err := im.SyncNow(context.Background(), e.conn.ID); err == nil {
		t.Fatal("failing pass: no error")
	}
	st, _ := im.Status(context.Background(), e.conn.ID)
	if st.LastError == "" || st.ConsecutiveErrors != 1 || !st.NextSync.After(e.clock.Now()) {
		t.Errorf("status after a failure: %+v", st)
	}
	e.mb.mu.Lock()
	e.mb.fault = nil
	e.mb.mu.Unlock()
	e.clock.After(time.Hour)
	e.sync(t, im)
	st, _ = im.Status(context.Background(), e.conn.ID)
	if st.LastError != "" || st.ConsecutiveErrors != 0 {
		t.Errorf("status after recovery: %+v", st)
	}
}

// Run's idle poll peeks without the lease: no write in any bucket, leases
// included. A poll that finds new mail takes the lease and works the page
// peek fetched, without asking Graph for it again.
func TestIdlePollPeeksWithoutLease(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", Subject: "A", ReceivedAt: t0}, file("a.pdf", "application/pdf", pdfDoc(1)))
	im := e.importer(t, "r1", func(c *Config) { c.PollInterval = time.Minute })
	ctx := context.Background()
	e.sync(t, im)
	data, leases := countKV(im)
	seqs := func() (n uint64) {
		for _, b := range []string{bucketCursors, bucketImports, bucketLeases} {
			n += streamSeq(t, e.js, b)
		}
		return n
	}
	seq0 := seqs()
	const polls = 10
	for range polls {
		e.clock.After(time.Minute)
		r := im.work(ctx, runJob{id: e.conn.ID})
		if want := e.clock.Now().Add(time.Minute); !r.next.Equal(want) {
			t.Fatalf("idle poll: next %s, want %s", r.next, want)
		}
	}
	if got := seqs() - seq0; got != 0 {
		t.Errorf("%d writes reached the cursors, imports and leases buckets in %d idle polls, want 0", got, polls)
	}
	if w := data.writes.Load() + leases.writes.Load() + leases.reads.Load(); w != 0 {
		t.Errorf("idle polls touched KV %d times (writes, lease reads), want 0", w)
	}
	if r := float64(data.reads.Load()) / polls; r > 1.01 {
		t.Errorf("%.1f KV reads per idle poll, want 1 (the status; cursor and backlog remembered)", r)
	}

	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", Subject: "B", ReceivedAt: t0.Add(time.Hour)}, file("b.pdf", "application/pdf", pdfDoc(2)))
	deltas := e.mb.callCount("delta")
	e.clock.After(time.Minute)
	im.work(ctx, runJob{id: e.conn.ID})
	if n, _ := e.events.counts(); n != 2 {
		t.Fatalf("%d documents imported, want 2", n)
	}
	if got := e.mb.callCount("delta") - deltas; got != 1 {
		t.Errorf("the poll that found a mail asked %d delta rounds, want 1 (the pass takes over peek's page)", got)
	}
	if leases.writes.Load() == 0 {
		t.Error("the poll that imported took no lease")
	}
	st, _ := im.Status(ctx, e.conn.ID)
	if st.Imported != 2 {
		t.Errorf("status imported %d, want 2", st.Imported)
	}

	// A failing poll is a real pass: its error shows, and the next poll,
	// not quiet, is a real pass again that clears it.
	e.mb.mu.Lock()
	e.mb.fault = func(op, _ string) error {
		if op == "delta" {
			return connector.E("fake", connector.Invalid, errors.New("broken"))
		}
		return nil
	}
	e.mb.mu.Unlock()
	e.clock.After(time.Minute)
	im.work(ctx, runJob{id: e.conn.ID})
	if st, _ := im.Status(ctx, e.conn.ID); st.ConsecutiveErrors != 1 {
		t.Fatalf("after a failing poll: %+v", st)
	}
	e.mb.mu.Lock()
	e.mb.fault = nil
	e.mb.mu.Unlock()
	e.clock.After(time.Hour)
	w := leases.writes.Load()
	im.work(ctx, runJob{id: e.conn.ID})
	if st, _ := im.Status(ctx, e.conn.ID); st.ConsecutiveErrors != 0 || st.LastError != "" {
		t.Errorf("after recovery: %+v", st)
	}
	if leases.writes.Load() == w {
		t.Error("the poll after a failure was no real pass")
	}
}

// peek's remembered delta link may be older than the cursor when another
// replica polled meanwhile: the answer then lists what that replica
// imported, the poll becomes a real pass from the real cursor, and
// nothing is imported twice.
func TestIdlePeekAfterAnotherReplica(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", Subject: "A", ReceivedAt: t0}, file("a.pdf", "application/pdf", pdfDoc(1)))
	r1 := e.importer(t, "r1", func(c *Config) { c.PollInterval = time.Minute })
	r2 := e.importer(t, "r2", func(c *Config) { c.PollInterval = time.Minute })
	ctx := context.Background()
	e.sync(t, r1)
	e.clock.After(time.Minute)
	r1.work(ctx, runJob{id: e.conn.ID}) // idle; r1 remembers the link
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", Subject: "B", ReceivedAt: t0.Add(time.Hour)}, file("b.pdf", "application/pdf", pdfDoc(2)))
	e.sync(t, r2) // r2 imports B and moves the cursor
	e.clock.After(time.Minute)
	r1.work(ctx, runJob{id: e.conn.ID})
	if n, _ := e.events.counts(); n != 2 {
		t.Fatalf("%d documents announced, want 2 (A, B once)", n)
	}
	cur, _, err := r1.ledger.cursor(ctx, e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	r1.mu.Lock()
	q := r1.quietAt[e.conn.ID]
	r1.mu.Unlock()
	if q.cur.Link != cur.Link {
		t.Errorf("r1 remembers %q, the cursor is %q", q.cur.Link, cur.Link)
	}
	st, _ := r1.Status(ctx, e.conn.ID)
	if st.Imported != 2 {
		t.Errorf("status imported %d, want 2", st.Imported)
	}
}

// Run hands the connection it watched to the worker: an idle poll of a
// connection remembered as quiet then asks KV nothing (no status, no
// connection); one that finds mail reads both before its pass.
func TestIdlePollUsesWatchedConnection(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	im := e.importer(t, "r1", func(c *Config) { c.PollInterval = time.Minute })
	ctx := context.Background()
	e.sync(t, im)
	c := e.conn
	e.clock.After(time.Minute)
	im.work(ctx, runJob{id: c.ID, conn: &c}) // reads cursor and backlog once
	e.conns.mu.Lock()
	gets := e.conns.gets
	e.conns.mu.Unlock()
	data, leases := countKV(im)
	for range 5 {
		e.clock.After(time.Minute)
		im.work(ctx, runJob{id: c.ID, conn: &c})
	}
	e.conns.mu.Lock()
	if e.conns.gets != gets {
		t.Errorf("idle polls read the connection %d times, want 0", e.conns.gets-gets)
	}
	e.conns.mu.Unlock()
	if n := data.reads.Load() + data.writes.Load() + leases.reads.Load() + leases.writes.Load(); n != 0 {
		t.Errorf("idle polls of a connection remembered as quiet asked KV %d times, want 0", n)
	}
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", Subject: "B", ReceivedAt: t0}, file("b.pdf", "application/pdf", pdfDoc(2)))
	e.clock.After(time.Minute)
	im.work(ctx, runJob{id: c.ID, conn: &c})
	if n, _ := e.events.counts(); n != 1 {
		t.Fatalf("%d documents, want 1", n)
	}
	e.conns.mu.Lock()
	if e.conns.gets == gets {
		t.Error("the pass did not read the connection")
	}
	e.conns.mu.Unlock()
}
