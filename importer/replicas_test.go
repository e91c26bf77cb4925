package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/connector"
)

// Every connection has exactly one owner in a set of replicas, the shares
// are about even, and a replica that leaves hands on only its own
// connections: the others keep theirs.
func TestMembersOwnOnce(t *testing.T) {
	names := []string{"importer-0", "importer-1", "importer-2"}
	const n = 3000
	owner := func(names []string, id string) string {
		var got []string
		for _, self := range names {
			if (members{self: self, names: names}).owns(id) {
				got = append(got, self)
			}
		}
		if len(got) != 1 {
			t.Fatalf("%s owned by %v among %v, want exactly one", id, got, names)
		}
		return got[0]
	}
	share := map[string]int{}
	before := map[string]string{}
	for i := range n {
		id := fmt.Sprintf("con_%06d", i)
		before[id] = owner(names, id)
		share[before[id]]++
	}
	for _, name := range names {
		if f := float64(share[name]) / n; f < 0.28 || f > 0.39 {
			t.Errorf("%s owns %.3f of the connections, want about a third", name, f)
		}
	}
	left := []string{"importer-0", "importer-2"}
	for id, was := range before {
		now := owner(left, id)
		if was != "importer-1" && now != was {
			t.Fatalf("%s moved from %s to %s when importer-1 left", id, was, now)
		}
	}
	if !(members{self: "alone", names: []string{"alone"}}).owns("con_x") || !(members{self: "alone"}).owns("con_x") {
		t.Error("a replica alone does not own everything")
	}
}

// The schedule parks a connection another replica owns when it falls
// due, still runs it when triggered, and makes it due at once when it
// becomes this replica's; one it lost keeps its time until then.
func TestScheduleOwnership(t *testing.T) {
	mine := map[string]bool{"a": true}
	s := newSchedule()
	s.owns = func(id string) bool { return mine[id] }
	active := func(id string) connector.Connection {
		return connector.Connection{ID: id, State: connector.StateActive}
	}
	s.assign([]connector.Connection{active("a"), active("b"), active("c")})
	if s.owned != 1 {
		t.Fatalf("owned %d, want 1", s.owned)
	}
	if e := s.next(t0); e == nil || e.id != "a" {
		t.Fatalf("next %v, want a (b and c parked)", e)
	}
	s.start("a")
	s.done(runResult{id: "a", next: t0.Add(time.Minute)})
	if e := s.next(t0); e == nil || e.id != "a" || !s.byID["b"].parked || !s.byID["c"].parked {
		t.Fatalf("next %v; want a, not due yet, with b and c parked", e)
	}
	s.trigger("b")
	if e := s.next(t0); e == nil || e.id != "b" {
		t.Fatalf("next %v, want the triggered b", e)
	}
	s.start("b")
	s.done(runResult{id: "b", next: t0.Add(30 * time.Second)})

	later := t0.Add(10 * time.Second)
	mine = map[string]bool{"b": true, "c": true}
	lost := s.reown(func(id string) bool { return mine[id] }, later)
	if !slices.Equal(lost, []string{"a"}) || s.owned != 2 {
		t.Fatalf("lost %v, owned %d; want [a], 2", lost, s.owned)
	}
	if e := s.next(later); e == nil || e.id != "c" || !e.due.Equal(later) {
		t.Fatalf("next %+v, want c, due at once", e)
	}
	s.start("c")
	// b keeps its time; a, lost, is parked when it falls due.
	if e := s.next(later); e == nil || e.id != "b" || !e.due.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("next %+v, want b at its own time", e)
	}
	s.start("b")
	if e := s.next(t0.Add(2 * time.Minute)); e != nil || !s.byID["a"].parked {
		t.Fatalf("next %+v, a parked %v; want none, a parked", e, s.byID["a"].parked)
	}
	// A parked entry is forgotten cleanly when its connection goes.
	s.assign([]connector.Connection{active("b"), active("c")})
	if s.byID["a"] != nil || s.owned != 2 {
		t.Errorf("a still known (%v) or owned %d, want 2", s.byID["a"] != nil, s.owned)
	}
}

// pollLog records the delta requests of each replica per connection.
type pollLog struct {
	mu    sync.Mutex
	polls []pollRec
}

type pollRec struct {
	replica, conn string
	at            time.Time
}

// between counts the polls in [from, to) per connection and replica.
func (l *pollLog) between(from, to time.Time) map[string]map[string]int {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make(map[string]map[string]int)
	for _, p := range l.polls {
		if p.at.Before(from) || !p.at.Before(to) {
			continue
		}
		if out[p.conn] == nil {
			out[p.conn] = make(map[string]int)
		}
		out[p.conn][p.replica]++
	}
	return out
}

// first is when a replica other than but polled conn first at or after
// from; zero if none did.
func (l *pollLog) first(conn, but string, from time.Time) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.polls {
		if p.conn == conn && p.replica != but && !p.at.Before(from) {
			return p.at
		}
	}
	return time.Time{}
}

// logMailboxes opens the fake mailboxes for one replica, logging its
// delta requests.
type logMailboxes struct {
	mbs     fakeMailboxes
	log     *pollLog
	replica string
}

func (m logMailboxes) Open(ctx context.Context, c connector.Connection) (Mailbox, error) {
	mb, err := m.mbs.Open(ctx, c)
	if err != nil {
		return nil, err
	}
	return logMailbox{Mailbox: mb, m: m, conn: c.ID}, nil
}

type logMailbox struct {
	Mailbox
	m    logMailboxes
	conn string
}

func (mb logMailbox) Delta(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error) {
	mb.m.log.mu.Lock()
	mb.m.log.polls = append(mb.m.log.polls, pollRec{replica: mb.m.replica, conn: mb.conn, at: time.Now()})
	mb.m.log.mu.Unlock()
	return mb.Mailbox.Delta(ctx, folder, link, since)
}

// mortalKV fails the heartbeat's writes once dead is set: a replica cut
// off from NATS, whose key is left to expire. With blind set its watches
// of the replicas fail.
type mortalKV struct {
	jetstream.KeyValue
	dead, blind *atomic.Bool
}

func (k mortalKV) Watch(ctx context.Context, keys string, opts ...jetstream.WatchOpt) (jetstream.KeyWatcher, error) {
	if k.blind.Load() && strings.HasPrefix(keys, replicaKeyPrefix) {
		return nil, errors.New("test: watch refused")
	}
	return k.KeyValue.Watch(ctx, keys, opts...)
}

var errDead = errors.New("test: replica dead")

func (k mortalKV) Put(ctx context.Context, key string, v []byte) (uint64, error) {
	if k.dead.Load() && strings.HasPrefix(key, replicaKeyPrefix) {
		return 0, errDead
	}
	return k.KeyValue.Put(ctx, key, v)
}

func (k mortalKV) Delete(ctx context.Context, key string, opts ...jetstream.KVDeleteOpt) error {
	if k.dead.Load() && strings.HasPrefix(key, replicaKeyPrefix) {
		return errDead
	}
	return k.KeyValue.Delete(ctx, key, opts...)
}

// replicaRig runs importer replicas over idle connections on the wall
// clock.
type replicaRig struct {
	t     *testing.T
	e     *env
	log   *pollLog
	ids   []string
	poll  time.Duration
	ttl   time.Duration
	procs map[string]*replicaProc
}

type replicaProc struct {
	im     *Importer
	cancel context.CancelFunc
	done   chan error
	dead   *atomic.Bool
	blind  *atomic.Bool
}

func newReplicaRig(t *testing.T, n int) *replicaRig {
	e := newEnv(t, connector.PostNone)
	var conns []connector.Connection
	r := &replicaRig{t: t, e: e, log: &pollLog{}, poll: time.Second, ttl: 3 * time.Second, procs: map[string]*replicaProc{}}
	for i := range n {
		c := testConnection(fmt.Sprintf("con_rep%02d", i))
		e.mbs[c.ID] = newFakeMailbox()
		conns = append(conns, c)
		r.ids = append(r.ids, c.ID)
	}
	e.conns = newFakeConnections(conns...)
	return r
}

func (r *replicaRig) start(name string) *replicaProc {
	r.t.Helper()
	return r.startWith(name, false)
}

// startWith starts a replica, blind: unable to watch the others.
func (r *replicaRig) startWith(name string, blind bool) *replicaProc {
	r.t.Helper()
	im, err := New(context.Background(), r.e.js,
		Deps{Connections: r.e.conns, Mailboxes: logMailboxes{mbs: r.e.mbs, log: r.log, replica: name}, Store: r.e.store, Events: r.e.events},
		Config{Replica: name, SpoolDir: r.t.TempDir(), PollInterval: r.poll, ScanInterval: r.poll, LeaseTTL: r.ttl, Workers: 4})
	if err != nil {
		r.t.Fatal(err)
	}
	p := &replicaProc{im: im, done: make(chan error, 1), dead: new(atomic.Bool), blind: new(atomic.Bool)}
	p.blind.Store(blind)
	im.ledger.leases = mortalKV{KeyValue: im.ledger.leases, dead: p.dead, blind: p.blind}
	var ctx context.Context
	ctx, p.cancel = context.WithCancel(context.Background())
	go func() { p.done <- im.Run(ctx) }()
	r.procs[name] = p
	r.t.Cleanup(func() { p.cancel(); <-p.done })
	return p
}

// stop ends a replica's Run: cleanly, or killed (its heartbeat is left
// to expire). It returns when Run returned.
func (r *replicaRig) stop(name string, kill bool) {
	r.t.Helper()
	p := r.procs[name]
	p.dead.Store(kill)
	p.cancel()
	if err := <-p.done; err != nil {
		r.t.Fatal(err)
	}
	p.done <- nil // for the cleanup
	delete(r.procs, name)
}

// sees waits until every running replica sees exactly the running ones.
func (r *replicaRig) sees() {
	r.t.Helper()
	waitFor(r.t, func() bool {
		for _, p := range r.procs {
			if testutil.ToFloat64(p.im.metrics.replicas) != float64(len(r.procs)) {
				return false
			}
		}
		return true
	})
}

// steady measures k poll intervals from now and checks that each
// connection was polled by one running replica only, about once per
// interval. It returns the connections each replica polled and the polls
// per connection per interval.
func (r *replicaRig) steady(k int) (by map[string][]string, perInterval float64) {
	r.t.Helper()
	from := time.Now()
	time.Sleep(time.Duration(k) * r.poll) // the wall clock is what is measured
	counts := r.log.between(from, time.Now())
	by = map[string][]string{}
	total := 0
	for _, id := range r.ids {
		var who []string
		n := 0
		for rep, c := range counts[id] {
			who = append(who, rep)
			n += c
		}
		total += n
		if len(who) != 1 {
			r.t.Errorf("%s polled by %v in %d intervals, want one replica", id, counts[id], k)
			continue
		}
		if r.procs[who[0]] == nil {
			r.t.Errorf("%s polled by %s, which is stopped", id, who[0])
		}
		if n < k-1 || n > k+1 {
			r.t.Errorf("%s polled %d times in %d intervals", id, n, k)
		}
		by[who[0]] = append(by[who[0]], id)
	}
	for name, p := range r.procs {
		if got := testutil.ToFloat64(p.im.metrics.owned); int(got) != len(by[name]) {
			r.t.Errorf("%s: owned connections gauge %v, polled %d", name, got, len(by[name]))
		}
	}
	return by, float64(total) / float64(len(r.ids)) / float64(k)
}

// takeover returns how long after at the last of conns was first polled
// by a replica other than from, waiting up to limit.
func (r *replicaRig) takeover(conns []string, from string, at time.Time, limit time.Duration) time.Duration {
	r.t.Helper()
	var worst time.Duration
	for _, id := range conns {
		for r.log.first(id, from, at).IsZero() {
			if time.Since(at) > limit {
				r.t.Fatalf("%s not polled by another replica within %s of %s leaving", id, limit, from)
			}
			time.Sleep(20 * time.Millisecond) // polling the fake's log from outside
		}
		worst = max(worst, r.log.first(id, from, at).Sub(at))
	}
	return worst
}

// Three replicas over 30 idle connections: each connection is polled by
// one of them, once per interval, with no KV write but the heartbeats.
// One that stops cleanly hands its connections on at once; one that dies
// within its heartbeat's TTL; one that joins takes its share.
func TestReplicasSharePolls(t *testing.T) {
	t.Parallel() // mostly waiting on the wall clock
	r := newReplicaRig(t, 30)
	for _, name := range []string{"r1", "r2", "r3"} {
		r.start(name)
	}
	// Every mailbox's first round and one idle poll.
	waitFor(t, func() bool {
		c := r.log.between(time.Time{}, time.Now())
		for _, id := range r.ids {
			n := 0
			for _, k := range c[id] {
				n += k
			}
			if n < 2 {
				return false
			}
		}
		return true
	})
	r.sees()
	time.Sleep(r.poll) // the polls due before the replicas saw each other
	cursors, imports, leases := streamSeq(t, r.e.js, bucketCursors), streamSeq(t, r.e.js, bucketImports), streamSeq(t, r.e.js, bucketLeases)
	const k = 3
	by, per := r.steady(k)
	t.Logf("3 replicas: %.2f delta requests per connection per interval; shares r1 %d, r2 %d, r3 %d",
		per, len(by["r1"]), len(by["r2"]), len(by["r3"]))
	if w := streamSeq(t, r.e.js, bucketCursors) - cursors + streamSeq(t, r.e.js, bucketImports) - imports; w != 0 {
		t.Errorf("%d writes to cursors and imports in idle intervals, want 0", w)
	}
	beats := streamSeq(t, r.e.js, bucketLeases) - leases
	if max := uint64(3 * (k*r.poll/(r.ttl/3) + 2)); beats > max {
		t.Errorf("%d writes to leases in %d intervals, want at most %d heartbeats", beats, k, max)
	}
	t.Logf("KV leases writes (heartbeats) in %d intervals of 3 replicas: %d", k, beats)

	// r3 stops cleanly: its key goes, and the others poll its
	// connections at once.
	at := time.Now()
	r.stop("r3", false)
	d := r.takeover(by["r3"], "r3", at, r.poll)
	t.Logf("clean stop: %d connections taken over after %s (limit one interval, %s)", len(by["r3"]), d.Round(time.Millisecond), r.poll)
	r.sees()
	time.Sleep(r.poll)
	by, per = r.steady(k)
	t.Logf("2 replicas: %.2f delta requests per connection per interval", per)

	// r2 dies: its key stays until it expires.
	at = time.Now()
	r.stop("r2", true)
	d = r.takeover(by["r2"], "r2", at, r.ttl+r.poll)
	t.Logf("killed: %d connections taken over after %s (limit TTL + interval, %s)", len(by["r2"]), d.Round(time.Millisecond), r.ttl+r.poll)
	r.sees()
	time.Sleep(r.poll)
	by, per = r.steady(k)
	if len(by["r1"]) != len(r.ids) {
		t.Errorf("r1 alone polls %d connections, want %d", len(by["r1"]), len(r.ids))
	}
	t.Logf("1 replica left: %.2f delta requests per connection per interval", per)

	// r4 joins and takes its share.
	r.start("r4")
	r.sees()
	time.Sleep(r.poll)
	by, per = r.steady(k)
	if len(by["r4"]) == 0 || len(by["r1"]) == 0 {
		t.Errorf("after r4 joined: r1 polls %d, r4 %d connections; want both a share", len(by["r1"]), len(by["r4"]))
	}
	t.Logf("r4 joined: shares r1 %d, r4 %d; %.2f delta requests per connection per interval", len(by["r1"]), len(by["r4"]), per)
}

// A replica alone polls every connection once per interval, as before
// replicas shared polls; its heartbeat is its only KV write.
func TestReplicaAlonePollsAll(t *testing.T) {
	t.Parallel() // mostly waiting on the wall clock
	r := newReplicaRig(t, 30)
	p := r.start("solo")
	waitFor(t, func() bool { return len(r.log.between(time.Time{}, time.Now())) == len(r.ids) })
	r.sees()
	time.Sleep(r.poll)
	seq := func() uint64 {
		return streamSeq(t, r.e.js, bucketCursors) + streamSeq(t, r.e.js, bucketImports) + streamSeq(t, r.e.js, bucketLeases)
	}
	seq0 := seq()
	const k = 3
	by, per := r.steady(k)
	if len(by["solo"]) != len(r.ids) {
		t.Errorf("polled %d connections, want %d", len(by["solo"]), len(r.ids))
	}
	writes := seq() - seq0
	if max := uint64(k*r.poll/(r.ttl/3) + 2); writes > max {
		t.Errorf("%d KV writes in %d idle intervals, want at most %d (heartbeats)", writes, k, max)
	}
	if g := testutil.ToFloat64(p.im.metrics.replicas); g != 1 {
		t.Errorf("replicas gauge %v, want 1", g)
	}
	t.Logf("1 replica: %.2f delta requests per connection per interval, %d KV writes (heartbeats) in %d intervals", per, writes, k)
}

// A replica that cannot watch the others polls everything (when in doubt,
// poll), while the others, which see its heartbeat, poll their shares:
// no connection is left out.
func TestReplicaBlindPollsAll(t *testing.T) {
	t.Parallel() // mostly waiting on the wall clock
	r := newReplicaRig(t, 30)
	r.start("r1")
	blind := r.startWith("r2", true)
	waitFor(t, func() bool { return len(r.log.between(time.Time{}, time.Now())) == len(r.ids) })
	waitFor(t, func() bool { return testutil.ToFloat64(r.procs["r1"].im.metrics.replicas) == 2 })
	time.Sleep(2 * r.poll)
	from := time.Now()
	const k = 3
	time.Sleep(k * r.poll) // the wall clock is what is measured
	counts := r.log.between(from, time.Now())
	r1 := 0
	for _, id := range r.ids {
		if counts[id]["r2"] < k-1 {
			t.Errorf("%s polled %d times in %d intervals by the blind r2, want every interval", id, counts[id]["r2"], k)
		}
		if counts[id]["r1"] > 0 {
			r1++
		}
	}
	if r1 == 0 || r1 == len(r.ids) {
		t.Errorf("r1 polled %d of %d connections, want its share", r1, len(r.ids))
	}
	if g := testutil.ToFloat64(blind.im.metrics.replicas); g != 1 {
		t.Errorf("the blind replica sees %v replicas, want itself only", g)
	}
	t.Logf("blind r2 polls all %d connections; r1 its share of %d", len(r.ids), r1)
}
