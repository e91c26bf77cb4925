package importer

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// TestBackfillProgress: a backfill asks once how many mails it covers,
// and its status tells the mails and documents done so far, when it
// started and, once the rate rests on enough data, the time left.
func TestBackfillProgress(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.pageSize = 10
	for i := range 100 {
		m := connector.Message{InternetMessageID: fmt.Sprintf("<p%d@x>", i), ReceivedAt: t0.Add(-time.Duration(100-i) * time.Hour)}
		if i%5 == 0 {
			e.mb.deliver("inbox", m) // no attachment: a mail without a document
			continue
		}
		e.mb.deliver("inbox", m, file(fmt.Sprintf("p%d.pdf", i), "", pdfDoc(i)))
	}
	e.mb.folders["archive"] = "archive"
	for i := range 5 {
		e.mb.deliver("archive", connector.Message{InternetMessageID: fmt.Sprintf("<a%d@x>", i), ReceivedAt: t0})
	}
	im := e.importer(t, "r1", func(c *Config) { c.MaxPassPages = 3 })
	ctx := context.Background()
	check := func(step string, want BackfillProgress) {
		t.Helper()
		st, err := im.Status(ctx, e.conn.ID)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Backfill; got != want {
			t.Errorf("%s: backfill\n got %+v\nwant %+v", step, got, want)
		}
	}
	if _, _, err := im.syncPass(ctx, e.conn, nil); err != nil {
		t.Fatal(err)
	}
	check("first pass", BackfillProgress{Mode: "all", Total: 100, Messages: 30, Documents: 24, StartedAt: t0, UpdatedAt: t0})
	e.clock.After(20 * time.Second)
	if _, _, err := im.syncPass(ctx, e.conn, nil); err != nil {
		t.Fatal(err)
	}
	// 60 mails in 20 s: 3 a second, 40 left, about 13 s.
	check("second pass", BackfillProgress{Mode: "all", Total: 100, Messages: 60, Documents: 48,
		StartedAt: t0, UpdatedAt: t0.Add(20 * time.Second), ETASeconds: 13})
	e.clock.After(10 * time.Second)
	e.sync(t, im)
	check("done", BackfillProgress{Done: true, Mode: "all", Total: 100, Messages: 100, Documents: 80,
		StartedAt: t0, UpdatedAt: t0.Add(30 * time.Second)})
	if n := e.mb.calls["count"]; n != 1 {
		t.Errorf("%d counts, want 1 (asked when the backfill starts, kept in the cursor)", n)
	}
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<later@x>", ReceivedAt: t0}, file("later.pdf", "", pdfDoc(1000)))
	e.sync(t, im)
	if n := e.mb.calls["count"]; n != 1 {
		t.Errorf("%d counts after a later round, want 1", n)
	}
	check("later round", BackfillProgress{Done: true, Mode: "all", Total: 100, Messages: 100, Documents: 80,
		StartedAt: t0, UpdatedAt: t0.Add(30 * time.Second)})
}

// TestBackfillTotalByMode: "since" counts the mails received since its
// date, "new" has no backfill to count, and a failed count leaves the
// total unknown without stopping the backfill, asked again next pass.
func TestBackfillTotalByMode(t *testing.T) {
	for _, tc := range []struct {
		name      string
		backfill  connector.Backfill
		failFirst bool
		counts    int
		total     int
	}{
		{"since", connector.Backfill{Mode: connector.BackfillSince, Since: t0.Add(-10 * time.Hour)}, false, 1, 11},
		{"new", connector.Backfill{Mode: connector.BackfillNew}, false, 0, 0},
		{"count fails once", connector.Backfill{Mode: connector.BackfillAll}, true, 2, 30},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			e.mb.pageSize = 10
			for i := range 30 {
				e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<s%d@x>", i), ReceivedAt: t0.Add(-time.Duration(i) * time.Hour)},
					file(fmt.Sprintf("s%d.pdf", i), "", pdfDoc(i)))
			}
			if tc.failFirst {
				failed := false
				e.mb.fault = func(op, _ string) error {
					if op == "count" && !failed {
						failed = true
						return connector.E("fake: count", connector.Transient, errors.New("busy"))
					}
					return nil
				}
			}
			c := e.conn
			c.Backfill = tc.backfill
			e.conns = newFakeConnections(c)
			e.conn = c
			im := e.importer(t, "r1", func(c *Config) { c.MaxPassPages = 1 })
			ctx := context.Background()
			if _, _, err := im.syncPass(ctx, e.conn, nil); err != nil {
				t.Fatal(err)
			}
			e.sync(t, im)
			st, _ := im.Status(ctx, e.conn.ID)
			if n := e.mb.calls["count"]; n != tc.counts {
				t.Errorf("%d counts, want %d", n, tc.counts)
			}
			if !st.Backfill.Done || st.Backfill.Total != tc.total || st.Backfill.Mode != string(tc.backfill.Mode) {
				t.Errorf("backfill %+v, want done with total %d", st.Backfill, tc.total)
			}
		})
	}
}

func TestBackfillETA(t *testing.T) {
	for _, tc := range []struct {
		b    BackfillProgress
		want time.Duration
		ok   bool
	}{
		{BackfillProgress{Total: 1000, Messages: 100, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)}, 9 * time.Minute, true},
		{BackfillProgress{Total: 1000, Messages: 49, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)}, 0, false},      // too few mails
		{BackfillProgress{Total: 1000, Messages: 500, StartedAt: t0, UpdatedAt: t0.Add(9 * time.Second)}, 0, false}, // too short
		{BackfillProgress{Total: 0, Messages: 500, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)}, 0, false},        // total unknown
		{BackfillProgress{Total: 100, Messages: 120, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)}, 0, true},       // more came in
		{BackfillProgress{Done: true, Total: 100, Messages: 100, StartedAt: t0, UpdatedAt: t0.Add(time.Minute)}, 0, false},
	} {
		if got, ok := tc.b.eta(); got != tc.want || ok != tc.ok {
			t.Errorf("eta(%+v) = %v %v, want %v %v", tc.b, got, ok, tc.want, tc.ok)
		}
	}
}

func TestBackfillSummary(t *testing.T) {
	for _, tc := range []struct {
		b    BackfillProgress
		want string
	}{
		{BackfillProgress{Mode: "all", Messages: 5120, Total: 20000, Documents: 4980, ETASeconds: 730}, "5,120 of 20,000 mails (25 %), 4,980 documents, about 12 min left"},
		{BackfillProgress{Mode: "since", Messages: 40, Total: 1234567, Documents: 39}, "40 of 1,234,567 mails (0 %), 39 documents"},
		{BackfillProgress{Mode: "all", Messages: 40, Documents: 39}, "40 mails so far, 39 documents"},
		{BackfillProgress{Mode: "all", Messages: 999, Total: 1000, Documents: 1, ETASeconds: 3}, "999 of 1,000 mails (99 %), 1 documents, less than a minute left"},
		{BackfillProgress{Mode: "all", Done: true, Messages: 20000, Total: 20000, Documents: 19990}, "done: 20,000 mails, 19,990 documents"},
		{BackfillProgress{Mode: "new", Done: true, Messages: 300}, ""},
		{BackfillProgress{Mode: "all"}, ""},
	} {
		if got := tc.b.Summary(); got != tc.want {
			t.Errorf("Summary(%+v) = %q, want %q", tc.b, got, tc.want)
		}
	}
}
