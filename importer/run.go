package importer

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// Run works due connections until ctx is done, with Workers workers. It
// keeps each connection's next check in memory and hands a due connection
// to the first worker that is free. It learns of new, changed and removed
// connections by watching the connections bucket when Deps.Connections
// can (ConnectionWatcher), and otherwise by listing them every
// ScanInterval. A connection
// falls due at the next check its last pass set (Status.NextSync), or at
// once on Trigger. A connection this process saw quiet is peeked first,
// without its lease, status or connection read (peek.go). Before a pass
// the worker reads the connection's status, since another replica may
// have polled it meanwhile. Replicas share the scheduled polls: Run makes
// those of the connections this replica owns among the live replicas it
// sees (replicas.go) and parks the others. When ctx ends Run
// lets the workers finish the document in flight, deletes its replica's
// heartbeat and returns after they stopped.
func (im *Importer) Run(ctx context.Context) error {
	jobs := make(chan runJob)
	results := make(chan runResult, im.cfg.Workers)
	lists := make(chan []connector.Connection)
	var wg sync.WaitGroup
	defer wg.Wait()
	for range im.cfg.Workers {
		wg.Go(func() {
			for j := range jobs {
				r := im.work(ctx, j)
				select {
				case results <- r:
				case <-ctx.Done():
				}
			}
		})
	}
	defer close(jobs)
	changes := make(chan connector.Connection)
	if w, ok := im.deps.Connections.(ConnectionWatcher); ok {
		wg.Go(func() { im.watch(ctx, w, lists, changes) })
	} else {
		wg.Go(func() { im.scan(ctx, lists) })
	}

	s := newSchedule()
	views := make(chan []string)
	wg.Go(func() { im.replicas(ctx, views) })
	reown := func(live []string) {
		m := members{self: im.cfg.Replica, names: live}
		for _, id := range s.reown(m.owns, im.cfg.Now()) {
			im.forget(id) // its owner reports its lag now
		}
		im.metrics.replicas.Set(float64(len(live)))
	}
	// Wait a moment for the replicas seen, so that a replica that starts
	// beside others does not poll everything first; without them it
	// polls everything, as when alone.
	select {
	case <-ctx.Done():
		return nil
	case live := <-views:
		reown(live)
	case <-time.After(im.cfg.LeaseTTL / 3):
		im.metrics.replicas.Set(1)
	}
	var (
		wake   <-chan time.Time
		wakeAt time.Time // when wake fires; zero: not armed
	)
	for {
		var (
			send chan<- runJob
			job  runJob
			due  time.Time
		)
		now := im.cfg.Now()
		if e := s.next(now); e != nil {
			if e.due.After(now) {
				if !wakeAt.Equal(e.due) {
					wake, wakeAt = im.cfg.After(e.due.Sub(now)), e.due
				}
			} else {
				send, job = jobs, runJob{id: e.id, triggered: e.triggered, conn: e.conn}
				if !e.triggered {
					due = e.due
				}
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case send <- job:
			s.start(job.id)
			if !due.IsZero() {
				im.metrics.pollDelay.Observe(im.cfg.Now().Sub(due).Seconds())
			}
		case r := <-results:
			if s.done(r) {
				im.forget(r.id)
			}
		case list := <-lists:
			for _, id := range s.assign(list) {
				im.forget(id)
			}
		case c := <-changes:
			if s.update(c) {
				im.forget(c.ID)
			}
		case id := <-im.trigger:
			s.trigger(id)
		case live := <-views:
			reown(live)
		case <-wake:
			wake, wakeAt = nil, time.Time{}
		}
		im.metrics.owned.Set(float64(s.owned))
	}
}

// scan lists the connections every ScanInterval, starting at once, and
// sends them to Run's loop.
func (im *Importer) scan(ctx context.Context, lists chan<- []connector.Connection) {
	t := time.NewTicker(im.cfg.ScanInterval)
	defer t.Stop()
	for {
		conns, err := im.deps.Connections.List(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			im.log.Warn("importer: list connections", "error", err)
		case err == nil:
			select {
			case lists <- conns:
			case <-ctx.Done():
				return
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// watch follows the connections with w and sends them to Run's loop: the
// whole set when a watch has caught up (as a scan would), then each
// change. A watch that breaks is started again after ScanInterval, and
// its whole set resyncs Run with what changed meanwhile.
func (im *Importer) watch(ctx context.Context, w ConnectionWatcher, lists chan<- []connector.Connection, changes chan<- connector.Connection) {
	for {
		err := w.Watch(ctx,
			func(all []connector.Connection) {
				select {
				case lists <- all:
				case <-ctx.Done():
				}
			},
			func(c connector.Connection) {
				select {
				case changes <- c:
				case <-ctx.Done():
				}
			})
		if ctx.Err() != nil {
			return
		}
		im.log.Warn("importer: watch connections, watching again", "error", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(im.cfg.ScanInterval):
		}
	}
}

// runJob asks a worker to check one connection and run a pass if it is due.
type runJob struct {
	id        string
	triggered bool // run a pass without reading the status first
	// conn is the connection as Run last learned it (watch or list),
	// enough for a peek; a pass reads it again. nil: not known.
	conn *connector.Connection
}

// runResult tells Run when a connection is due again.
type runResult struct {
	id   string
	next time.Time // zero: forget the connection until a scan lists it workable
}

// work checks one connection for Run and runs a pass over it when it is
// due (or triggered); it returns when the connection is due again.
func (im *Importer) work(ctx context.Context, j runJob) runResult {
	now := im.cfg.Now()
	later := runResult{id: j.id, next: now.Add(im.cfg.ScanInterval)}
	var pre *peeked
	if !j.triggered && j.conn != nil && j.conn.State == connector.StateActive && im.isQuiet(j.id) {
		// Quiet when this process last polled it: peek at once, without
		// reading the status (peek.go says why a stale view is safe).
		var idle bool
		if pre, idle = im.peek(ctx, *j.conn); idle {
			return runResult{id: j.id, next: now.Add(im.cfg.PollInterval)}
		}
	}
	var st Status
	if !j.triggered {
		var err error
		st, _, err = im.ledger.status(ctx, j.id)
		if err != nil {
			if ctx.Err() == nil {
				im.log.Warn("importer: read status", "connection_id", j.id, "error", err)
			}
			return later
		}
		if st.NextSync.After(now) {
			return runResult{id: j.id, next: st.NextSync} // polled meanwhile, maybe by another replica
		}
	}
	if pre == nil && !j.triggered && j.conn != nil && quiet(st, *j.conn) {
		// Polled as Run knows the connection: a peek writes nothing, and
		// a pass reads it again below.
		var idle bool
		if pre, idle = im.peek(ctx, *j.conn); idle {
			return runResult{id: j.id, next: im.cfg.Now().Add(im.cfg.PollInterval)}
		}
	}
	c, err := im.deps.Connections.Get(ctx, j.id)
	if connector.IsKind(err, connector.NotFound) {
		im.forget(j.id)
		return runResult{id: j.id}
	}
	if err != nil {
		if ctx.Err() == nil {
			im.log.Warn("importer: get connection", "connection_id", j.id, "error", err)
		}
		return later
	}
	if !workable(c.State) {
		im.forget(j.id)
		return runResult{id: j.id}
	}
	if pre == nil && !j.triggered && j.conn == nil && quiet(st, c) {
		var idle bool
		if pre, idle = im.peek(ctx, c); idle {
			return runResult{id: j.id, next: im.cfg.Now().Add(im.cfg.PollInterval)}
		}
	}
	res, next, err := im.syncPass(ctx, c, pre)
	switch {
	case errors.Is(err, ErrLeased):
		// Another replica works it and reports its lag.
		im.metrics.lag.DeleteLabelValues(j.id)
	case err != nil && (stopped(err) || errors.Is(err, errYield) || errors.Is(err, errConnectionStopped)):
	case infraComponent(err) != "":
		// finish logged it once, as the operator's fault.
	case err != nil:
		im.log.Warn("importer: pass failed", "connection_id", j.id, "kind", connector.KindOf(err).String(),
			"imported", res.Imported, "error", err)
	default:
		im.log.Debug("importer: pass done", "connection_id", j.id, "messages", res.Messages,
			"imported", res.Imported, "skipped", res.Skipped, "pages", res.Pages, "duration", res.Duration)
	}
	if res.Yielded {
		return runResult{id: j.id, next: next} // due at once, behind the others due
	}
	// Stopped, leased elsewhere or due at once: look again after a scan
	// interval, as a scan would.
	later.next = im.cfg.Now().Add(im.cfg.ScanInterval)
	if next.After(later.next) {
		return runResult{id: j.id, next: next}
	}
	return later
}

// forget drops what this replica reports about a connection it no longer
// polls.
func (im *Importer) forget(id string) {
	im.metrics.lag.DeleteLabelValues(id)
	im.dropQuiet(id)
}

// workable reports whether Run polls a connection in state s; failing
// connections are polled (with backoff) so they can recover.
func workable(s connector.State) bool {
	return s == connector.StateActive || s == connector.StateFailing
}

func stopped(err error) bool {
	return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) ||
		errors.Is(err, errLeaseLost) || errors.Is(err, errCursorMoved)
}

// flushStatus adds what the pass did since the last flush to the
// connection's Status, lets edit change the rest, and writes it.
func (im *Importer) flushStatus(ctx context.Context, p *pass, edit func(*Status)) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	st, _, err := im.ledger.status(ctx, p.conn.ID)
	if err != nil {
		im.log.Warn("importer: read status", "connection_id", p.conn.ID, "error", err)
	}
	before, _ := json.Marshal(st)
	p.mu.Lock()
	st.ConnectionID = p.conn.ID
	st.Imported += p.imported
	for r, n := range p.skipped {
		if st.SkippedByReason == nil {
			st.SkippedByReason = make(map[string]int64)
		}
		st.SkippedByReason[r] += n
		st.Skipped += n
	}
	st.add(p.history)
	entries := p.history
	if p.hasBackfill {
		st.Backfill = p.backfill
	}
	st.Parked, st.GivenUp = 0, 0
	for _, e := range p.backlog.Parked {
		if e.GaveUp {
			st.GivenUp++
		} else {
			st.Parked++
		}
	}
	st.ParkedMails = parkedList(p.backlog)
	if len(st.ParkedMails) > maxParkedShown {
		st.ParkedMails = st.ParkedMails[:maxParkedShown]
	}
	p.imported, p.skipped, p.history = 0, make(map[string]int64), nil
	p.mu.Unlock()
	if err := im.history.append(ctx, p.conn.ID, entries); err != nil {
		im.log.Warn("importer: write history", "connection_id", p.conn.ID, "error", err)
	}
	if edit != nil {
		edit(&st)
	}
	if err == nil && !statusChanged(before, st, im.cfg.Now()) {
		return
	}
	if err := im.ledger.putStatus(ctx, st); err != nil {
		im.log.Warn("importer: write status", "connection_id", p.conn.ID, "error", err)
	}
}

// statusChanged reports whether st must be written over the stored
// status (before, as JSON): when something a reader sees changed, or when
// the stored next check lies ahead of now (a worker reading it would wait
// for it). LastSync and NextSync alone change on every idle poll; Run
// keeps the next check in memory, and a replica that did not poll reads a
// past NextSync and polls once more, which its lease makes harmless.
func statusChanged(before []byte, st Status, now time.Time) bool {
	var old Status
	if err := json.Unmarshal(before, &old); err != nil {
		return true
	}
	if old.NextSync.After(now) && !old.NextSync.Equal(st.NextSync) {
		return true
	}
	st.LastSync, st.NextSync = old.LastSync, old.NextSync
	after, err := json.Marshal(st)
	return err != nil || !bytes.Equal(before, after)
}

// finish records a pass's outcome in the connection's Status, schedules the
// next check and moves the connection between active, failing and
// needs_consent.
// It returns the next check.
func (im *Importer) finish(ctx context.Context, p *pass, err error) (next time.Time) {
	c := p.conn
	now := im.cfg.Now()
	im.metrics.duration.Observe(p.res.Duration.Seconds())
	kind := connector.KindOf(err)
	var to connector.State
	var action string
	if err == nil || errors.Is(err, errYield) {
		if werr := p.doneWorking(ctx); werr != nil {
			im.log.Warn("importer: clear the work mark", "connection_id", c.ID, "error", werr)
		}
	}
	im.flushStatus(ctx, p, func(st *Status) {
		st.LastSync = now
		switch {
		case err == nil || errors.Is(err, errYield):
			st.ConsecutiveErrors, st.LastError, st.LastErrorKind = 0, "", ""
			st.NextSync = now.Add(im.cfg.PollInterval)
			if err != nil {
				st.NextSync = now // more to do, behind the others due
			}
			if c.State == connector.StateFailing {
				to, action = connector.StateActive, "recovered"
			}
		case stopped(err) || errors.Is(err, errConnectionStopped):
			// Shutdown, lost lease, paused or deleted: due again at once,
			// no error.
		case infraComponent(err) != "":
			// The operator's fault: retried soon, charged to nobody. The
			// customer is told that the delay is not theirs; the cause goes
			// to the log, the metrics and /readyz.
			st.LastError = "mailgate's storage or message bus is unavailable; imports resume by themselves"
			st.LastErrorKind = "infrastructure"
			st.NextSync = now.Add(min(im.cfg.PollInterval, 30*time.Second))
			im.metrics.errors.WithLabelValues("infrastructure").Inc()
			im.infraFault(c, err)
		case kind == connector.Throttled:
			st.LastError, st.LastErrorKind = err.Error(), kind.String()
			st.NextSync = now.Add(max(connector.RetryAfter(err), time.Second))
			im.metrics.errors.WithLabelValues(kind.String()).Inc()
		case kind == connector.NeedsConsent:
			st.LastError, st.LastErrorKind = err.Error(), kind.String()
			st.NextSync = time.Time{}
			im.metrics.errors.WithLabelValues(kind.String()).Inc()
			if c.State == connector.StateActive || c.State == connector.StateFailing {
				to, action = connector.StateNeedsConsent, "needs_consent"
			}
		default:
			st.ConsecutiveErrors++
			st.LastError, st.LastErrorKind = err.Error(), kind.String()
			st.NextSync = now.Add(min(im.backoff.delay(st.ConsecutiveErrors), max(im.cfg.PollInterval, 30*time.Minute)))
			im.metrics.errors.WithLabelValues(kind.String()).Inc()
			if st.ConsecutiveErrors >= im.cfg.FailAfter && c.State == connector.StateActive {
				to, action = connector.StateFailing, "failing"
			}
		}
		if err == nil || errors.Is(err, errYield) {
			im.infraRecovered() // a whole pass worked: whatever failed before works again
		}
		if d := p.nextParked(); !d.IsZero() && (st.NextSync.IsZero() || d.Before(st.NextSync)) && st.LastErrorKind == "" {
			st.NextSync = d // a parked mail's retry is due first
		}
		next = st.NextSync
	})
	if to != "" {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		im.setState(ctx, c, to, action, msg, kind)
	}
	return next
}

// errStateChanged aborts a state update when somebody else changed the
// connection's state since the pass read it.
var errStateChanged = errors.New("importer: connection state changed meanwhile")

// setState moves a connection from the state the pass saw to "to". A
// connection somebody else changed meanwhile is left alone.
func (im *Importer) setState(ctx context.Context, c connector.Connection, to connector.State, action, lastError string, kind connector.Kind) {
	from := c.State
	_, err := im.deps.Connections.Update(ctx, c.ID, func(cc *connector.Connection) error {
		if cc.State != from {
			return errStateChanged
		}
		cc.State, cc.UpdatedBy = to, "importer"
		cc.SetError(lastError, kind)
		return nil
	})
	if errors.Is(err, errStateChanged) {
		return
	}
	if err != nil {
		im.log.Warn("importer: update connection state", "connection_id", c.ID, "to", string(to), "error", err)
		return
	}
	// The connection store announces the change (connection.changed) with
	// UpdatedBy as the actor; publishing here as well would double it.
	im.log.Info("importer: connection state changed", "connection_id", c.ID, "from", string(from), "to", string(to), "action", action)
}
