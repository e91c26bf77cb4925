package bench

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer"
)

// timing sums the wall time mailgate spends in each collaborator of the
// importer, to tell where a scenario's time goes. Content streams count
// from the request until the caller closed them.
type timing struct {
	graph, store, events atomic.Int64 // nanoseconds
}

func (t *timing) reset() { t.graph.Store(0); t.store.Store(0); t.events.Store(0) }

// split describes the shares of elapsed; the rest is the importer's own
// work: ledger and cursor in NATS KV, policy, spooling and hashing.
func (t *timing) split(elapsed time.Duration) string {
	if elapsed <= 0 {
		return ""
	}
	g, s, e := time.Duration(t.graph.Load()), time.Duration(t.store.Load()), time.Duration(t.events.Load())
	pct := func(d time.Duration) float64 { return 100 * d.Seconds() / elapsed.Seconds() }
	var b strings.Builder
	fmt.Fprintf(&b, "time in Graph (streams until closed) %.0f%%, store Put %.0f%%, event publish %.0f%%", pct(g), pct(s), pct(e))
	if rest := elapsed - g - s - e; rest > 0 {
		fmt.Fprintf(&b, ", rest (KV ledger, policy, spool) %.0f%%", pct(rest))
	}
	return b.String()
}

func since(acc *atomic.Int64, t0 time.Time) { acc.Add(int64(time.Since(t0))) }

type timedStore struct {
	importer.Store
	t *timing
}

func (s timedStore) Put(ctx context.Context, key string, body io.Reader, size int64, sha256hex string, meta archive.Meta) (archive.ObjectRef, error) {
	defer since(&s.t.store, time.Now())
	return s.Store.Put(ctx, key, body, size, sha256hex, meta)
}

type timedEvents struct {
	importer.Events
	t *timing
}

func (e timedEvents) Imported(ctx context.Context, id string, d archive.Imported) error {
	defer since(&e.t.events, time.Now())
	return e.Events.Imported(ctx, id, d)
}

func (e timedEvents) Skipped(ctx context.Context, id string, d archive.Skipped) error {
	defer since(&e.t.events, time.Now())
	return e.Events.Skipped(ctx, id, d)
}

type timedMailbox struct {
	importer.Mailbox
	t      *timing
	deltas *atomic.Int64 // delta requests
}

func (m timedMailbox) Delta(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error) {
	m.deltas.Add(1)
	defer sinceNow(&m.t.graph)()
	return m.Mailbox.Delta(ctx, folder, link, since)
}

func (m timedMailbox) Attachments(ctx context.Context, messageID string, sink connector.Sink) ([]connector.Attachment, error) {
	defer sinceNow(&m.t.graph)()
	return m.Mailbox.Attachments(ctx, messageID, sink)
}

func (m timedMailbox) OpenAttachment(ctx context.Context, messageID, attachmentID string) (io.ReadCloser, error) {
	t0 := time.Now()
	rc, err := m.Mailbox.OpenAttachment(ctx, messageID, attachmentID)
	if err != nil {
		since(&m.t.graph, t0)
		return nil, err
	}
	return &timedBody{ReadCloser: rc, acc: &m.t.graph, t0: t0}, nil
}

func sinceNow(acc *atomic.Int64) func() {
	t0 := time.Now()
	return func() { since(acc, t0) }
}

// timedBody counts a content stream until Close.
type timedBody struct {
	io.ReadCloser
	acc  *atomic.Int64
	t0   time.Time
	done atomic.Bool
}

func (b *timedBody) Close() error {
	err := b.ReadCloser.Close()
	if b.done.CompareAndSwap(false, true) {
		since(b.acc, b.t0)
	}
	return err
}
