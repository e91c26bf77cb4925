package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
)

// The idle-scale scenario: many idle connected mailboxes on a short poll
// interval, polled by Run as `mailgate serve` runs it, with the simulator
// in a process of its own (Options.StartSim) so that only mailgate's CPU
// (the importer and its embedded NATS server) is counted. It runs only
// when named (--only idle-scale): the full size takes minutes.

const (
	idleScaleMailboxes = 10000
	// Goals of issue 13.
	GoalOnTime      = 0.99 // share of due polls begun within GoalOnTimeWithin of being due, at least
	GoalIdleCPU     = 500 * time.Microsecond
	GoalIdleWrites  = 0.0 // fsynced KV writes per idle poll
	onTimeWithinSec = 5.0
)

// SimMailboxFormat names the idle mailboxes of the idle-scale scenario in
// the simulator (fmt with the mailbox's number).
const SimMailboxFormat = "idle%05d@" + graphtest.DefaultTenantDomain

// AddSimMailboxes adds n empty shared mailboxes named by SimMailboxFormat
// to sim.
func AddSimMailboxes(sim *graphtest.Server, n int) {
	for i := range n {
		sim.AddMailbox(graphtest.Mailbox{Address: fmt.Sprintf(SimMailboxFormat, i), DisplayName: fmt.Sprintf("Idle %d", i), Shared: true})
	}
}

// ScaleResult is what the idle-scale scenario measured.
type ScaleResult struct {
	Mailboxes  int
	Poll       time.Duration
	Elapsed    time.Duration
	Polls      int     // passes Run made while measured
	Begun      int     // due checks handed to a worker while measured
	OnTime     float64 // share of them begun within 5 s of being due
	CPUPerPoll time.Duration
	// Writes and reads per idle poll, by KV bucket; the replicas'
	// heartbeats are counted apart.
	Writes, Reads map[string]float64
	SimInProcess  bool
	Replicas      int
	Heartbeats    int     // heartbeat writes of the replicas while measured
	Requests      float64 // Graph delta requests per mailbox per poll interval, all replicas together
}

// writes is the KV writes per poll of the buckets other than leases, and
// of leases.
func (r *ScaleResult) writes() (data, leases float64) {
	for b, n := range r.Writes {
		if b == "leases" {
			leases += n
		} else {
			data += n
		}
	}
	return data, leases
}

func (b *bencher) idleScaleScenario(ctx context.Context, rep *Report) ([]Row, error) {
	n := b.opts.ScaleMailboxes
	if n <= 0 {
		n = b.opts.count(idleScaleMailboxes)
	}
	poll := b.opts.ScalePoll
	measure := b.opts.ScaleMeasure
	if measure <= 0 {
		measure = 2 * poll
	}
	var (
		sim             *graphtest.Server
		login, graphURL string
	)
	if b.opts.StartSim != nil {
		base, stop, err := b.opts.StartSim(ctx, n)
		if err != nil {
			return nil, err
		}
		defer stop()
		login, graphURL = base, base+"/v1.0"
	} else {
		sim = graphtest.NewServer()
		AddSimMailboxes(sim, n)
		login, graphURL = sim.LoginURL(), sim.GraphURL()
	}
	replicas := max(1, b.opts.ScaleReplicas)
	reg := prometheus.NewRegistry()
	icfg := importer.Config{PollInterval: poll, Registerer: reg}
	if replicas > 1 {
		icfg.Replica = "bench-1"
	}
	e, err := b.newEnvAt(ctx, ScenarioIdleScale, graph.Config{}, icfg, sim, login, graphURL)
	if err != nil {
		return nil, err
	}
	defer e.close()
	// More replicas in this process share the polls with e.im, each with
	// its own metrics.
	ims, regs := []*importer.Importer{e.im}, []*prometheus.Registry{reg}
	for i := 2; i <= replicas; i++ {
		cfg := e.icfg
		cfg.Replica, cfg.Registerer = fmt.Sprintf("bench-%d", i), prometheus.NewRegistry()
		im, err := importer.New(ctx, e.js, e.deps, cfg)
		if err != nil {
			return nil, err
		}
		ims, regs = append(ims, im), append(regs, cfg.Registerer.(*prometheus.Registry))
	}
	count := func(name string) (n uint64) {
		for _, r := range regs {
			n += histCount(r, name)
		}
		return n
	}
	bucket := func(name string, le float64) (n uint64) {
		for _, r := range regs {
			n += histBucket(r, name, le)
		}
		return n
	}
	for i := range n {
		if _, err := b.connect(ctx, e, fmt.Sprintf(SimMailboxFormat, i)); err != nil {
			return nil, err
		}
	}
	fmt.Fprintf(b.progress, "  %d connections; first round …\n", n)

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	runErrs := make([]error, len(ims))
	for i, im := range ims {
		wg.Go(func() { runErrs[i] = im.Run(rctx) })
	}
	defer func() { stop(); wg.Wait() }()
	// The first round of every mailbox, then one poll of each from its
	// delta link (which writes the link's "delta" mark once); from then on
	// every poll is idle.
	t1 := time.Now()
	for count("mailgate_sync_duration_seconds") < uint64(2*n) {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Second):
		}
		if time.Since(t1) > 3*poll+time.Duration(n)*20*time.Millisecond {
			return nil, fmt.Errorf("first rounds: %d of %d passes after %s", count("mailgate_sync_duration_seconds"), 2*n, time.Since(t1).Round(time.Second))
		}
	}
	fmt.Fprintf(b.progress, "  first round and one idle poll each in %s; measuring %s …\n", time.Since(t1).Round(time.Second), measure)

	reads := newReadCounter()
	sub, err := e.nc.Subscribe("$JS.API.DIRECT.GET.>", reads.count)
	if err != nil {
		return nil, fmt.Errorf("nats: count reads: %w", err)
	}
	defer func() { _ = sub.Unsubscribe() }()
	// The replicas' heartbeats (importer/replicas.go) are no poll's
	// writes: they are counted apart.
	var beats atomic.Int64
	hsub, err := e.nc.Subscribe("$KV.leases.replica.>", func(*nats.Msg) { beats.Add(1) })
	if err != nil {
		return nil, fmt.Errorf("nats: count heartbeats: %w", err)
	}
	defer func() { _ = hsub.Unsubscribe() }()
	if err := e.nc.Flush(); err != nil {
		return nil, err
	}
	buckets := []string{"cursors", "imports", "leases", connector.ConnectionsBucket}
	seq0, err := bucketSeqs(ctx, e.js, buckets)
	if err != nil {
		return nil, err
	}
	passes0, begun0, onTime0 := count("mailgate_sync_duration_seconds"), count("mailgate_poll_delay_seconds"), bucket("mailgate_poll_delay_seconds", onTimeWithinSec)
	reads.reset()
	beats.Store(0)
	deltas0 := e.deltas.Load()
	cpu0, t0 := cpuTime(), time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(measure):
	}
	cpu, elapsed := cpuTime()-cpu0, time.Since(t0)
	passes := int(count("mailgate_sync_duration_seconds") - passes0)
	begun := int(count("mailgate_poll_delay_seconds") - begun0)
	onTime := int(bucket("mailgate_poll_delay_seconds", onTimeWithinSec) - onTime0)
	deltas := e.deltas.Load() - deltas0
	readsBy := reads.snapshot()
	seq1, err := bucketSeqs(ctx, e.js, buckets)
	if err != nil {
		return nil, err
	}
	if err := e.nc.Flush(); err != nil { // the heartbeats written so far are counted
		return nil, err
	}
	heartbeats := int(beats.Load())
	stop()
	wg.Wait()
	if err := errors.Join(runErrs...); err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("importer run: %w", err)
	}
	if passes == 0 {
		return nil, fmt.Errorf("no polls in %s", elapsed.Round(time.Second))
	}
	res := &ScaleResult{
		Mailboxes: n, Poll: poll, Elapsed: elapsed, Polls: passes, Begun: begun,
		CPUPerPoll: cpu / time.Duration(passes), Writes: map[string]float64{}, Reads: map[string]float64{},
		SimInProcess: sim != nil, Replicas: replicas, Heartbeats: heartbeats,
		Requests: float64(deltas) / float64(n) / (elapsed.Seconds() / poll.Seconds()),
	}
	if begun > 0 {
		res.OnTime = float64(onTime) / float64(begun)
	}
	for _, bk := range buckets {
		w := seq1[bk] - seq0[bk]
		if bk == "leases" {
			w -= min(w, uint64(heartbeats))
		}
		res.Writes[bk] = float64(w) / float64(passes)
	}
	for bk, c := range readsBy {
		res.Reads[bk] = float64(c) / float64(passes)
	}
	rep.Scale = res
	row := Row{Scenario: ScenarioIdleScale, What: whatMailgate, Docs: passes, Elapsed: elapsed, CPU: cpu, PeakRSS: peakRSS()}
	where := "simulator in its own process"
	if sim != nil {
		where = "simulator in this process (its CPU counted)"
	}
	data, leases := res.writes()
	row.Note = fmt.Sprintf("%d mailboxes, poll interval %s, %s, %d importer replica(s); %d polls in %s (%d expected), %.4f of %d due checks begun within 5 s; "+
		"%.2f Graph delta requests per mailbox per interval; "+
		"CPU %.3f ms/poll (%.1f%% of a core); KV writes/poll: %.2f (cursors, imports, connections), %.2f (leases), and %d heartbeats; KV reads/poll: %s",
		n, poll, where, replicas, passes, elapsed.Round(time.Second), int(float64(n)*elapsed.Seconds()/poll.Seconds()), res.OnTime, begun,
		res.Requests, float64(res.CPUPerPoll)/1e6, 100*cpu.Seconds()/elapsed.Seconds(), data, leases, heartbeats, formatPer(res.Reads))
	return []Row{row}, nil
}

func formatPer(m map[string]float64) string {
	var parts []string
	total := 0.0
	for _, b := range []string{"cursors", "imports", "leases", connector.ConnectionsBucket} {
		if v, ok := m[b]; ok {
			parts = append(parts, fmt.Sprintf("%s %.2f", b, v))
			total += v
		}
	}
	return fmt.Sprintf("%.2f (%s)", total, strings.Join(parts, ", "))
}

// scaleGoals are the idle-scale scenario's goals.
func scaleGoals(r *ScaleResult) []Goal {
	data, leases := r.writes()
	leaseNote := ""
	if leases > 0 {
		leaseNote = "leases: taken and released by passes under the lease"
	}
	note := ""
	if r.SimInProcess {
		note = "simulator in process: its CPU is counted"
	}
	return []Goal{
		{
			Name:     fmt.Sprintf("idle scale (%d mailboxes, %s): due polls begun within 5 s", r.Mailboxes, r.Poll),
			Measured: fmt.Sprintf("%.4f of %d", r.OnTime, r.Begun), Target: fmt.Sprintf("≥ %.2f", GoalOnTime), Met: r.OnTime >= GoalOnTime,
		},
		{
			Name:     "idle scale: mailgate CPU per idle poll",
			Measured: fmt.Sprintf("%.3f ms", float64(r.CPUPerPoll)/1e6), Target: fmt.Sprintf("≤ %.1f ms", float64(GoalIdleCPU)/1e6),
			Met: r.CPUPerPoll <= GoalIdleCPU, Note: note,
		},
		{
			Name:     "idle scale: fsynced KV writes per idle poll",
			Measured: fmt.Sprintf("%.2f (+ %.2f lease)", data, leases), Target: "0", Met: data+leases <= GoalIdleWrites,
			Note: leaseNote,
		},
		{
			Name:     "idle scale: KV reads per idle poll",
			Measured: formatPer(r.Reads), Target: "(printed)", Met: true,
		},
		{
			Name:     fmt.Sprintf("idle scale: Graph requests per idle mailbox per interval (%d replicas)", r.Replicas),
			Measured: fmt.Sprintf("%.2f", r.Requests), Target: "1 (printed)", Met: true,
			Note: fmt.Sprintf("%d replica heartbeats while measured, not counted as poll writes", r.Heartbeats),
		},
	}
}

// readCounter counts KV reads (JetStream direct gets) by bucket.
type readCounter struct {
	mu sync.Mutex
	by map[string]int
}

func newReadCounter() *readCounter { return &readCounter{by: map[string]int{}} }

// count takes a direct get request: $JS.API.DIRECT.GET.KV_<bucket>.….
func (c *readCounter) count(m *nats.Msg) {
	tok := strings.Split(m.Subject, ".")
	if len(tok) < 5 {
		return
	}
	b, ok := strings.CutPrefix(tok[4], "KV_")
	if !ok {
		return
	}
	c.mu.Lock()
	c.by[b]++
	c.mu.Unlock()
}

func (c *readCounter) reset() {
	c.mu.Lock()
	c.by = map[string]int{}
	c.mu.Unlock()
}

func (c *readCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.by))
	for k, v := range c.by {
		out[k] = v
	}
	return out
}

// bucketSeqs reads the last sequence of each bucket's stream: it grows by
// one with every write (the embedded server syncs each to disk).
func bucketSeqs(ctx context.Context, js jetstream.JetStream, buckets []string) (map[string]uint64, error) {
	out := make(map[string]uint64, len(buckets))
	for _, b := range buckets {
		s, err := js.Stream(ctx, "KV_"+b)
		if err != nil {
			return nil, fmt.Errorf("nats: stream KV_%s: %w", b, err)
		}
		info, err := s.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("nats: stream KV_%s: %w", b, err)
		}
		out[b] = info.State.LastSeq
	}
	return out, nil
}

// histCount is the sample count of a histogram in reg; 0 when missing.
func histCount(reg *prometheus.Registry, name string) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			return mf.GetMetric()[0].GetHistogram().GetSampleCount()
		}
	}
	return 0
}

// histBucket is the cumulative count of a histogram's bucket le.
func histBucket(reg *prometheus.Registry, name string, le float64) uint64 {
	mfs, err := reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) > 0 {
			for _, bk := range mf.GetMetric()[0].GetHistogram().GetBucket() {
				if bk.GetUpperBound() == le {
					return bk.GetCumulativeCount()
				}
			}
		}
	}
	return 0
}
