package archive_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
)

// TestEventSizeBound: the publisher bounds an event by half the
// connected server's max_payload (here 16 KiB) and refuses a larger one
// with ErrEventRefused before sending it, the item's failure; an event
// within the bound is stored.
func TestEventSizeBound(t *testing.T) {
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoLog: true, NoSigs: true, MaxPayload: 16 << 10})
	if err != nil {
		t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("server not ready")
	}
	t.Cleanup(srv.Shutdown)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	ev := sampleImported("firma")
	ev.Invoice = &archive.Invoice{Number: "RE-1", IBAN: []string{strings.Repeat("D", 9<<10)}}
	err = pub.Imported(ctx, "doc_big", ev)
	if !errors.Is(err, archive.ErrEventRefused) {
		t.Fatalf("a 9 KiB event under a 16 KiB max_payload: err = %v, want ErrEventRefused", err)
	}
	ev.Invoice.IBAN = []string{"DE02120300000000202051"}
	if err := pub.Imported(ctx, "doc_small", ev); err != nil {
		t.Fatalf("a small event: %v", err)
	}
}
