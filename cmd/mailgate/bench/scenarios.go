package bench

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
)

// Row.What values.
const (
	whatMailgate   = "mailgate"
	whatMailgate4  = "mailgate, 4 mailboxes"
	whatRawPut     = "raw put"
	whatRawPublish = "raw JetStream publish"
)

// unlimited lifts the request budget of the simulator and the Graph client
// for the throughput scenarios; the concurrency limit of 4 stays. Budgets
// are measured by the limits scenario.
const unlimited = 1 << 30

// importScenario delivers mails with one PDF of size bytes each into the
// default mailbox, lets one sync pass import them, and measures the raw
// put (and with publish, the raw JetStream publish) of the same documents.
func (b *bencher) importScenario(ctx context.Context, name string, mails, size int, publish bool) (_ []Row, err error) {
	a, err := newArena(mails * (size + pdfOverhead))
	if err != nil {
		return nil, err
	}
	defer a.free()
	e, err := b.newEnv(ctx, name, graph.Config{Requests: unlimited}, importer.Config{})
	if err != nil {
		return nil, err
	}
	defer e.close() // before a.free: the simulator serves the arena
	e.sim.SetThrottle(graphtest.Throttle{Requests: unlimited})

	docs, err := b.deliver(e.sim, graphtest.DefaultMailbox, a, mails, size, 0)
	if err != nil {
		return nil, err
	}
	// The raw ceiling is measured before and after mailgate, and the
	// faster run counts: the disk's pace drifts during a run, and the
	// ratio should not flatter mailgate when it does.
	rawBefore, err := b.rawPutRow(ctx, name, "before", docs)
	if err != nil {
		return nil, err
	}
	c, err := b.connect(ctx, e, graphtest.DefaultMailbox)
	if err != nil {
		return nil, err
	}
	row, err := measureSync(ctx, e, c.ID, name, docs)
	if err != nil {
		return nil, err
	}
	rows := []Row{row}
	if publish {
		// The same documents again, spread over four mailboxes of another
		// customer and imported by four passes at once, as Run's four
		// workers would: what concurrency across mails buys.
		row4, err := b.concurrentRow(ctx, e, name, docs)
		if err != nil {
			return nil, err
		}
		rows = append(rows, row4)
	}
	raw, err := b.rawPutRow(ctx, name, "after", docs)
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("raw put before mailgate %.1f docs/s, after %.1f docs/s; the faster counts",
		rawBefore.DocsPerSec(), raw.DocsPerSec())
	if rawBefore.Elapsed < raw.Elapsed {
		raw = rawBefore
	}
	raw.Note = note
	rows = append(rows, raw)
	if publish {
		pub, err := rawPublishRow(ctx, e.js, name, mails)
		if err != nil {
			return nil, err
		}
		rows = append(rows, pub)
	}
	return rows, nil
}

// concurrentRow imports docs from four mailboxes at once.
func (b *bencher) concurrentRow(ctx context.Context, e *env, scenario string, docs [][]byte) (Row, error) {
	const n = 4
	received := time.Now().UTC().Add(-time.Duration(len(docs)) * time.Second)
	var ids []string
	for k := range n {
		addr := fmt.Sprintf("rechnungen%d@%s", k, graphtest.DefaultTenantDomain)
		e.sim.AddMailbox(graphtest.Mailbox{Address: addr, DisplayName: "Rechnungen " + strconv.Itoa(k), Shared: true})
		for i := k; i < len(docs); i += n {
			if _, err := e.sim.Deliver(addr, invoiceMail(i, received.Add(time.Duration(i)*time.Second), docs[i])); err != nil {
				return Row{}, fmt.Errorf("deliver: %w", err)
			}
		}
		c, err := b.connectAs(ctx, e, customer+"4", addr)
		if err != nil {
			return Row{}, err
		}
		ids = append(ids, c.ID)
	}
	e.sim.ResetCounters()
	e.time.reset()
	resetPeakRSS()
	base, cpu0, t0 := currentRSS(), cpuTime(), time.Now()
	results := make([]importer.PassResult, n)
	g, gctx := errgroup.WithContext(ctx)
	for k, id := range ids {
		g.Go(func() error {
			var err error
			results[k], err = e.im.SyncNow(gctx, id)
			return err
		})
	}
	err := g.Wait()
	row := Row{Scenario: scenario, What: whatMailgate4, Elapsed: time.Since(t0), CPU: cpuTime() - cpu0, PeakRSS: peakRSS()}
	if err != nil {
		return Row{}, fmt.Errorf("sync: %w", err)
	}
	row.RSSIncrease = row.PeakRSS - min(base, row.PeakRSS)
	for _, r := range results {
		row.Docs += r.Imported
	}
	for _, d := range docs {
		row.Bytes += int64(len(d))
	}
	row.GraphRequests, row.Throttled = graphRequests(e.sim.Counters())
	if row.Docs != len(docs) {
		return Row{}, fmt.Errorf("%w: %d of %d documents imported from 4 mailboxes", errIncomplete, row.Docs, len(docs))
	}
	return row, nil
}

// deliver puts n invoice mails with a PDF of size bytes each into mailbox
// and returns the PDFs.
func (b *bencher) deliver(sim *graphtest.Server, mailbox string, a *arena, n, size int, seed uint64) ([][]byte, error) {
	received := time.Now().UTC().Add(-time.Duration(n) * time.Second)
	docs := make([][]byte, n)
	for i := range n {
		docs[i] = makePDF(a, size, seed+uint64(i), "RE-2026-"+strconv.Itoa(i))
		if _, err := sim.Deliver(mailbox, invoiceMail(i, received.Add(time.Duration(i)*time.Second), docs[i])); err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
	}
	return docs, nil
}

// measureSync runs one sync pass over a connection and measures it.
func measureSync(ctx context.Context, e *env, connID, scenario string, docs [][]byte) (Row, error) {
	e.sim.ResetCounters()
	e.time.reset()
	resetPeakRSS()
	base, cpu0, t0 := currentRSS(), cpuTime(), time.Now()
	res, err := e.im.SyncNow(ctx, connID)
	row := Row{Scenario: scenario, What: whatMailgate, Elapsed: time.Since(t0), CPU: cpuTime() - cpu0, PeakRSS: peakRSS()}
	if err != nil {
		return Row{}, fmt.Errorf("sync: %w", err)
	}
	row.RSSIncrease = row.PeakRSS - min(base, row.PeakRSS)
	row.Docs = res.Imported
	for _, d := range docs[:min(res.Imported, len(docs))] {
		row.Bytes += int64(len(d))
	}
	row.GraphRequests, row.Throttled = graphRequests(e.sim.Counters())
	row.Note = e.time.split(row.Elapsed)
	if res.Imported != len(docs) {
		return Row{}, fmt.Errorf("%w: %d of %d documents imported (%d skipped, %d failed)", errIncomplete, res.Imported, len(docs), res.Skipped, res.Failed)
	}
	return row, nil
}

// idleScenario connects n empty mailboxes, does their first round, then
// measures two poll intervals of the importer's Run polling them.
func (b *bencher) idleScenario(ctx context.Context, n int) ([]Row, error) {
	poll := b.opts.IdlePoll
	e, err := b.newEnv(ctx, ScenarioIdle, graph.Config{}, importer.Config{
		PollInterval: poll,
		ScanInterval: min(time.Second, poll/4),
	})
	if err != nil {
		return nil, err
	}
	defer e.close()
	e.sim.SetThrottle(graphtest.Throttle{Requests: unlimited})
	ids := make([]string, n)
	for i := range n {
		addr := fmt.Sprintf("eingang%04d@%s", i, graphtest.DefaultTenantDomain)
		e.sim.AddMailbox(graphtest.Mailbox{Address: addr, DisplayName: "Eingang " + strconv.Itoa(i), Shared: true})
		c, err := b.connect(ctx, e, addr)
		if err != nil {
			return nil, err
		}
		ids[i] = c.ID
	}

	// The first round (each mailbox's initial delta) through SyncNow, four
	// at a time like Run's default workers, so the measurement starts with
	// every connection in its idle rhythm: due again one poll interval
	// after its first pass.
	e.sim.ResetCounters()
	t1, cpu1 := time.Now(), cpuTime()
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for _, id := range ids {
		g.Go(func() error {
			_, err := e.im.SyncNow(gctx, id)
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("first round: %w", err)
	}
	firstRound, firstCPU := time.Since(t1), cpuTime()-cpu1
	firstReq, _ := graphRequests(e.sim.Counters())

	rctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var runErr error
	wg.Go(func() { runErr = e.im.Run(rctx) })
	defer func() { stop(); wg.Wait() }()
	e.sim.ResetCounters()
	resetPeakRSS()
	base, cpu0, t0 := currentRSS(), cpuTime(), time.Now()
	// Every connection falls due once about one interval after its first
	// pass; two intervals show how many of those polls Run delivers.
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(2 * poll):
	}
	counters := e.sim.Counters()
	row := Row{Scenario: ScenarioIdle, What: whatMailgate, Elapsed: time.Since(t0), CPU: cpuTime() - cpu0, PeakRSS: peakRSS()}
	row.RSSIncrease = row.PeakRSS - min(base, row.PeakRSS)
	row.Docs = counters.Total("messages.delta")
	row.GraphRequests, row.Throttled = graphRequests(counters)
	stop()
	wg.Wait()
	if runErr != nil && ctx.Err() == nil && rctx.Err() == nil {
		return nil, fmt.Errorf("importer run: %w", runErr)
	}
	cpuPerPoll := time.Duration(0)
	if row.Docs > 0 {
		cpuPerPoll = row.CPU / time.Duration(row.Docs)
	}
	row.Note = fmt.Sprintf("%d mailboxes, poll interval %s; Run over %s: %d polls of at least %d due, CPU %.2f ms/poll, %.1f%% of a core; "+
		"first round (%d passes by SyncNow, 4 at a time) in %.1fs: CPU %.2f ms/pass, %.2f Graph requests/pass",
		n, poll, row.Elapsed.Round(time.Second), row.Docs, n, float64(cpuPerPoll)/1e6, 100*row.CPU.Seconds()/row.Elapsed.Seconds(),
		n, firstRound.Seconds(), float64(firstCPU)/float64(n)/1e6, float64(firstReq)/float64(n))
	return []Row{row}, nil
}

// limitRequests is Microsoft's per app and mailbox budget (10,000 requests
// per 10 minutes) scaled to window.
func limitRequests(window time.Duration) int {
	return max(10, int(math.Round(float64(graph.DefaultRequests)*window.Seconds()/graph.DefaultWindow.Seconds())))
}

// limitShare is the share of the allowed request rate a limits row used.
func limitShare(r Row, window time.Duration) float64 {
	allowed := float64(limitRequests(window)) / window.Seconds()
	return per(float64(r.GraphRequests), r.Elapsed) / allowed
}

// limitsScenario imports with the simulator enforcing Microsoft's
// per-mailbox limits, scaled down in time, and mailgate's Graph client
// configured with the same limits, as it would be against Microsoft.
func (b *bencher) limitsScenario(ctx context.Context) ([]Row, error) {
	window := b.opts.LimitWindow
	requests := limitRequests(window)
	mails := limitWindows * requests / 2 // about two requests per document
	a, err := newArena(mails * (docsSize + pdfOverhead))
	if err != nil {
		return nil, err
	}
	defer a.free()
	e, err := b.newEnv(ctx, ScenarioLimits, graph.Config{Requests: requests, Window: window}, importer.Config{})
	if err != nil {
		return nil, err
	}
	defer e.close()
	e.sim.SetThrottle(graphtest.Throttle{MaxConcurrent: graph.DefaultMaxInFlight, Requests: requests, Window: window})
	docs, err := b.deliver(e.sim, graphtest.DefaultMailbox, a, mails, docsSize, 1<<20)
	if err != nil {
		return nil, err
	}
	c, err := b.connect(ctx, e, graphtest.DefaultMailbox)
	if err != nil {
		return nil, err
	}
	row, err := measureSync(ctx, e, c.ID, ScenarioLimits, docs)
	if err != nil {
		return nil, err
	}
	row.Note = fmt.Sprintf("%s; limit %d requests per %s (%.1f/s allowed), max 4 in flight: used %.1f/s = %.3f of the allowed rate, %d × 429",
		row.Note, requests, window, float64(requests)/window.Seconds(), per(float64(row.GraphRequests), row.Elapsed), limitShare(row, window), row.Throttled)
	return []Row{row}, nil
}

// photosScenario delivers mails with the phone photos of paper receipts,
// 30 photos of 3 MB each per mail at full size, and imports them in one
// sync pass with every mail of the page in flight (the importer's eight).
// What it shows is memory: a mail must cost the memory of a document,
// however many documents it carries.
func (b *bencher) photosScenario(ctx context.Context) ([]Row, error) {
	mails, perMail, size := b.opts.count(photoMails), b.opts.count(photosPerMail), b.opts.size(photoSize)
	a, err := newArena(mails * perMail * size)
	if err != nil {
		return nil, err
	}
	defer a.free()
	e, err := b.newEnv(ctx, ScenarioPhotos, graph.Config{Requests: unlimited}, importer.Config{})
	if err != nil {
		return nil, err
	}
	defer e.close() // before a.free: the simulator serves the arena
	e.sim.SetThrottle(graphtest.Throttle{Requests: unlimited})
	received := time.Now().UTC().Add(-time.Duration(mails) * time.Second)
	var docs [][]byte
	for i := range mails {
		photos := make([][]byte, perMail)
		for k := range photos {
			photos[k] = makeJPEG(a, size, uint64(i*perMail+k))
		}
		docs = append(docs, photos...)
		if _, err := e.sim.Deliver(graphtest.DefaultMailbox, photoMail(i, received.Add(time.Duration(i)*time.Second), photos)); err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
	}
	c, err := b.connect(ctx, e, graphtest.DefaultMailbox)
	if err != nil {
		return nil, err
	}
	row, err := measureSync(ctx, e, c.ID, ScenarioPhotos, docs)
	if err != nil {
		return nil, err
	}
	row.Note = fmt.Sprintf("%d mails with %d photos of %s each, %s", mails, perMail, mib(int64(size)), row.Note)
	return []Row{row}, nil
}
