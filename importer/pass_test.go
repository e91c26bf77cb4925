package importer

import (
	"context"
	"errors"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

func TestPass500Mails(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	e.mb.pageSize = 37
	want := deliverMix(t, e.mb, 500)
	im := e.importer(t, "r1", nil)

	res := e.sync(t, im)
	checkEvents(t, e, want)
	if res.Imported != want.imported || res.Messages != 500 || res.Failed != 0 {
		t.Errorf("result = %+v, want %d imported of 500 messages", res, want.imported)
	}
	if res.Pages != 14 { // ceil(500/37)
		t.Errorf("pages = %d, want 14", res.Pages)
	}
	if e.mb.calls["delta"] != 14 {
		t.Errorf("delta calls = %d, want 14", e.mb.calls["delta"])
	}
	// Every mail with attachments was moved; the one without stays.
	if n := e.mb.count("inbox"); n != 50 {
		t.Errorf("inbox holds %d mails, want the 50 without attachments", n)
	}
	if n := e.mb.count("folder-Archiviert"); n != 450 {
		t.Errorf("archive folder holds %d mails, want 450", n)
	}
	if e.mb.calls["folder"] != 1 {
		t.Errorf("EnsureFolder called %d times, want once per pass", e.mb.calls["folder"])
	}

	// Each imported event points at its object and says what it is.
	kinds := map[string]int{}
	for id, ev := range e.events.imported {
		if !strings.HasPrefix(id, "doc_") || len(id) != 30 {
			t.Errorf("document id %q", id)
		}
		if e.store.meta[ev.Object.Key].DocumentID != id {
			t.Errorf("object %s has document id %q, want %q", ev.Object.Key, e.store.meta[ev.Object.Key].DocumentID, id)
		}
		if !strings.HasPrefix(ev.Object.Key, "acme/2026/11/"+ev.Document.SHA256+".") {
			t.Errorf("object key %s", ev.Object.Key)
		}
		kinds[ev.Document.Kind]++
		if ev.Document.Kind == archive.KindXRechnung && (ev.Document.Syntax != "UBL" || ev.Document.Profile != "XRECHNUNG 3.0") {
			t.Errorf("xrechnung document %+v", ev.Document)
		}
	}
	if kinds[archive.KindPDF] != 100 || kinds[archive.KindXRechnung] != 50 || kinds[archive.KindImage] != 1 {
		t.Errorf("kinds = %v", kinds)
	}
	for _, s := range e.events.skipped {
		if s.Reason == archive.ReasonDuplicate && !strings.HasPrefix(s.DuplicateOf, "doc_") {
			t.Errorf("duplicate without DuplicateOf: %+v", s)
		}
		if s.Detail == "" {
			t.Errorf("skip %s without detail", s.Reason)
		}
	}

	st, err := im.Status(context.Background(), e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	skips := 0
	for _, n := range want.reasons {
		skips += n
	}
	if st.Imported != int64(want.imported) || st.Skipped != int64(skips) || len(st.Recent) != maxRecent ||
		!st.Backfill.Done || st.Backfill.Messages != 500 || !st.NextSync.Equal(t0.Add(time.Minute)) {
		t.Errorf("status = imported %d skipped %d recent %d backfill %+v next %v", st.Imported, st.Skipped, len(st.Recent), st.Backfill, st.NextSync)
	}
	if st.SkippedByReason[archive.ReasonDuplicate] != int64(want.reasons[archive.ReasonDuplicate]) {
		t.Errorf("skipped by reason = %v", st.SkippedByReason)
	}

	// The next pass sees the moves ("@removed") and imports nothing again.
	res = e.sync(t, im)
	if res.Imported != 0 || res.Skipped != 0 || res.Messages != 0 {
		t.Errorf("second pass = %+v, want nothing new", res)
	}
	checkEvents(t, e, want)
	if e.events.maxCalls() != 1 {
		t.Errorf("some event published %d times", e.events.maxCalls())
	}

	// New mail arrives: the delta link picks up just that.
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<new@x>", ReceivedAt: t0.Add(24 * time.Hour)},
		file("neu.pdf", "application/pdf", pdfDoc(100000)))
	res = e.sync(t, im)
	if res.Imported != 1 || res.Messages != 1 {
		t.Errorf("third pass = %+v, want the one new mail imported", res)
	}
}

func TestDeltaResetMidRound(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.pageSize = 7
	want := deliverMix(t, e.mb, 100)
	deltas := 0
	e.mb.fault = func(op, arg string) error {
		if op == "delta" {
			deltas++
			if deltas == 5 { // mid-round: the sync state is lost
				e.mb.seq++
				e.mb.resetBefore = e.mb.seq
				return connector.E("fake: delta", connector.SyncReset, errors.New("SyncStateNotFound"))
			}
		}
		return nil
	}
	im := e.importer(t, "r1", nil)
	e.sync(t, im)
	checkEvents(t, e, want)
	if e.events.maxCalls() != 1 {
		t.Errorf("an event was published %d times across the reset", e.events.maxCalls())
	}

	// A reset of a complete round (expired delta link) neither duplicates.
	e.mb.resetSync()
	e.sync(t, im)
	checkEvents(t, e, want)
	if e.events.maxCalls() != 1 {
		t.Errorf("an event was published %d times after the reset", e.events.maxCalls())
	}
}

func TestMailMovedByPersonNotImportedTwice(t *testing.T) {
	for _, immutable := range []bool{false, true} {
		t.Run(map[bool]string{false: "changing ids", true: "immutable ids"}[immutable], func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			e.mb.immutable = immutable
			id := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", Subject: "A", ReceivedAt: t0},
				file("a.pdf", "application/pdf", pdfDoc(1)), file("b.pdf", "application/pdf", pdfDoc(2)))
			im := e.importer(t, "r1", nil)
			if res := e.sync(t, im); res.Imported != 2 {
				t.Fatalf("first pass imported %d, want 2", res.Imported)
			}
			// A person files the mail elsewhere and drags it back.
			id = e.mb.personMove(id, "folder-Other")
			e.mb.personMove(id, "inbox")
			res := e.sync(t, im)
			if res.Messages != 1 || res.Imported != 0 {
				t.Errorf("after the move: %+v, want the mail seen and nothing imported", res)
			}
			if n, _ := e.events.counts(); n != 2 || e.events.maxCalls() != 1 {
				t.Errorf("%d events, max calls %d", n, e.events.maxCalls())
			}
		})
	}
}

func TestMailGoneBeforeDownloadIsNoError(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", ReceivedAt: t0}, file("a.pdf", "application/pdf", pdfDoc(1)))
	id2 := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", ReceivedAt: t0}, file("b.pdf", "application/pdf", pdfDoc(2)))
	e.mb.fault = func(op, arg string) error {
		if op == "attachments" && arg == id2 {
			delete(e.mb.mails, id2) // deleted by a person after the delta page
		}
		return nil
	}
	im := e.importer(t, "r1", nil)
	res := e.sync(t, im)
	if res.Imported != 1 {
		t.Errorf("imported %d, want 1", res.Imported)
	}
	st, _ := im.Status(context.Background(), e.conn.ID)
	if st.LastError != "" || !st.Backfill.Done {
		t.Errorf("status %+v", st)
	}
}

// TestCrashBetweenSteps aborts a pass after each step of the flow, as a
// crash would, and checks that the next pass by a fresh importer ends with
// exactly one object and one event per document.
func TestCrashBetweenSteps(t *testing.T) {
	for _, step := range []string{"stored", "published", "recorded", "postprocessed", "page", "committed"} {
		for _, post := range []connector.PostAction{connector.PostMove, connector.PostMarkRead} {
			t.Run(step+"/"+string(post), func(t *testing.T) {
				e := newEnv(t, post)
				e.mb.pageSize = 6
				want := deliverMix(t, e.mb, 30)
				var crashed atomic.Int32
				im := e.importer(t, "r1", nil)
				im.hook = func(s string) error {
					if s == step {
						if crashed.Add(1) == 4 {
							return errors.New("crash at " + s)
						}
					}
					return nil
				}
				if _, err := im.SyncNow(context.Background(), e.conn.ID); err == nil || !strings.Contains(err.Error(), "crash") {
					t.Fatalf("SyncNow = %v, want the crash", err)
				}
				im2 := e.importer(t, "r2", nil)
				e.sync(t, im2)
				e.sync(t, im2)
				checkEvents(t, e, want)
				for id, n := range e.events.calls {
					if n > 2 {
						t.Errorf("%s published %d times", id, n)
					}
				}
				switch post {
				case connector.PostMove:
					if n := e.mb.count("inbox"); n != 3 {
						t.Errorf("inbox holds %d, want 3 unmoved mails", n)
					}
				case connector.PostMarkRead:
					if n := e.mb.callCount("markread"); n != 27 {
						t.Errorf("mark read %d times, want 27", n)
					}
				}
			})
		}
	}
}

func TestTwoReplicasNeverImportTwice(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	var conns []connector.Connection
	wantTotal := 0
	for i := range 6 {
		c := testConnection("con_r" + string(rune('a'+i)))
		c.Customer = "cust" + string(rune('a'+i))
		mb := newFakeMailbox()
		mb.pageSize = 5
		wantTotal += deliverMix(t, mb, 20).imported
		e.mbs[c.ID] = mb
		conns = append(conns, c)
	}
	e.conns = newFakeConnections(conns...)
	real := func(c *Config) { c.Now, c.After, c.Workers = time.Now, time.After, 3 }
	a, b := e.importer(t, "ra", real), e.importer(t, "rb", real)

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	go func() { done <- a.Run(ctx) }()
	go func() { done <- b.Run(ctx) }()
	deadline := time.After(60 * time.Second)
	for {
		n, _ := e.events.counts()
		if n == wantTotal {
			break
		}
		select {
		case <-deadline:
			cancel()
			t.Fatalf("only %d of %d documents imported", n, wantTotal)
		case <-time.After(20 * time.Millisecond):
		}
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}
	if e.events.maxCalls() != 1 {
		t.Errorf("a document was published %d times by the two replicas", e.events.maxCalls())
	}
	if e.store.puts != wantTotal {
		t.Errorf("%d puts for %d documents", e.store.puts, wantTotal)
	}
}

func TestLeaseExcludesSecondReplica(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	deliverMix(t, e.mb, 10)
	a, b := e.importer(t, "ra", nil), e.importer(t, "rb", nil)
	inside := make(chan struct{})
	release := make(chan struct{})
	a.hook = func(s string) error {
		if s == "stored" {
			select {
			case inside <- struct{}{}:
				<-release
			default:
			}
		}
		return nil
	}
	errc := make(chan error, 1)
	go func() { _, err := a.SyncNow(context.Background(), e.conn.ID); errc <- err }()
	<-inside
	if _, err := b.SyncNow(context.Background(), e.conn.ID); !errors.Is(err, ErrLeased) {
		t.Errorf("second replica: %v, want ErrLeased", err)
	}
	close(release)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	// Released: the other replica may work it now.
	if _, err := b.SyncNow(context.Background(), e.conn.ID); err != nil {
		t.Errorf("after release: %v", err)
	}
}

func TestThrottledMovesNextSync(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	deliverMix(t, e.mb, 10)
	e.mb.fault = func(op, arg string) error {
		if op == "attachments" {
			return &connector.Error{Op: "fake", Kind: connector.Throttled, RetryAfter: 90 * time.Second, Err: errors.New("429")}
		}
		return nil
	}
	im := e.importer(t, "r1", nil)
	_, err := im.SyncNow(context.Background(), e.conn.ID)
	if !connector.IsKind(err, connector.Throttled) {
		t.Fatalf("err = %v, want throttled", err)
	}
	// The mails already in flight (MailWorkers) may ask too; no mail
	// starts after the first throttled answer.
	if n := e.mb.calls["attachments"]; n < 1 || n > im.cfg.MailWorkers {
		t.Errorf("attachments called %d times, want the pass stopped after the %d mails in flight", n, im.cfg.MailWorkers)
	}
	st, _ := im.Status(context.Background(), e.conn.ID)
	if !st.NextSync.Equal(t0.Add(90*time.Second)) || st.LastErrorKind != "throttled" || st.ConsecutiveErrors != 0 {
		t.Errorf("status next %v kind %q errors %d; want next check after Retry-After", st.NextSync, st.LastErrorKind, st.ConsecutiveErrors)
	}
	if len(e.clock.waits) != 0 {
		t.Errorf("slept %v in the pass", e.clock.waits)
	}
}

func TestNeedsConsentStopsWithoutRetry(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	deliverMix(t, e.mb, 10)
	e.mb.fault = func(op, arg string) error {
		if op == "delta" {
			return &connector.Error{Op: "fake", Kind: connector.NeedsConsent, Code: "AADSTS50173", Err: errors.New("invalid_grant")}
		}
		return nil
	}
	im := e.importer(t, "r1", nil)
	if _, err := im.SyncNow(context.Background(), e.conn.ID); !connector.IsKind(err, connector.NeedsConsent) {
		t.Fatalf("err = %v", err)
	}
	if e.mb.calls["delta"] != 1 {
		t.Errorf("delta called %d times, want 1", e.mb.calls["delta"])
	}
	c, _ := e.conns.Get(context.Background(), e.conn.ID)
	if c.State != connector.StateNeedsConsent || c.LastError == "" {
		t.Errorf("connection %s %q", c.State, c.LastError)
	}
	if c.UpdatedBy != "importer" {
		t.Errorf("updated by %q, want importer (the store announces the change with it)", c.UpdatedBy)
	}
	// Run leaves it alone, and SyncNow refuses it.
	if _, err := im.SyncNow(context.Background(), e.conn.ID); !errors.Is(err, ErrNotImportable) {
		t.Errorf("SyncNow again: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := im.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if e.mb.callCount("delta") != 1 {
		t.Errorf("Run retried a connection that needs consent")
	}
}

func TestTransientRetriedWithBackoff(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.pageSize = 3
	want := deliverMix(t, e.mb, 10)
	fails := 0
	e.mb.fault = func(op, arg string) error {
		if op == "delta" && strings.HasPrefix(arg, "next") && fails < 2 {
			fails++
			return connector.E("fake: delta", connector.Transient, errors.New("503"))
		}
		return nil
	}
	im := e.importer(t, "r1", nil)
	e.sync(t, im)
	checkEvents(t, e, want)
	if len(e.clock.waits) != 2 {
		t.Fatalf("waits %v, want 2", e.clock.waits)
	}
	if w := e.clock.waits; w[0] < 500*time.Millisecond || w[0] > time.Second || w[1] < time.Second || w[1] > 2*time.Second {
		t.Errorf("waits %v, want jittered 1s then 2s", w)
	}
}

func TestRepeatedFailuresMarkFailingThenRecover(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	deliverMix(t, e.mb, 10)
	broken := true
	e.mb.fault = func(op, arg string) error {
		if op == "delta" && broken {
			return connector.E("fake: delta", connector.AccessDenied, errors.New("ErrorAccessDenied"))
		}
		return nil
	}
	im := e.importer(t, "r1", func(c *Config) { c.FailAfter = 3 })
	var last time.Time
	for i := 1; i <= 3; i++ {
		if _, err := im.SyncNow(context.Background(), e.conn.ID); err == nil {
			t.Fatal("pass succeeded")
		}
		st, _ := im.Status(context.Background(), e.conn.ID)
		if st.ConsecutiveErrors != i || !st.NextSync.After(last) {
			t.Errorf("pass %d: errors %d next %v", i, st.ConsecutiveErrors, st.NextSync)
		}
		last = st.NextSync
	}
	c, _ := e.conns.Get(context.Background(), e.conn.ID)
	if c.State != connector.StateFailing || !strings.Contains(c.LastError, "ErrorAccessDenied") {
		t.Fatalf("connection %s %q, want failing", c.State, c.LastError)
	}
	broken = false
	e.sync(t, im)
	c, _ = e.conns.Get(context.Background(), e.conn.ID)
	if c.State != connector.StateActive {
		t.Errorf("state %s after a good pass, want active", c.State)
	}
	if c.UpdatedBy != "importer" || c.LastError != "" {
		t.Errorf("recovered connection: updated by %q, last error %q", c.UpdatedBy, c.LastError)
	}
}

func TestBackfillModes(t *testing.T) {
	tests := []struct {
		name     string
		backfill connector.Backfill
		want     []string // imported file names
	}{
		{"all", connector.Backfill{Mode: connector.BackfillAll}, []string{"old.pdf", "recent.pdf", "after.pdf"}},
		{"since", connector.Backfill{Mode: connector.BackfillSince, Since: t0.Add(-48 * time.Hour)}, []string{"recent.pdf", "after.pdf"}},
		{"new", connector.Backfill{Mode: connector.BackfillNew}, []string{"after.pdf"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			c := e.conn
			c.Backfill = tt.backfill
			c.CreatedAt = t0.Add(-time.Hour)
			e.conns = newFakeConnections(c)
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<old@x>", ReceivedAt: t0.Add(-30 * 24 * time.Hour)}, file("old.pdf", "", pdfDoc(1)))
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<recent@x>", ReceivedAt: t0.Add(-24 * time.Hour)}, file("recent.pdf", "", pdfDoc(2)))
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<after@x>", ReceivedAt: t0.Add(-time.Minute)}, file("after.pdf", "", pdfDoc(3)))
			im := e.importer(t, "r1", nil)
			e.sync(t, im)
			var got []string
			for _, ev := range e.events.imported {
				got = append(got, ev.Document.Name)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("imported %v, want %v", got, tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(strings.Join(got, ","), w) {
					t.Errorf("imported %v, want %v", got, tt.want)
				}
			}
			// Mail arriving later is imported in every mode.
			e.mb.deliver("inbox", connector.Message{InternetMessageID: "<later@x>", ReceivedAt: t0}, file("later.pdf", "", pdfDoc(4)))
			if res := e.sync(t, im); res.Imported != 1 {
				t.Errorf("later mail: %+v", res)
			}
		})
	}
}

func TestSaveEML(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", Subject: "Nur Text", ReceivedAt: t0})
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", Subject: "Weitergeleitet", ReceivedAt: t0},
		connector.Attachment{Type: connector.ItemAttachment, Name: "WG: Rechnung"})
	im := e.importer(t, "r1", func(c *Config) { c.Policy.SaveEML = true })
	res := e.sync(t, im)
	if res.Imported != 3 { // two whole mails and the attached one
		t.Errorf("imported %d, want 3", res.Imported)
	}
	names := map[string]bool{}
	for _, ev := range e.events.imported {
		if ev.Document.Kind != archive.KindEML || !strings.HasSuffix(ev.Object.Key, ".eml") {
			t.Errorf("document %+v at %s", ev.Document, ev.Object.Key)
		}
		names[ev.Document.Name] = true
	}
	if !names["Nur Text.eml"] || !names["WG: Rechnung.eml"] {
		t.Errorf("names %v", names)
	}
}

func TestRunPollsAndStopsCleanly(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 20)
	im := e.importer(t, "r1", func(c *Config) { c.Now, c.After, c.PollInterval = time.Now, time.After, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- im.Run(ctx) }()
	waitFor(t, func() bool { n, _ := e.events.counts(); return n == want.imported })
	// Idle now (next check in an hour); a trigger polls at once.
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<t@x>", ReceivedAt: t0}, file("t.pdf", "", pdfDoc(99)))
	im.Trigger(e.conn.ID)
	waitFor(t, func() bool { n, _ := e.events.counts(); return n == want.imported+1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return")
	}
}

// A connection this replica no longer polls (paused, deleted) has no lag
// series left behind at a stale value.
func TestRunDropsLagOfForgottenConnection(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 10)
	im := e.importer(t, "r1", func(c *Config) { c.Now, c.After, c.PollInterval = time.Now, time.After, time.Hour })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- im.Run(ctx) }()
	waitFor(t, func() bool { n, _ := e.events.counts(); return n == want.imported })
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 1 })
	if _, err := e.conns.Update(ctx, e.conn.ID, func(c *connector.Connection) error {
		c.State = connector.StatePaused
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return testutil.CollectAndCount(im.metrics.lag) == 0 })
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached")
		}
		time.Sleep(10 * time.Millisecond) // polling a fake from outside; no event to await
	}
}

func TestShutdownFinishesDocumentInFlight(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 20)
	im := e.importer(t, "r1", func(c *Config) { c.AttachmentWorkers = 1 })
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var once atomic.Bool
	im.hook = func(s string) error {
		if s == "stored" && once.CompareAndSwap(false, true) {
			cancel() // shutdown while a document is between store and publish
		}
		return nil
	}
	if err := im.Run(ctx); err != nil {
		t.Fatal(err)
	}
	// Mails are worked MailWorkers at once (one document each here), so
	// up to that many documents were in flight.
	if n, _ := e.events.counts(); n < 1 || n > im.cfg.MailWorkers {
		t.Fatalf("%d documents published, want the 1 to %d in flight", n, im.cfg.MailWorkers)
	}
	for id := range e.events.imported {
		if _, found, err := im.ledger.lookup(context.Background(), id); err != nil || !found {
			t.Errorf("document in flight not recorded: %v", err)
		}
	}
	if _, rev, _ := im.ledger.cursor(context.Background(), e.conn.ID); rev != 0 {
		t.Errorf("cursor committed although the page was not finished")
	}
	im.hook = nil
	e.sync(t, im)
	checkEvents(t, e, want)
	if e.events.maxCalls() != 1 {
		t.Errorf("a document was published %d times", e.events.maxCalls())
	}
}

// TestTransientStoreFailureRetriedInPass: a transient failure after some
// documents of a mail were started is retried from the cursor, and every
// document still gets archived.
func TestTransientStoreFailureRetriedInPass(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", ReceivedAt: t0},
		file("a.pdf", "", pdfDoc(1)), file("a-copy.pdf", "", pdfDoc(1)), file("b.pdf", "", pdfDoc(2)))
	failed := false
	e.store.fail = func(key string) error {
		if !failed {
			failed = true
			return connector.E("fake: put", connector.Transient, errors.New("503 slow down"))
		}
		return nil
	}
	im := e.importer(t, "r1", func(c *Config) { c.AttachmentWorkers = 1 })
	res := e.sync(t, im)
	if n, _ := e.events.counts(); n != 2 || e.store.len() != 2 {
		t.Errorf("%d events, %d objects; want 2 (%+v)", n, e.store.len(), res)
	}
	if got := e.events.reasons(); got[archive.ReasonDuplicate] != 1 {
		t.Errorf("skips %v, want the copy as duplicate", got)
	}
	if len(e.clock.waits) != 1 || e.mb.count("inbox") != 0 {
		t.Errorf("waits %v, inbox %d", e.clock.waits, e.mb.count("inbox"))
	}
}

// TestCrashBeforeContentIndex: a crash between recording a document and
// indexing its content still makes later copies duplicates.
func TestCrashBeforeContentIndex(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	scan := scanJPEG(t)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", ReceivedAt: t0}, file("scan.jpg", "", scan))
	im := e.importer(t, "r1", nil)
	im.hook = func(s string) error {
		if s == "recorded" {
			return errors.New("crash")
		}
		return nil
	}
	if _, err := im.SyncNow(context.Background(), e.conn.ID); err == nil {
		t.Fatal("no crash")
	}
	im.hook = nil
	e.sync(t, im)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", ReceivedAt: t0}, file("scan-again.jpg", "", scan))
	e.sync(t, im)
	if n, _ := e.events.counts(); n != 1 || e.events.reasons()[archive.ReasonDuplicate] != 1 {
		t.Errorf("%d imported, skips %v; want the second scan a duplicate", n, e.events.reasons())
	}
}
