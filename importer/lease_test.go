package importer

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

func TestDeadReplicaLeaseTakenOverAfterTTL(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 10)
	im := e.importer(t, "r1", func(c *Config) { c.LeaseTTL = time.Second })
	// A replica that died holding the lease.
	if _, err := im.ledger.leases.Create(context.Background(), e.conn.ID, []byte("dead-replica")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := im.SyncNow(context.Background(), e.conn.ID); !errors.Is(err, ErrLeased) {
		t.Fatalf("SyncNow = %v, want ErrLeased while the dead lease lives", err)
	}
	for {
		_, err := im.SyncNow(context.Background(), e.conn.ID)
		if err == nil {
			break
		}
		if !errors.Is(err, ErrLeased) || time.Since(start) > 10*time.Second {
			t.Fatalf("SyncNow = %v after %v", err, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond) // the server expires the entry; nothing to await
	}
	if time.Since(start) < 900*time.Millisecond {
		t.Errorf("lease taken over after %v, before its TTL", time.Since(start))
	}
	if n, _ := e.events.counts(); n != want.imported {
		t.Errorf("%d documents imported after the takeover, want %d", n, want.imported)
	}
}

// A replica restarted under the same name (after a crash) takes its own
// lease back at once; within one process the lease still excludes a second
// pass.
func TestRestartedReplicaTakesItsLeaseBack(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 10)
	im := e.importer(t, "r1", func(c *Config) { c.LeaseTTL = time.Hour })
	if _, err := im.ledger.leases.Create(context.Background(), e.conn.ID, []byte("r1")); err != nil {
		t.Fatal(err)
	}
	if _, err := im.SyncNow(context.Background(), e.conn.ID); err != nil {
		t.Fatalf("SyncNow = %v, want the previous run's lease taken back", err)
	}
	if n, _ := e.events.counts(); n != want.imported {
		t.Errorf("%d documents imported, want %d", n, want.imported)
	}
	// While this process holds the lease, a second pass of it is refused.
	e.mb.fault = func(op, arg string) error {
		if op == "delta" {
			if _, err := im.SyncNow(context.Background(), e.conn.ID); !errors.Is(err, ErrLeased) {
				t.Errorf("nested SyncNow = %v, want ErrLeased", err)
			}
		}
		return nil
	}
	if _, err := im.SyncNow(context.Background(), e.conn.ID); err != nil {
		t.Fatal(err)
	}
	// Another replica's name is not taken back before the TTL.
	if _, err := im.ledger.leases.Put(context.Background(), e.conn.ID, []byte("r2")); err != nil {
		t.Fatal(err)
	}
	e.mb.fault = nil
	if _, err := im.SyncNow(context.Background(), e.conn.ID); !errors.Is(err, ErrLeased) {
		t.Errorf("SyncNow = %v, want ErrLeased for r2's lease", err)
	}
}

func TestLeaseRenewedDuringLongPass(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	deliverMix(t, e.mb, 10)
	im := e.importer(t, "r1", func(c *Config) { c.LeaseTTL = 600 * time.Millisecond })
	other := e.importer(t, "r2", func(c *Config) { c.LeaseTTL = 600 * time.Millisecond })
	var first atomic.Bool
	im.hook = func(s string) error {
		if s == "stored" && first.CompareAndSwap(false, true) {
			// Hold the pass for three TTLs; the renewals keep the lease.
			deadline := time.Now().Add(1800 * time.Millisecond)
			for time.Now().Before(deadline) {
				if _, err := other.SyncNow(context.Background(), e.conn.ID); !errors.Is(err, ErrLeased) {
					t.Errorf("other replica got the lease during the pass: %v", err)
					return nil
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		return nil
	}
	if _, err := im.SyncNow(context.Background(), e.conn.ID); err != nil {
		t.Fatal(err)
	}
}
