package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// bigPDF makes a PDF above the fake's inline limit, so it is downloaded
// with OpenAttachment.
func bigPDF(i int) []byte {
	return append(pdfDoc(i), make([]byte, 2000)...)
}

// TestPoisonMailIsParkedAndTheMailboxMovesOn: one mail whose attachments
// can never be listed does not hold back the others, including mail that
// arrives later; it is retried with backoff, given up after the horizon,
// and imported exactly once after an operator's retry.
func TestPoisonMailIsParkedAndTheMailboxMovesOn(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	e.mb.immutable = true
	poison := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<poison@x>", Subject: "Rechnung kaputt", ReceivedAt: t0},
		file("poison.pdf", "application/pdf", bigPDF(0)))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", ReceivedAt: t0.Add(time.Minute)}, file("a.pdf", "", bigPDF(1)))
	broken := true
	e.mb.fault = func(op, arg string) error {
		if broken && (op == "attachments" || op == "open") && (arg == poison || arg == "poison.pdf") {
			return connector.E("fake: "+op, connector.Transient, errors.New("503 ServiceNotAvailable"))
		}
		return nil
	}
	im := e.importer(t, "r1", func(c *Config) { c.Policy.MaxAttempts = 3; c.Policy.RetryFor = 10 * time.Minute })
	ctx := context.Background()

	res := e.sync(t, im)
	if res.Imported != 1 || res.Failed != 1 {
		t.Fatalf("first pass %+v, want a.pdf imported and the poison mail parked", res)
	}
	st, _ := im.Status(ctx, e.conn.ID)
	if st.Parked != 1 || len(st.ParkedMails) != 1 || !strings.Contains(st.ParkedMails[0].LastError, "503") {
		t.Fatalf("status %+v, want the poison mail parked with its error", st)
	}
	if st.ConsecutiveErrors != 0 || st.LastError != "" {
		t.Errorf("a single mail's failure counted against the connection: %+v", st)
	}
	firstRetry := st.ParkedMails[0].NextRetry
	if d := firstRetry.Sub(e.clock.Now()); d < 2*time.Second || d > 5*time.Second {
		t.Errorf("first retry in %v, want 2.5-5s (a 120th of RetryFor, jittered)", d)
	}

	// Mail arriving later is imported on the next poll, while the poison
	// mail is not due yet and costs no request.
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<b@x>", ReceivedAt: t0.Add(2 * time.Minute)}, file("b.pdf", "", bigPDF(2)))
	before := e.mb.callCount("attachments")
	if res := e.sync(t, im); res.Imported != 1 {
		t.Fatalf("second pass %+v, want b.pdf", res)
	}
	if n := e.mb.callCount("attachments") - before; n != 1 {
		t.Errorf("%d attachment listings, want 1 (b only; the poison mail is not due)", n)
	}

	// Retries with growing delays, then given up after the horizon.
	var delays []time.Duration
	for range 10 {
		st, _ := im.Status(ctx, e.conn.ID)
		if st.GivenUp == 1 {
			break
		}
		next := st.ParkedMails[0].NextRetry
		delays = append(delays, next.Sub(e.clock.Now()))
		e.clock.After(next.Sub(e.clock.Now()) + time.Second)
		if st.Parked != 1 {
			t.Fatalf("status %+v", st)
		}
		e.sync(t, im)
	}
	st, _ = im.Status(ctx, e.conn.ID)
	if st.GivenUp != 1 || st.Parked != 0 {
		t.Fatalf("after retries: parked %d, given up %d (delays %v)", st.Parked, st.GivenUp, delays)
	}
	if len(delays) < 2 || delays[1] <= delays[0] {
		t.Errorf("retry delays %v, want growing", delays)
	}
	if got := e.events.reasons(); got[archive.ReasonFailed] != 1 {
		t.Fatalf("skips %v, want one failed", got)
	}
	for _, s := range e.events.skipped {
		if s.Reason == archive.ReasonFailed && (!strings.Contains(s.Detail, "503") || s.Message.Subject != "Rechnung kaputt") {
			t.Errorf("failed event %+v", s)
		}
	}
	if e.mb.count("inbox") != 1 {
		t.Errorf("inbox holds %d; the given-up mail stays for a person, the others are moved", e.mb.count("inbox"))
	}
	// Given up: later passes leave it alone.
	e.clock.After(time.Hour)
	calls := e.mb.callCount("attachments")
	e.sync(t, im)
	if e.mb.callCount("attachments") != calls {
		t.Error("a given-up mail was tried again without an operator")
	}

	// The operator fixes the cause and retries: imported exactly once.
	broken = false
	r, err := NewStatusReader(ctx, e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := r.Retry(ctx, e.conn.ID, ""); err != nil || n != 1 {
		t.Fatalf("Retry = %d, %v", n, err)
	}
	// The operator's retry (another process) triggers nothing: Run's next
	// poll finds it, since a connection with a given-up mail is not quiet
	// and gets a real pass, not a peek.
	e.clock.After(time.Hour)
	im.work(ctx, runJob{id: e.conn.ID})
	if n, _ := e.events.counts(); n != 3 {
		t.Fatalf("%d documents after the poll that follows the retry, want 3 (the poison mail's among them)", n)
	}
	e.sync(t, im)
	if n, _ := e.events.counts(); n != 3 || e.events.maxCalls() != 1 {
		t.Errorf("%d imported, max publish calls %d; want 3, each once", n, e.events.maxCalls())
	}
	st, _ = im.Status(ctx, e.conn.ID)
	if st.Parked != 0 || st.GivenUp != 0 || e.mb.count("inbox") != 0 {
		t.Errorf("after the retry: parked %d, given up %d, inbox %d", st.Parked, st.GivenUp, e.mb.count("inbox"))
	}
}

// TestParkedMailSurvivesResetAndMove: a parked mail is found by its
// immutable id after a delta reset and after a person moved it, and is
// imported once.
func TestParkedMailSurvivesResetAndMove(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.immutable = true
	id := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<p@x>", ReceivedAt: t0}, file("p.pdf", "", bigPDF(1)))
	broken := true
	e.mb.fault = func(op, arg string) error {
		if broken && (op == "open" || op == "attachments") {
			return connector.E("fake: open", connector.Transient, errors.New("connection reset"))
		}
		return nil
	}
	im := e.importer(t, "r1", nil)
	if res := e.sync(t, im); res.Failed != 1 {
		t.Fatalf("%+v, want the mail parked", res)
	}
	e.mb.resetSync()
	folder, _ := e.mb.EnsureFolder(context.Background(), "Ablage")
	e.mb.personMove(id, folder)
	e.mb.personMove(id, "inbox") // and back: delta lists it again
	broken = false
	e.clock.After(time.Hour)
	e.sync(t, im)
	e.sync(t, im)
	if n, _ := e.events.counts(); n != 1 || e.events.maxCalls() != 1 {
		t.Errorf("%d imported (max calls %d), want once", n, e.events.maxCalls())
	}
	if st, _ := im.Status(context.Background(), e.conn.ID); st.Parked != 0 {
		t.Errorf("still parked: %+v", st.ParkedMails)
	}
}

// TestInfrastructureFaultsChargeNobody: the store failing for a long
// time never gives a document up, never parks a mail, never turns the
// connection failing; Fault reports it, and after the repair every
// document arrives exactly once.
func TestInfrastructureFaultsChargeNobody(t *testing.T) {
	for _, tc := range []struct {
		name      string
		component string
		break_    func(e *env, spool string)
		repair    func(e *env, spool string)
	}{
		{
			name: "storage down", component: componentStorage,
			break_: func(e *env, _ string) {
				e.store.fail = func(string) error { return errors.New("dial tcp 127.0.0.1:9000: connection refused") }
			},
			repair: func(e *env, _ string) { e.store.fail = nil },
		},
		{
			name: "spool directory gone", component: componentDisk,
			break_: func(_ *env, spool string) {
				if err := os.RemoveAll(spool); err != nil {
					panic(err)
				}
			},
			repair: func(_ *env, spool string) {
				if err := os.MkdirAll(spool, 0o700); err != nil {
					panic(err)
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, connector.PostMove)
			for i := range 6 {
				e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<m%d@x>", i), ReceivedAt: t0.Add(time.Duration(i) * time.Minute)},
					file(fmt.Sprintf("r%d.pdf", i), "", append(pdfDoc(i), make([]byte, 4096)...)))
			}
			spool := filepath.Join(t.TempDir(), "spool")
			if err := os.MkdirAll(spool, 0o700); err != nil {
				t.Fatal(err)
			}
			im := e.importer(t, "r1", func(c *Config) {
				c.SpoolDir, c.SpoolMemory = spool, 1024
				c.FailAfter, c.Policy.MaxAttempts, c.Policy.RetryFor = 2, 2, time.Minute
			})
			ctx := context.Background()
			tc.break_(e, spool)
			for pass := range 6 { // far beyond FailAfter, MaxAttempts and RetryFor
				e.clock.After(time.Hour)
				_, err := im.SyncNow(ctx, e.conn.ID)
				if infraComponent(err) != tc.component {
					t.Fatalf("pass %d: %v, want a %s fault", pass, err, tc.component)
				}
			}
			if err := im.Fault(); err == nil || !strings.Contains(err.Error(), tc.component) {
				t.Errorf("Fault() = %v, want the %s named", err, tc.component)
			}
			c, _ := e.conns.Get(ctx, e.conn.ID)
			st, _ := im.Status(ctx, e.conn.ID)
			if c.State != connector.StateActive || st.ConsecutiveErrors != 0 || st.Parked != 0 || st.LastErrorKind != "infrastructure" {
				t.Errorf("charged to the customer: state %s, status %+v", c.State, st)
			}
			if got := e.events.reasons(); got[archive.ReasonFailed] != 0 {
				t.Errorf("documents given up: %v", got)
			}
			tc.repair(e, spool)
			e.clock.After(time.Minute)
			e.sync(t, im)
			e.sync(t, im)
			if n, _ := e.events.counts(); n != 6 || e.store.len() != 6 || e.events.maxCalls() != 1 {
				t.Errorf("after the repair: %d events, %d objects, max calls %d; want 6 each once", n, e.store.len(), e.events.maxCalls())
			}
			if err := im.Fault(); err != nil {
				t.Errorf("Fault() after the repair: %v", err)
			}
			if e.mb.count("inbox") != 0 {
				t.Errorf("%d mails left in the inbox", e.mb.count("inbox"))
			}
		})
	}
}

// TestPauseStopsARunningBackfill: during a 5,000-mail backfill, no mail
// is imported or moved later than one page after the pause returned.
func TestPauseStopsARunningBackfill(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	e.mb.pageSize = 50
	for i := range 5000 {
		e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<bf%d@x>", i), ReceivedAt: t0.Add(time.Duration(i) * time.Second)},
			file(fmt.Sprintf("r%d.pdf", i), "", pdfDoc(i)))
	}
	im := e.importer(t, "r1", func(c *Config) { c.MaxPassPages = 1000; c.MaxPassTime = time.Hour })
	var afterPause atomic.Int64
	var paused atomic.Bool
	im.hook = func(step string) error {
		if step == "postprocessed" && paused.Load() {
			afterPause.Add(1)
		}
		return nil
	}
	done := make(chan PassResult)
	go func() {
		res, err := im.SyncNow(context.Background(), e.conn.ID)
		if !errors.Is(err, ErrNotImportable) {
			t.Errorf("SyncNow: %v, want stopped as not importable", err)
		}
		done <- res
	}()
	waitFor(t, func() bool { n, _ := e.events.counts(); return n >= 300 })
	if _, err := e.conns.Update(context.Background(), e.conn.ID, func(c *connector.Connection) error {
		c.State = connector.StatePaused
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	paused.Store(true)
	moved := 5000 - e.mb.count("inbox")
	res := <-done
	imported, _ := e.events.counts()
	movedAfter := 5000 - e.mb.count("inbox") - moved
	t.Logf("paused after %d moves; %d mails finished and %d moved after the pause (page size 50); pass %+v", moved, afterPause.Load(), movedAfter, res)
	if afterPause.Load() > 50 || movedAfter > 50 {
		t.Errorf("%d mails finished and %d moved after the pause, want at most one page (50)", afterPause.Load(), movedAfter)
	}
	if imported >= 5000 {
		t.Error("the pass ran to the end despite the pause")
	}
	st, _ := im.Status(context.Background(), e.conn.ID)
	if st.LastError != "" || st.ConsecutiveErrors != 0 {
		t.Errorf("a pause counted as an error: %+v", st)
	}
}

// TestLongBackfillYields: a pass commits and yields after MaxPassPages,
// and the next pass goes on where it stopped; SyncNow runs passes until
// the round is done.
func TestLongBackfillYields(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.pageSize = 10
	for i := range 100 {
		e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<y%d@x>", i), ReceivedAt: t0},
			file(fmt.Sprintf("r%d.pdf", i), "", pdfDoc(i)))
	}
	im := e.importer(t, "r1", func(c *Config) { c.MaxPassPages = 3 })
	ctx := context.Background()
	res, _, err := im.syncPass(ctx, e.conn, nil)
	if err != nil || !res.Yielded || res.Pages != 3 || res.Imported != 30 {
		t.Fatalf("first pass %+v, %v; want 3 pages and a yield", res, err)
	}
	st, _ := im.Status(ctx, e.conn.ID)
	if st.NextSync.After(e.clock.Now()) {
		t.Errorf("next sync %v, want due at once", st.NextSync)
	}
	res = e.sync(t, im) // the rest, in passes of 3 pages
	if res.Yielded || res.Imported != 70 || res.Pages != 7 {
		t.Errorf("SyncNow %+v, want the other 70 documents over 7 pages", res)
	}
	if n, _ := e.events.counts(); n != 100 || e.events.maxCalls() != 1 {
		t.Errorf("%d imported (max calls %d), want 100 once each", n, e.events.maxCalls())
	}
}

// TestReplayBeyondTheDuplicateWindow: a pass dies between announcing a
// document and recording it; the connection then stays paused longer
// than the stream's duplicate window. The replay must not announce the
// document a second time, although the stream no longer de-duplicates it.
func TestReplayBeyondTheDuplicateWindow(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	const window = time.Second
	ctx := context.Background()
	if _, err := e.js.CreateStream(ctx, jetstream.StreamConfig{
		Name: archive.StreamName, Subjects: []string{"mailgate.>"}, Duplicates: window, Storage: jetstream.FileStorage,
	}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(e.js, "mailgate")
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<w@x>", ReceivedAt: t0},
		file("w.pdf", "", pdfDoc(1)), file("logo.png", "image/png", logoPNG(t)))
	newImporter := func() *Importer {
		cfg := Config{Replica: "r1", Now: e.clock.Now, After: e.clock.After, SpoolDir: t.TempDir(), DuplicateWindow: window}
		im, err := New(ctx, e.js, Deps{Connections: e.conns, Mailboxes: e.mbs, Store: e.store, Events: pub}, cfg)
		if err != nil {
			t.Fatal(err)
		}
		return im
	}
	im := newImporter()
	im.hook = func(step string) error {
		if step == "published" {
			return errors.New("crash after publish")
		}
		return nil
	}
	if _, err := im.SyncNow(ctx, e.conn.ID); err == nil {
		t.Fatal("no crash")
	}
	// Paused past the window, by the stream's clock and by ours.
	time.Sleep(2 * window) // the stream's duplicate window runs on the server's wall clock
	e.clock.After(time.Hour)
	e.sync(t, newImporter())
	e.sync(t, newImporter())

	s, err := e.js.Stream(ctx, archive.StreamName)
	if err != nil {
		t.Fatal(err)
	}
	info, _ := s.Info(ctx)
	ids := map[string]int{}
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq; seq++ {
		m, err := s.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if strings.Contains(m.Subject, ".document.") {
			ids[m.Header.Get(jetstream.MsgIDHeader)]++
		}
	}
	if len(ids) != 2 {
		t.Errorf("events %v, want the document and the logo's skip", ids)
	}
	for id, n := range ids {
		if n != 1 {
			t.Errorf("event %s stored %d times", id, n)
		}
	}
}

// TestMailOfTheSameSecondAsTheConnection: Graph's receivedDateTime has
// whole seconds, the connection's creation time does not; mail received
// in the second the mailbox was connected is new mail.
func TestMailOfTheSameSecondAsTheConnection(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	created := t0.Add(579 * time.Millisecond)
	e.conn.CreatedAt = created
	e.conn.Backfill = connector.Backfill{Mode: connector.BackfillNew}
	e.conns = newFakeConnections(e.conn)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<same-second@x>", ReceivedAt: t0}, file("r.pdf", "", pdfDoc(1)))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<before@x>", ReceivedAt: t0.Add(-time.Second)}, file("old.pdf", "", pdfDoc(2)))
	im := e.importer(t, "r1", nil)
	if res := e.sync(t, im); res.Imported != 1 {
		t.Errorf("%+v, want the mail of the same second imported and the older one left alone", res)
	}
}
