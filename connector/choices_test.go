package connector

import (
	"testing"
	"time"
)

func TestChoicesValidate(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	day := func(s string) time.Time { d, _ := time.Parse(time.DateOnly, s); return d }
	posts := []struct {
		p  PostProcess
		ok bool
	}{
		{PostProcess{Action: PostMove, Folder: "Archiviert"}, true},
		{PostProcess{Action: PostMove}, false},
		{PostProcess{Action: PostMove, Folder: "  "}, false},
		{PostProcess{Action: PostMove, Folder: "A", Category: "B"}, false},
		{PostProcess{Action: PostCategory, Category: "mailgate"}, true},
		{PostProcess{Action: PostCategory}, false},
		{PostProcess{Action: PostCategory, Category: "B", Folder: "A"}, false},
		{PostProcess{Action: PostMarkRead}, true},
		{PostProcess{Action: PostMarkRead, Folder: "A"}, false},
		{PostProcess{Action: PostNone}, true},
		{PostProcess{Action: PostNone, Category: "B"}, false},
		{PostProcess{Action: "delete"}, false},
		{PostProcess{}, false},
	}
	for _, tt := range posts {
		err := tt.p.Validate()
		if (err == nil) != tt.ok || err != nil && KindOf(err) != Invalid {
			t.Errorf("%+v: %v, want ok %v", tt.p, err, tt.ok)
		}
	}
	backfills := []struct {
		b  Backfill
		ok bool
	}{
		{Backfill{Mode: BackfillNew}, true},
		{Backfill{Mode: BackfillAll}, true},
		{Backfill{Mode: BackfillAll, Since: day("2026-01-01")}, false},
		{Backfill{Mode: BackfillSince, Since: day("2026-01-01")}, true},
		{Backfill{Mode: BackfillSince, Since: day("2026-11-29")}, true},
		{Backfill{Mode: BackfillSince, Since: day("2026-11-30")}, false},
		{Backfill{Mode: BackfillSince}, false},
		{Backfill{Mode: "some"}, false},
		{Backfill{}, false},
	}
	for _, tt := range backfills {
		err := tt.b.Validate(now)
		if (err == nil) != tt.ok || err != nil && KindOf(err) != Invalid {
			t.Errorf("%+v: %v, want ok %v", tt.b, err, tt.ok)
		}
	}
}
