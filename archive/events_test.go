package archive_test

import (
	"context"
	"errors"
	"reflect"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func sampleImported(customer string) archive.Imported {
	return archive.Imported{
		Customer:   customer,
		Connection: "conn-1",
		Mailbox:    "rechnungen@firma.de",
		Message: archive.MessageInfo{
			InternetMessageID: "<abc@firma.de>",
			From:              "lieferant@example.com",
			Subject:           "Rechnung 2026-001",
			ReceivedAt:        time.Date(2026, 3, 9, 8, 0, 0, 0, time.UTC),
		},
		Document: archive.DocumentInfo{Name: "RE-2026-001.pdf", Size: 12345, SHA256: sum([]byte("x")), ContentType: "application/pdf", DeclaredContentType: "application/octet-stream", Kind: archive.KindPDF},
		Object:   archive.ObjectRef{Bucket: "b", Key: "k"},
	}
}

func streamMsgs(t *testing.T, js jetstream.JetStream) uint64 {
	t.Helper()
	s, err := js.Stream(context.Background(), archive.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func TestEnsureStream(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	for i := range 2 {
		s, err := archive.EnsureStream(ctx, js, archive.StreamConfig{})
		if err != nil {
			t.Fatalf("EnsureStream %d: %v", i, err)
		}
		cfg := s.CachedInfo().Config
		if cfg.Duplicates != 24*time.Hour || cfg.Storage != jetstream.FileStorage || !reflect.DeepEqual(cfg.Subjects, []string{"mailgate.>"}) || cfg.MaxAge != 0 {
			t.Errorf("stream config = dup %v storage %v subjects %v maxage %v", cfg.Duplicates, cfg.Storage, cfg.Subjects, cfg.MaxAge)
		}
	}
	s, err := archive.EnsureStream(ctx, js, archive.StreamConfig{DuplicateWindow: 48 * time.Hour, MaxAge: 90 * 24 * time.Hour})
	if err != nil {
		t.Fatalf("update: %v", err)
	}
	if c := s.CachedInfo().Config; c.Duplicates != 48*time.Hour || c.MaxAge != 90*24*time.Hour {
		t.Errorf("updated config = dup %v maxage %v", c.Duplicates, c.MaxAge)
	}
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{DuplicateWindow: time.Hour}); err == nil {
		t.Error("a 1h duplicate window was accepted")
	}
}

func TestSubject(t *testing.T) {
	tests := []struct{ customer, typ, want string }{
		{"acme", archive.TypeImported, "mailgate.acme.document.imported"},
		{"acme", archive.TypeSkipped, "mailgate.acme.document.skipped"},
		{"acme", archive.TypeConnectionChanged, "mailgate.acme.connection.changed"},
		{"acme", "document.imported", "mailgate.acme.document.imported"},
	}
	for _, tt := range tests {
		if got := archive.Subject(tt.customer, tt.typ); got != tt.want {
			t.Errorf("Subject(%q, %q) = %q, want %q", tt.customer, tt.typ, got, tt.want)
		}
	}
	for _, bad := range []string{"", "a.b", "a*", ">", "a b", "a\tb"} {
		if archive.ValidCustomer(bad) == nil {
			t.Errorf("ValidCustomer(%q) = nil, want error", bad)
		}
	}
}

func TestPublishOnceForTheSameID(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	p := archive.NewPublisher(js, "mailgate")
	d := sampleImported("acme")
	for i := range 3 {
		if err := p.Imported(ctx, "doc-1", d); err != nil {
			t.Fatalf("publish %d: %v", i, err)
		}
	}
	if n := streamMsgs(t, js); n != 1 {
		t.Errorf("stream holds %d messages after 3 publishes of one id, want 1", n)
	}
	if err := p.Skipped(ctx, "doc-2", archive.Skipped{Customer: "acme", Connection: "conn-1", Name: "logo.png", Reason: archive.ReasonInline}); err != nil {
		t.Fatal(err)
	}
	if err := p.ConnectionChanged(ctx, archive.ConnectionChanged{Customer: "acme", Connection: "conn-1", From: "pending", To: "active", Action: "redeem"}); err != nil {
		t.Fatal(err)
	}
	if err := p.ConnectionChanged(ctx, archive.ConnectionChanged{Customer: "acme", Connection: "conn-1", From: "active", To: "paused", Action: "pause"}); err != nil {
		t.Fatal(err)
	}
	if n := streamMsgs(t, js); n != 4 {
		t.Errorf("stream holds %d messages, want 4", n)
	}
	if err := p.Imported(ctx, "doc-3", sampleImported("bad.customer")); err == nil {
		t.Error("published for an invalid customer")
	}
}

func TestPublishFailsWithoutStream(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := archive.NewPublisher(js, "mailgate").Imported(ctx, "doc-1", sampleImported("acme"))
	if err == nil {
		t.Fatal("publish without the stream succeeded")
	}
	t.Logf("publish without stream: %v", err)
}

func TestPublishFailsWhenServerIsDown(t *testing.T) {
	srv := archivetest.RunServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := archive.EnsureStream(context.Background(), js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	srv.Shutdown()
	srv.WaitForShutdown()

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := archive.NewPublisher(js, "mailgate").Imported(ctx, "doc-1", sampleImported("acme")); err == nil {
		t.Fatal("publish with the server down succeeded")
	} else {
		t.Logf("publish with server down: %v", err)
	}
}

// runSubscriber runs Subscribe in a goroutine owned by the test and returns
// a function that stops it and returns Subscribe's error.
func runSubscriber(t *testing.T, js jetstream.JetStream, cfg archive.SubscribeConfig, handle func(context.Context, *archive.Delivery) error) (stop func() error, ctx context.Context) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var err error
	wg.Go(func() { err = archive.Subscribe(ctx, js, cfg, handle) })
	stopped := false
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			wg.Wait()
		}
		return err
	}
	t.Cleanup(func() { _ = stop() })
	return stop, ctx
}

func TestSubscribeRoundTripAndFilters(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	p := archive.NewPublisher(js, "mailgate")
	want := sampleImported("acme")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.Imported(ctx, "acme-1", want))
	must(p.Imported(ctx, "other-1", sampleImported("other")))
	must(p.Skipped(ctx, "acme-2", archive.Skipped{Customer: "acme", Connection: "conn-1", Reason: archive.ReasonTooSmall}))
	must(p.Imported(ctx, "acme-3", want))

	got := make(chan *archive.Delivery, 10)
	stop, _ := runSubscriber(t, js, archive.SubscribeConfig{Customer: "acme", Types: []string{archive.TypeImported}},
		func(_ context.Context, d *archive.Delivery) error { got <- d; return nil })
	var ids []string
	for len(ids) < 2 {
		select {
		case d := <-got:
			ids = append(ids, d.Event.ID)
			if d.Event.Type != archive.TypeImported || d.Subject != "mailgate.acme.document.imported" || d.Seq == 0 {
				t.Errorf("delivery %+v", d)
			}
			imp, ok := d.Event.Data.(*archive.Imported)
			if !ok || !reflect.DeepEqual(*imp, want) {
				t.Errorf("data = %#v, want %#v", d.Event.Data, want)
			}
			if d.Event.Source != "mailgate/acme/conn-1" || d.Event.SpecVersion != "1.0" {
				t.Errorf("envelope source %q specversion %q", d.Event.Source, d.Event.SpecVersion)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("got %v, want 2 acme imported events", ids)
		}
	}
	if err := stop(); err != nil {
		t.Errorf("Subscribe returned %v after cancel, want nil", err)
	}
	if !reflect.DeepEqual(ids, []string{"acme-1", "acme-3"}) {
		t.Errorf("ids = %v, want [acme-1 acme-3]", ids)
	}
	select {
	case d := <-got:
		t.Errorf("unexpected extra delivery %s", d.Event.ID)
	default:
	}
}

func TestSubscribeRedeliversWhatWasNotAcked(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := archive.NewPublisher(js, "mailgate").Imported(ctx, "doc-1", sampleImported("acme")); err != nil {
		t.Fatal(err)
	}
	cfg := archive.SubscribeConfig{Durable: "dms", AckWait: time.Second}

	// First subscriber dies while handling: its context ends before it acks.
	first := make(chan *archive.Delivery, 1)
	stop1, _ := runSubscriber(t, js, cfg, func(ctx context.Context, d *archive.Delivery) error {
		first <- d
		<-ctx.Done() // "crash" mid-work
		return ctx.Err()
	})
	var d1 *archive.Delivery
	select {
	case d1 = <-first:
	case <-time.After(10 * time.Second):
		t.Fatal("first subscriber got nothing")
	}
	if err := stop1(); err != nil {
		t.Fatalf("first Subscribe: %v", err)
	}

	// Second subscriber on the same durable gets it again after AckWait.
	second := make(chan *archive.Delivery, 4)
	stop2, _ := runSubscriber(t, js, cfg, func(_ context.Context, d *archive.Delivery) error { second <- d; return nil })
	select {
	case d2 := <-second:
		if d2.Event.ID != "doc-1" || d2.Seq != d1.Seq || d2.NumDelivered != 2 {
			t.Errorf("redelivery id %s seq %d delivered %d; want doc-1 seq %d delivered 2", d2.Event.ID, d2.Seq, d2.NumDelivered, d1.Seq)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("unacknowledged event was not redelivered")
	}
	if err := stop2(); err != nil {
		t.Fatal(err)
	}
	assertNoPending(t, js, "dms")
}

func TestSubscribeNaksOnHandlerError(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if err := archive.NewPublisher(js, "mailgate").Imported(ctx, "doc-1", sampleImported("acme")); err != nil {
		t.Fatal(err)
	}
	deliveries := make(chan uint64, 4)
	calls := 0
	stop, _ := runSubscriber(t, js, archive.SubscribeConfig{Durable: "dms", AckWait: time.Minute}, func(_ context.Context, d *archive.Delivery) error {
		calls++
		deliveries <- d.NumDelivered
		if calls == 1 {
			return errors.New("dms is busy")
		}
		return nil
	})
	for want := uint64(1); want <= 2; want++ {
		select {
		case n := <-deliveries:
			if n != want {
				t.Errorf("delivery count %d, want %d", n, want)
			}
		case <-time.After(10 * time.Second): // far below AckWait: the nak made it come back
			t.Fatalf("delivery %d did not come", want)
		}
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertNoPending(t, js, "dms")
}

func assertNoPending(t *testing.T, js jetstream.JetStream, durable string) {
	t.Helper()
	c, err := js.Consumer(context.Background(), archive.StreamName, durable)
	if err != nil {
		t.Fatal(err)
	}
	info, err := c.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if info.NumAckPending != 0 || info.NumPending != 0 {
		t.Errorf("consumer %s: ack pending %d, pending %d; want 0, 0", durable, info.NumAckPending, info.NumPending)
	}
}

func TestSubscribeFailsWithoutStream(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	err := archive.Subscribe(context.Background(), js, archive.SubscribeConfig{}, func(context.Context, *archive.Delivery) error { return nil })
	if !errors.Is(err, jetstream.ErrStreamNotFound) {
		t.Errorf("Subscribe without stream = %v, want ErrStreamNotFound", err)
	}
}

func TestSubscribeResumesDurableWithNewStart(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	p := archive.NewPublisher(js, "mailgate")
	for _, id := range []string{"a", "b", "c"} {
		if err := p.Imported(ctx, id, sampleImported("acme")); err != nil {
			t.Fatal(err)
		}
	}
	got := make(chan string, 8)
	handle := func(_ context.Context, d *archive.Delivery) error { got <- d.Event.ID; return nil }
	next := func() string {
		t.Helper()
		select {
		case id := <-got:
			return id
		case <-time.After(10 * time.Second):
			t.Fatal("no delivery")
			return ""
		}
	}

	// Start at sequence 2: b, c.
	stop, _ := runSubscriber(t, js, archive.SubscribeConfig{Durable: "dms", StartSeq: 2}, handle)
	if a, b := next(), next(); a != "b" || b != "c" {
		t.Fatalf("got %s %s, want b c", a, b)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	if err := p.Imported(ctx, "d", sampleImported("acme")); err != nil {
		t.Fatal(err)
	}
	// Restart with another start: the durable keeps its position.
	stop, _ = runSubscriber(t, js, archive.SubscribeConfig{Durable: "dms", StartSeq: 1}, handle)
	if id := next(); id != "d" {
		t.Errorf("after restart got %s, want d", id)
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSubscribeTerminatesUndecodableEvents(t *testing.T) {
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, "mailgate.acme.document.imported", []byte(`{"specversion":"0.3"}`)); err != nil {
		t.Fatal(err)
	}
	if err := archive.NewPublisher(js, "mailgate").Imported(ctx, "good", sampleImported("acme")); err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 4)
	stop, _ := runSubscriber(t, js, archive.SubscribeConfig{Durable: "dms"}, func(_ context.Context, d *archive.Delivery) error {
		got <- d.Event.ID
		return nil
	})
	select {
	case id := <-got:
		if id != "good" {
			t.Errorf("first delivery %q, want good", id)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertNoPending(t, js, "dms")
}
