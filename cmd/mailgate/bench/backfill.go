package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
)

// The backfill scenario: Microsoft's per-mailbox budget of 10,000
// requests per 10 minutes, scaled 10 times in time to 10,000 per minute
// (167 requests/s, so mailgate must import 80 documents a second to keep
// up), so that 20,000 mails with post-processing "move" (about two
// requests each) take some four minutes. --scale shrinks the mails and
// the window alike and keeps the rate.
const (
	backfillMails    = 20000
	backfillWindow   = time.Minute
	backfillRequests = graph.DefaultRequests
	backfillMinSize  = 20 << 10
	backfillMaxSize  = 50 << 10
)

// GoalBackfillShare is the share of the allowed rate a backfill uses, at
// least, with no 429 (issue 13).
const GoalBackfillShare = 0.90

// backfillLimits are the scenario's budget and window at opts' scale.
func (o *Options) backfillLimits() (requests int, window time.Duration) {
	s := math.Min(o.Scale, 1)
	return max(10, int(math.Round(backfillRequests*s))), time.Duration(float64(backfillWindow) * s)
}

// backfillScenario backfills a mailbox of 20,000 mails with one 20–50 KB
// PDF each, post-processing "move", with the simulator enforcing the
// scaled limits and mailgate's Graph client configured with the same. It
// prints the progress from the connection's status (what the portal
// shows) while it runs.
func (b *bencher) backfillScenario(ctx context.Context) ([]Row, error) {
	mails := b.opts.count(backfillMails)
	requests, window := b.opts.backfillLimits()
	sizes := make([]int, mails)
	total := 0
	for i := range sizes {
		sizes[i] = backfillMinSize + (i*7919)%(backfillMaxSize-backfillMinSize+1)
		total += sizes[i] + pdfOverhead
	}
	a, err := newArena(total)
	if err != nil {
		return nil, err
	}
	defer a.free()
	e, err := b.newEnv(ctx, ScenarioBackfill, graph.Config{Requests: requests, Window: window}, importer.Config{})
	if err != nil {
		return nil, err
	}
	defer e.close()
	e.sim.SetThrottle(graphtest.Throttle{MaxConcurrent: graph.DefaultMaxInFlight, Requests: requests, Window: window})
	received := time.Now().UTC().Add(-time.Duration(mails) * time.Minute)
	var bytes int64
	for i := range mails {
		doc := makePDF(a, sizes[i], 2<<20+uint64(i), "RE-2026-"+strconv.Itoa(i))
		bytes += int64(len(doc))
		if _, err := e.sim.Deliver(graphtest.DefaultMailbox, invoiceMail(i, received.Add(time.Duration(i)*time.Minute), doc)); err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
	}
	c, err := e.conns.Create(ctx, connector.Connection{
		Customer: customer, TenantID: graphtest.DefaultTenantID, Mailbox: graphtest.DefaultMailbox,
		Mode: connector.AppOnly, State: connector.StateActive, ClientID: graphtest.DefaultClientID,
		PostProcess: connector.PostProcess{Action: connector.PostMove}, // the default of real connections
		Backfill:    connector.Backfill{Mode: connector.BackfillAll},
		CreatedBy:   "bench",
	})
	if err != nil {
		return nil, err
	}
	statuses, err := importer.NewStatusReader(ctx, e.js, 0)
	if err != nil {
		return nil, err
	}

	e.sim.ResetCounters()
	e.time.reset()
	resetPeakRSS()
	base, cpu0, t0 := currentRSS(), cpuTime(), time.Now()
	pctx, stopProgress := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		showProgress(pctx, b.progress, statuses, c.ID, max(time.Second, time.Duration(float64(10*time.Second)*math.Min(b.opts.Scale, 1))))
	})
	res, err := e.im.SyncNow(ctx, c.ID)
	elapsed := time.Since(t0)
	stopProgress()
	wg.Wait()
	row := Row{Scenario: ScenarioBackfill, What: whatMailgate, Elapsed: elapsed, CPU: cpuTime() - cpu0, PeakRSS: peakRSS(), Bytes: bytes}
	if err != nil {
		return nil, fmt.Errorf("sync: %w", err)
	}
	row.RSSIncrease = row.PeakRSS - min(base, row.PeakRSS)
	row.Docs = res.Imported
	row.GraphRequests, row.Throttled = graphRequests(e.sim.Counters())
	st, err := statuses.Status(ctx, c.ID)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(b.progress, "  %s\n", progressLine(st.Backfill))
	if res.Imported != mails || !st.Backfill.Done || st.Backfill.Total != mails || st.Backfill.Documents != mails {
		return nil, fmt.Errorf("%w: %d of %d documents imported, progress %+v", errIncomplete, res.Imported, mails, st.Backfill)
	}
	row.Note = fmt.Sprintf("%s; limit %d requests per %s (%.1f/s allowed = Microsoft's 10,000 per 10 min × %.0f in time), max 4 in flight, post-processing move: used %.1f/s = %.3f of the allowed rate, %d × 429",
		e.time.split(row.Elapsed), requests, window, float64(requests)/window.Seconds(),
		float64(graph.DefaultWindow)/float64(window)*float64(requests)/float64(graph.DefaultRequests),
		per(float64(row.GraphRequests), row.Elapsed), backfillShare(row, requests, window), row.Throttled)
	return []Row{row}, nil
}

// backfillShare is the share of the allowed request rate a row used.
func backfillShare(r Row, requests int, window time.Duration) float64 {
	return per(float64(r.GraphRequests), r.Elapsed) / (float64(requests) / window.Seconds())
}

// showProgress prints the connection's backfill progress every interval
// until ctx ends, read from the status the portal reads.
func showProgress(ctx context.Context, w io.Writer, statuses *importer.StatusReader, id string, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := statuses.Status(ctx, id)
		if err != nil {
			if ctx.Err() == nil {
				fmt.Fprintf(w, "  backfill: status: %v\n", err)
			}
			continue
		}
		fmt.Fprintf(w, "  %s\n", progressLine(st.Backfill))
	}
}

// progressLine is e.g. "backfill: 5,000/20,000 mails, 4,998 documents, ETA 1m12s".
func progressLine(p importer.BackfillProgress) string {
	s := fmt.Sprintf("backfill: %s/%s mails, %s documents", thousands(p.Messages), thousands(p.Total), thousands(p.Documents))
	switch {
	case p.Done:
		s += ", done"
	case p.ETASeconds > 0:
		s += ", ETA " + (time.Duration(p.ETASeconds) * time.Second).String()
	}
	return s
}

func thousands(n int) string { return message.NewPrinter(language.English).Sprintf("%d", n) }
