package importer

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestRefusedEventIsTheItemsFailure: a document whose event the
// publisher refuses for its size (archive.ErrEventRefused, as the real
// publisher answers an event over its bound) fails as an item: its mail
// is parked and in the end given up with a document.skipped "failed"
// event, the other mails are imported, and no infrastructure fault is
// reported (/readyz stays ready).
func TestRefusedEventIsTheItemsFailure(t *testing.T) {
	e := newEnv(t, connector.PostMove)
	e.mb.immutable = true
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<big@x>", Subject: "Rechnung riesig", ReceivedAt: t0},
		file("riesig.pdf", "application/pdf", bigPDF(0)))
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<a@x>", ReceivedAt: t0.Add(time.Minute)}, file("a.pdf", "", bigPDF(1)))
	refused := map[string]bool{}
	e.events.fail = func(id string) error {
		if refused[id] {
			return fmt.Errorf("archive: publish %s %s: %w: 1900000 bytes, over the bound of 262144", archive.TypeImported, id, archive.ErrEventRefused)
		}
		return nil
	}
	im := e.importer(t, "r1", func(c *Config) { c.Policy.MaxAttempts = 3; c.Policy.RetryFor = 10 * time.Minute })
	// The document id of riesig.pdf is the one whose Imported is refused.
	sum := sha256.Sum256(bigPDF(0))
	refused[DocumentID(e.conn.Customer, e.conn.ID, mailIdentity("<big@x>", ""), hex.EncodeToString(sum[:]), "riesig.pdf")] = true
	ctx := context.Background()
	res := e.sync(t, im)
	if res.Imported != 1 || res.Failed != 1 {
		t.Fatalf("first pass %+v, want a.pdf imported and riesig.pdf's mail parked", res)
	}
	if err := im.Fault(); err != nil {
		t.Fatalf("a refused event reported as an infrastructure fault: %v", err)
	}
	for range 10 {
		st, _ := im.Status(ctx, e.conn.ID)
		if st.GivenUp == 1 {
			break
		}
		if st.Parked != 1 {
			t.Fatalf("status %+v, want the mail parked", st)
		}
		e.clock.After(st.ParkedMails[0].NextRetry.Sub(e.clock.Now()) + time.Second)
		e.sync(t, im)
		if err := im.Fault(); err != nil {
			t.Fatalf("a refused event reported as an infrastructure fault: %v", err)
		}
	}
	st, _ := im.Status(ctx, e.conn.ID)
	if st.GivenUp != 1 || st.ConsecutiveErrors != 0 {
		t.Fatalf("status %+v, want the mail given up and the connection not charged", st)
	}
	found := false
	for _, s := range e.events.skipped {
		if s.Reason == archive.ReasonFailed && s.Name == "riesig.pdf" && strings.Contains(s.Detail, "event refused") {
			found = true
		}
	}
	if !found {
		t.Errorf("no failed event for riesig.pdf naming the refusal: %+v", e.events.skipped)
	}
}

// TestHugeSubjectIsCut: a mail whose subject is 1.5 MB (every event of
// the mail carries it) is imported through the real publisher with the
// subject cut, not refused by NATS as a fault of the bus.
func TestHugeSubjectIsCut(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, e.js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	subject := "Rechnung " + strings.Repeat("ä", 750<<10)
	e.mb.deliver("inbox", connector.Message{InternetMessageID: "<subj@x>", Subject: subject, ReceivedAt: t0}, file("a.pdf", "", bigPDF(1)))
	// A second such mail whose download fails is parked: its record in
	// the backlog is cut too, or writing it would fail the whole pass.
	failing := e.mb.deliver("inbox", connector.Message{InternetMessageID: "<subj2@x>", Subject: subject, ReceivedAt: t0.Add(time.Second)}, file("b.pdf", "", bigPDF(2)))
	e.mb.fault = func(op, arg string) error {
		if op == "attachments" && arg == failing {
			return connector.E("fake: open", connector.Transient, fmt.Errorf("503 %s", strings.Repeat("x", 1<<20)))
		}
		return nil
	}
	im, err := New(ctx, e.js, Deps{Connections: e.conns, Mailboxes: e.mbs, Store: e.store, Events: archive.NewPublisher(e.js, "mailgate")},
		Config{Replica: "r1", Now: e.clock.Now, After: e.clock.After, SpoolDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	res, err := im.SyncNow(ctx, e.conn.ID)
	if err != nil || res.Imported != 1 || res.Failed != 1 {
		t.Fatalf("pass %+v, %v; want a.pdf imported and b.pdf's mail parked", res, err)
	}
	if err := im.Fault(); err != nil {
		t.Fatalf("fault: %v", err)
	}
	st, _ := im.Status(ctx, e.conn.ID)
	if len(st.Recent) != 1 || len(st.Recent[0].Subject) > maxSubject || !strings.HasPrefix(st.Recent[0].Subject, "Rechnung ä") {
		t.Errorf("history %+v", st.Recent)
	}
}
