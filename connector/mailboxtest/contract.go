// Package mailboxtest is the contract of a mailbox's delta paging, as
// Microsoft Graph documents it, written once and run against every fake of
// it: the Graph simulator (connector/graphtest, through the real client in
// connector/graph) and the importer's in-memory mailbox. A fake that drifts
// from Graph fails here, not in a test of the code that relies on it.
package mailboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// Delta is the operation under contract: one page of a delta round over
// folder, a new round when link is empty (since limits a new round to mail
// received at or after it).
type Delta func(ctx context.Context, folder, link string, since time.Time) (connector.DeltaPage, error)

// Fake is one fresh, empty mailbox of the fake under test and the hands
// that change it as its users would.
type Fake struct {
	Delta Delta
	// Folder is the inbox as Delta names it.
	Folder string
	// PageSize is the most messages a page may carry.
	PageSize int
	// Deliver puts a mail into the inbox, received at the given time, and
	// returns its id; the mail's InternetMessageID is msgID.
	Deliver func(t *testing.T, msgID string, received time.Time) string
	// Remove moves the mail with this id out of the inbox, as a person
	// would, or deletes it.
	Remove func(t *testing.T, id string)
	// ResetSync makes every delta state issued so far unusable (Graph's
	// 410 SyncStateNotFound).
	ResetSync func(t *testing.T)
}

// Run runs the contract against fresh fakes made by newFake.
func Run(t *testing.T, newFake func(t *testing.T) Fake) {
	for _, c := range []struct {
		name string
		run  func(t *testing.T, f Fake)
	}{
		{"an empty folder ends its round at once", emptyRound},
		{"a round pages every mail once", pagesEveryMailOnce},
		{"a delta link gives what came since", deltaGivesWhatCameSince},
		{"mail moved out comes back only as removed", removedOnlyAsRemoved},
		{"since limits a new round", sinceLimitsARound},
		{"a reset sync state is SyncReset", resetIsSyncReset},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, newFake(t)) })
	}
}

// round walks a delta round from link to its delta link and checks every
// page's shape on the way: a page has a next link or a delta link, never
// both, and at most PageSize messages.
func round(t *testing.T, f Fake, link string, since time.Time) (live []string, removed, pages int, deltaLink string) {
	t.Helper()
	for pages = 1; ; pages++ {
		if pages > 1000 {
			t.Fatal("a round of more than 1,000 pages: the next links loop")
		}
		p, err := f.Delta(t.Context(), f.Folder, link, since)
		if err != nil {
			t.Fatalf("delta page %d: %v", pages, err)
		}
		if (p.NextLink == "") == (p.DeltaLink == "") {
			t.Fatalf("page %d: next link %q and delta link %q; want exactly one", pages, p.NextLink, p.DeltaLink)
		}
		if len(p.Messages) > f.PageSize {
			t.Fatalf("page %d has %d messages, more than the page size %d", pages, len(p.Messages), f.PageSize)
		}
		for _, m := range p.Messages {
			if m.Removed {
				removed++
				continue
			}
			live = append(live, m.InternetMessageID)
		}
		if p.DeltaLink != "" {
			return live, removed, pages, p.DeltaLink
		}
		link = p.NextLink
	}
}

func deliver(t *testing.T, f Fake, n int, from int, at time.Time) (ids, msgIDs []string) {
	for i := range n {
		msgID := fmt.Sprintf("<contract-%d@example.com>", from+i)
		ids = append(ids, f.Deliver(t, msgID, at.Add(time.Duration(i)*time.Second)))
		msgIDs = append(msgIDs, msgID)
	}
	return ids, msgIDs
}

func sameSet(t *testing.T, what string, got, want []string) {
	t.Helper()
	g, w := slices.Clone(got), slices.Clone(want)
	slices.Sort(g)
	slices.Sort(w)
	if !slices.Equal(g, w) {
		t.Errorf("%s: %q, want %q", what, g, w)
	}
}

func emptyRound(t *testing.T, f Fake) {
	live, removed, pages, _ := round(t, f, "", time.Time{})
	if len(live) != 0 || removed != 0 || pages != 1 {
		t.Errorf("an empty folder: %d mails, %d removals in %d pages; want one empty page", len(live), removed, pages)
	}
}

func pagesEveryMailOnce(t *testing.T, f Fake) {
	n := 2*f.PageSize + f.PageSize/2 + 1
	_, want := deliver(t, f, n, 0, time.Now().Add(-time.Hour))
	live, removed, pages, _ := round(t, f, "", time.Time{})
	sameSet(t, "the first round", live, want)
	if removed != 0 {
		t.Errorf("%d removals in a first round", removed)
	}
	if min := (n + f.PageSize - 1) / f.PageSize; pages < min {
		t.Errorf("%d mails in %d pages of at most %d", n, pages, f.PageSize)
	}
}

func deltaGivesWhatCameSince(t *testing.T, f Fake) {
	deliver(t, f, 3, 0, time.Now().Add(-time.Hour))
	_, _, _, link := round(t, f, "", time.Time{})
	live, removed, _, link := round(t, f, link, time.Time{})
	if len(live) != 0 || removed != 0 {
		t.Errorf("nothing changed, yet the delta link gave %q and %d removals", live, removed)
	}
	_, want := deliver(t, f, f.PageSize+2, 100, time.Now().Add(-time.Minute))
	live, _, _, _ = round(t, f, link, time.Time{})
	// Graph may give the same message twice in a round (msgraph-sdk-go#969);
	// what it may not do is leave one out or bring back an old one.
	sameSet(t, "the delta after new mail", slices.Compact(sortedCopy(live)), want)
}

func removedOnlyAsRemoved(t *testing.T, f Fake) {
	ids, msgIDs := deliver(t, f, 4, 0, time.Now().Add(-time.Hour))
	_, _, _, link := round(t, f, "", time.Time{})
	f.Remove(t, ids[1])
	live, _, _, _ := round(t, f, link, time.Time{})
	if slices.Contains(live, msgIDs[1]) {
		t.Errorf("the mail moved out came back as a message: %q", live)
	}
	// A new round no longer has it.
	live, _, _, _ = round(t, f, "", time.Time{})
	sameSet(t, "a new round after the move", live, []string{msgIDs[0], msgIDs[2], msgIDs[3]})
}

func sinceLimitsARound(t *testing.T, f Fake) {
	now := time.Now().UTC().Truncate(time.Second)
	deliver(t, f, 3, 0, now.Add(-48*time.Hour))
	_, recent := deliver(t, f, 2, 10, now.Add(-time.Hour))
	live, _, _, _ := round(t, f, "", now.Add(-2*time.Hour))
	sameSet(t, "a round since two hours ago", live, recent)
}

func resetIsSyncReset(t *testing.T, f Fake) {
	deliver(t, f, 2, 0, time.Now().Add(-time.Hour))
	_, _, _, link := round(t, f, "", time.Time{})
	f.ResetSync(t)
	_, err := f.Delta(t.Context(), f.Folder, link, time.Time{})
	var ce *connector.Error
	if !errors.As(err, &ce) || ce.Kind != connector.SyncReset {
		t.Fatalf("the old delta link after a reset: %v; want a connector error of kind SyncReset", err)
	}
	live, _, _, _ := round(t, f, "", time.Time{})
	if len(live) != 2 {
		t.Errorf("a new round after the reset gave %d mails, want 2", len(live))
	}
}

func sortedCopy(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}
