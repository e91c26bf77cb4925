package importer

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/connector"
)

const (
	// maxPageRetries bounds the in-pass retries of transient failures.
	maxPageRetries = 3
	// docTimeout bounds one document (download, store, publish, record):
	// a document in flight is finished even when the pass is told to stop.
	docTimeout = 10 * time.Minute
	// defaultMoveFolder is where PostMove puts mail without a folder set.
	defaultMoveFolder = "Archiviert"
)

// errMailGone means the mail disappeared while we worked on it (moved or
// deleted by a person); it will show up in its new place or not at all.
var errMailGone = errors.New("importer: mail gone")

// errYield ends a pass that has worked its share (MaxPassPages or
// MaxPassTime) with more to do: it committed its cursor, and the
// connection is due again at once, behind the others that are due.
var errYield = errors.New("importer: pass yields, more to do")

// errConnectionStopped ends a pass whose connection was paused,
// disconnected or deleted while it ran.
var errConnectionStopped = fmt.Errorf("%w: stopped while a pass ran", ErrNotImportable)

// pass is one sync pass over one connection.
type pass struct {
	im      *Importer
	conn    connector.Connection
	mb      Mailbox
	folder  string
	started time.Time

	// docs bounds the documents in flight in the whole pass (all mails of
	// a page together) to MailWorkers.
	docs chan struct{}

	folderMu     sync.Mutex
	moveFolderID string // ensured once per pass, under folderMu

	// announced holds the ids the stream has announced since an earlier
	// pass died mid-work, when that lies beyond half the stream's
	// duplicate window (see backlog.Working); nil otherwise.
	announced map[string]bool

	liveMu    sync.Mutex
	liveAt    time.Time // when live last read the connection
	liveState error     // what it found: nil or errConnectionStopped

	workMu  sync.Mutex
	working bool // markWorking has noted this pass in the backlog

	// pre is the first delta page, asked by peek before the lease was
	// taken; used when the cursor is still where peek found it.
	pre *peeked
	// final is the cursor a pass that ended its round left.
	final *peeked

	mu       sync.Mutex
	res      PassResult
	history  []HistoryEntry
	skipped  map[string]int64
	imported int64
	backfill BackfillProgress
	// hasBackfill says backfill was read from the cursor: a pass that
	// failed before leaves the stored progress as it is.
	hasBackfill bool
	// committedDocs is res.Imported when the cursor was last committed.
	committedDocs int
	backlog       backlog // as last read or written
}

// syncPass runs one pass over c holding its lease, records the outcome
// and returns the next check it scheduled (zero when the pass did not run).
func (im *Importer) syncPass(ctx context.Context, c connector.Connection, pre *peeked) (PassResult, time.Time, error) {
	var (
		res  PassResult
		next time.Time
	)
	err := im.withLease(ctx, c.ID, func(ctx context.Context) error {
		p := &pass{
			im: im, conn: c, folder: c.Folder, started: im.cfg.Now(), liveAt: time.Now(), // c was just read
			docs: make(chan struct{}, im.cfg.MailWorkers), skipped: make(map[string]int64), pre: pre,
		}
		if p.folder == "" {
			p.folder = "inbox"
		}
		err := p.run(ctx)
		if err != nil && context.Cause(ctx) != nil && ctx.Err() != nil {
			err = context.Cause(ctx) // stopped: shutdown or lease lost
		}
		p.res.Duration = im.cfg.Now().Sub(p.started)
		res = p.res
		next = im.finish(context.WithoutCancel(ctx), p, err)
		p.mu.Lock()
		clean := len(p.backlog.Parked) == 0
		p.mu.Unlock()
		if err == nil && p.final != nil && p.final.cur.Delta && clean {
			im.setQuiet(c.ID, p.final.cur, p.final.rev)
		} else {
			im.dropQuiet(c.ID)
		}
		if errors.Is(err, errYield) {
			err = nil // res.Yielded says it
		}
		return err
	})
	return res, next, err
}

// durable gives a document or a commit its own deadline, detached from the
// pass's stop signal, so what is in flight finishes.
func durable(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), docTimeout)
}

func (p *pass) freshCursor() cursor {
	c := cursor{Folder: p.folder, Mode: string(p.conn.Backfill.Mode)}
	switch p.conn.Backfill.Mode {
	case connector.BackfillSince:
		c.Since = p.conn.Backfill.Since
	case connector.BackfillAll:
	default: // new: pass over what was there before the connection
		c.Mode = string(connector.BackfillNew)
		c.Since = p.conn.CreatedAt
		if c.Since.IsZero() {
			c.Since = p.started
		}
	}
	return c
}

func (p *pass) run(ctx context.Context) error {
	im := p.im
	mb, err := im.deps.Mailboxes.Open(ctx, p.conn)
	if err != nil {
		return fmt.Errorf("importer: open mailbox: %w", err)
	}
	p.mb = mb
	cur, rev, err := im.ledger.cursor(ctx, p.conn.ID)
	if err != nil {
		return err
	}
	if rev == 0 || cur.Folder != p.folder {
		cur = p.freshCursor()
	}
	if p.pre != nil && (p.pre.rev != rev || p.pre.cur.Link != cur.Link) {
		p.pre = nil // the cursor moved since peek
	}
	b, _, err := im.ledger.backlog(ctx, p.conn.ID)
	if err != nil {
		return err
	}
	p.setBacklog(b)
	if !b.Working.IsZero() && im.cfg.Now().Sub(b.Working) > im.cfg.DuplicateWindow/2 {
		// An earlier pass died while announcing, long enough ago that the
		// stream may no longer know its announcements as duplicates.
		if p.announced, err = im.deps.Events.AnnouncedSince(ctx, p.conn.Customer, b.Working); err != nil {
			return infra(componentNATS, fmt.Errorf("importer: announced since %s: %w", b.Working.Format(time.RFC3339), err))
		}
		im.log.Info("importer: resuming a pass that died mid-work beyond the duplicate window",
			"connection_id", p.conn.ID, "since", b.Working, "announced", len(p.announced))
	}
	if err := p.retryParked(ctx); err != nil {
		return err
	}
	resets, retries := 0, 0
	for {
		// Before every page but the first (the connection was read just
		// before the pass) the connection is read again, so that pause,
		// disconnect and delete stop a pass within one page.
		maxAge := time.Duration(0)
		if p.res.Pages == 0 {
			maxAge = time.Second
		}
		if err := p.live(ctx, maxAge); err != nil {
			return err
		}
		if cur.Rounds == 0 {
			cur = p.startBackfill(ctx, cur)
		}
		p.setProgress(cur)
		var since time.Time
		if cur.Link == "" && cur.Mode == string(connector.BackfillSince) {
			since = cur.Since
		}
		var page connector.DeltaPage
		if p.pre != nil {
			page, p.pre = p.pre.page, nil
		} else {
			page, err = mb.Delta(ctx, p.folder, cur.Link, since)
		}
		if err != nil {
			err = fmt.Errorf("importer: delta: %w", err)
		} else {
			err = p.page(ctx, cur, page)
		}
		if err != nil {
			switch {
			case ctx.Err() != nil:
				return context.Cause(ctx)
			case connector.IsKind(err, connector.SyncReset) && resets == 0:
				// The delta state is gone: start a new round; the ledger
				// keeps what was done from being done twice.
				resets++
				im.log.Info("importer: delta reset, starting a new round", "connection_id", p.conn.ID, "error", err)
				dctx, cancel := durable(ctx)
				err := im.ledger.dropCursor(dctx, p.conn.ID, rev)
				cancel()
				if err != nil {
					return err
				}
				rounds := cur.Rounds
				cur, rev = p.freshCursor(), 0
				cur.Rounds = rounds // a reset is no new backfill
				continue
			case connector.IsKind(err, connector.Transient) && retries < maxPageRetries:
				retries++
				d := im.backoff.delay(retries)
				im.log.Info("importer: transient failure, backing off", "connection_id", p.conn.ID, "attempt", retries, "delay", d, "error", err)
				if err := sleep(ctx, im.cfg.After, d); err != nil {
					return context.Cause(ctx)
				}
				// Resume from the last committed cursor.
				c, r, err := im.ledger.cursor(ctx, p.conn.ID)
				if err != nil {
					return err
				}
				if r != rev {
					return errCursorMoved
				}
				if r != 0 && c.Folder == p.folder {
					cur = c
				}
				continue
			}
			return err
		}
		retries = 0
		p.res.Pages++
		if cur.Delta && page.NextLink == "" && page.DeltaLink != "" && countMessages(page) == 0 {
			// An empty round (nothing, or only removals) from the last
			// round's delta link: keep that link, write nothing.
			im.metrics.lag.WithLabelValues(p.conn.ID).Set(0)
			p.final = &peeked{cur: cur, rev: rev}
			return nil
		}
		next := cur
		next.Delta = page.NextLink == "" && page.DeltaLink != ""
		switch {
		case page.NextLink != "":
			next.Link = page.NextLink
		case page.DeltaLink != "":
			next.Link = page.DeltaLink
			next.Rounds++
		default:
			return errors.New("importer: delta page without next or delta link")
		}
		if cur.Rounds == 0 {
			next.Messages += countMessages(page)
			p.mu.Lock()
			next.Documents += p.res.Imported - p.committedDocs
			p.mu.Unlock()
			next.Progressed = im.cfg.Now()
		}
		if err := im.step("page"); err != nil {
			return err
		}
		dctx, cancel := durable(ctx)
		rev, err = im.ledger.commitCursor(dctx, p.conn.ID, next, rev)
		cancel()
		if err != nil {
			return err
		}
		if err := im.step("committed"); err != nil {
			return err
		}
		cur = next
		p.mu.Lock()
		p.committedDocs = p.res.Imported
		p.mu.Unlock()
		p.setProgress(cur)
		if page.NextLink != "" {
			im.flushStatus(ctx, p, nil) // progress for the portal during long rounds
		}
		if page.DeltaLink != "" {
			im.metrics.lag.WithLabelValues(p.conn.ID).Set(0)
			p.final = &peeked{cur: cur, rev: rev}
			return nil
		}
		if p.res.Pages >= im.cfg.MaxPassPages || im.cfg.Now().Sub(p.started) >= im.cfg.MaxPassTime {
			p.res.Yielded = true
			return errYield
		}
	}
}

// startBackfill notes when the backfill began and asks, once, how many
// mails it covers (modes since and all; "new" passes over what is there).
// A failed count leaves Total unknown and is asked again next pass; it
// never stops the backfill.
func (p *pass) startBackfill(ctx context.Context, cur cursor) cursor {
	if cur.StartedAt.IsZero() {
		cur.StartedAt = p.im.cfg.Now()
	}
	if cur.Counted || (cur.Mode != string(connector.BackfillSince) && cur.Mode != string(connector.BackfillAll)) {
		return cur
	}
	var since time.Time
	if cur.Mode == string(connector.BackfillSince) {
		since = cur.Since
	}
	n, err := p.mb.CountMessages(ctx, p.folder, since)
	if err != nil {
		p.im.log.Info("importer: count the backfill's mails", "connection_id", p.conn.ID, "error", err)
		return cur
	}
	cur.Total, cur.Counted = n, true
	return cur
}

func (p *pass) setProgress(cur cursor) {
	b := progress(cur)
	p.mu.Lock()
	p.backfill, p.hasBackfill = b, true
	p.mu.Unlock()
}

// live reports errConnectionStopped when the connection was paused,
// disconnected or deleted since the pass began, reading it again when the
// last read is older than maxAge: a running pass obeys the portal within
// one page, and starts no further mail once it knows.
func (p *pass) live(ctx context.Context, maxAge time.Duration) error {
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	p.liveMu.Lock()
	defer p.liveMu.Unlock()
	now := time.Now() // wall time: the bound is on real reads, not on the test clock
	if p.liveState != nil || now.Sub(p.liveAt) < maxAge {
		return p.liveState
	}
	c, err := p.im.deps.Connections.Get(ctx, p.conn.ID)
	switch {
	case connector.IsKind(err, connector.NotFound):
		p.liveState = errConnectionStopped
	case err != nil:
		return infra(componentNATS, fmt.Errorf("importer: read connection: %w", err))
	case !workable(c.State):
		p.liveState = fmt.Errorf("%w (%s)", errConnectionStopped, c.State)
	}
	p.liveAt = now
	return p.liveState
}

func countMessages(page connector.DeltaPage) int {
	n := 0
	for _, m := range page.Messages {
		if !m.Removed {
			n++
		}
	}
	return n
}

// page works the messages of one delta page, up to MailWorkers mails at
// once. A mail that fails on its own is parked (see park) and the page
// goes on. It returns after every mail it started has finished; on any
// other error it starts no further mail, and the caller does not commit
// the page's cursor, so the page is replayed and the ledger skips what
// was done.
// Copies of one mail in a page (delta may list a message twice, or a
// folder hold the same mail twice) are worked one after the other, so the
// later one finds the earlier done, as in a sequential pass.
func (p *pass) page(ctx context.Context, cur cursor, page connector.DeltaPage) error {
	var oldest time.Time
	for _, m := range page.Messages {
		if !m.Removed && !m.ReceivedAt.IsZero() && (oldest.IsZero() || m.ReceivedAt.Before(oldest)) {
			oldest = m.ReceivedAt
		}
	}
	if !oldest.IsZero() {
		p.im.metrics.lag.WithLabelValues(p.conn.ID).Set(p.im.cfg.Now().Sub(oldest).Seconds())
	}
	var (
		order  []string
		copies = make(map[string][]connector.Message)
	)
	for _, m := range page.Messages {
		if m.Removed {
			continue // "@removed": moved away or deleted; never import it
		}
		p.mu.Lock()
		p.res.Messages++
		p.mu.Unlock()
		// Graph's receivedDateTime has whole seconds: mail of the same
		// second as Since counts as after it.
		if cur.Mode != string(connector.BackfillAll) && !cur.Since.IsZero() && m.ReceivedAt.Before(cur.Since.Truncate(time.Second)) {
			// Received before the connection (backfill "new") or before the
			// chosen date ("since"): left alone in every round, also after a
			// delta reset or when a person moves it in.
			continue
		}
		k := mailIdentity(m.InternetMessageID, m.ID)
		if p.isParked(p.mailKey(m)) {
			continue // its own retries bring it in
		}
		if _, ok := copies[k]; !ok {
			order = append(order, k)
		}
		copies[k] = append(copies[k], m)
	}
	// Whether a mail is done is asked for every mail of the page at once,
	// so that no mail waits for its answer behind the ledger's writes. A
	// later copy of a mail asks after the earlier one is done.
	done := make(map[string]func() (bool, error), len(order))
	for _, k := range order {
		if m := copies[k][0]; p.wanted(m) {
			done[k] = async(func() (bool, error) { return p.im.ledger.mailDone(ctx, p.mailKey(m)) })
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(p.im.cfg.MailWorkers)
	for _, k := range order {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			for i, m := range copies[k] {
				if err := p.live(gctx, time.Second); err != nil {
					return err
				}
				isDone := done[k]
				if i > 0 || isDone == nil {
					isDone = func() (bool, error) { return p.im.ledger.mailDone(gctx, p.mailKey(m)) }
				}
				err := p.mail(gctx, m, isDone)
				if err == nil {
					continue
				}
				if ownerOf(err) != ownerItem || gctx.Err() != nil {
					return err
				}
				// This mail's own failure: park it, and let the page, the
				// cursor and every other mail move on.
				return p.park(gctx, m, err)
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	return nil
}

// wanted reports whether m may hold documents: it has attachments, or
// whole mails are archived.
func (p *pass) wanted(m connector.Message) bool {
	return m.HasAttachments || p.im.cfg.Policy.SaveEML || mayBeInlineOnly(m)
}

// mailKey is the ledger key of m's "done" mark.
func (p *pass) mailKey(m connector.Message) string {
	return hashID(p.conn.Customer, p.conn.ID, mailIdentity(m.InternetMessageID, m.ID))
}
