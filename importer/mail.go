package importer

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"

	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/connector"
)

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
		atts, err := p.mb.Attachments(ctx, m.ID, nil)
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
				failed = append(failed, failedAttachment{Name: j.att.Name, Size: j.att.Size, Error: err.Error()})
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
