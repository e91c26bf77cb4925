package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// addAppChoices reads the existing-mail and after-import choices of
// `connections add-app` in the connect wizard's words: --backfill
// new|since|all with --since YYYY-MM-DD, and --post
// move|mark_read|category|none with --folder or --category. A --since
// alone means since, a --folder alone move and a --category alone
// category; without any, the wizard's defaults hold: new mail only, moved
// to "Archiviert".
func addAppChoices(backfill, since, post, folder, category string, now time.Time) (connector.Backfill, connector.PostProcess, error) {
	var b connector.Backfill
	switch backfill {
	case "":
		b.Mode = connector.BackfillNew
		if since != "" {
			b.Mode = connector.BackfillSince
		}
	case "new", "since", "all":
		b.Mode = connector.BackfillMode(backfill)
	default:
		return b, connector.PostProcess{}, fmt.Errorf("--backfill %q: want new, since or all", backfill)
	}
	switch {
	case b.Mode == connector.BackfillSince && since == "":
		return b, connector.PostProcess{}, fmt.Errorf("--backfill since needs --since YYYY-MM-DD")
	case b.Mode != connector.BackfillSince && since != "":
		return b, connector.PostProcess{}, fmt.Errorf("--since goes with --backfill since, not %s", b.Mode)
	case since != "":
		d, err := time.Parse(time.DateOnly, since)
		if err != nil {
			return b, connector.PostProcess{}, fmt.Errorf("--since %q: want a date YYYY-MM-DD", since)
		}
		if d.After(now) {
			return b, connector.PostProcess{}, fmt.Errorf("--since %s lies in the future", since)
		}
		b.Since = d
	}

	folder, category = strings.TrimSpace(folder), strings.TrimSpace(category)
	var p connector.PostProcess
	switch post {
	case "":
		switch {
		case folder != "" && category != "":
			return b, p, fmt.Errorf("--folder and --category: choose one, with --post move or --post category")
		case category != "":
			p.Action = connector.PostCategory
		default:
			p.Action = connector.PostMove
		}
	case "move", "mark_read", "category", "none":
		p.Action = connector.PostAction(post)
	default:
		return b, p, fmt.Errorf("--post %q: want move, mark_read, category or none", post)
	}
	switch p.Action {
	case connector.PostMove:
		if category != "" {
			return b, p, fmt.Errorf("--category goes with --post category, not move")
		}
		p.Folder = folder
		if p.Folder == "" {
			p.Folder = "Archiviert"
		}
	case connector.PostCategory:
		if folder != "" {
			return b, p, fmt.Errorf("--folder goes with --post move, not category")
		}
		if category == "" {
			return b, p, fmt.Errorf("--post category needs --category NAME")
		}
		p.Category = category
	default:
		if folder != "" || category != "" {
			return b, p, fmt.Errorf("--post %s takes no --folder and no --category", p.Action)
		}
	}
	// The control service checks the same again; this is the CLI's word
	// for it.
	if err := b.Validate(now); err != nil {
		return b, p, err
	}
	return b, p, p.Validate()
}
