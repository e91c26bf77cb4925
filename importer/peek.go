package importer

import (
	"context"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// An idle poll is the common case: a mailbox whose last round is done,
// with nothing parked and nothing wrong, asked for changes that are not
// there. peek does it without the lease, whose taking and release would
// be the only writes of such a poll: it reads the cursor and the backlog,
// asks Graph for the changes since the cursor's delta link and, when there
// are none, is done. It writes nothing, so two replicas peeking at once
// do no harm. Anything else (changes, a round in progress, parked mails,
// a pass that died at work, an error) is a real pass under the lease,
// which takes over the page peek fetched when the cursor has not moved.
//
// peek remembers the cursor it read, or the one this process's last pass
// left with nothing parked (quietAt), and then reads neither cursor nor
// backlog again. Another replica may have moved the cursor since; the
// remembered delta link is then older, and Graph answers it with
// everything since, a superset of what the newer link brings: an empty
// answer from it is still idle, and any mail another replica parked came
// in such an answer and sends the poll to a real pass, which reads the
// backlog. For the same reason Run's worker peeks a connection it
// remembers as quiet without reading its status first: whatever another
// replica did since (imports, parked mails, failures) either shows in the
// answer to the older link or fails the peek, and both lead to a real
// pass, which reads the status and the backlog. The status's NextSync
// is not written for an idle poll anyway, so reading it would tell
// nothing of another replica's idle polls.

// peeked is the first page of a pass, fetched by peek for the cursor at
// revision rev.
type peeked struct {
	cur  cursor
	rev  uint64
	page connector.DeltaPage
}

// quiet reports whether a connection's status and state let a poll start
// with peek: active, without errors, and nothing parked, not even given
// up (an operator's retry, from another process, makes those due again).
func quiet(st Status, c connector.Connection) bool {
	return c.State == connector.StateActive && st.LastErrorKind == "" && st.ConsecutiveErrors == 0 && st.Parked == 0 && st.GivenUp == 0
}

// peek polls c without its lease. It reports idle when the delta round
// from the last round's delta link lists nothing new; otherwise it returns
// the page it fetched, if any, for the pass to take over.
func (im *Importer) peek(ctx context.Context, c connector.Connection) (*peeked, bool) {
	start := im.cfg.Now()
	folder := c.Folder
	if folder == "" {
		folder = "inbox"
	}
	im.mu.Lock()
	q, known := im.quietAt[c.ID]
	im.mu.Unlock()
	cur, rev := q.cur, q.rev
	if !known {
		var err error
		if cur, rev, err = im.ledger.cursor(ctx, c.ID); err != nil || rev == 0 || !cur.Delta {
			return nil, false
		}
		b, _, err := im.ledger.backlog(ctx, c.ID)
		if err != nil || !b.Working.IsZero() || len(b.Parked) > 0 {
			return nil, false
		}
		im.setQuiet(c.ID, cur, rev)
	}
	if cur.Folder != folder {
		return nil, false
	}
	mb, err := im.deps.Mailboxes.Open(ctx, c)
	if err != nil {
		return nil, false
	}
	page, err := mb.Delta(ctx, folder, cur.Link, time.Time{})
	if err != nil {
		return nil, false // the pass asks again and deals with it
	}
	if page.NextLink != "" || page.DeltaLink == "" || countMessages(page) > 0 {
		return &peeked{cur: cur, rev: rev, page: page}, false
	}
	im.metrics.duration.Observe(im.cfg.Now().Sub(start).Seconds())
	im.metrics.lag.WithLabelValues(c.ID).Set(0)
	return nil, true
}

// isQuiet reports whether peek remembers a quiet cursor for id.
func (im *Importer) isQuiet(id string) bool {
	im.mu.Lock()
	defer im.mu.Unlock()
	_, ok := im.quietAt[id]
	return ok
}

// setQuiet remembers the cursor of a connection with nothing parked.
func (im *Importer) setQuiet(id string, cur cursor, rev uint64) {
	im.mu.Lock()
	im.quietAt[id] = peeked{cur: cur, rev: rev}
	im.mu.Unlock()
}

// dropQuiet forgets it: peek reads cursor and backlog again.
func (im *Importer) dropQuiet(id string) {
	im.mu.Lock()
	delete(im.quietAt, id)
	im.mu.Unlock()
}
