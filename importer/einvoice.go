package importer

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"path"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
	"github.com/mailgate/mailgate/importer/rendition"
	"github.com/mailgate/mailgate/importer/rules"
)

// What the import path adds to an e-invoice: the official rules' verdict
// (data.invoice.validation), a readable rendition of an XML-only one
// (data.rendition) and the supporting documents inside it (relatedTo).
// None of it is ever in the way: what fails or overruns its bound leaves
// the document imported as always, with the reason said.

// Validator judges an e-invoice by the official rules (*rules.Validator).
// Validate never fails; what it cannot judge has Valid nil and a reason.
type Validator interface {
	Validate(ctx context.Context, xml []byte) rules.Report
}

// Defaults of the e-invoice bounds of Config.
const (
	DefaultEInvoiceTimeout = 10 * time.Second
	DefaultEInvoiceMaxXML  = 8 << 20
)

// Bounds of a history entry's findings, for the portal.
const (
	historyFindings       = 10
	historyFindingMessage = 300
)

// maxFindingLocation bounds a finding's location in an event.
const maxFindingLocation = 300

// einvoiceXML returns the XML of an e-invoice document: the file itself
// for kind xrechnung, the embedded one for zugferd. reason says why there
// is none for an e-invoice (over the size bound); ok is false for any
// other kind.
func (p *pass) einvoiceXML(d policy.Decision, sp spooled) (xml []byte, reason string, ok bool) {
	maxXML := p.im.cfg.EInvoiceMaxXML
	switch d.Kind {
	case archive.KindZUGFeRD:
		if int64(len(d.XML)) > maxXML {
			return nil, fmt.Sprintf("the embedded XML (%d bytes) is over the bound of %d bytes", len(d.XML), maxXML), true
		}
		return []byte(d.XML), "", true
	case archive.KindXRechnung:
		if sp.Size() > maxXML {
			return nil, fmt.Sprintf("the XML (%d bytes) is over the bound of %d bytes", sp.Size(), maxXML), true
		}
		r := sp.Reader()
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return nil, "the XML could not be read: " + err.Error(), true
		}
		b, err := io.ReadAll(io.LimitReader(r, maxXML+1))
		if err != nil {
			return nil, "the XML could not be read: " + err.Error(), true
		}
		return b, "", true
	}
	return nil, "", false
}

// validate judges the XML within the e-invoice time bound. reason, when
// xml is nil, says why there is nothing to judge.
func (p *pass) validate(ctx context.Context, id string, xml []byte, reason string) *archive.Validation {
	var rep rules.Report
	switch {
	case xml == nil:
		rep.Reason = reason
	default:
		var err error
		rep, err = withinBound(ctx, p.im.cfg.EInvoiceTimeout, func(ctx context.Context) (rules.Report, error) {
			return p.im.cfg.Validator.Validate(ctx, xml), nil
		})
		if err != nil {
			rep = rules.Report{Reason: "not validated: " + err.Error()}
		}
	}
	v := validation(rep)
	if v.Valid == nil {
		p.im.log.Info("importer: e-invoice not validated", "connection_id", p.conn.ID, "document_id", id, "reason", v.Reason)
	}
	return v
}

// render makes the readable rendition of an XML-only e-invoice within the
// e-invoice time bound; nil with the reason logged when there is none.
func (p *pass) render(ctx context.Context, id string, xml []byte, reason string) []byte {
	if p.im.cfg.Render == nil {
		return nil
	}
	var pdf []byte
	err := errors.New(reason)
	if xml != nil {
		pdf, err = withinBound(ctx, p.im.cfg.EInvoiceTimeout, func(ctx context.Context) ([]byte, error) {
			return p.im.cfg.Render(ctx, xml)
		})
	}
	if err == nil && len(pdf) == 0 {
		err = errors.New("the renderer made an empty file")
	}
	if err != nil {
		p.im.log.Info("importer: no rendition", "connection_id", p.conn.ID, "document_id", id, "reason", err.Error())
		return nil
	}
	return pdf
}

// storeRendition stores the rendition beside the document stored under
// key, under the same document id. A different rendition already stored
// there (a renderer changed between a crash and its replay) leaves the
// document without one, never a retry loop.
func (p *pass) storeRendition(ctx context.Context, id, name, key string, pdf []byte) (*archive.Rendition, error) {
	if pdf == nil {
		return nil, nil
	}
	sum := sha256.Sum256(pdf)
	sha := hex.EncodeToString(sum[:])
	rkey := archive.RenditionKey(key)
	pdfName := strings.TrimSuffix(name, path.Ext(name)) + ".pdf"
	_, err := p.im.deps.Store.Put(ctx, rkey, bytes.NewReader(pdf), int64(len(pdf)), sha,
		archive.Meta{ContentType: rendition.ContentType, Name: pdfName, DocumentID: id})
	switch {
	case errors.Is(err, archive.ErrChecksum):
		p.im.log.Warn("importer: no rendition", "connection_id", p.conn.ID, "document_id", id,
			"reason", "another rendition is stored under its key", "object_key", rkey)
		return nil, nil
	case err != nil:
		return nil, infra(componentStorage, fmt.Errorf("importer: store rendition %s: %w", id, err))
	}
	if err := p.im.step("rendition_stored"); err != nil {
		return nil, err
	}
	return &archive.Rendition{Key: rkey, SHA256: sha, ContentType: rendition.ContentType, Size: int64(len(pdf))}, nil
}

// relatedDocuments imports the supporting documents inside an e-invoice
// (BG-24) as documents of the mail, each announced with relatedTo the
// invoice, in the invoice's document slot. Their ids come from their
// content and names like any attachment's, so a replay finds them done.
// An XML file is read from its spool, so the supporting documents of one
// over the validation bound are taken too (up to the parser's bound).
func (p *pass) relatedDocuments(ctx context.Context, m connector.Message, mailID, invoiceID string, d policy.Decision, sp spooled, seen func(id string) bool) error {
	var src io.Reader = strings.NewReader(d.XML)
	if d.Kind == archive.KindXRechnung {
		r := sp.Reader()
		if _, err := r.Seek(0, io.SeekStart); err != nil {
			return fmt.Errorf("importer: read %s: %w", invoiceID, err)
		}
		src = r
	}
	for i, part := range policy.InvoiceAttachments(src) {
		j := job{part: true, relatedTo: invoiceID, att: connector.Attachment{
			ID: invoiceID + "/bg24/" + strconv.Itoa(i), Type: connector.FileAttachment, Name: part.Name,
			ContentType: part.ContentType, Size: int64(len(part.Content)), Content: part.Content,
		}}
		if err := p.document(ctx, m, mailID, j, seen); err != nil {
			return err
		}
	}
	return nil
}

// errBound is the error of an overrun of withinBound.
var errBound = errors.New("over the time bound")

// withinBound runs fn with a deadline of d and returns by then, whatever fn
// does: a panic is its error, an overrun errBound. fn is told through its
// context; should it not listen, its goroutine ends on its own while the
// document moves on: the mailbox never waits for it.
func withinBound[T any](ctx context.Context, d time.Duration, fn func(ctx context.Context) (T, error)) (T, error) {
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	type result struct {
		v   T
		err error
	}
	done := make(chan result, 1)
	go func() {
		var r result
		defer func() {
			if e := recover(); e != nil {
				r.err = fmt.Errorf("panic: %v", e)
			}
			done <- r
		}()
		r.v, r.err = fn(ctx)
	}()
	select {
	case r := <-done:
		if r.err == nil && ctx.Err() != nil {
			// Done, but only after the bound: the bound holds for all.
			r.err = fmt.Errorf("%w of %s", errBound, d)
		}
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, fmt.Errorf("%w of %s", errBound, d)
	}
}

// validation is the report as the event carries it: findings capped,
// messages cut, lists never null.
func validation(rep rules.Report) *archive.Validation {
	v := &archive.Validation{
		Rules: append([]string{}, rep.RuleSets...), Valid: rep.Valid,
		ErrorCount: len(rep.Errors), WarningCount: len(rep.Warnings),
	}
	switch {
	case rep.Valid == nil:
		v.Reason = rep.Reason
		if v.Reason == "" {
			v.Reason = "not validated"
		}
	case !*rep.Valid:
		v.Class = rep.Class
		if v.Class != archive.ValidationFormat {
			v.Class = archive.ValidationBusinessRule
		}
	}
	v.Errors, v.Warnings = findings(rep.Errors), findings(rep.Warnings)
	v.Truncated = len(rep.Errors) > archive.MaxFindings || len(rep.Warnings) > archive.MaxFindings
	return v
}

func findings(in []rules.Finding) []archive.Finding {
	out := make([]archive.Finding, 0, min(len(in), archive.MaxFindings))
	for _, f := range in[:min(len(in), archive.MaxFindings)] {
		out = append(out, archive.Finding{Rule: f.Rule, Flag: f.Flag,
			Message: cut(f.Message, archive.MaxFindingMessage), Location: cut(f.Location, maxFindingLocation)})
	}
	return out
}

// cut shortens s to at most n bytes at a character boundary, marking the
// cut with an ellipsis.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	const ellipsis = "…"
	i := n - len(ellipsis)
	for i > 0 && !utf8.RuneStart(s[i]) {
		i--
	}
	return s[:i] + ellipsis
}

// withValidation adds the verdict to a history entry: valid or not, the
// count of errors and the first failed rules.
func (h HistoryEntry) withValidation(v *archive.Validation) HistoryEntry {
	if v == nil {
		return h
	}
	h.Valid, h.ErrorCount = v.Valid, v.ErrorCount
	for _, f := range v.Errors[:min(len(v.Errors), historyFindings)] {
		h.Findings = append(h.Findings, HistoryFinding{Rule: f.Rule, Message: cut(f.Message, historyFindingMessage)})
	}
	return h
}
