package bench

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
)

// TestRunSmoke runs every scenario at reduced size and checks that the
// table has all rows and that the numbers are sane.
func TestRunSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("runs MinIO, NATS and the simulator for about a minute")
	}
	var out strings.Builder
	rep, err := Run(t.Context(), Options{
		Scale:       0.05,
		IdlePoll:    2 * time.Second,
		LimitWindow: 2 * time.Second,
		Dir:         t.TempDir(),
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}

	want := []struct{ scenario, what string }{
		{ScenarioDocs, whatMailgate}, {ScenarioDocs, whatMailgate4}, {ScenarioDocs, whatRawPut}, {ScenarioDocs, whatRawPublish},
		{ScenarioLarge, whatMailgate}, {ScenarioLarge, whatRawPut},
		{ScenarioIdle, whatMailgate},
		{ScenarioHuge, whatMailgate}, {ScenarioHuge, whatRawPut},
		{ScenarioPhotos, whatMailgate},
		{ScenarioLimits, whatMailgate},
	}
	if len(rep.Rows) != len(want) {
		t.Errorf("got %d rows, want %d", len(rep.Rows), len(want))
	}
	for i, w := range want {
		if i >= len(rep.Rows) {
			break
		}
		r := rep.Rows[i]
		if r.Scenario != w.scenario || r.What != w.what {
			t.Errorf("row %d is %s/%s, want %s/%s", i, r.Scenario, r.What, w.scenario, w.what)
			continue
		}
		if r.Docs <= 0 || r.Elapsed <= 0 || r.DocsPerSec() <= 0 {
			t.Errorf("%s/%s: docs %d in %s", r.Scenario, r.What, r.Docs, r.Elapsed)
		}
		if r.Scenario != ScenarioIdle && r.MBPerSec() <= 0 {
			t.Errorf("%s/%s: %.1f MB/s", r.Scenario, r.What, r.MBPerSec())
		}
		if r.PeakRSS == 0 || r.PeakRSS > 8<<30 {
			t.Errorf("%s/%s: peak RSS %d", r.Scenario, r.What, r.PeakRSS)
		}
		if r.What == whatMailgate || r.What == whatMailgate4 {
			// At least a delta request per poll, and for imports the
			// attachment list (with the bytes) and the move per mail.
			min := 2.0
			switch r.Scenario {
			case ScenarioIdle:
				min = 1
			case ScenarioPhotos:
				min = 2.0 / float64(rep.Options.count(photosPerMail))
			}
			if q := r.RequestsPerDoc(); q < min || q > 10 {
				t.Errorf("%s: %.2f Graph requests per document", r.Scenario, q)
			}
		}
	}
	for _, r := range rep.Rows {
		if r.Scenario == ScenarioDocs && (r.What == whatMailgate || r.What == whatMailgate4) && r.Docs != 100 {
			t.Errorf("docs imported %d, want 100 (2000 × 0.05)", r.Docs)
		}
		if r.Scenario != ScenarioLimits && r.Throttled != 0 {
			t.Errorf("%s/%s: %d × 429 without budget", r.Scenario, r.What, r.Throttled)
		}
	}
	if len(rep.Ratios) != 5 {
		t.Errorf("got %d ratios, want 5: %+v", len(rep.Ratios), rep.Ratios)
	}
	for _, r := range rep.Ratios {
		if r.Value <= 0 || r.Value > 100 {
			t.Errorf("ratio %s %s = %v", r.Scenario, r.What, r.Value)
		}
	}
	if len(rep.Goals) != 5 {
		t.Errorf("got %d goals, want 5: %+v", len(rep.Goals), rep.Goals)
	}
	for _, s := range []string{"mailgate / raw:", "goals:", "Graph req/doc", "peak RSS", rep.Machine.GoVersion} {
		if !strings.Contains(out.String(), s) {
			t.Errorf("output lacks %q", s)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		ok   bool
	}{
		{"defaults", Options{}, true},
		{"only known", Options{Only: []string{ScenarioDocs, ScenarioIdle}}, true},
		{"unknown scenario", Options{Only: []string{"fast"}}, false},
		{"negative scale", Options{Scale: -1}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.opts.fill()
			if (err == nil) != tt.ok {
				t.Fatalf("fill() = %v, want ok %v", err, tt.ok)
			}
			if tt.ok && (tt.opts.Scale <= 0 || tt.opts.IdlePoll <= 0 || tt.opts.LimitWindow <= 0 || tt.opts.Logger == nil) {
				t.Errorf("defaults not filled: %+v", tt.opts)
			}
		})
	}
}

func TestPDFParts(t *testing.T) {
	a, err := newArena(10 * (docsSize + pdfOverhead))
	if err != nil {
		t.Fatal(err)
	}
	defer a.free()
	d1 := makePDF(a, docsSize, 1, "A")
	d2 := makePDF(a, docsSize, 2, "B")
	if !strings.HasPrefix(string(d1[:8]), "%PDF-1.7") || !strings.HasSuffix(string(d1), "%%EOF\n") {
		t.Errorf("not a PDF: %q … %q", d1[:16], d1[len(d1)-16:])
	}
	if n := len(d1); n < docsSize-pdfOverhead || n > docsSize+pdfOverhead {
		t.Errorf("size %d, want about %d", n, docsSize)
	}
	// The attachment policy takes them for what they are: binary PDFs.
	d, err := policy.New(policy.Config{}).Classify(context.Background(), connector.Attachment{Type: connector.FileAttachment, Name: "a.pdf", Size: int64(len(d1))},
		"", int64(len(d1)), bytes.NewReader(d1))
	if err != nil || !d.Import || d.Kind != "pdf" {
		t.Errorf("policy on a bench PDF: %+v, %v", d, err)
	}
	if string(d1[2000:2100]) == string(d2[2000:2100]) {
		t.Error("documents with different seeds have the same content")
	}
	// startxref points at the xref table.
	s := string(d1)
	i := strings.LastIndex(s, "startxref\n")
	var off int
	if _, err := fmt.Sscan(s[i+len("startxref\n"):], &off); err != nil || !strings.HasPrefix(s[off:], "xref\n") {
		t.Errorf("startxref %d does not point at xref (%v)", off, err)
	}
}

// TestRunFull runs the full benchmark when MAILGATE_BENCH_FULL=1, for
// machines without the mailgate binary at hand (MAILGATE_BENCH_SCALE and
// MAILGATE_BENCH_ONLY=docs,large select less; -cpuprofile works):
//
//	MAILGATE_BENCH_FULL=1 go test -run TestRunFull -timeout 15m -v ./cmd/mailgate/bench
func TestRunFull(t *testing.T) {
	if os.Getenv("MAILGATE_BENCH_FULL") != "1" {
		t.Skip("set MAILGATE_BENCH_FULL=1 to run the full benchmark")
	}
	opts := Options{Dir: t.TempDir()}
	if v := os.Getenv("MAILGATE_BENCH_SCALE"); v != "" {
		if _, err := fmt.Sscan(v, &opts.Scale); err != nil {
			t.Fatalf("MAILGATE_BENCH_SCALE: %v", err)
		}
	}
	if v := os.Getenv("MAILGATE_BENCH_ONLY"); v != "" {
		opts.Only = strings.Split(v, ",")
	}
	if _, err := Run(t.Context(), opts, os.Stdout); err != nil {
		t.Fatal(err)
	}
}

// The idle-scale scenario at a small size, simulator in process: every
// due poll begins on time, idle polls write nothing, and the
// goals are printed beside what was measured.
func TestIdleScaleSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("polls for about 10 seconds")
	}
	var out strings.Builder
	rep, err := Run(t.Context(), Options{
		Only: []string{ScenarioIdleScale}, ScaleMailboxes: 40, ScalePoll: 2 * time.Second, ScaleMeasure: 4 * time.Second,
		NoMinIO: true, Dir: t.TempDir(),
	}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	r := rep.Scale
	if r == nil || len(rep.Rows) != 1 || rep.Rows[0].Scenario != ScenarioIdleScale {
		t.Fatalf("report: %+v", rep)
	}
	if r.Polls < 40 || r.Begun < 40 {
		t.Errorf("%d polls, %d begun in %s of 40 mailboxes polled every 2s", r.Polls, r.Begun, r.Elapsed)
	}
	if r.OnTime < GoalOnTime {
		t.Errorf("%.3f of due polls on time", r.OnTime)
	}
	if data, leases := r.writes(); data+leases != 0 {
		t.Errorf("%.2f + %.2f (leases) KV writes per idle poll (%v)", data, leases, r.Writes)
	}
	if r.Reads["cursors"] > 0.1 || r.Reads[connector.ConnectionsBucket] > 0.1 {
		t.Errorf("KV reads per idle poll %v, want about none (quiet connections are peeked from memory)", r.Reads)
	}
	for _, want := range []string{"due polls begun within 5 s", "CPU per idle poll", "fsynced KV writes per idle poll", "KV reads per idle poll"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("report lacks %q", want)
		}
	}
}

// The backfill scenario at a small size (400 mails, the limits scaled to
// a 0.6 s window at the same 333 requests/s): it imports every mail with
// post-processing move, prints progress lines from the connection's
// status while it runs and the goal beside the measurement. The share of
// the allowed rate is a speed goal left to the full run; here it only has
// to be a share.
func TestBackfillSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("backfills 400 mails for a few seconds")
	}
	var out strings.Builder
	rep, err := Run(t.Context(), Options{Only: []string{ScenarioBackfill}, Scale: 0.02, NoMinIO: true, Dir: t.TempDir()}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || rep.Rows[0].Scenario != ScenarioBackfill || rep.Rows[0].Docs != 400 {
		t.Fatalf("rows %+v, want one backfill row of 400 documents", rep.Rows)
	}
	r := rep.Rows[0]
	// The attachment list with the bytes and the move per mail, a delta
	// page per 50 and the count of the folder.
	if q := r.RequestsPerDoc(); q < 2 || q > 2.1 {
		t.Errorf("%.3f Graph requests per document, want about 2 with post-processing move", q)
	}
	requests, window := rep.Options.backfillLimits()
	if requests != 200 || window != 1200*time.Millisecond {
		t.Errorf("limits %d per %s, want 200 per 1.2s (167/s, as at full size)", requests, window)
	}
	if share := backfillShare(r, requests, window); share <= 0 || share > 1.05 {
		t.Errorf("share of the allowed rate %.3f", share)
	}
	if len(rep.Goals) != 1 || !strings.Contains(rep.Goals[0].Target, "≥ 0.90, 0 × 429") {
		t.Errorf("goals %+v", rep.Goals)
	}
	for _, want := range []string{"backfill: 400/400 mails, 400 documents, done", "of the allowed rate", "post-processing move"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !regexp.MustCompile(`backfill: [0-9,]+/400 mails, [0-9,]+ documents(, ETA \S+)?\n`).MatchString(out.String()) {
		t.Error("no progress line while it ran")
	}
}

// TestEInvoicesSmall runs the einvoices scenario small: both passes
// import every mail, and the goal compares them.
func TestEInvoicesSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("imports 2 × 40 mails")
	}
	var out strings.Builder
	rep, err := Run(t.Context(), Options{Only: []string{ScenarioEInvoices}, Scale: 0.04, NoMinIO: true, Dir: t.TempDir()}, &out)
	t.Log("\n" + out.String())
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 3 || rep.Rows[0].What != whatMailgate || rep.Rows[1].What != whatRules || rep.Rows[2].What != whatJudged ||
		rep.Rows[0].Docs != 40 || rep.Rows[1].Docs != 40 || rep.Rows[2].Docs != 40 {
		t.Fatalf("rows %+v, want a plain and a judged row of 40 documents each", rep.Rows)
	}
	if len(rep.Goals) != 2 || !strings.Contains(rep.Goals[0].Name, "one mail in 5 an XRechnung") || !strings.Contains(out.String(), whatJudged) {
		t.Errorf("goals %+v", rep.Goals)
	}
}
