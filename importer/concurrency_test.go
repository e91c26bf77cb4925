package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestPageMailsConcurrent: the mails of a page are worked MailWorkers at
// once, never more, and the page's cursor is committed after all of them.
func TestPageMailsConcurrent(t *testing.T) {
	e := newEnv(t, connector.PostMarkRead)
	e.mb.pageSize = 12
	for i := range 12 {
		e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<c%d@x>", i), ReceivedAt: t0},
			file(fmt.Sprintf("RE-%d.pdf", i), "application/pdf", pdfDoc(i)))
	}
	im := e.importer(t, "r1", nil)
	var (
		mu             sync.Mutex
		inflight, peak int
		marked         int // mails post-processed when the cursor was committed
		full           = make(chan struct{})
		once           sync.Once
	)
	im.hook = func(s string) error {
		mu.Lock()
		defer mu.Unlock()
		switch s {
		case "stored":
			inflight++
			peak = max(peak, inflight)
			if inflight == im.cfg.MailWorkers {
				once.Do(func() { close(full) })
			}
			mu.Unlock()
			defer mu.Lock()
			select { // wait until MailWorkers documents are between store and record
			case <-full:
			case <-time.After(10 * time.Second):
				return errors.New("documents of different mails never in flight together")
			}
		case "recorded":
			inflight--
		case "page":
			marked = e.mb.callCount("markread")
		}
		return nil
	}
	res := e.sync(t, im)
	if res.Imported != 12 || res.Pages != 1 {
		t.Errorf("result %+v, want 12 imported in 1 page", res)
	}
	if peak != im.cfg.MailWorkers {
		t.Errorf("peak documents in flight %d, want MailWorkers = %d", peak, im.cfg.MailWorkers)
	}
	if marked != 12 {
		t.Errorf("%d mails post-processed before the page was committed, want all 12", marked)
	}
	if e.events.maxCalls() != 1 {
		t.Errorf("a document was published %d times", e.events.maxCalls())
	}
}

// TestSameContentInConcurrentMails: mails of one page worked at once that
// carry the same file archive it once; the others are duplicates of it.
func TestSameContentInConcurrentMails(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	e.mb.pageSize = 8
	im := e.importer(t, "r1", nil)
	const rounds, copies = 5, 8
	for r := range rounds {
		for i := range copies {
			e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<d%d-%d@x>", r, i), ReceivedAt: t0},
				file(fmt.Sprintf("RE-%d-%d.pdf", r, i), "application/pdf", pdfDoc(1000+r)))
		}
		e.sync(t, im)
	}
	imported, _ := e.events.counts()
	if imported != rounds || e.store.len() != rounds {
		t.Errorf("%d imported, %d objects; want %d", imported, e.store.len(), rounds)
	}
	if got := e.events.reasons()[archive.ReasonDuplicate]; got != rounds*(copies-1) {
		t.Errorf("%d duplicates, want %d", got, rounds*(copies-1))
	}
}

// TestRunPollsManyConnectionsPromptly: Run hands due connections to free
// workers at once instead of a few per scan, and polls each again one poll
// interval after its pass, not before.
func TestRunPollsManyConnectionsPromptly(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	const n = 40
	var conns []connector.Connection
	for i := range n {
		c := testConnection(fmt.Sprintf("con_idle%02d", i))
		e.mbs[c.ID] = newFakeMailbox()
		conns = append(conns, c)
	}
	e.conns = newFakeConnections(conns...)
	const poll = 3 * time.Second
	im := e.importer(t, "r1", func(c *Config) {
		c.Now, c.After, c.Workers, c.PollInterval, c.ScanInterval = time.Now, time.After, 2, poll, poll
	})
	polls := func() (least, most int) {
		least = 1 << 30
		for _, c := range conns {
			k := e.mbs[c.ID].callCount("delta")
			least, most = min(least, k), max(most, k)
		}
		return least, most
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- im.Run(ctx) }()
	// Before: at most Workers passes per scan, so 40 connections took 20
	// scans.
	waitFor(t, func() bool { least, _ := polls(); return least >= 1 })
	if d := time.Since(start); d > poll {
		t.Errorf("first poll of %d connections took %v with 2 workers, want under one scan interval (%v)", n, d, poll)
	}
	if _, most := polls(); most != 1 {
		t.Errorf("a connection was polled %d times before its next check", most)
	}
	waitFor(t, func() bool { least, _ := polls(); return least >= 2 })
	if d := time.Since(start); d < poll {
		t.Errorf("second polls after %v, before the poll interval %v", d, poll)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// twiceMailbox lists every message of a delta page twice, as Graph's delta
// sometimes does (msgraph-sdk-go#969).
type twiceMailbox struct{ *fakeMailbox }

func (m twiceMailbox) Delta(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error) {
	page, err := m.fakeMailbox.Delta(ctx, folder, link, since)
	page.Messages = append(page.Messages, page.Messages...)
	return page, err
}

// TestMessageTwiceInPage: the copies of a mail in one page are worked one
// after the other, so each document is published and each mail
// post-processed once.
func TestMessageTwiceInPage(t *testing.T) {
	e := newEnv(t, connector.PostMarkRead)
	for i := range 12 {
		e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<t%d@x>", i), ReceivedAt: t0},
			file(fmt.Sprintf("RE-%d.pdf", i), "application/pdf", pdfDoc(i)))
	}
	mbs := MailboxesFunc(func(context.Context, connector.Connection) (Mailbox, error) { return twiceMailbox{e.mb}, nil })
	im, err := New(context.Background(), e.js, Deps{Connections: e.conns, Mailboxes: mbs, Store: e.store, Events: e.events},
		Config{Replica: "r1", Now: e.clock.Now, After: e.clock.After, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.sync(t, im); res.Imported != 12 {
		t.Errorf("imported %d, want 12", res.Imported)
	}
	if n := e.events.maxCalls(); n != 1 {
		t.Errorf("a document was published %d times", n)
	}
	if n := e.mb.callCount("markread"); n != 12 {
		t.Errorf("mails marked read %d times, want 12", n)
	}
}
