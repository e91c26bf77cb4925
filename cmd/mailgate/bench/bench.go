package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer"
	"github.com/mailgate/mailgate/internal/minioproc"
)

// Scenario names for Options.Only.
const (
	ScenarioDocs   = "docs"   // (a) many mails with one 100 KB PDF each
	ScenarioLarge  = "large"  // (b) a few mails with one 50 MB attachment each
	ScenarioIdle   = "idle"   // (c) many idle connected mailboxes
	ScenarioHuge   = "huge"   // (d) 8 mails with one 150 MB attachment each, all in flight
	ScenarioPhotos = "photos" // 8 mails with 30 phone photos of 3 MB each, all in flight
	ScenarioLimits = "limits" // the second mode: Microsoft's per-mailbox limits enforced
	// ScenarioIdleScale is many idle mailboxes on a 1-minute poll interval
	// with the simulator in its own process; it runs only when named in
	// Options.Only (scale.go).
	ScenarioIdleScale = "idle-scale"
	// ScenarioBackfill is a 20,000-mail backfill under Microsoft's limits
	// scaled in time, with its progress shown while it runs; it runs only
	// when named in Options.Only (backfill.go).
	ScenarioBackfill = "backfill"
)

// Scenarios lists every scenario in the order Run runs them.
func Scenarios() []string {
	return []string{ScenarioDocs, ScenarioLarge, ScenarioIdle, ScenarioHuge, ScenarioPhotos, ScenarioLimits, ScenarioIdleScale, ScenarioBackfill, ScenarioEInvoices}
}

// Full-size parameters (Scale 1).
const (
	docsMails     = 2000
	docsSize      = 100 << 10
	largeMails    = 20
	largeSize     = 50 << 20
	idleMailbox   = 1000
	hugeMails     = 8 // the importer's mails in flight
	hugeSize      = 150 << 20
	photoMails    = 8
	photosPerMail = 30
	photoSize     = 3 << 20
	limitWindows  = 3 // windows of requests the limits scenario asks for
)

// Goals of issue 7.
const (
	GoalPutRatio       = 0.70     // mailgate/raw PutObject docs/s for 100 KB documents, at least
	GoalRequestsPerDoc = 2.1      // Graph requests per imported document, at most
	GoalRateShare      = 0.90     // share of the allowed request rate used, at least (with no 429)
	GoalHugeRSS        = 64 << 20 // peak RSS growth importing 150 MB attachments or mails of 30 photos, 8 mails in flight, at most
)

// Options configure Run. Each field maps to one flag of `mailgate bench`.
type Options struct {
	// Scale multiplies the mail and mailbox counts and the sizes of the
	// 50 MB and 150 MB attachments (not the 100 KB ones); 1 (the default
	// for 0) is the full benchmark, 0.05 a smoke test. Flag --scale.
	Scale float64
	// Only runs these scenarios (see Scenarios); empty runs all. Flag
	// --only docs,large,idle,huge,limits.
	Only []string
	// IdlePoll is the poll interval of the idle scenario, which measures
	// for twice as long; default 30s. Flag --idle-poll.
	IdlePoll time.Duration
	// LimitWindow is Microsoft's 10-minute request window scaled down for
	// the limits scenario; the request budget shrinks with it
	// (10,000 × LimitWindow / 10 min), so the allowed rate stays Microsoft's
	// 16.7 requests/s. Default 10s. Flag --limit-window.
	LimitWindow time.Duration
	// PostProcess is what happens to an imported mail (none, move,
	// mark_read, category); default move, a new connection's default.
	// Flag --post-process.
	PostProcess connector.PostAction
	// MinIO is the minio binary; "" searches PATH and $(go env GOPATH)/bin.
	// Flag --minio.
	MinIO string
	// NoMinIO uses the directory archive instead of MinIO, and plain file
	// writes as the raw ceiling. Flag --no-minio.
	NoMinIO bool
	// Dir holds the temporary NATS store, MinIO data, spool and archive
	// directory; "" = os.TempDir(). Everything is removed at the end.
	// Flag --dir.
	Dir string
	// ScaleMailboxes is the idle-scale scenario's mailbox count; 0 means
	// 10,000 × Scale. Flag --scale-mailboxes.
	ScaleMailboxes int
	// ScalePoll is its poll interval; default 1m. Flag --scale-poll.
	ScalePoll time.Duration
	// ScaleMeasure is how long it measures; default two poll intervals.
	// Flag --scale-measure.
	ScaleMeasure time.Duration
	// ScaleReplicas is how many importer replicas the idle-scale
	// scenario runs in this process; default 1. Flag --scale-replicas.
	ScaleReplicas int
	// StartSim starts a simulator with mailboxes idle mailboxes
	// (AddSimMailboxes) in another process and returns its base URL and
	// how to stop it; nil runs it in this process, where its CPU counts.
	StartSim func(ctx context.Context, mailboxes int) (base string, stop func(), err error)
	// Logger receives mailgate's logs; nil discards them (the benchmark's
	// own progress goes to the progress writer of Run).
	Logger *slog.Logger
}

func (o *Options) fill() error {
	if o.Scale == 0 {
		o.Scale = 1
	}
	if o.Scale < 0 || math.IsNaN(o.Scale) || math.IsInf(o.Scale, 0) {
		return fmt.Errorf("bench: scale %v: must be positive", o.Scale)
	}
	for _, s := range o.Only {
		if !slices.Contains(Scenarios(), s) {
			return fmt.Errorf("bench: unknown scenario %q (have %s)", s, strings.Join(Scenarios(), ", "))
		}
	}
	if o.IdlePoll <= 0 {
		o.IdlePoll = 30 * time.Second
	}
	if o.ScalePoll <= 0 {
		o.ScalePoll = time.Minute
	}
	if o.LimitWindow <= 0 {
		o.LimitWindow = 10 * time.Second
	}
	if o.PostProcess == "" {
		o.PostProcess = connector.PostMove
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

func (o *Options) wants(s string) bool {
	if s == ScenarioIdleScale || s == ScenarioBackfill || s == ScenarioEInvoices {
		return slices.Contains(o.Only, s)
	}
	return len(o.Only) == 0 || slices.Contains(o.Only, s)
}

func (o *Options) count(n int) int { return max(1, int(math.Round(float64(n)*o.Scale))) }

func (o *Options) size(n int) int {
	if o.Scale >= 1 {
		return n
	}
	return max(1<<20, int(float64(n)*o.Scale))
}

// Report is the outcome of Run.
type Report struct {
	Machine Machine
	Store   string // "minio" or "dir"
	Options Options
	Rows    []Row
	Scale   *ScaleResult // the idle-scale scenario, when run
	Ratios  []Ratio
	Goals   []Goal
	// Warnings are problems found on the way that change what was
	// measured.
	Warnings []string
	Elapsed  time.Duration
}

// Row is one measurement: mailgate in a scenario, or a raw ceiling.
type Row struct {
	Scenario string
	What     string // "mailgate", "raw PutObject", "raw JetStream publish", …
	Docs     int    // documents imported (objects put, events published; polls for idle)
	Bytes    int64  // bytes of the documents
	Elapsed  time.Duration
	// Graph requests sent (mailgate rows only), 429 answers among them.
	GraphRequests int
	Throttled     int
	// PeakRSS is the process's VmHWM during the measurement; RSSIncrease is
	// how far it rose above the resident set at the start (which includes
	// the simulator's mail content and the embedded NATS server).
	PeakRSS     uint64
	RSSIncrease uint64
	CPU         time.Duration // process user+system CPU during the measurement
	Note        string
}

// DocsPerSec is documents (or polls, events) per second.
func (r Row) DocsPerSec() float64 { return per(float64(r.Docs), r.Elapsed) }

// MBPerSec is document bytes per second in MB (10^6 bytes).
func (r Row) MBPerSec() float64 { return per(float64(r.Bytes)/1e6, r.Elapsed) }

// RequestsPerDoc is Graph requests per document (per poll for idle).
func (r Row) RequestsPerDoc() float64 {
	if r.Docs == 0 {
		return 0
	}
	return float64(r.GraphRequests) / float64(r.Docs)
}

func per(v float64, d time.Duration) float64 {
	if d <= 0 {
		return 0
	}
	return v / d.Seconds()
}

// Ratio compares mailgate with a raw ceiling.
type Ratio struct {
	Scenario string
	What     string // e.g. "docs/s mailgate / raw PutObject"
	Value    float64
}

// Goal is one of issue 7's goals with what was measured.
type Goal struct {
	Name     string
	Measured string
	Target   string
	Met      bool
	Note     string
}

// Run runs the scenarios of opts, printing progress and then the report
// table to w, and returns the report. A scenario that fails ends Run with
// its error.
func Run(ctx context.Context, opts Options, w io.Writer) (*Report, error) {
	if err := opts.fill(); err != nil {
		return nil, err
	}
	start := time.Now()
	dir, err := os.MkdirTemp(opts.Dir, "mailgate-bench-")
	if err != nil {
		return nil, fmt.Errorf("bench: temp dir: %w", err)
	}
	defer os.RemoveAll(dir)

	b := &bencher{opts: opts, dir: dir, progress: w}
	rep := &Report{Machine: machine(), Options: opts}
	if err := b.openStore(ctx, rep); err != nil {
		return nil, err
	}
	defer b.closeStore()
	if !resetPeakRSS() {
		rep.Warnings = append(rep.Warnings, "cannot reset VmHWM (/proc/self/clear_refs): peak RSS covers the whole process so far")
	}
	printHeader(w, rep)

	for _, s := range Scenarios() {
		if !opts.wants(s) {
			continue
		}
		fmt.Fprintf(w, "running %s …\n", s)
		var rows []Row
		var err error
		switch s {
		case ScenarioDocs:
			rows, err = b.importScenario(ctx, s, opts.count(docsMails), docsSize, true)
		case ScenarioLarge:
			rows, err = b.importScenario(ctx, s, opts.count(largeMails), opts.size(largeSize), false)
		case ScenarioIdle:
			rows, err = b.idleScenario(ctx, opts.count(idleMailbox))
		case ScenarioHuge:
			rows, err = b.importScenario(ctx, s, opts.count(hugeMails), opts.size(hugeSize), false)
		case ScenarioPhotos:
			rows, err = b.photosScenario(ctx)
		case ScenarioLimits:
			rows, err = b.limitsScenario(ctx)
		case ScenarioIdleScale:
			rows, err = b.idleScaleScenario(ctx, rep)
		case ScenarioBackfill:
			rows, err = b.backfillScenario(ctx)
		case ScenarioEInvoices:
			rows, err = b.einvoiceScenario(ctx)
		}
		if err != nil {
			return nil, fmt.Errorf("bench: scenario %s: %w", s, err)
		}
		rep.Rows = append(rep.Rows, rows...)
	}
	rep.Ratios, rep.Goals = evaluate(rep)
	rep.Elapsed = time.Since(start)
	printReport(w, rep)
	return rep, nil
}

// bencher holds what scenarios share: options, the run's directory and the
// document store with its raw client.
type bencher struct {
	opts     Options
	dir      string
	progress io.Writer

	minio *minioproc.Server
	store importer.Store
	raw   rawPutter
}

// s3Config is the archive's configuration for the bench's MinIO.
func s3Config(e minioproc.Endpoint) archive.S3Config {
	return archive.S3Config{Endpoint: e.Addr, AccessKey: e.AccessKey, SecretKey: e.SecretKey, Bucket: e.Bucket, Region: e.Region}
}

func (b *bencher) openStore(ctx context.Context, rep *Report) error {
	if !b.opts.NoMinIO {
		bin, err := minioproc.Find(b.opts.MinIO)
		if err != nil {
			fmt.Fprintf(b.progress, "MinIO missing (%v): using the directory archive\n", err)
		} else {
			m, err := minioproc.New(bin, filepath.Join(b.dir, "minio"), "mailgate-bench", "mailgate-bench")
			if err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			if err := m.Start(ctx); err != nil {
				return fmt.Errorf("bench: %w", err)
			}
			st, err := archive.NewS3(ctx, s3Config(m.Endpoint()))
			if err != nil {
				m.Stop()
				return fmt.Errorf("bench: %w", err)
			}
			raw, err := newRawS3(s3Config(m.Endpoint()))
			if err != nil {
				m.Stop()
				return err
			}
			b.minio, b.store, b.raw = m, st, raw
			rep.Store = "minio"
			rep.Machine.MinIO = minioproc.Version(bin)
			return nil
		}
	}
	archDir := b.dir + "/archive"
	st, err := archive.NewDir(archDir)
	if err != nil {
		return fmt.Errorf("bench: %w", err)
	}
	b.store, b.raw = st, rawDir{dir: b.dir + "/raw"}
	rep.Store = "dir"
	return nil
}

func (b *bencher) closeStore() {
	if b.minio != nil {
		b.minio.Stop()
	}
}

// evaluate derives the mailgate/raw ratios and checks the goals.
func evaluate(rep *Report) ([]Ratio, []Goal) {
	find := func(scenario, what string) (Row, bool) {
		for _, r := range rep.Rows {
			if r.Scenario == scenario && r.What == what {
				return r, true
			}
		}
		return Row{}, false
	}
	var ratios []Ratio
	var goals []Goal
	ratio := func(scenario, other, what string, f func(Row) float64) (float64, bool) {
		mg, ok1 := find(scenario, whatMailgate)
		raw, ok2 := find(scenario, other)
		if !ok1 || !ok2 || f(raw) == 0 {
			return 0, false
		}
		v := f(mg) / f(raw)
		ratios = append(ratios, Ratio{Scenario: scenario, What: what, Value: v})
		return v, true
	}
	docsPS := func(r Row) float64 { return r.DocsPerSec() }
	mbPS := func(r Row) float64 { return r.MBPerSec() }
	if v, ok := ratio(ScenarioDocs, whatRawPut, "docs/s mailgate / raw "+rawPutName(rep), docsPS); ok {
		goals = append(goals, Goal{
			Name:     "throughput of 100 KB documents vs raw " + rawPutName(rep),
			Measured: fmt.Sprintf("%.2f", v), Target: fmt.Sprintf("≥ %.2f", GoalPutRatio), Met: v >= GoalPutRatio,
		})
	}
	if mg4, ok := find(ScenarioDocs, whatMailgate4); ok {
		if raw, ok := find(ScenarioDocs, whatRawPut); ok && raw.DocsPerSec() > 0 {
			ratios = append(ratios, Ratio{Scenario: ScenarioDocs, What: "docs/s mailgate, 4 mailboxes at once / raw " + rawPutName(rep),
				Value: mg4.DocsPerSec() / raw.DocsPerSec()})
		}
	}
	ratio(ScenarioDocs, whatRawPublish, "docs/s mailgate / raw JetStream publish", docsPS)
	ratio(ScenarioLarge, whatRawPut, "MB/s mailgate / raw "+rawPutName(rep), mbPS)
	ratio(ScenarioHuge, whatRawPut, "MB/s mailgate / raw "+rawPutName(rep), mbPS)

	// Per document, on the 2,000 documents of docs: a pass's fixed
	// requests (a delta page, the backfill's count, the lookup and the
	// creation of the folder mails are moved to) are 4, which the 20
	// documents of large carry at 0.2 each; its table row shows them.
	if r, ok := find(ScenarioDocs, whatMailgate); ok {
		v := r.RequestsPerDoc()
		goals = append(goals, Goal{
			Name:     fmt.Sprintf("Graph requests per imported 100 KB document, post-processing %s", rep.Options.PostProcess),
			Measured: fmt.Sprintf("%.3f", v), Target: fmt.Sprintf("≤ %.1f", GoalRequestsPerDoc), Met: v <= GoalRequestsPerDoc,
		})
	}
	if r, ok := find(ScenarioLimits, whatMailgate); ok {
		share := limitShare(r, rep.Options.LimitWindow)
		goals = append(goals, Goal{
			Name:     "Microsoft limits: share of the allowed rate used, 429 answers",
			Measured: fmt.Sprintf("%.3f, %d × 429", share, r.Throttled),
			Target:   fmt.Sprintf("≥ %.2f, 0 × 429", GoalRateShare),
			Met:      share >= GoalRateShare && r.Throttled == 0,
		})
	}
	if r, ok := find(ScenarioBackfill, whatMailgate); ok {
		requests, window := rep.Options.backfillLimits()
		share := backfillShare(r, requests, window)
		goals = append(goals, Goal{
			Name:     fmt.Sprintf("a %s-mail backfill under Microsoft's limits: share of the allowed rate, 429 answers", thousands(r.Docs)),
			Measured: fmt.Sprintf("%.3f, %d × 429", share, r.Throttled),
			Target:   fmt.Sprintf("≥ %.2f, 0 × 429", GoalBackfillShare),
			Met:      share >= GoalBackfillShare && r.Throttled == 0,
			Note:     "progress shown while it ran",
		})
	}
	for _, s := range []string{ScenarioHuge, ScenarioPhotos} {
		r, ok := find(s, whatMailgate)
		if !ok {
			continue
		}
		shape := fmt.Sprintf("%d mails with one %s attachment each", r.Docs, mib(r.Bytes/int64(max(1, r.Docs))))
		if s == ScenarioPhotos {
			per := rep.Options.count(photosPerMail)
			shape = fmt.Sprintf("%d mails with %d photos of %s each", r.Docs/per, per, mib(r.Bytes/int64(max(1, r.Docs))))
		}
		goals = append(goals, Goal{
			Name:     "peak RSS increase importing " + shape + ", all in flight",
			Measured: fmt.Sprintf("%.1f MiB", float64(r.RSSIncrease)/(1<<20)),
			Target:   fmt.Sprintf("≤ %d MiB", GoalHugeRSS>>20),
			Met:      r.RSSIncrease <= GoalHugeRSS,
			Note:     fmt.Sprintf("process VmHWM %.0f MiB includes the in-process simulator's copy of the mails and NATS", float64(r.PeakRSS)/(1<<20)),
		})
	}
	if plain, ok := find(ScenarioEInvoices, whatMailgate); ok {
		if rules, ok := find(ScenarioEInvoices, whatRules); ok {
			goals = append(goals, einvoiceGoal(plain, rules, "the official rules"))
		}
		if judged, ok := find(ScenarioEInvoices, whatJudged); ok {
			goals = append(goals, einvoiceGoal(plain, judged, "the official rules and the rendition"))
		}
	}
	if rep.Scale != nil {
		goals = append(goals, scaleGoals(rep.Scale)...)
	}
	return ratios, goals
}

func rawPutName(rep *Report) string {
	if rep.Store == "dir" {
		return "file write"
	}
	return "PutObject"
}

func mib(n int64) string {
	if n >= 1<<20 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d KiB", n>>10)
}

// errIncomplete means mailgate did not import every document offered.
var errIncomplete = errors.New("import incomplete")
