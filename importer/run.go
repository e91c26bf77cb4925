package importer

import (
	"context"
	"errors"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// Run works due connections until ctx is done: every ScanInterval (and on
// Trigger) it lists the connections, and hands each one that is due and not
// leased elsewhere to one of Workers workers. When ctx ends it lets the
// workers finish the document in flight and returns after they stopped.
func (im *Importer) Run(ctx context.Context) error {
	jobs := make(chan string)
	var wg sync.WaitGroup
	for range im.cfg.Workers {
		wg.Go(func() {
			for id := range jobs {
				im.work(ctx, id)
				im.mu.Lock()
				delete(im.active, id)
				im.mu.Unlock()
			}
		})
	}
	defer func() {
		close(jobs)
		wg.Wait()
	}()

	ticker := time.NewTicker(im.cfg.ScanInterval)
	defer ticker.Stop()
	triggered := make(map[string]bool)
	for {
		im.dispatch(ctx, jobs, triggered)
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
		case id := <-im.trigger:
			triggered[id] = true
		}
	}
}

// dispatch hands due connections to idle workers; those that find no idle
// worker wait for the next round.
func (im *Importer) dispatch(ctx context.Context, jobs chan<- string, triggered map[string]bool) {
	conns, err := im.deps.Connections.List(ctx)
	if err != nil {
		if ctx.Err() == nil {
			im.log.Warn("importer: list connections", "error", err)
		}
		return
	}
	now := im.cfg.Now()
	for _, c := range conns {
		if !workable(c.State) {
			delete(triggered, c.ID)
			continue
		}
		im.mu.Lock()
		busy := im.active[c.ID]
		im.mu.Unlock()
		if busy {
			continue
		}
		if !triggered[c.ID] {
			st, _, err := im.ledger.status(ctx, c.ID)
			if err != nil {
				im.log.Warn("importer: read status", "connection_id", c.ID, "error", err)
				continue
			}
			if st.NextSync.After(now) {
				continue
			}
		}
		im.mu.Lock()
		im.active[c.ID] = true
		im.mu.Unlock()
		select {
		case jobs <- c.ID:
			delete(triggered, c.ID)
		default: // all workers busy
			im.mu.Lock()
			delete(im.active, c.ID)
			im.mu.Unlock()
			return
		}
	}
}

// workable reports whether Run polls a connection in state s; failing
// connections are polled (with backoff) so they can recover.
func workable(s connector.State) bool {
	return s == connector.StateActive || s == connector.StateFailing
}

// work runs one pass over a connection for Run.
func (im *Importer) work(ctx context.Context, id string) {
	c, err := im.deps.Connections.Get(ctx, id)
	if err != nil {
		if ctx.Err() == nil {
			im.log.Warn("importer: get connection", "connection_id", id, "error", err)
		}
		return
	}
	if !workable(c.State) {
		return
	}
	res, err := im.syncLeased(ctx, c)
	switch {
	case errors.Is(err, ErrLeased):
	case err != nil && stopped(err):
	case err != nil:
		im.log.Warn("importer: pass failed", "connection_id", id, "kind", connector.KindOf(err).String(),
			"imported", res.Imported, "error", err)
	default:
		im.log.Debug("importer: pass done", "connection_id", id, "messages", res.Messages,
			"imported", res.Imported, "skipped", res.Skipped, "pages", res.Pages, "duration", res.Duration)
	}
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
	st.Backfill = p.backfill
	p.imported, p.skipped, p.history = 0, make(map[string]int64), nil
	p.mu.Unlock()
	if edit != nil {
		edit(&st)
	}
	if err := im.ledger.putStatus(ctx, st); err != nil {
		im.log.Warn("importer: write status", "connection_id", p.conn.ID, "error", err)
	}
}

// finish records a pass's outcome in the connection's Status, schedules the
// next check and moves the connection between active, failing and
// needs_consent.
func (im *Importer) finish(ctx context.Context, p *pass, err error) {
	c := p.conn
	now := im.cfg.Now()
	im.metrics.duration.Observe(p.res.Duration.Seconds())
	kind := connector.KindOf(err)
	var to connector.State
	var action string
	im.flushStatus(ctx, p, func(st *Status) {
		st.LastSync = now
		switch {
		case err == nil:
			st.ConsecutiveErrors, st.LastError, st.LastErrorKind = 0, "", ""
			st.NextSync = now.Add(im.cfg.PollInterval)
			if c.State == connector.StateFailing {
				to, action = connector.StateActive, "recovered"
			}
		case stopped(err):
			// Shutdown or lost lease: due again at once, no error.
		case errors.Is(err, errDocumentsFailed):
			// Spread the retries of a failing attachment over minutes, so a
			// short outage does not use up its attempts.
			st.LastError = "attachments failed, retrying: " + strings.Join(p.failures, "; ")
			st.LastErrorKind = "attachment"
			retry := backoff{base: 30 * time.Second, max: im.cfg.PollInterval, rand: im.backoff.rand}
			st.NextSync = now.Add(min(im.cfg.PollInterval, retry.delay(p.attempts)))
			im.metrics.errors.WithLabelValues("attachment").Inc()
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
	})
	if to != "" {
		msg := ""
		if err != nil {
			msg = err.Error()
		}
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		im.setState(ctx, c, to, action, msg)
	}
}

// errStateChanged aborts a state update when somebody else changed the
// connection's state since the pass read it.
var errStateChanged = errors.New("importer: connection state changed meanwhile")

// setState moves a connection from the state the pass saw to "to". A
// connection somebody else changed meanwhile is left alone.
func (im *Importer) setState(ctx context.Context, c connector.Connection, to connector.State, action, lastError string) {
	from := c.State
	_, err := im.deps.Connections.Update(ctx, c.ID, func(cc *connector.Connection) error {
		if cc.State != from {
			return errStateChanged
		}
		cc.State, cc.LastError, cc.UpdatedBy = to, lastError, "importer"
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
