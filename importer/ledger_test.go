package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/connector"
)

// losingKV loses the requests whose numbers are in lose, as a connection to
// NATS that breaks while they are in flight does: no answer ever comes, the
// request waits until its context ends.
type losingKV struct {
	jetstream.KeyValue
	mu   sync.Mutex
	n    int
	lose map[int]bool
	lost int
}

func (kv *losingKV) lost1(ctx context.Context) bool {
	kv.mu.Lock()
	kv.n++
	lose := kv.lose[kv.n]
	if lose {
		kv.lost++
	}
	kv.mu.Unlock()
	if lose {
		<-ctx.Done()
	}
	return lose
}

func (kv *losingKV) Get(ctx context.Context, key string) (jetstream.KeyValueEntry, error) {
	if kv.lost1(ctx) {
		return nil, ctx.Err()
	}
	return kv.KeyValue.Get(ctx, key)
}

func (kv *losingKV) Put(ctx context.Context, key string, value []byte) (uint64, error) {
	if kv.lost1(ctx) {
		return 0, ctx.Err()
	}
	return kv.KeyValue.Put(ctx, key, value)
}

func TestBoundedKVFailsTransientNotAsDeadline(t *testing.T) {
	kv := boundedKV{KeyValue: &losingKV{lose: map[int]bool{1: true}}, timeout: 10 * time.Millisecond}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour) // a document's deadline
	defer cancel()
	_, err := kv.Get(ctx, "k")
	if !connector.IsKind(err, connector.Transient) || !errors.Is(err, nats.ErrTimeout) {
		t.Errorf("lost request: err = %v, want a transient nats.ErrTimeout", err)
	}
	if errors.Is(err, context.DeadlineExceeded) || stopped(err) {
		t.Errorf("lost request: err = %v reads as the caller's deadline or a stop", err)
	}
	// Wrapped by the ledger, the package prefix appears once.
	kv = boundedKV{KeyValue: &losingKV{lose: map[int]bool{1: true}}, timeout: 10 * time.Millisecond}
	var v struct{}
	_, _, err = getJSON(ctx, kv, "k", &v)
	if got, want := fmt.Sprint(err), "importer: kv get k: nats: transient: NATS did not answer within 10ms: nats: timeout"; got != want {
		t.Errorf("lost request: message %q, want %q", got, want)
	}

	kv = boundedKV{KeyValue: &losingKV{lose: map[int]bool{1: true}}, timeout: time.Hour}
	ctx, cancel = context.WithCancel(context.Background())
	cancel()
	if _, err := kv.Get(ctx, "k"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled caller: err = %v, want context.Canceled", err)
	}
}

// A request lost on a breaking NATS connection costs a retry, never the
// rest of the document's deadline, and imports nothing twice.
func TestLostLedgerRequestsAreRetried(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	want := deliverMix(t, e.mb, 20)
	// One document at a time, so that the lost requests are the same ones
	// in every run.
	im := e.importer(t, "r1", func(c *Config) { c.MailWorkers, c.AttachmentWorkers = 1, 1 })
	losing := &losingKV{KeyValue: im.ledger.imports.(boundedKV).KeyValue, lose: map[int]bool{5: true, 40: true}}
	im.ledger.imports = boundedKV{KeyValue: losing, timeout: 50 * time.Millisecond}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for pass := 1; ; pass++ {
		_, err := im.SyncNow(ctx, e.conn.ID)
		if err == nil {
			break
		}
		if !connector.IsKind(err, connector.Transient) || pass == 3 {
			t.Fatalf("pass %d: %v", pass, err)
		}
	}
	if losing.lost != 2 {
		t.Fatalf("%d requests lost, want 2: the test lost none mid-import", losing.lost)
	}
	checkEvents(t, e, want)
	for _, m := range e.mb.sorted("inbox") {
		if m.msg.HasAttachments {
			t.Errorf("mail %q left in the inbox", m.msg.Subject)
		}
	}
}
