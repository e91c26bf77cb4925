package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// keptMailbox records where each attachment listing kept the bytes.
type keptMailbox struct {
	*fakeMailbox
	mu   sync.Mutex
	kept [][]keptBytes
}

type keptBytes struct {
	name     string
	size     int64
	inMemory bool
}

func (m *keptMailbox) Attachments(ctx context.Context, id string, sink connector.Sink) ([]connector.Attachment, error) {
	atts, err := m.fakeMailbox.Attachments(ctx, id, sink)
	var kept []keptBytes
	for _, a := range atts {
		k := keptBytes{name: a.Name, size: -1}
		if sp, ok := a.Data.(*archive.Spool); ok {
			k.size, k.inMemory = sp.Size(), sp.InMemory()
		}
		kept = append(kept, k)
	}
	m.mu.Lock()
	m.kept = append(m.kept, kept)
	m.mu.Unlock()
	return atts, err
}

// TestMailKeepsAtMostSpoolMemory: a mail's attachments arrive with the
// list, and all of them together keep at most SpoolMemory bytes in memory;
// the rest is on disk, and every spool file is gone once the mail is done.
func TestMailKeepsAtMostSpoolMemory(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	const n, size = 30, 100 << 10
	var atts []connector.Attachment
	for i := range n {
		body := append(pdfDoc(i), make([]byte, size)...)
		atts = append(atts, file(fmt.Sprintf("scan-%02d.pdf", i), "application/pdf", body))
	}
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<photos@x>", ReceivedAt: t0, HasAttachments: true}, atts...)
	kept := &keptMailbox{fakeMailbox: e.mb}
	spool := t.TempDir()
	const budget = 1 << 20
	mbs := MailboxesFunc(func(context.Context, connector.Connection) (Mailbox, error) { return kept, nil })
	im, err := New(context.Background(), e.js, Deps{Connections: e.conns, Mailboxes: mbs, Store: e.store, Events: e.events},
		Config{Replica: "r1", Now: e.clock.Now, After: e.clock.After, SpoolDir: spool, SpoolMemory: budget})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.sync(t, im); res.Imported != n {
		t.Fatalf("%+v, want %d imported", res, n)
	}
	if len(kept.kept) != 1 || len(kept.kept[0]) != n {
		t.Fatalf("listings %d, want 1 with %d attachments", len(kept.kept), n)
	}
	var inMemory, onDisk int64
	for _, k := range kept.kept[0] {
		switch {
		case k.size < 0:
			t.Fatalf("attachment %s came without its bytes", k.name)
		case k.inMemory:
			inMemory += k.size
		default:
			if inMemory+k.size <= budget {
				t.Errorf("%s went to disk with room left in memory", k.name)
			}
			onDisk += k.size
		}
	}
	if onDisk == 0 || inMemory > budget || inMemory < budget-2*size {
		t.Errorf("in memory %d (budget %d), on disk %d", inMemory, budget, onDisk)
	}
	if n := e.mb.callCount("open"); n != 0 {
		t.Errorf("%d attachments downloaded one by one, want none: they came with the list", n)
	}
	left, err := os.ReadDir(spool)
	if err != nil || len(left) != 0 {
		t.Errorf("spool directory after the mail: %d files, %v", len(left), err)
	}
}

// brokenListMailbox breaks off every attachment list that carries the
// bytes, as Graph may time out on a mail with very large attachments.
type brokenListMailbox struct {
	*fakeMailbox
	mu     sync.Mutex
	broken int
}

func (m *brokenListMailbox) Attachments(ctx context.Context, id string, sink connector.Sink) ([]connector.Attachment, error) {
	if sink != nil {
		m.mu.Lock()
		m.broken++
		m.mu.Unlock()
		return nil, connector.E("fake: attachments", connector.Transient, errors.New("unexpected EOF"))
	}
	return m.fakeMailbox.Attachments(ctx, id, nil)
}

// TestBrokenListFallsBack: when the list with the bytes breaks off, the
// mail is not parked: its attachments are listed without their bytes, the
// image is read on its own with its contentId (a logo shown in the body,
// skipped as such), and the PDFs are streamed one by one, each imported
// once.
func TestBrokenListFallsBack(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	for i := range 3 {
		e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<big%d@x>", i), ReceivedAt: t0, HasAttachments: true},
			file(fmt.Sprintf("RE-%d.pdf", i), "application/pdf", bigPDF(i)))
	}
	logo := file("image001.png", "image/png", logoPNG(t))
	logo.ContentID = "image001.png@01DA"
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<logo@x>", ReceivedAt: t0, HasAttachments: true,
		BodyRefs: "cid:image001.png@01DA"}, file("RE-9.pdf", "application/pdf", bigPDF(9)), logo)
	mb := &brokenListMailbox{fakeMailbox: e.mb}
	mbs := MailboxesFunc(func(context.Context, connector.Connection) (Mailbox, error) { return mb, nil })
	im, err := New(context.Background(), e.js, Deps{Connections: e.conns, Mailboxes: mbs, Store: e.store, Events: e.events},
		Config{Replica: "r1", Now: e.clock.Now, After: e.clock.After, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	if res := e.sync(t, im); res.Imported != 4 || res.Skipped != 1 || res.Failed != 0 {
		t.Fatalf("%+v, want 4 imported, the logo skipped, none parked", res)
	}
	if mb.broken != 4 || e.mb.callCount("open") != 4 || e.mb.callCount("attachment") != 1 {
		t.Errorf("%d broken lists, %d attachments streamed, %d read on their own; want 4, 4 and 1 (the logo)",
			mb.broken, e.mb.callCount("open"), e.mb.callCount("attachment"))
	}
	n, _ := e.events.counts()
	if reasons := e.events.reasons(); n != 4 || reasons[archive.ReasonInline] != 1 || e.events.maxCalls() != 1 {
		t.Errorf("%d imported, skipped %v (max calls %d), want 4 and the logo as inline, each once", n, reasons, e.events.maxCalls())
	}
}
