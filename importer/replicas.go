package importer

import (
	"context"
	"slices"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Replicas share the scheduled polls. Every replica keeps a heartbeat key
// (replica.<name> in KV leases, written every LeaseTTL/3) and watches the
// others'; a replica it has not heard of for LeaseTTL is gone, as is one
// whose key was deleted (a clean stop). Each connection's scheduled polls
// are made by one of the live replicas only, its owner by rendezvous
// (highest random weight) hashing of the connection id over their names,
// so that a change of the set moves only the connections of the replica
// that came or went. Work that is asked for (a trigger, a connection
// created or resumed) is done wherever it lands; the lease keeps one pass
// at a time.
//
// The views need not agree. A connection is polled by its owner in the
// view of the live replica that weighs most for it, unless that replica
// still counts a dead one that weighs more: a replica always counts
// itself, and forgets a dead one within LeaseTTL of its last heartbeat.
// So every connection is polled within LeaseTTL and a poll interval of
// the death of its last poller, also when the heartbeat or the watch
// fails (the replica then soon sees nobody but itself and polls
// everything). Two replicas that poll the same connection cost Graph a
// request, never a document: a pass needs the lease.

// replicaKeyPrefix starts the heartbeat keys in KV leases; lease keys are
// connection ids, which never contain a dot.
const replicaKeyPrefix = "replica."

// members is Run's view of the live replicas.
type members struct {
	self  string
	names []string // sorted, self included
}

// owns reports whether the replica polls connection id on schedule.
func (m members) owns(id string) bool {
	if len(m.names) <= 1 {
		return true
	}
	best, bestW := "", uint64(0)
	for _, n := range m.names {
		if w := hrwWeight(n, id); best == "" || w > bestW || w == bestW && n < best {
			best, bestW = n, w
		}
	}
	return best == m.self
}

// hrwWeight is replica's weight for connection id: FNV-1a over both,
// finished with a 64-bit mix so that close names spread evenly. It must
// stay the same in every version that may run beside another.
func hrwWeight(replica, id string) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	for i := range len(replica) {
		h = (h ^ uint64(replica[i])) * prime
	}
	h *= prime // a zero byte between the two
	for i := range len(id) {
		h = (h ^ uint64(id[i])) * prime
	}
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb93fe53a85cd
	h ^= h >> 33
	return h
}

// replicas heartbeats this replica's key and sends Run the names of the
// live replicas (self included, sorted) whenever they change, until ctx
// ends; then it deletes the key, so that the others take over at once.
// It runs on the wall clock, as the leases do.
func (im *Importer) replicas(ctx context.Context, views chan<- []string) {
	self := im.cfg.Replica
	key := replicaKeyPrefix + kvToken(self)
	ttl := im.cfg.LeaseTTL
	defer func() {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := im.ledger.leases.Delete(dctx, key); err != nil {
			im.log.Warn("importer: replica heartbeat: delete", "replica", self, "err", err)
		}
	}()
	beating := true
	beat := func() {
		bctx, cancel := context.WithTimeout(ctx, ttl/3)
		defer cancel()
		_, err := im.ledger.leases.Put(bctx, key, []byte(self))
		switch {
		case err != nil && beating && ctx.Err() == nil:
			im.log.Warn("importer: replica heartbeat", "replica", self, "err", err)
			beating = false
		case err == nil && !beating:
			im.log.Info("importer: replica heartbeat works again", "replica", self)
			beating = true
		}
	}
	type peer struct {
		name    string
		expires time.Time
	}
	peers := make(map[string]peer) // by key, self not included
	var sent []string
	// send tells Run the live replicas when they changed, and returns
	// when the next of them expires (zero: none).
	send := func() (next time.Time) {
		now := time.Now()
		live := []string{self}
		for k, p := range peers {
			if !p.expires.After(now) {
				delete(peers, k)
				continue
			}
			if !slices.Contains(live, p.name) {
				live = append(live, p.name)
			}
			if next.IsZero() || p.expires.Before(next) {
				next = p.expires
			}
		}
		slices.Sort(live)
		if sent != nil && slices.Equal(live, sent) {
			return next
		}
		select {
		case views <- live:
			sent = live
		case <-ctx.Done():
		}
		return next
	}

	beat()
	tick := time.NewTicker(ttl / 3)
	defer tick.Stop()
	watching := true // logged once when it fails, not on every retry
	for ctx.Err() == nil {
		w, err := im.ledger.leases.Watch(ctx, replicaKeyPrefix+">")
		if err != nil {
			if ctx.Err() == nil && watching {
				im.log.Warn("importer: watch replicas, watching again", "err", err)
			}
			watching = false
		} else {
			watching = true
			im.followReplicas(ctx, w, tick.C, beat, func(e jetstream.KeyValueEntry, initial bool) {
				if e.Key() == key {
					return
				}
				if e.Operation() != jetstream.KeyValuePut {
					delete(peers, e.Key())
					return
				}
				seen := time.Now()
				if initial && e.Created().Before(seen) {
					// A key from before this watch: its age counts, so a
					// replica that died just before is not kept for a
					// whole TTL more.
					seen = e.Created()
				}
				peers[e.Key()] = peer{name: string(e.Value()), expires: seen.Add(ttl)}
			}, send)
			_ = w.Stop()
		}
		// The watch broke: keep beating, let the others expire, and
		// watch again soon.
		retry := time.After(ttl / 3)
		for waiting := true; waiting && ctx.Err() == nil; {
			var expire <-chan time.Time
			if next := send(); !next.IsZero() {
				expire = time.After(time.Until(next))
			}
			select {
			case <-ctx.Done():
			case <-tick.C:
				beat()
			case <-expire:
			case <-retry:
				waiting = false
			}
		}
	}
}

// followReplicas reads the watch w until it breaks or ctx ends, beating
// on each tick. It hands each entry to seen (initial: from before the
// watch) and calls send, which tells Run, once the watch has caught up
// and after every change or expiry.
func (im *Importer) followReplicas(ctx context.Context, w jetstream.KeyWatcher, tick <-chan time.Time, beat func(),
	seen func(e jetstream.KeyValueEntry, initial bool), send func() time.Time) {
	initial := true
	var expire <-chan time.Time
	resend := func() {
		expire = nil
		if next := send(); !next.IsZero() {
			expire = time.After(time.Until(next))
		}
	}
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				if ctx.Err() == nil {
					im.log.Warn("importer: watch replicas: the watch ended, watching again")
				}
				return
			}
			if e == nil {
				initial = false
				resend()
				continue
			}
			seen(e, initial)
			if !initial {
				resend()
			}
		case <-tick:
			beat()
		case <-expire:
			resend()
		}
	}
}
