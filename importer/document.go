package importer

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
)

// document takes one job through policy, ledger, store, event and ledger.
// seen reports whether another attachment of the mail has the same id.
// Its errors are sorted by ownerOf: a download or classification that
// fails is the attachment's; the store, the events and the ledger are the
// operator's (infraError).
func (p *pass) document(ctx context.Context, m connector.Message, mailID string, j job, seen func(id string) bool) error {
	im := p.im
	if !j.part { // a container's parts run in its slot
		select {
		case p.docs <- struct{}{}:
			defer func() { <-p.docs }()
		case <-ctx.Done():
			return context.Cause(ctx)
		}
	}
	if ctx.Err() != nil {
		return context.Cause(ctx)
	}
	ctx, cancel := durable(ctx) // the document in flight is finished
	defer cancel()
	a := j.att
	if d, ok := im.policy.Precheck(a); ok && !j.wholeMail {
		id := DocumentID(p.conn.Customer, p.conn.ID, mailID, "", a.Name)
		return p.skip(ctx, m, mailID, id, policy.SanitizeName(a.Name, ""), a.Size, "", d, "")
	}

	sp, err := p.spool(ctx, m, j)
	switch {
	case errors.Is(err, archive.ErrDisk):
		return infra(componentDisk, fmt.Errorf("importer: spool %q: %w", a.Name, err))
	case connector.IsKind(err, connector.NotFound):
		return errMailGone
	case err != nil:
		return fmt.Errorf("importer: download %q: %w", a.Name, err)
	}
	defer func() {
		if cerr := sp.Close(); cerr != nil {
			im.log.Warn("importer: close spool", "error", cerr)
		}
	}()
	if parts, ok := p.containerParts(a, sp); ok && !j.part && !j.wholeMail {
		if err := p.documentParts(ctx, m, mailID, j, parts, seen); err != nil || !p.keepContainer(a) {
			return err
		}
	}
	d, err := im.policy.Classify(a, m.BodyRefs, sp.Size(), sp.Reader())
	if err != nil {
		return fmt.Errorf("importer: classify %q: %w", a.Name, err)
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
		return nil // the same attachment twice in one mail
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
			return fmt.Errorf("importer: content lock %s: %w", id, err)
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
		return err
	}
	if !d.Import {
		return p.skip(ctx, m, mailID, id, name, sp.Size(), sha, d, "")
	}
	if owner != "" && owner != id && !im.cfg.Policy.ImportDuplicates {
		d := policy.Decision{ContentType: d.ContentType, Reason: archive.ReasonDuplicate,
			Detail: "the same file was archived before as " + owner}
		return p.skip(ctx, m, mailID, id, name, sp.Size(), sha, d, owner)
	}
	if err := p.markWorking(ctx); err != nil {
		return err
	}

	key := archive.Key(p.conn.Customer, m.ReceivedAt, sha, d.Ext)
	ref, err := im.deps.Store.Put(ctx, key, sp.Reader(), sp.Size(), sha,
		archive.Meta{ContentType: d.ContentType, Name: name, DocumentID: id})
	if err != nil {
		return infra(componentStorage, fmt.Errorf("importer: store %s: %w", id, err))
	}
	im.infraRecovered(componentStorage)
	if !sp.InMemory() {
		im.infraRecovered(componentDisk)
	}
	if err := im.step("stored"); err != nil {
		return err
	}
	if err := p.flagDuplicateInvoice(ctx, id, d.Invoice); err != nil {
		return infra(componentNATS, fmt.Errorf("importer: invoice index %s: %w", id, err))
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
	if !p.announced[id] {
		if err := im.deps.Events.Imported(ctx, id, ev); err != nil {
			return infra(componentNATS, fmt.Errorf("importer: publish %s: %w", id, err))
		}
	}
	if err := im.step("published"); err != nil {
		return err
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
		return err
	}
	if err := im.step("recorded"); err != nil {
		return err
	}
	im.metrics.imported.Inc()
	im.log.Info("importer: document imported", "connection_id", p.conn.ID, "document_id", id,
		"kind", d.Kind, "size", sp.Size(), "object_key", ref.Key)
	p.mu.Lock()
	p.res.Imported++
	p.imported++
	p.history = append(p.history, HistoryEntry{Time: now, DocumentID: id, Name: name, Kind: d.Kind, Profile: d.Profile, Subject: m.Subject,
		From: m.From, ReceivedAt: m.ReceivedAt, ObjectKey: ref.Key}.withInvoice(d.Invoice))
	p.mu.Unlock()
	return nil
}

type spooled interface {
	Size() int64
	InMemory() bool
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
	case j.att.Data != nil:
		sp, ok := j.att.Data.(spooled)
		if !ok {
			return nil, fmt.Errorf("importer: attachment data of type %T", j.att.Data)
		}
		return sp, nil
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
	if err != nil && !errors.Is(err, archive.ErrDisk) && connector.KindOf(err) == connector.Other {
		// A body cut off on the way is worth another try.
		err = connector.E("importer: download", connector.Transient, err)
	}
	if err != nil {
		return nil, err
	}
	return sp, nil
}

// skip announces and records a skipped attachment, once.
func (p *pass) skip(ctx context.Context, m connector.Message, mailID, id, name string, size int64, sha string, d policy.Decision, duplicateOf string) error {
	im := p.im
	if _, found, err := im.ledger.lookup(ctx, id); err != nil || found {
		return err
	}
	if err := p.markWorking(ctx); err != nil {
		return err
	}
	ev := archive.Skipped{
		Customer: p.conn.Customer, Connection: p.conn.ID, Mailbox: p.conn.Mailbox,
		Message: messageInfo(m), Name: name, Size: size, SHA256: sha, ContentType: d.ContentType,
		Reason: d.Reason, Detail: d.Detail, DuplicateOf: duplicateOf,
	}
	if !p.announced[skipID(id)] {
		if err := im.deps.Events.Skipped(ctx, skipID(id), ev); err != nil {
			return infra(componentNATS, fmt.Errorf("importer: publish skip %s: %w", id, err))
		}
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
	p.history = append(p.history, HistoryEntry{Time: now, DocumentID: id, Name: name, Reason: d.Reason, Detail: d.Detail, Subject: m.Subject,
		From: m.From, ReceivedAt: m.ReceivedAt})
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
