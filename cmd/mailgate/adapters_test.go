package main

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/importer"
)

// TestStatusLastSyncDuringBackfill: while a long backfill pass runs, the
// portal's "Last sync" is its last committed page, not "–".
func TestStatusLastSyncDuringBackfill(t *testing.T) {
	ctx := t.Context()
	js, _ := archivetest.RunJetStream(t)
	r, err := importer.NewStatusReader(ctx, js, 1)
	if err != nil {
		t.Fatal(err)
	}
	page := time.Date(2026, 12, 1, 9, 30, 0, 0, time.UTC)
	st := importer.Status{Backfill: importer.BackfillProgress{Mode: "all", Messages: 500, Total: 20000, StartedAt: page.Add(-time.Hour), UpdatedAt: page}}
	b, _ := json.Marshal(st)
	kv, err := js.KeyValue(ctx, "cursors")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kv.Put(ctx, "status.con_a", b); err != nil {
		t.Fatal(err)
	}
	got, err := statusAdapter{r}.Status(ctx, "con_a")
	if err != nil {
		t.Fatal(err)
	}
	if !got.LastSync.Equal(page) {
		t.Errorf("last sync %v during the backfill, want its last page %v", got.LastSync, page)
	}
}
