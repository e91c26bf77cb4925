package webhook

import (
	"context"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

// runService runs svc until the returned stop is called.
func runService(t *testing.T, svc *Service) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}
	t.Cleanup(stop)
	return stop
}

// TestForeignEventNeverDelivered: customer acme's endpoint consumer is
// rewritten behind mailgate's back to follow every customer (as a DMS
// identity with the old rights could). The dispatcher's handler, given
// what that consumer hands out, drops globex's event, counts and logs it,
// and delivers acme's.
func TestForeignEventNeverDelivered(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := t.Context()
	stream, err := archive.EnsureStream(ctx, js, archive.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	reg := prometheus.NewRegistry()
	svc, err := New(ctx, js, plainSealer{}, pub, Config{AllowPrivate: true, Registerer: reg, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	r, srv := newReceiver(t)
	ep, secret, err := svc.Create(ctx, "acme", Registration{URL: srv.URL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	r.secret = secret
	cc := svc.consumerConfig(ep)
	cc.FilterSubjects, cc.FilterSubject = nil, "mailgate.>"
	cons, err := stream.UpdateConsumer(ctx, cc)
	if err != nil {
		t.Fatal(err)
	}
	if err := pub.Imported(ctx, "globex-1", imported("globex", "globex-1")); err != nil {
		t.Fatal(err)
	}
	if err := pub.Imported(ctx, "acme-1", imported("acme", "acme-1")); err != nil {
		t.Fatal(err)
	}
	batch, err := cons.Fetch(2, jetstream.FetchMaxWait(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	var subjects []string
	for msg := range batch.Messages() {
		subjects = append(subjects, msg.Subject())
		svc.handle(ctx, ep.ID, cons, msg)
	}
	if len(subjects) != 2 {
		t.Fatalf("the tampered consumer handed out %v, want both customers' events", subjects)
	}
	r.mu.Lock()
	if r.got["acme-1"] == nil || r.got["globex-1"] != nil || r.calls != 1 {
		t.Errorf("acme's endpoint got %v in %d calls, want acme-1 only", keys(r.got), r.calls)
	}
	r.mu.Unlock()
	if n := testutil.ToFloat64(svc.foreign.WithLabelValues("acme", ep.ID)); n != 1 {
		t.Errorf("mailgate_webhook_foreign_events_total = %v, want 1", n)
	}
	if info, err := cons.Info(ctx); err != nil || info.AckFloor.Stream != 2 {
		t.Errorf("after both: %+v, %v; want both settled, the foreign one terminated", info, err)
	}
}

// TestVanishedConsumerResumesFromCursor: an endpoint's consumer is deleted
// (here by the test as admin) while mailgate is stopped, and again while
// it runs. Every event published meanwhile is delivered, each exactly once:
// the consumer is made again from the acknowledged floor kept in KV, not
// at the stream's end.
func TestVanishedConsumerResumesFromCursor(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := t.Context()
	stream, err := archive.EnsureStream(ctx, js, archive.StreamConfig{})
	if err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	newSvc := func() *Service {
		svc, err := New(ctx, js, plainSealer{}, pub, Config{AllowPrivate: true, RetryMin: 100 * time.Millisecond, RetryMax: time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return svc
	}
	publish := func(ids ...string) {
		t.Helper()
		for _, id := range ids {
			if err := pub.Imported(ctx, id, imported("acme", id)); err != nil {
				t.Fatal(err)
			}
		}
	}
	svc := newSvc()
	stop := runService(t, svc)
	r, srv := newReceiver(t)
	ep, secret, err := svc.Create(ctx, "acme", Registration{URL: srv.URL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	r.secret = secret
	publish("e1", "e2")
	r.wait(t, 2, 10*time.Second)
	// The cursor follows the acknowledgements.
	waitCursor(t, svc, ep.ID, 2)
	stop()
	if err := stream.DeleteConsumer(ctx, consumerName(ep.ID)); err != nil {
		t.Fatal(err)
	}
	publish("e3", "e4", "e5")
	runService(t, newSvc())
	got := r.wait(t, 5, 20*time.Second)
	for _, id := range []string{"e3", "e4", "e5"} {
		if got[id] == nil {
			t.Errorf("%s, published while the consumer was gone, not delivered after the restart", id)
		}
	}

	// Deleted under a running dispatcher, once e5's acknowledgement is
	// in the cursor (one delivered but not yet acknowledged comes again:
	// deliveries are at least once).
	waitCursor(t, svc, ep.ID, 5)
	if err := stream.DeleteConsumer(ctx, consumerName(ep.ID)); err != nil {
		t.Fatal(err)
	}
	publish("e6", "e7")
	got = r.wait(t, 7, 60*time.Second)
	for _, id := range []string{"e6", "e7"} {
		if got[id] == nil {
			t.Errorf("%s, published after the consumer was deleted under the running dispatcher, not delivered", id)
		}
	}
	// A last event: deliveries are in order, so everything before it is
	// in when it arrives; then count the calls.
	publish("e8")
	r.wait(t, 8, 20*time.Second)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.calls != 8 || len(r.got) != 8 {
		t.Errorf("%d deliveries of %d events, want each of e1..e8 once: %v", r.calls, len(r.got), keys(r.got))
	}
	if _, err := stream.Consumer(ctx, consumerName(ep.ID)); err != nil {
		t.Errorf("consumer after all: %v", err)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) { w.t.Log(string(p)); return len(p), nil }

// waitCursor waits until endpoint id's cursor reaches seq.
func waitCursor(t *testing.T, svc *Service, id string, seq uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	w, err := svc.cursors.Watch(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = w.Stop() }()
	for {
		select {
		case e := <-w.Updates():
			if e == nil {
				continue
			}
			if n, err := strconv.ParseUint(string(e.Value()), 10, 64); err == nil && n >= seq {
				return
			}
		case <-ctx.Done():
			n, err := svc.cursor(t.Context(), id)
			t.Fatalf("cursor of %s at %d (%v), want %d", id, n, err, seq)
		}
	}
}
