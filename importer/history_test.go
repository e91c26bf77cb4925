package importer

import (
	"fmt"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
)

// The history keeps each connection's entries apart, in order, once per
// document and outcome, and at most MaxHistory of them.
func TestHistoryPerConnection(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	h, err := openHistory(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	var batch []HistoryEntry
	for i := range MaxHistory + 20 {
		batch = append(batch, HistoryEntry{Time: at.Add(time.Duration(i) * time.Second), DocumentID: fmt.Sprintf("doc_%d", i), Name: "a.pdf"})
	}
	if err := h.append(ctx, "con_a", batch); err != nil {
		t.Fatal(err)
	}
	// A replayed page writes nothing twice.
	if err := h.append(ctx, "con_a", batch[len(batch)-3:]); err != nil {
		t.Fatal(err)
	}
	if err := h.append(ctx, "con_b", []HistoryEntry{{DocumentID: "doc_b", Reason: "too_small"}}); err != nil {
		t.Fatal(err)
	}
	got, err := h.read(ctx, "con_a")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != MaxHistory {
		t.Fatalf("%d entries, want the newest %d", len(got), MaxHistory)
	}
	for i, e := range got {
		if want := fmt.Sprintf("doc_%d", i+20); e.DocumentID != want {
			t.Fatalf("entry %d is %s, want %s", i, e.DocumentID, want)
		}
	}
	other, err := h.read(ctx, "con_b")
	if err != nil || len(other) != 1 || other[0].DocumentID != "doc_b" {
		t.Errorf("con_b: %v %+v", err, other)
	}
	if none, err := h.read(ctx, "con_c"); err != nil || len(none) != 0 {
		t.Errorf("con_c: %v %+v", err, none)
	}
}

// A pass writes every import and skip to the connection's history with
// the mail's sender and arrival, and an import's object key; a second
// pass over the same mail adds nothing.
func TestPassWritesHistory(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 40)
	im := e.importer(t, "r1", nil)
	e.sync(t, im)
	r, err := NewStatusReader(t.Context(), e.js, 1)
	if err != nil {
		t.Fatal(err)
	}
	h, err := r.History(t.Context(), e.conn.ID)
	if err != nil {
		t.Fatal(err)
	}
	skipped := 0
	for _, n := range want.reasons {
		skipped += n
	}
	if len(h) != want.imported+skipped {
		t.Fatalf("%d history entries, want %d imports and %d skips", len(h), want.imported, skipped)
	}
	for _, en := range h {
		if en.From != "billing@sender.example" || en.ReceivedAt.IsZero() || en.Subject == "" {
			t.Errorf("entry %s lacks the mail's sender, arrival or subject: %+v", en.DocumentID, en)
		}
		if (en.Reason == "") != (en.ObjectKey != "") {
			t.Errorf("entry %s: reason %q, object key %q", en.DocumentID, en.Reason, en.ObjectKey)
		}
		if en.ObjectKey != "" && e.store.meta[en.ObjectKey].DocumentID != en.DocumentID {
			t.Errorf("entry %s points at object %s of another document", en.DocumentID, en.ObjectKey)
		}
	}
	e.sync(t, im)
	if again, err := r.History(t.Context(), e.conn.ID); err != nil || len(again) != len(h) {
		t.Errorf("after a second pass: %d entries, %v", len(again), err)
	}
}
