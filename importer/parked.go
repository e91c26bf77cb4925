package importer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
	"github.com/mailgate/mailgate/internal/kvrec"
)

// A mail that fails at any step (listing its attachments, a download, the
// classification, post-processing) is parked: it leaves the page, the
// cursor moves on, and the mail is retried on its own schedule with
// backoff. After Policy.MaxAttempts tries spread over at least
// Policy.RetryFor it is given up visibly (document.skipped "failed") and
// stays parked, given up, until an operator retries it.

const (
	// maxParked bounds the mails of a connection parked for retry. More
	// failing mails are no longer single bad mails but a failing mailbox:
	// the pass then fails as a whole and the cursor waits.
	maxParked = 200
	// maxGivenUp bounds the given-up mails kept for an operator's retry;
	// beyond it the oldest are forgotten (their failed events stay).
	maxGivenUp = 500
	// parkedPerPass bounds the parked mails one pass retries.
	parkedPerPass = 100
)

// Bounds of a parked mail's texts: the backlog holds up to maxParked of
// them in one KV value, which must stay under the server's max_payload
// whatever subjects and errors the mails bring.
const (
	maxParkedText  = 256
	maxParkedError = 512
)

var errTooManyParked = errors.New("too many failing mails parked")

// backlog is a connection's unfinished business, in KV "cursors" under
// "backlog.<connection>". The pass holding the lease writes it; an
// operator's retry changes it too, so every write is compare-and-set.
type backlog struct {
	Parked map[string]*parkedMail `json:"parked,omitempty"` // by mail key
	// Working is when a pass began to announce documents; a pass that
	// ends cleanly clears it. Found set, a pass may have died between an
	// announcement and its ledger record; once that may lie beyond the
	// stream's duplicate window, the next pass asks the stream what it
	// announced instead of relying on its de-duplication.
	Working time.Time `json:"working,omitzero"`
}

// parkedMail is a mail waiting for its retry, or given up.
type parkedMail struct {
	MessageID         string    `json:"messageId"` // Graph immutable id: survives moves
	InternetMessageID string    `json:"internetMessageId,omitempty"`
	Subject           string    `json:"subject,omitempty"`
	From              string    `json:"from,omitempty"`
	ReceivedAt        time.Time `json:"receivedAt,omitzero"`
	Attempts          int       `json:"attempts"`
	First             time.Time `json:"first"`
	Last              time.Time `json:"last"`
	Next              time.Time `json:"next,omitzero"`
	LastError         string    `json:"lastError"`
	// Failed are the attachments that failed on the last attempt; empty
	// when the mail failed as a whole (listing, post-processing).
	Failed   []failedAttachment `json:"failed,omitempty"`
	GaveUp   bool               `json:"gaveUp,omitempty"`
	GaveUpAt time.Time          `json:"gaveUpAt,omitzero"`
}

type failedAttachment struct {
	Name  string `json:"name"`
	Size  int64  `json:"size,omitempty"`
	Error string `json:"error"`
}

func (pm *parkedMail) message() connector.Message {
	return connector.Message{
		ID: pm.MessageID, InternetMessageID: pm.InternetMessageID, Subject: pm.Subject,
		From: pm.From, ReceivedAt: pm.ReceivedAt, HasAttachments: true,
	}
}

// mailError is a mail that failed; failed lists the attachments that did.
type mailError struct {
	failed []failedAttachment
	err    error
}

func (e *mailError) Error() string { return e.err.Error() }
func (e *mailError) Unwrap() error { return e.err }

func backlogKey(connID string) string { return "backlog." + kvToken(connID) }

func (l *ledger) backlog(ctx context.Context, connID string) (backlog, uint64, error) {
	var b backlog
	rev, _, err := getJSON(ctx, l.cursors, backlogKey(connID), &b)
	return b, rev, err
}

// updateBacklog applies edit to the connection's backlog with
// compare-and-set, reading it again after a conflict, and returns what it
// wrote. An edit that returns errNoChange writes nothing.
func (l *ledger) updateBacklog(ctx context.Context, connID string, edit func(*backlog) error) (backlog, error) {
	var aborted bool // edit's own error goes back as is
	rec := kvrec.Record[backlog]{KV: l.cursors, Codec: kvrec.JSON[backlog](), Create: true}
	b, _, err := rec.Update(ctx, backlogKey(connID), func(b *backlog, _ uint64) error {
		if b.Parked == nil {
			b.Parked = make(map[string]*parkedMail)
		}
		err := edit(b)
		switch {
		case errors.Is(err, errNoChange):
			return kvrec.ErrUnchanged
		case err != nil:
			aborted = true
		}
		return err
	})
	switch {
	case aborted:
		return backlog{}, err
	case err != nil:
		return backlog{}, fmt.Errorf("importer: kv update backlog: %w", err)
	}
	return b, nil
}

var errNoChange = errors.New("no change")

// park records that mail m failed with err (a *mailError or another item
// failure) and schedules its retry; after the retry horizon it gives the
// mail up, announcing each failed attachment as document.skipped
// "failed". A mail parked before counts one more attempt.
func (p *pass) park(ctx context.Context, m connector.Message, cause error) error {
	im := p.im
	key := p.mailKey(m)
	now := im.cfg.Now()
	var failed []failedAttachment
	var me *mailError
	if errors.As(cause, &me) {
		failed = me.failed
	}
	var pm parkedMail
	b, err := im.ledger.updateBacklog(ctx, p.conn.ID, func(b *backlog) error {
		e := b.Parked[key]
		if e == nil {
			if parkedCount(b) >= maxParked {
				return errTooManyParked
			}
			e = &parkedMail{First: now}
			b.Parked[key] = e
		}
		if e.First.IsZero() { // new, or retried by an operator
			e.First = now
		}
		e.MessageID, e.InternetMessageID = m.ID, m.InternetMessageID // part of the documents' ids: never cut
		e.Subject, e.From, e.ReceivedAt = cutText(m.Subject, maxParkedText), cutText(m.From, maxParkedText), m.ReceivedAt
		e.Attempts++
		e.Last, e.LastError, e.Failed = now, cutText(cause.Error(), maxParkedError), failed
		e.Next = now.Add(im.retryBackoff().delay(e.Attempts))
		pm = *e
		return nil
	})
	if errors.Is(err, errTooManyParked) {
		return connector.E("importer: park", connector.Transient,
			fmt.Errorf("%w (%d): the mailbox fails as a whole: %w", errTooManyParked, maxParked, cause))
	}
	if err != nil {
		return err
	}
	p.setBacklog(b)
	im.metrics.parked.Inc()
	if pm.Attempts >= im.cfg.Policy.MaxAttempts && now.Sub(pm.First) >= im.cfg.Policy.RetryFor {
		return p.giveUp(ctx, key, pm)
	}
	im.log.Warn("importer: mail failed, parked for retry", "connection_id", p.conn.ID, "message_id", m.ID,
		"attempt", pm.Attempts, "next_retry", pm.Next, "err", cause)
	p.mu.Lock()
	p.res.Failed++
	p.mu.Unlock()
	return nil
}

// maxRetryGap caps the wait between two tries of a parked mail: over a
// horizon of days (an Exchange Online outage lasts a day) a mail is still
// tried at least hourly, so it is in within the hour of the fix.
const maxRetryGap = time.Hour

// retryBackoff spaces a parked mail's retries: doubling from a 120th of
// RetryFor (1 s to 30 s) up to half of it (at most maxRetryGap), jittered;
// with the default 72 hours, 30 s, 1, 2, 4, 8, 16, 32, 60, 60 … minutes.
func (im *Importer) retryBackoff() backoff {
	horizon := im.cfg.Policy.RetryFor
	base := min(max(horizon/120, time.Second), 30*time.Second)
	return backoff{base: base, max: min(max(horizon/2, base), maxRetryGap), rand: im.backoff.rand}
}

func parkedCount(b *backlog) int {
	n := 0
	for _, e := range b.Parked {
		if !e.GaveUp {
			n++
		}
	}
	return n
}

// giveUp announces a parked mail's failed attachments (or the mail, when
// it failed as a whole) as document.skipped "failed", then marks it given
// up. A crash in between gives it up again on the next pass; the ledger
// keeps the events from being sent twice.
func (p *pass) giveUp(ctx context.Context, key string, pm parkedMail) error {
	im := p.im
	m := pm.message()
	mailID := mailIdentity(m.InternetMessageID, m.ID)
	detail := func(e string) string {
		return fmt.Sprintf("failed %d times over %s: %s", pm.Attempts, pm.Last.Sub(pm.First).Round(time.Second), e)
	}
	items := pm.Failed
	if len(items) == 0 {
		items = []failedAttachment{{Error: "the mail could not be imported: " + pm.LastError}}
	}
	for _, f := range items {
		d := policy.Decision{Reason: archive.ReasonFailed, Detail: detail(f.Error)}
		id := "doc_" + hashID(key, "failed", f.Name)
		if err := p.skip(ctx, m, mailID, id, policy.SanitizeName(f.Name, ""), f.Size, "", d, ""); err != nil {
			return err
		}
	}
	b, err := im.ledger.updateBacklog(ctx, p.conn.ID, func(b *backlog) error {
		e := b.Parked[key]
		if e == nil {
			return errNoChange
		}
		e.GaveUp, e.GaveUpAt, e.Next = true, im.cfg.Now(), time.Time{}
		pruneGivenUp(b)
		return nil
	})
	if err != nil {
		return err
	}
	p.setBacklog(b)
	im.metrics.givenUp.Inc()
	im.log.Warn("importer: mail given up after retries", "connection_id", p.conn.ID, "message_id", m.ID,
		"attempts", pm.Attempts, "err", pm.LastError)
	return nil
}

// pruneGivenUp forgets the oldest given-up mails beyond maxGivenUp.
func pruneGivenUp(b *backlog) {
	var given []string
	for k, e := range b.Parked {
		if e.GaveUp {
			given = append(given, k)
		}
	}
	if len(given) <= maxGivenUp {
		return
	}
	slices.SortFunc(given, func(x, y string) int { return b.Parked[x].GaveUpAt.Compare(b.Parked[y].GaveUpAt) })
	for _, k := range given[:len(given)-maxGivenUp] {
		delete(b.Parked, k)
	}
}

// unpark drops a parked mail that is done or gone.
func (p *pass) unpark(ctx context.Context, key string) error {
	b, err := p.im.ledger.updateBacklog(ctx, p.conn.ID, func(b *backlog) error {
		if _, ok := b.Parked[key]; !ok {
			return errNoChange
		}
		delete(b.Parked, key)
		return nil
	})
	if err == nil {
		p.setBacklog(b)
	}
	return err
}

func (p *pass) setBacklog(b backlog) {
	p.mu.Lock()
	p.backlog = b
	p.mu.Unlock()
}

// isParked reports whether the mail with key is parked (waiting or given
// up): its retries, not the delta pages, bring it in.
func (p *pass) isParked(key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.backlog.Parked[key]
	return ok
}

// retryParked retries the parked mails that are due, oldest due first,
// up to MailWorkers at once. A mail that works is unparked; one that
// fails again is parked again (or given up); a failure that is not the
// mail's ends the pass.
func (p *pass) retryParked(ctx context.Context) error {
	im := p.im
	now := im.cfg.Now()
	p.mu.Lock()
	var due []*parkedMail
	keys := make(map[*parkedMail]string)
	for k, e := range p.backlog.Parked {
		if !e.GaveUp && !e.Next.After(now) {
			due = append(due, e)
			keys[e] = k
		}
	}
	p.mu.Unlock()
	if len(due) == 0 {
		return nil
	}
	slices.SortFunc(due, func(x, y *parkedMail) int { return x.Next.Compare(y.Next) })
	if len(due) > parkedPerPass {
		due = due[:parkedPerPass]
	}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(im.cfg.MailWorkers)
	for _, pm := range due {
		g.Go(func() error { return p.retryOne(gctx, keys[pm], *pm) })
	}
	return g.Wait()
}

func (p *pass) retryOne(ctx context.Context, key string, pm parkedMail) error {
	im := p.im
	if err := p.live(ctx, time.Second); err != nil {
		return err
	}
	m, err := p.mb.Message(ctx, pm.MessageID)
	switch {
	case connector.IsKind(err, connector.NotFound):
		// Deleted by a person: nothing is left to import.
		im.log.Info("importer: parked mail is gone from the mailbox", "connection_id", p.conn.ID, "message_id", pm.MessageID)
		return p.unpark(ctx, key)
	case err != nil:
		err = fmt.Errorf("importer: message %s: %w", pm.MessageID, err)
		m = pm.message()
	default:
		err = p.mail(ctx, m, func() (bool, error) { return im.ledger.mailDone(ctx, key) })
	}
	switch {
	case err == nil:
		im.log.Info("importer: parked mail imported", "connection_id", p.conn.ID, "message_id", m.ID, "attempts", pm.Attempts+1)
		return p.unpark(ctx, key)
	case ownerOf(err) == ownerItem && ctx.Err() == nil:
		return p.park(ctx, m, err)
	}
	return err
}

// markWorking notes, once per pass and before its first announcement, that
// the pass announces documents (backlog.Working).
func (p *pass) markWorking(ctx context.Context) error {
	p.workMu.Lock()
	defer p.workMu.Unlock()
	if p.working {
		return nil
	}
	now := p.im.cfg.Now()
	b, err := p.im.ledger.updateBacklog(ctx, p.conn.ID, func(b *backlog) error {
		if !b.Working.IsZero() {
			return errNoChange // an earlier pass died: keep its time
		}
		b.Working = now
		return nil
	})
	if err != nil {
		return err
	}
	p.setBacklog(b)
	p.working = true
	return nil
}

// doneWorking clears backlog.Working after a pass that recorded every
// document it announced.
func (p *pass) doneWorking(ctx context.Context) error {
	p.mu.Lock()
	w := p.backlog.Working
	p.mu.Unlock()
	if w.IsZero() {
		return nil
	}
	_, err := p.im.ledger.updateBacklog(ctx, p.conn.ID, func(b *backlog) error {
		if b.Working.IsZero() {
			return errNoChange
		}
		b.Working = time.Time{}
		return nil
	})
	return err
}

// ParkedMail is a mail waiting for a retry or given up, as the portal and
// the CLI show it.
type ParkedMail struct {
	Key        string    `json:"key"`
	Subject    string    `json:"subject,omitempty"`
	From       string    `json:"from,omitempty"`
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	Attempts   int       `json:"attempts"`
	NextRetry  time.Time `json:"nextRetry,omitzero"`
	LastError  string    `json:"lastError"`
	GaveUp     bool      `json:"gaveUp,omitempty"`
}

// Parked lists a connection's parked mails, given up ones first, then by
// their next retry.
func (r *StatusReader) Parked(ctx context.Context, connectionID string) ([]ParkedMail, error) {
	b, _, err := r.ledger.backlog(ctx, connectionID)
	if err != nil {
		return nil, err
	}
	return parkedList(b), nil
}

func parkedList(b backlog) []ParkedMail {
	out := make([]ParkedMail, 0, len(b.Parked))
	for k, e := range b.Parked {
		out = append(out, ParkedMail{
			Key: k, Subject: e.Subject, From: e.From, ReceivedAt: e.ReceivedAt, Attempts: e.Attempts,
			NextRetry: e.Next, LastError: e.LastError, GaveUp: e.GaveUp,
		})
	}
	slices.SortFunc(out, func(x, y ParkedMail) int {
		if x.GaveUp != y.GaveUp {
			if x.GaveUp {
				return -1
			}
			return 1
		}
		if c := x.NextRetry.Compare(y.NextRetry); c != 0 {
			return c
		}
		return strings.Compare(x.Key, y.Key)
	})
	return out
}

// Retry makes a connection's given-up mails (or only the one with key,
// when key is not "") due for a new round of retries on the next pass,
// and returns how many it made due. They are then imported exactly once:
// what was archived before is in the ledger.
func (r *StatusReader) Retry(ctx context.Context, connectionID, key string) (int, error) {
	n := 0
	_, err := r.ledger.updateBacklog(ctx, connectionID, func(b *backlog) error {
		n = 0
		for k, e := range b.Parked {
			if key != "" && k != key || !e.GaveUp {
				continue
			}
			*e = parkedMail{
				MessageID: e.MessageID, InternetMessageID: e.InternetMessageID, Subject: e.Subject,
				From: e.From, ReceivedAt: e.ReceivedAt, LastError: e.LastError, Failed: e.Failed,
			}
			n++
		}
		if n == 0 {
			return errNoChange
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("importer: retry %s: %w", connectionID, err)
	}
	if key != "" && n == 0 {
		return 0, connector.E("importer: retry "+connectionID, connector.NotFound, fmt.Errorf("no given-up mail %q", key))
	}
	return n, nil
}

// nextParked is when the first parked mail is due for its retry; zero
// when none waits.
func (p *pass) nextParked() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	var next time.Time
	for _, e := range p.backlog.Parked {
		if !e.GaveUp && (next.IsZero() || e.Next.Before(next)) {
			next = e.Next
		}
	}
	return next
}
