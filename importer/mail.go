package importer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// job is one document candidate of a mail: an attachment, or the whole
// mail as .eml.
type job struct {
	att       connector.Attachment
	wholeMail bool
	part      bool // a file from inside a container attachment (smime.go)
	// deadline ends the reading of the content (policy.Deadline): set
	// once for an attachment, shared by the parts of a container.
	deadline time.Time
	// relatedTo is, for a supporting document taken from inside an
	// e-invoice (a part too), the invoice's document id.
	relatedTo string
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
		atts, err := p.attachments(ctx, m.ID)
		defer closeData(atts)
		switch {
		case connector.IsKind(err, connector.NotFound):
			return nil // moved or deleted since the delta page: not ours to finish
		case errors.Is(err, archive.ErrDisk):
			return infra(componentDisk, fmt.Errorf("importer: attachments of %s: %w", m.ID, err))
		case err != nil:
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
		failed []failedAttachment
		first  error // of the failed attachments
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
			err := p.document(gctx, m, mailID, j, func(id string) bool {
				mu.Lock()
				defer mu.Unlock()
				dup := seen[id]
				seen[id] = true
				return dup
			})
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
			case errors.Is(err, errMailGone):
				gone = true
			case ownerOf(err) == ownerItem && gctx.Err() == nil:
				// This attachment's own failure: the others go on.
				failed = append(failed, failedAttachment{Name: cutText(j.att.Name, maxParkedText), Size: j.att.Size, Error: cutText(err.Error(), maxParkedError)})
				first = cmp.Or(first, err)
			default:
				return err
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	if ctx.Err() != nil {
		return context.Cause(ctx) // stopped between documents: replay later
	}
	if len(failed) > 0 {
		return &mailError{failed: failed, err: fmt.Errorf("importer: %d of %d attachments failed: %w", len(failed), len(jobs), first)}
	}
	if gone {
		return nil // moved or deleted meanwhile: found in its new place, or gone
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

// attachments lists the attachments of a mail with their bytes, in one
// Graph request. The bytes are spooled as they stream in: the mail keeps
// at most SpoolMemory bytes of them in memory, all of its attachments
// together; the rest goes to the spool directory. So memory grows by the
// document, however many and however large a mail's attachments are. The
// caller closes every attachment's Data (closeData), also on error.
//
// A list with the bytes that breaks off on the way (a transient error: a
// timeout or a cut connection, as a mail with very large attachments may
// meet) is asked again without them: then each image is read on its own
// with its contentId (to tell a logo shown in the body from a scan), into
// the same spool, and every other attachment is streamed with $value when
// its document comes to it. That costs a request an attachment but never
// depends on one long answer, and memory stays the same.
func (p *pass) attachments(ctx context.Context, messageID string) ([]connector.Attachment, error) {
	mem := p.im.cfg.SpoolMemory
	sink := func(r io.Reader) (connector.Content, error) {
		sp, err := archive.NewSpool(r, mem, p.im.cfg.SpoolDir)
		if err != nil {
			return nil, err
		}
		if sp.InMemory() {
			mem -= sp.Size()
		}
		return sp, nil
	}
	atts, err := p.mb.Attachments(ctx, messageID, sink)
	if err == nil || !connector.IsKind(err, connector.Transient) || errors.Is(err, archive.ErrDisk) || ctx.Err() != nil {
		return atts, err
	}
	p.im.log.Info("importer: attachment list with content broke off; listing without", "connection_id", p.conn.ID, "error", err)
	atts, err = p.mb.Attachments(ctx, messageID, nil)
	if err != nil {
		return nil, err
	}
	for i := range atts {
		a := &atts[i]
		if a.Type != connector.FileAttachment || a.Size > inlineImageMax || !looksLikeImage(*a) {
			continue
		}
		full, err := p.mb.Attachment(ctx, messageID, a.ID, sink)
		if err != nil {
			return atts, err // the caller closes what came
		}
		a.ContentID, a.Data = full.ContentID, full.Data
	}
	return atts, nil
}

// closeData closes the spooled bytes of atts. A document that took them
// has closed them already; closing a spool twice does no harm.
func closeData(atts []connector.Attachment) {
	for _, a := range atts {
		if a.Data != nil {
			_ = a.Data.Close()
		}
	}
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
