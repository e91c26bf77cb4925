package main

import (
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

func TestAddAppChoices(t *testing.T) {
	now := time.Date(2026, 11, 29, 10, 0, 0, 0, time.UTC)
	jan := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	archived := connector.PostProcess{Action: connector.PostMove, Folder: "Archiviert"}
	newOnly := connector.Backfill{Mode: connector.BackfillNew}
	tests := []struct {
		name                                    string
		backfill, since, post, folder, category string
		wantB                                   connector.Backfill
		wantP                                   connector.PostProcess
		err                                     string
	}{
		{name: "defaults are the wizard's", wantB: newOnly, wantP: archived},
		{name: "all", backfill: "all", wantB: connector.Backfill{Mode: connector.BackfillAll}, wantP: archived},
		{name: "since", backfill: "since", since: "2026-01-01", wantB: connector.Backfill{Mode: connector.BackfillSince, Since: jan}, wantP: archived},
		{name: "a date alone means since", since: "2026-01-01", wantB: connector.Backfill{Mode: connector.BackfillSince, Since: jan}, wantP: archived},
		{name: "today", since: "2026-11-29", wantB: connector.Backfill{Mode: connector.BackfillSince, Since: now.Truncate(24 * time.Hour)}, wantP: archived},
		{name: "move elsewhere", folder: "Erledigt", wantB: newOnly, wantP: connector.PostProcess{Action: connector.PostMove, Folder: "Erledigt"}},
		{name: "move with a folder", post: "move", folder: " Erledigt ", wantB: newOnly, wantP: connector.PostProcess{Action: connector.PostMove, Folder: "Erledigt"}},
		{name: "mark read", post: "mark_read", wantB: newOnly, wantP: connector.PostProcess{Action: connector.PostMarkRead}},
		{name: "none", post: "none", wantB: newOnly, wantP: connector.PostProcess{Action: connector.PostNone}},
		{name: "category", post: "category", category: "Rechnungen", wantB: newOnly, wantP: connector.PostProcess{Action: connector.PostCategory, Category: "Rechnungen"}},
		{name: "a category alone means category", category: "Rechnungen", wantB: newOnly, wantP: connector.PostProcess{Action: connector.PostCategory, Category: "Rechnungen"}},

		{name: "unknown backfill", backfill: "some", err: `--backfill "some": want new, since or all`},
		{name: "since without a date", backfill: "since", err: "--backfill since needs --since"},
		{name: "a date with all", backfill: "all", since: "2026-01-01", err: "--since goes with --backfill since, not all"},
		{name: "a date with new", backfill: "new", since: "2026-01-01", err: "--since goes with --backfill since, not new"},
		{name: "not a date", since: "01.01.2026", err: `--since "01.01.2026": want a date YYYY-MM-DD`},
		{name: "tomorrow", since: "2026-11-30", err: "--since 2026-11-30 lies in the future"},
		{name: "unknown post", post: "delete", err: `--post "delete": want move, mark_read, category or none`},
		{name: "category without a name", post: "category", err: "--post category needs --category NAME"},
		{name: "category with a blank name", post: "category", category: "  ", err: "--post category needs --category NAME"},
		{name: "a folder for a category", post: "category", category: "R", folder: "F", err: "--folder goes with --post move"},
		{name: "a category for a move", post: "move", category: "R", err: "--category goes with --post category"},
		{name: "folder and category", folder: "F", category: "R", err: "--folder and --category: choose one"},
		{name: "mark read with a folder", post: "mark_read", folder: "F", err: "--post mark_read takes no --folder"},
		{name: "none with a category", post: "none", category: "R", err: "--post none takes no --folder and no --category"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, p, err := addAppChoices(tt.backfill, tt.since, tt.post, tt.folder, tt.category, now)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("error %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil || b != tt.wantB || p != tt.wantP {
				t.Fatalf("got %+v, %+v, %v; want %+v, %+v", b, p, err, tt.wantB, tt.wantP)
			}
		})
	}
}
