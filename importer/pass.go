package importer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
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

// errDocumentsFailed ends a pass whose page had an attachment that failed
// and will be retried: the cursor stays before that page.
var errDocumentsFailed = errors.New("importer: attachments failed, retrying later")

// errMailGone means the mail disappeared while we worked on it (moved or
// deleted by a person); it will show up in its new place or not at all.
var errMailGone = errors.New("importer: mail gone")

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

	mu       sync.Mutex
	res      PassResult
	history  []HistoryEntry
	skipped  map[string]int64
	imported int64
	backfill BackfillProgress
	failures []string
	attempts int // most attempts of an attachment that failed this pass
}

// syncPass runs one pass over c holding its lease, records the outcome
// and returns the next check it scheduled (zero when the pass did not run).
func (im *Importer) syncPass(ctx context.Context, c connector.Connection) (PassResult, time.Time, error) {
	var (
		res  PassResult
		next time.Time
	)
	err := im.withLease(ctx, c.ID, func(ctx context.Context) error {
		p := &pass{
			im: im, conn: c, folder: c.Folder, started: im.cfg.Now(),
			docs: make(chan struct{}, im.cfg.MailWorkers), skipped: make(map[string]int64),
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
	resets, retries := 0, 0
	for {
		if ctx.Err() != nil {
			return context.Cause(ctx)
		}
		p.backfill = BackfillProgress{Done: cur.Rounds > 0, Messages: cur.Messages, Since: cur.Since}
		var since time.Time
		if cur.Link == "" && cur.Mode == string(connector.BackfillSince) {
			since = cur.Since
		}
		page, err := mb.Delta(ctx, p.folder, cur.Link, since)
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
		if p.res.Failed > 0 {
			return errDocumentsFailed
		}
		next := cur
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
		p.backfill = BackfillProgress{Done: cur.Rounds > 0, Messages: cur.Messages, Since: cur.Since}
		if page.NextLink != "" {
			im.flushStatus(ctx, p, nil) // progress for the portal during long rounds
		}
		if page.DeltaLink != "" {
			im.metrics.lag.WithLabelValues(p.conn.ID).Set(0)
			return nil
		}
	}
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
// once. It returns after every mail it started has finished; on an error
// it starts no further mail, and the caller does not commit the page's
// cursor, so the page is replayed and the ledger skips what was done.
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
		if cur.Mode != string(connector.BackfillAll) && !cur.Since.IsZero() && m.ReceivedAt.Before(cur.Since) {
			// Received before the connection (backfill "new") or before the
			// chosen date ("since"): left alone in every round, also after a
			// delta reset or when a person moves it in.
			continue
		}
		k := mailIdentity(m.InternetMessageID, m.ID)
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
				if gctx.Err() != nil {
					return context.Cause(gctx)
				}
				isDone := done[k]
				if i > 0 || isDone == nil {
					isDone = func() (bool, error) { return p.im.ledger.mailDone(gctx, p.mailKey(m)) }
				}
				if err := p.mail(gctx, m, isDone); err != nil {
					return err
				}
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

// job is one document candidate of a mail: an attachment, or the whole
// mail as .eml.
type job struct {
	att       connector.Attachment
	wholeMail bool
	part      bool // a file from inside a container attachment (smime.go)
}

// mail handles every document of one mail and then post-processes it.
// isDone reports whether the ledger has the mail as done.
func (p *pass) mail(ctx context.Context, m connector.Message, isDone func() (bool, error)) error {
	im := p.im
	if !p.wanted(m) {
		return nil
	}
	done, err := isDone()
	if err != nil || done {
		return err
	}
	mailID := mailIdentity(m.InternetMessageID, m.ID)
	mailKey := p.mailKey(m)
	saveEML := im.cfg.Policy.SaveEML
	var jobs []job
	if m.HasAttachments || mayBeInlineOnly(m) {
		atts, err := p.mb.Attachments(ctx, m.ID)
		if connector.IsKind(err, connector.NotFound) {
			return nil // moved or deleted since the delta page: not ours to finish
		}
		if err != nil {
			return fmt.Errorf("importer: attachments of %s: %w", m.ID, err)
		}
		for _, a := range atts {
			if !m.HasAttachments && bodyImage(a) {
				continue
			}
			jobs = append(jobs, job{att: a})
		}
		if len(jobs) == 0 && !m.HasAttachments && !saveEML {
			return nil // body images only: left alone, as a mail without attachments
		}
	}
	if saveEML {
		jobs = append(jobs, job{wholeMail: true, att: connector.Attachment{
			Type: connector.ItemAttachment, Name: m.Subject + ".eml", ContentType: "message/rfc822",
		}})
	}

	var (
		mu     sync.Mutex
		failed bool
		gone   bool
		seen   = make(map[string]bool) // document ids of this mail in flight or done
	)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(im.cfg.AttachmentWorkers)
	for _, j := range jobs {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error {
			f, err := p.document(gctx, m, mailID, j, func(id string) bool {
				mu.Lock()
				defer mu.Unlock()
				dup := seen[id]
				seen[id] = true
				return dup
			})
			if errors.Is(err, errMailGone) {
				mu.Lock()
				gone = true
				mu.Unlock()
				return nil
			}
			if f {
				mu.Lock()
				failed = true
				mu.Unlock()
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // stopped between documents: replay later
	}
	if gone || failed {
		return nil // retried on a later pass; the page's cursor stays
	}
	dctx, cancel := durable(ctx)
	defer cancel()
	if err := p.postProcess(dctx, m); err != nil {
		return err
	}
	if err := im.step("postprocessed"); err != nil {
		return err
	}
	return im.ledger.markMail(dctx, mailKey, im.cfg.Now())
}

// postProcess marks the mail in the mailbox as the connection says. A mail
// a person moved or deleted meanwhile is no error.
func (p *pass) postProcess(ctx context.Context, m connector.Message) error {
	pp := p.conn.PostProcess
	var err error
	switch pp.Action {
	case connector.PostMove:
		folderID, ferr := p.ensureMoveFolder(ctx, pp.Folder)
		if ferr != nil {
			return ferr
		}
		if m.ParentFolderID != "" && m.ParentFolderID == folderID {
			return nil
		}
		_, err = p.mb.Move(ctx, m.ID, folderID)
	case connector.PostMarkRead:
		if !m.IsRead {
			err = p.mb.MarkRead(ctx, m.ID)
		}
	case connector.PostCategory:
		if pp.Category != "" && !slices.Contains(m.Categories, pp.Category) {
			err = p.mb.AddCategory(ctx, m.ID, pp.Category, m.Categories)
		}
	}
	if err != nil && !connector.IsKind(err, connector.NotFound) {
		return fmt.Errorf("importer: post-process %s %s: %w", pp.Action, m.ID, err)
	}
	return nil
}

// ensureMoveFolder returns the id of the folder PostMove puts mail into,
// creating it on the first call of the pass; concurrent mails wait for it.
func (p *pass) ensureMoveFolder(ctx context.Context, name string) (string, error) {
	p.folderMu.Lock()
	defer p.folderMu.Unlock()
	if p.moveFolderID != "" {
		return p.moveFolderID, nil
	}
	if name == "" {
		name = defaultMoveFolder
	}
	id, err := p.mb.EnsureFolder(ctx, name)
	if err != nil {
		return "", fmt.Errorf("importer: ensure folder %q: %w", name, err)
	}
	p.moveFolderID = id
	return id, nil
}

// document takes one job through policy, ledger, store, event and ledger.
// failed reports an attachment failure that a later pass retries.
// seen reports whether another attachment of the mail has the same id.
func (p *pass) document(ctx context.Context, m connector.Message, mailID string, j job, seen func(id string) bool) (failed bool, err error) {
	im := p.im
	if !j.part { // a container's parts run in its slot
		select {
		case p.docs <- struct{}{}:
			defer func() { <-p.docs }()
		case <-ctx.Done():
			return false, context.Cause(ctx)
		}
	}
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	ctx, cancel := durable(ctx) // the document in flight is finished
	defer cancel()
	a := j.att
	attKey := hashID(p.conn.Customer, p.conn.ID, mailID, "attachment", a.Name, string(a.Type),
		strconv.FormatInt(a.Size, 10), strconv.FormatBool(j.wholeMail))
	// The attachment's failure record is read while it downloads: the
	// ledger's answers wait behind its writes, and most attachments never
	// failed.
	failRec := async(func() (failure, error) { return im.ledger.failure(ctx, attKey) })
	if d, ok := im.policy.Precheck(a); ok && !j.wholeMail {
		if f, err := failRec(); err != nil || f.GaveUp {
			return false, err
		}
		id := DocumentID(p.conn.Customer, p.conn.ID, mailID, "", a.Name)
		return false, p.skip(ctx, m, mailID, id, policy.SanitizeName(a.Name, ""), a.Size, "", d, "")
	}

	sp, spoolErr := p.spool(ctx, m, j)
	if sp != nil {
		defer func() {
			if cerr := sp.Close(); cerr != nil {
				im.log.Warn("importer: close spool", "error", cerr)
			}
		}()
	}
	f, err := failRec()
	if err != nil || f.GaveUp {
		return false, err
	}
	if spoolErr != nil {
		return p.fail(ctx, m, mailID, attKey, f, a.Name, spoolErr)
	}
	if parts, ok := p.containerParts(a, sp); ok && !j.part && !j.wholeMail {
		if failed, err := p.documentParts(ctx, m, mailID, j, attKey, f, parts, seen); err != nil || failed || !p.keepContainer(a) {
			return failed, err
		}
	}
	d, err := im.policy.Classify(a, m.BodyHTML, sp.Size(), sp.Reader())
	if err != nil {
		return false, fmt.Errorf("importer: classify: %w", err)
	}
	if j.wholeMail {
		d = policy.Decision{Import: true, Kind: archive.KindEML, ContentType: "message/rfc822", Ext: "eml"}
		if sp.Size() == 0 {
			d = policy.Decision{Reason: archive.ReasonEmpty, Detail: "the mail has no content"}
		}
	}
	name := policy.SanitizeName(a.Name, d.Ext)
	if d.Kind == archive.KindEML && !strings.HasSuffix(strings.ToLower(name), ".eml") {
		name = policy.SanitizeName(a.Name+".eml", d.Ext) // attached mails are named by their subject
	}
	sha := sp.SHA256()
	id := DocumentID(p.conn.Customer, p.conn.ID, mailID, sha, a.Name)

	if seen(id) {
		return false, nil // the same attachment twice in one mail
	}
	// The content index is read before and written after the import: a
	// claim is only ever made by a published document, so a crash can at
	// worst let a copy through, never make a copy point at a document the
	// DMS has not got. The lock keeps concurrent documents of this importer
	// with the same content from both finding no owner. The document's
	// record and the content's owner are read at once.
	owned := func() (string, error) { return "", nil }
	if d.Import {
		unlock, err := im.shaLocks.lock(ctx, p.conn.Customer+"/"+sha)
		if err != nil {
			return false, fmt.Errorf("importer: content lock %s: %w", id, err)
		}
		defer unlock()
		owned = async(func() (string, error) { return im.ledger.shaOwner(ctx, p.conn.Customer, sha) })
	}
	rec, found, err := im.ledger.lookup(ctx, id)
	owner, oerr := owned()
	if err = cmp.Or(err, oerr); err != nil || found {
		if err == nil && rec.State == stateDone && !im.cfg.Policy.ImportDuplicates && owner == "" {
			// A crash may have come between publish and claim.
			_, err = im.ledger.claimSHA(ctx, p.conn.Customer, sha, id)
		}
		if err == nil && f.Attempts > 0 {
			err = im.ledger.clearFailure(ctx, attKey)
		}
		return false, err
	}
	if !d.Import {
		return false, p.skip(ctx, m, mailID, id, name, sp.Size(), sha, d, "")
	}
	if owner != "" && owner != id && !im.cfg.Policy.ImportDuplicates {
		d := policy.Decision{ContentType: d.ContentType, Reason: archive.ReasonDuplicate,
			Detail: "the same file was archived before as " + owner}
		return false, p.skip(ctx, m, mailID, id, name, sp.Size(), sha, d, owner)
	}

	key := archive.Key(p.conn.Customer, m.ReceivedAt, sha, d.Ext)
	ref, err := im.deps.Store.Put(ctx, key, sp.Reader(), sp.Size(), sha,
		archive.Meta{ContentType: d.ContentType, Name: name, DocumentID: id})
	if err != nil {
		return false, fmt.Errorf("importer: store %s: %w", id, err)
	}
	if err := im.step("stored"); err != nil {
		return false, err
	}
	if err := p.flagDuplicateInvoice(ctx, id, d.Invoice); err != nil {
		return false, fmt.Errorf("importer: invoice index %s: %w", id, err)
	}
	ev := archive.Imported{
		Customer: p.conn.Customer, Connection: p.conn.ID, Mailbox: p.conn.Mailbox, Invoice: d.Invoice,
		Message: messageInfo(m),
		Document: archive.DocumentInfo{
			Name: name, Size: sp.Size(), SHA256: sha, ContentType: d.ContentType,
			DeclaredContentType: a.ContentType, Kind: d.Kind, Profile: d.Profile, Syntax: d.Syntax,
		},
		Object: ref,
	}
	if err := im.deps.Events.Imported(ctx, id, ev); err != nil {
		return false, fmt.Errorf("importer: publish %s: %w", id, err)
	}
	if err := im.step("published"); err != nil {
		return false, err
	}
	now := im.cfg.Now()
	// The record and the content claim are written at once; each is safe
	// without the other (see above), and a replay finishes what a crash
	// left out.
	claimed := func() (string, error) { return id, nil }
	if owner == "" {
		claimed = async(func() (string, error) { return im.ledger.claimSHA(ctx, p.conn.Customer, sha, id) })
	}
	err = im.ledger.record(ctx, id, record{
		State: stateDone, Time: now, Connection: p.conn.ID, Message: mailID, Name: name,
		SHA256: sha, Kind: d.Kind, Bucket: ref.Bucket, Key: ref.Key,
	})
	if _, cerr := claimed(); err == nil {
		err = cerr
	}
	if err != nil {
		return false, err
	}
	if err := im.step("recorded"); err != nil {
		return false, err
	}
	if f.Attempts > 0 {
		if err := im.ledger.clearFailure(ctx, attKey); err != nil {
			return false, err
		}
	}
	im.metrics.imported.Inc()
	im.log.Info("importer: document imported", "connection_id", p.conn.ID, "document_id", id,
		"kind", d.Kind, "size", sp.Size(), "object_key", ref.Key)
	p.mu.Lock()
	p.res.Imported++
	p.imported++
	p.history = append(p.history, HistoryEntry{Time: now, DocumentID: id, Name: name, Kind: d.Kind, Profile: d.Profile, Subject: m.Subject}.withInvoice(d.Invoice))
	p.mu.Unlock()
	return false, nil
}

type spooled interface {
	Size() int64
	SHA256() string
	Reader() io.ReadSeeker
	Close() error
}

func (p *pass) spool(ctx context.Context, m connector.Message, j job) (spooled, error) {
	var r io.Reader
	switch {
	case j.wholeMail:
		rc, err := p.mb.OpenMessage(ctx, m.ID)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		r = rc
	case j.att.Content != nil:
		r = bytes.NewReader(j.att.Content)
	default:
		rc, err := p.mb.OpenAttachment(ctx, m.ID, j.att.ID)
		if err != nil {
			return nil, err
		}
		defer rc.Close()
		r = rc
	}
	sp, err := archive.NewSpool(r, p.im.cfg.SpoolMemory, p.im.cfg.SpoolDir)
	if err != nil {
		return nil, connector.E("importer: download", connector.Transient, err)
	}
	return sp, nil
}

// fail counts a failed download of an attachment. Throttling and consent
// failures end the pass instead; after MaxAttempts spread over at least
// RetryFor the attachment is recorded as skipped "failed", never dropped
// silently.
func (p *pass) fail(ctx context.Context, m connector.Message, mailID, attKey string, f failure, name string, cause error) (bool, error) {
	im := p.im
	switch connector.KindOf(cause) {
	case connector.Throttled, connector.NeedsConsent, connector.SyncReset, connector.AccessDenied:
		return false, fmt.Errorf("importer: download %q: %w", name, cause)
	case connector.NotFound:
		return false, errMailGone
	}
	if ctx.Err() != nil {
		return false, context.Cause(ctx)
	}
	if f.Attempts == 0 || f.First.IsZero() {
		f.First = im.cfg.Now()
	}
	f.Attempts++
	f.LastError = cause.Error()
	f.Last = im.cfg.Now()
	if f.Attempts >= im.cfg.Policy.MaxAttempts && f.Last.Sub(f.First) >= im.cfg.Policy.RetryFor {
		f.GaveUp = true
		d := policy.Decision{Reason: archive.ReasonFailed,
			Detail: fmt.Sprintf("download failed %d times: %v", f.Attempts, cause)}
		id := "doc_" + attKey
		if err := p.skip(ctx, m, mailID, id, policy.SanitizeName(name, ""), 0, "", d, ""); err != nil {
			return false, err
		}
		return false, im.ledger.putFailure(ctx, attKey, f)
	}
	if err := im.ledger.putFailure(ctx, attKey, f); err != nil {
		return false, err
	}
	im.log.Warn("importer: attachment failed, retrying later", "connection_id", p.conn.ID,
		"message_id", m.ID, "attempt", f.Attempts, "error", cause)
	p.mu.Lock()
	p.res.Failed++
	p.failures = append(p.failures, cause.Error())
	p.attempts = max(p.attempts, f.Attempts)
	p.mu.Unlock()
	return true, nil
}

// skip announces and records a skipped attachment, once.
func (p *pass) skip(ctx context.Context, m connector.Message, mailID, id, name string, size int64, sha string, d policy.Decision, duplicateOf string) error {
	im := p.im
	if _, found, err := im.ledger.lookup(ctx, id); err != nil || found {
		return err
	}
	ev := archive.Skipped{
		Customer: p.conn.Customer, Connection: p.conn.ID, Mailbox: p.conn.Mailbox,
		Message: messageInfo(m), Name: name, Size: size, SHA256: sha, ContentType: d.ContentType,
		Reason: d.Reason, Detail: d.Detail, DuplicateOf: duplicateOf,
	}
	if err := im.deps.Events.Skipped(ctx, skipID(id), ev); err != nil {
		return fmt.Errorf("importer: publish skip %s: %w", id, err)
	}
	if err := im.step("published"); err != nil {
		return err
	}
	now := im.cfg.Now()
	if err := im.ledger.record(ctx, id, record{
		State: stateSkipped, Time: now, Connection: p.conn.ID, Message: mailID, Name: name, SHA256: sha,
		Reason: d.Reason, Detail: d.Detail, DuplicateOf: duplicateOf,
	}); err != nil {
		return err
	}
	if err := im.step("recorded"); err != nil {
		return err
	}
	im.metrics.skipped.WithLabelValues(d.Reason).Inc()
	im.log.Debug("importer: attachment skipped", "connection_id", p.conn.ID, "document_id", id, "reason", d.Reason)
	p.mu.Lock()
	p.res.Skipped++
	p.skipped[d.Reason]++
	p.history = append(p.history, HistoryEntry{Time: now, DocumentID: id, Name: name, Reason: d.Reason, Detail: d.Detail, Subject: m.Subject})
	p.mu.Unlock()
	return nil
}

func messageInfo(m connector.Message) archive.MessageInfo {
	return archive.MessageInfo{InternetMessageID: m.InternetMessageID, From: m.From, Subject: m.Subject, ReceivedAt: m.ReceivedAt}
}

// async starts fn and returns a function that waits for its result.
func async[T any](fn func() (T, error)) func() (T, error) {
	var (
		v    T
		err  error
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		v, err = fn()
	}()
	return func() (T, error) {
		<-done
		return v, err
	}
}
