package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/internal/kvrec"
	"github.com/mailgate/mailgate/internal/natscluster"
)

// TestCompareAndSetOnR3 runs the importer's compare-and-set writes against
// a 3-node JetStream cluster with buckets replicated three times, as a
// production cluster has them. A replicated stream checks a write's
// expected revision twice: before proposing it, where a write to the same
// key still in flight makes it fail with error 10164, and when applying it
// (10071, as a single server). 10164 matches jetstream.ErrKeyRevisionMismatch
// but not ErrKeyExists, so the race between two replicas, which is what
// compare-and-set is for, is exactly the case a check of ErrKeyExists alone
// misses. Each part races writers until the cluster has answered 10164 at
// least once and demands that every loser saw a conflict for what it is.
func TestCompareAndSetOnR3(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-node NATS cluster; skipped with -short")
	}
	ctx := context.Background()
	cl := natscluster.Start(t, 3)
	nc, err := nats.Connect(cl.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c := testConnection("con_cas")
	im, err := New(ctx, js, Deps{
		Connections: newFakeConnections(c), Mailboxes: fakeMailboxes{}, Store: newMemStore(), Events: newRecEvents(),
	}, Config{Replica: "r1", Replicas: 3, LeaseTTL: time.Hour, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	for name, kv := range map[string]jetstream.KeyValue{"cursors": im.ledger.cursors, "leases": im.ledger.leases} {
		st, err := kv.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if r := st.(*jetstream.KeyValueBucketStatus).StreamInfo().Config.Replicas; r != 3 {
			t.Fatalf("bucket %s has %d replicas, want 3", name, r)
		}
	}
	cursors := &conflictKV{KeyValue: im.ledger.cursors}
	leases := &conflictKV{KeyValue: im.ledger.leases}
	im.ledger.cursors, im.ledger.leases = cursors, leases

	t.Run("conflict_is_not_ErrKeyExists", func(t *testing.T) {
		var rev uint64
		race(t, cursors, 1, func() {
			var err error
			if rev, err = cursors.Put(ctx, "probe", []byte("0")); err != nil {
				t.Fatal(err)
			}
		}, func(i int) error {
			_, err := cursors.Update(ctx, "probe", fmt.Appendf(nil, "%d", i), rev)
			return err
		}, func(err error) bool {
			var apiErr *jetstream.APIError
			if !errors.As(err, &apiErr) {
				return false
			}
			switch apiErr.ErrorCode {
			case jetstream.JSErrCodeStreamWrongLastSequenceConstant:
				if errors.Is(err, jetstream.ErrKeyExists) {
					t.Errorf("10164 matches ErrKeyExists: %v", err)
				}
			case jetstream.JSErrCodeStreamWrongLastSequence:
			default:
				return false
			}
			return errors.Is(err, jetstream.ErrKeyRevisionMismatch) && kvrec.Conflict(err)
		})
	})

	t.Run("commit_cursor", func(t *testing.T) {
		var rev uint64
		race(t, cursors, 1, func() {
			// Each round starts from a committed cursor that every racer
			// has read at the same revision.
			if err := im.ledger.dropCursor(ctx, c.ID, 0); err != nil {
				t.Fatal(err)
			}
			var err error
			if rev, err = im.ledger.commitCursor(ctx, c.ID, cursor{Folder: "inbox", Link: "start"}, 0); err != nil {
				t.Fatal(err)
			}
		}, func(i int) error {
			_, err := im.ledger.commitCursor(ctx, c.ID, cursor{Folder: "inbox", Link: fmt.Sprint(i)}, rev)
			return err
		}, isCursorMoved)
		// A first commit (revision 0) over a cursor another replica made.
		if _, err := im.ledger.commitCursor(ctx, c.ID, cursor{Folder: "inbox", Link: "late"}, 0); !errors.Is(err, errCursorMoved) {
			t.Errorf("first commit over an existing cursor: %v, want errCursorMoved", err)
		}
	})

	t.Run("drop_cursor", func(t *testing.T) {
		var rev uint64
		race(t, cursors, 1, func() {
			if err := im.ledger.dropCursor(ctx, c.ID, 0); err != nil {
				t.Fatal(err)
			}
			var err error
			if rev, err = im.ledger.commitCursor(ctx, c.ID, cursor{Folder: "inbox", Link: "start"}, 0); err != nil {
				t.Fatal(err)
			}
		}, func(int) error {
			return im.ledger.dropCursor(ctx, c.ID, rev)
		}, isCursorMoved)
	})

	t.Run("backlog", func(t *testing.T) {
		// Racers park one mail each in the same backlog record: kvrec
		// retries every conflict, so none fails and none is lost.
		const racers = 8
		before := cursors.replicated.Load()
		errs := make([]error, racers)
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				_, errs[i] = im.ledger.updateBacklog(ctx, c.ID, func(b *backlog) error {
					b.Parked[fmt.Sprint("mail", i)] = &parkedMail{Attempts: 1}
					return nil
				})
			})
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Errorf("racer %d: %v", i, err)
			}
		}
		b, _, err := im.ledger.backlog(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Parked) != racers {
			t.Errorf("%d mails parked, want %d: updates lost", len(b.Parked), racers)
		}
		t.Logf("%d racers parked in one backlog; %d conflicts answered 10164", racers, cursors.replicated.Load()-before)
	})

	t.Run("lease_after_release", func(t *testing.T) {
		// A released lease is a deleted key, which Create writes over at
		// the delete marker's revision; of racers for it one wins and
		// the others see the lease as taken. (Racers of one replica name
		// may each win, as in lease_take_back.) Should both reads see the
		// marker, the loser gets the server's answer unmapped, 10164 on
		// R3, which is not ErrKeyExists: kvrec.Conflict's unit test
		// covers that answer, which this race rarely produces.
		key := kvToken(c.ID)
		race(t, leases, 0, func() {
			if err := leases.Delete(ctx, key); err != nil {
				t.Fatal(err)
			}
		}, func(int) error {
			_, err := im.acquire(ctx, c.ID)
			return err
		}, func(err error) bool { return errors.Is(err, ErrLeased) })
		if err := leases.Delete(ctx, key); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("lease_take_back", func(t *testing.T) {
		key := kvToken(c.ID)
		// A lease left under this replica's name by a previous run: the
		// racers take it back at once. Those that read it at the same
		// revision race; one wins, the others must see the lease as
		// taken, not fail. (One that reads after the winner's write finds
		// its own name again and wins as well: within a process,
		// withLease keeps them apart, not the bucket.)
		var won []*lease
		var mu sync.Mutex
		race(t, leases, 0, func() {
			// Of several winners only the last writer holds the lease
			// at its revision; releasing an earlier one is a conflict.
			var last *lease
			for _, l := range won {
				if last == nil || l.rev > last.rev {
					last = l
				}
			}
			if last != nil {
				if err := last.release(ctx); err != nil {
					t.Fatal(err)
				}
			}
			won = nil
			if _, err := leases.Create(ctx, key, []byte("r1")); err != nil {
				t.Fatal(err)
			}
		}, func(int) error {
			l, err := im.acquire(ctx, c.ID)
			if err == nil {
				mu.Lock()
				won = append(won, l)
				mu.Unlock()
			}
			return err
		}, func(err error) bool { return errors.Is(err, ErrLeased) })
	})
}

func isCursorMoved(err error) bool { return errors.Is(err, errCursorMoved) }

// race runs rounds of racers concurrent calls of op, each round after
// setup, until the bucket has answered 10164 to one of them. In every
// round exactly winners calls (0: at least one) must succeed and every
// other one fail with an error lost accepts.
func race(t *testing.T, kv *conflictKV, winners int, setup func(), op func(i int) error, lost func(error) bool) {
	t.Helper()
	const racers, maxRounds = 8, 200
	kv.replicated.Store(0)
	var rounds, conflicts int
	for rounds < maxRounds && kv.replicated.Load() == 0 {
		rounds++
		setup()
		errs := make([]error, racers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range racers {
			wg.Go(func() {
				<-start
				errs[i] = op(i)
			})
		}
		close(start)
		wg.Wait()
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case lost(err):
				conflicts++
			default:
				t.Errorf("round %d: a racer failed with %v, want it to see the conflict", rounds, err)
			}
		}
		if won == 0 || winners > 0 && won != winners {
			t.Errorf("round %d: %d racers won, want %d", rounds, won, max(winners, 1))
		}
		if t.Failed() {
			return
		}
	}
	n := kv.replicated.Load()
	t.Logf("%d rounds of %d racers: %d conflicts, %d of them answered 10164", rounds, racers, conflicts, n)
	if n == 0 {
		t.Fatalf("the cluster never answered 10164 in %d rounds; the test did not exercise the replicated conflict", rounds)
	}
}

// conflictKV counts the writes with an expected revision (Update, Delete)
// that a replicated stream refused with 10164. Create is left out: it
// reports either code as ErrKeyExists, as its callers expect.
type conflictKV struct {
	jetstream.KeyValue
	replicated atomic.Int64
}

func (kv *conflictKV) count(err error) {
	var apiErr *jetstream.APIError
	if errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequenceConstant {
		kv.replicated.Add(1)
	}
}

func (kv *conflictKV) Update(ctx context.Context, key string, value []byte, revision uint64) (uint64, error) {
	rev, err := kv.KeyValue.Update(ctx, key, value, revision)
	kv.count(err)
	return rev, err
}

func (kv *conflictKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	err := kv.KeyValue.Delete(ctx, key, opts...)
	kv.count(err)
	return err
}
