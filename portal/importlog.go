package portal

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive"
)

// The connection page's import log: every import, skip, failure and
// parked mail of the connection, newest mail first, searchable and
// filtered by outcome, a page at a time, with downloads of the stored
// documents through the portal.

const logPageSize = 25

// Outcomes of the import log's rows, and its filter's values.
const (
	outcomeImported = "imported"
	outcomeSkipped  = "skipped"
	outcomeFailed   = "failed"
	outcomeParked   = "parked"
)

var logOutcomes = []string{outcomeImported, outcomeSkipped, outcomeFailed, outcomeParked}

// logRow is one row of the import log.
type logRow struct {
	HistoryEntry
	Outcome string
	// When is the mail's arrival; the import time for older entries that
	// do not carry it.
	When time.Time
	// A parked mail's retries.
	Attempts  int
	NextRetry time.Time
	GaveUp    bool
	LastError string
}

// EInvoice reports whether the row is an e-invoice, which has a verdict of
// the official rules (or says it has none).
func (r logRow) EInvoice() bool {
	return r.Valid != nil || r.Kind == archive.KindXRechnung || r.Kind == archive.KindZUGFeRD
}

type importLog struct {
	Rows        []logRow
	Total       int // rows that match the search and filter
	All         int // rows in the log
	Page, Pages int
	Q, Outcome  string
	Outcomes    []string
	PrevURL     string
	NextURL     string
	Downloads   bool // the portal serves the documents
}

// buildLog selects page pageNo (from 1) of the rows matching q and outcome.
func buildLog(base string, entries []HistoryEntry, parked []ParkedMail, q, outcome string, pageNo int) importLog {
	rows := make([]logRow, 0, len(entries)+len(parked))
	for _, e := range entries {
		r := logRow{HistoryEntry: e, When: cmp.Or(e.ReceivedAt, e.Time)}
		switch e.Reason {
		case "":
			r.Outcome = outcomeImported
		case archive.ReasonFailed:
			r.Outcome = outcomeFailed
		default:
			r.Outcome = outcomeSkipped
		}
		rows = append(rows, r)
	}
	for _, pm := range parked {
		rows = append(rows, logRow{
			HistoryEntry: HistoryEntry{Subject: pm.Subject, From: pm.From, ReceivedAt: pm.ReceivedAt},
			Outcome:      outcomeParked, When: pm.ReceivedAt,
			Attempts: pm.Attempts, NextRetry: pm.NextRetry, GaveUp: pm.GaveUp, LastError: pm.LastError,
		})
	}
	l := importLog{All: len(rows), Q: q, Outcome: outcome, Outcomes: logOutcomes}
	needle := strings.ToLower(strings.TrimSpace(q))
	rows = slices.DeleteFunc(rows, func(r logRow) bool {
		if outcome != "" && r.Outcome != outcome {
			return true
		}
		if needle == "" {
			return false
		}
		for _, f := range []string{r.Subject, r.From, r.Name, r.InvoiceNumber, r.Seller} {
			if strings.Contains(strings.ToLower(f), needle) {
				return false
			}
		}
		return true
	})
	// Newest mail first; within a mail, in the order it was worked.
	slices.SortStableFunc(rows, func(a, b logRow) int { return b.When.Compare(a.When) })
	l.Total = len(rows)
	l.Pages = max(1, (l.Total+logPageSize-1)/logPageSize)
	l.Page = min(max(pageNo, 1), l.Pages)
	from := (l.Page - 1) * logPageSize
	l.Rows = rows[from:min(from+logPageSize, l.Total)]
	link := func(p int) string {
		v := url.Values{}
		if q != "" {
			v.Set("q", q)
		}
		if outcome != "" {
			v.Set("outcome", outcome)
		}
		if p > 1 {
			v.Set("page", strconv.Itoa(p))
		}
		if len(v) == 0 {
			return base + "#log"
		}
		return base + "?" + v.Encode() + "#log"
	}
	if l.Page > 1 {
		l.PrevURL = link(l.Page - 1)
	}
	if l.Page < l.Pages {
		l.NextURL = link(l.Page + 1)
	}
	return l
}

// historyOf is the connection's import history, oldest first.
func (s *Server) historyOf(ctx context.Context, connectionID string, st *ConnectionStatus) ([]HistoryEntry, error) {
	if s.deps.History != nil {
		return s.deps.History.History(ctx, connectionID)
	}
	if st != nil {
		return st.Recent, nil
	}
	return nil, nil
}

// download sends an imported document, or with ?as=rendition its readable
// rendition, as an attachment. Only the users of the connection's customer
// get it, and only documents of the connection's history.
func (s *Server) download(w http.ResponseWriter, r *http.Request, u *sessionUser) {
	ctx := r.Context()
	c, err := s.ownConnection(ctx, u.Customer, r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if s.deps.Documents == nil {
		s.fail(w, r, errNotFound)
		return
	}
	entries, err := s.historyOf(ctx, c.ID, nil)
	if err != nil {
		s.fail(w, r, fmt.Errorf("download: history: %w", err))
		return
	}
	docID := r.PathValue("doc")
	i := slices.IndexFunc(entries, func(e HistoryEntry) bool { return e.DocumentID == docID && e.ObjectKey != "" })
	if i < 0 {
		s.fail(w, r, errNotFound)
		return
	}
	e := entries[i]
	key, name := e.ObjectKey, e.Name
	if r.URL.Query().Get("as") == "rendition" {
		if e.RenditionKey == "" {
			s.fail(w, r, errNotFound)
			return
		}
		key = e.RenditionKey
		name = strings.TrimSuffix(name, path.Ext(name)) + path.Ext(key)
	}
	// Keys begin with the customer (DESIGN: storage layout): a history
	// entry never leads to another customer's object.
	if !strings.HasPrefix(key, c.Customer+"/") {
		s.fail(w, r, errNotFound)
		return
	}
	rc, info, err := s.deps.Documents.Get(ctx, key)
	if errors.Is(err, archive.ErrNotFound) {
		s.fail(w, r, errNotFound)
		return
	}
	if err != nil {
		s.fail(w, r, fmt.Errorf("download %s: %w", key, err))
		return
	}
	defer rc.Close()
	ct := cmp.Or(info.ContentType, "application/octet-stream")
	w.Header().Set("Content-Type", ct)
	w.Header().Set("Content-Disposition", mime.FormatMediaType("attachment", map[string]string{"filename": cmp.Or(name, path.Base(key))}))
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("Cache-Control", "private, no-store")
	if info.Size > 0 {
		w.Header().Set("Content-Length", strconv.FormatInt(info.Size, 10))
	}
	s.log.InfoContext(ctx, "document downloaded", "connection_id", c.ID, "document_id", docID, "user", u.Name)
	if _, err := io.Copy(w, rc); err != nil {
		s.log.WarnContext(ctx, "download", "connection_id", c.ID, "document_id", docID, "err", err)
	}
}
