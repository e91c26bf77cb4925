package main

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
)

// TestBackfillResumesAfterKill: `mailgate serve` is killed with SIGKILL in
// the middle of a 1,000-mail backfill (post-processing move, so mail
// leaves the folder while the round goes on) and started again. The backfill goes
// on from its last committed page: its progress does not fall back, the
// delta pages fetched after the restart are about the remainder, the total
// is asked once, every document is announced and stored exactly once, and
// the backfill ends done. `connections show` words the progress meanwhile.
// Graph's real budget (10,000 requests per 10 minutes, about 3 per mail
// here) and the killed process's lease (30 s) make it take some 3 minutes.
func TestBackfillResumesAfterKill(t *testing.T) {
	t.Parallel()
	const (
		mails    = 1000
		pageSize = 50 // graph.DefaultPageSize: the simulator honours its Prefer
		killAt   = 300
	)
	bin := mailgateBinary(t)
	in := newStack(t, stack{})
	c := in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	in.deliverInvoices(t, graphtest.DefaultMailbox, mails)
	ctx := context.Background()
	statuses, err := importer.NewStatusReader(ctx, in.js, 0)
	if err != nil {
		t.Fatal(err)
	}
	status := func() importer.BackfillProgress {
		st, err := statuses.Status(ctx, c.ID)
		if err != nil {
			t.Fatal(err)
		}
		return st.Backfill
	}

	env := append(in.env(), "MAILGATE_REPLICA=resume")
	p := startProc(t, bin, env, "serve", "--role", "importer")
	var before importer.BackfillProgress
	eventually(t, 3*time.Minute, "the backfill to pass 300 mails", func() bool {
		before = status()
		return before.Messages >= killAt
	})
	_ = p.cmd.Process.Kill() // SIGKILL: no shutdown, no flush
	_ = p.cmd.Wait()
	// What the killed process had done: its delta pages, and the progress
	// it wrote last (its cursor is at least as far).
	deltaBefore := in.sim.Counters().Total("messages.delta")
	before = status()
	t.Logf("killed at %d of %d mails, %d documents, after %d delta pages", before.Messages, before.Total, before.Documents, deltaBefore)
	if before.Done || before.Total != mails || before.Messages >= mails {
		t.Fatalf("progress at the kill %+v: want a running backfill of %d mails", before, mails)
	}
	if before.Messages%pageSize != 0 {
		t.Errorf("progress %d is not a whole number of %d-mail pages", before.Messages, pageSize)
	}

	p = startProc(t, bin, env, "serve", "--role", "importer")
	restarted := time.Now()
	defer func() {
		if t.Failed() {
			t.Logf("progress %+v; the restarted process's log:\n%s", status(), tail(p.stderr(), 4000))
		}
	}()
	low := before.Messages
	var shown string
	var after importer.BackfillProgress
	eventually(t, 5*time.Minute, "the backfill to end", func() bool {
		after = status()
		if !after.Done {
			low = min(low, after.Messages)
			if shown == "" && after.Messages >= before.Messages+pageSize {
				shown = runCLI(t, bin, in.env(), "connections", "show", c.ID)
			}
		}
		return after.Done
	})
	deltaAfter := in.sim.Counters().Total("messages.delta") - deltaBefore
	t.Logf("the rest took %s after the restart", time.Since(restarted).Round(time.Second))
	p.stop()

	if low < before.Messages {
		t.Errorf("progress fell back to %d after the restart, from %d", low, before.Messages)
	}
	// The remainder is (mails - done) / pageSize pages, plus at most the
	// page the killed process had fetched but not committed and idle
	// polls after the end (one request each, every 5 s).
	remainder := (mails - before.Messages + pageSize - 1) / pageSize
	t.Logf("after the restart: %d delta requests for a remainder of %d pages; done %+v", deltaAfter, remainder, after)
	if deltaAfter < remainder || deltaAfter > remainder+3 {
		t.Errorf("%d delta requests after the restart, want about the remainder of %d pages (the backfill started over?)", deltaAfter, remainder)
	}
	// Documents counts what the passes that committed the pages imported:
	// those the killed process imported in the page it had not committed
	// are in the archive (see below) but not counted again by the replay.
	if after.Messages != mails || after.Total != mails || after.Documents > mails || after.Documents < mails-pageSize {
		t.Errorf("done: %+v, want %d mails of %d and %d documents, at most a page (%d) fewer", after, mails, mails, mails, pageSize)
	}
	if n := in.sim.Counters().Total("folder.get"); n != 1 {
		t.Errorf("the folder's total was asked %d times, want once for the backfill", n)
	}
	if n := in.sim.Counters().Requests["folder.get"][http.StatusOK]; n != 1 {
		t.Errorf("%d answered counts, want 1", n)
	}

	imported, distinct, _ := in.tally(t)
	if objects := in.objects(t); imported != mails || distinct != mails || objects != mails {
		t.Errorf("%d imported events, %d distinct, %d objects; want %d of each", imported, distinct, objects, mails)
	}
	if left := len(in.sim.Messages(graphtest.DefaultMailbox, "inbox")); left != 0 {
		t.Errorf("%d mails left in the inbox, want all moved", left)
	}

	// connections show, during the backfill: the progress in words beside
	// the JSON fields.
	var out struct {
		Import   importer.Status `json:"import"`
		Backfill string          `json:"backfill"`
	}
	if err := json.Unmarshal([]byte(shown), &out); err != nil {
		t.Fatalf("connections show: %v\n%s", err, shown)
	}
	if b := out.Import.Backfill; b.Total != mails || b.Messages < before.Messages || b.StartedAt.IsZero() || b.Mode != "all" ||
		!strings.Contains(out.Backfill, " of 1,000 mails (") || !strings.Contains(out.Backfill, " documents") {
		t.Errorf("connections show during the backfill: %+v %q", b, out.Backfill)
	}
	t.Logf("connections show: %q", out.Backfill)
}

func tail(s string, n int) string {
	if len(s) > n {
		return "…" + s[len(s)-n:]
	}
	return s
}
