package connector

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// Validate checks the after-import choice as the connect wizard offers it:
// move to a folder, mark read, add a category, or leave the mail as it is.
// The portal's wizard and the CLI's add-app reach the same rules.
func (p PostProcess) Validate() error {
	const op = "connector: after-import choice"
	var err error
	switch p.Action {
	case PostMove:
		if strings.TrimSpace(p.Folder) == "" {
			err = errors.New("move needs a folder")
		} else if p.Category != "" {
			err = errors.New("a category goes with the category choice only")
		}
	case PostCategory:
		if strings.TrimSpace(p.Category) == "" {
			err = errors.New("category needs a category name")
		} else if p.Folder != "" {
			err = errors.New("a folder goes with the move choice only")
		}
	case PostMarkRead, PostNone:
		if p.Folder != "" || p.Category != "" {
			err = fmt.Errorf("%s takes no folder and no category", p.Action)
		}
	default:
		err = fmt.Errorf("unknown choice %q (want move, mark_read, category or none)", p.Action)
	}
	if err != nil {
		return E(op, Invalid, err)
	}
	return nil
}

// Validate checks the existing-mail choice as the connect wizard offers it:
// new mail only, mail since a date that is not in the future, or all.
func (b Backfill) Validate(now time.Time) error {
	const op = "connector: existing-mail choice"
	var err error
	switch b.Mode {
	case BackfillNew, BackfillAll:
		if !b.Since.IsZero() {
			err = fmt.Errorf("%s takes no date", b.Mode)
		}
	case BackfillSince:
		if b.Since.IsZero() {
			err = errors.New("since needs a date")
		} else if b.Since.After(now) {
			err = fmt.Errorf("since %s lies in the future", b.Since.Format(time.DateOnly))
		}
	default:
		err = fmt.Errorf("unknown choice %q (want new, since or all)", b.Mode)
	}
	if err != nil {
		return E(op, Invalid, err)
	}
	return nil
}
