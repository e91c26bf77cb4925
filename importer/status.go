package importer

import (
	"fmt"
	"time"

	"golang.org/x/text/language"
	"golang.org/x/text/message"
)

// maxRecent is how many documents and skips Status.Recent keeps.
const maxRecent = 50

// PassResult sums up one sync pass.
type PassResult struct {
	Messages int // messages seen (removals excluded)
	Imported int // documents archived
	Skipped  int // attachments skipped with a reason (not counting ones done before)
	Failed   int // mails that failed this pass, parked for a retry
	Pages    int
	Duration time.Duration
	Yielded  bool // the pass worked its share and is due again at once
}

// add sums r into p; Yielded tells whether the last pass yielded.
func (p *PassResult) add(r PassResult) {
	p.Messages += r.Messages
	p.Imported += r.Imported
	p.Skipped += r.Skipped
	p.Failed += r.Failed
	p.Pages += r.Pages
	p.Duration += r.Duration
	p.Yielded = r.Yielded
}

// Status is a connection's import status, persisted in KV "cursors" under
// "status.<id>" for the portal and the CLI.
type Status struct {
	ConnectionID      string           `json:"connectionId"`
	LastSync          time.Time        `json:"lastSync,omitzero"` // end of the last pass, successful or not
	NextSync          time.Time        `json:"nextSync,omitzero"` // when the connection is due again
	LastError         string           `json:"lastError,omitempty"`
	LastErrorKind     string           `json:"lastErrorKind,omitempty"`
	ConsecutiveErrors int              `json:"consecutiveErrors"`
	Imported          int64            `json:"imported"`
	Skipped           int64            `json:"skipped"`
	SkippedByReason   map[string]int64 `json:"skippedByReason,omitempty"`
	Backfill          BackfillProgress `json:"backfill"`
	Recent            []HistoryEntry   `json:"recent,omitempty"` // newest last
	// Parked counts the mails waiting for a retry; GivenUp those given up
	// after their retries, which an operator may retry.
	Parked  int `json:"parked,omitempty"`
	GivenUp int `json:"givenUp,omitempty"`
	// ParkedMails shows the first of them (given up first).
	ParkedMails []ParkedMail `json:"parkedMails,omitempty"`
}

// maxParkedShown is how many parked mails Status.ParkedMails keeps.
const maxParkedShown = 20

// BackfillProgress tells how far the first round has come.
type BackfillProgress struct {
	Done     bool      `json:"done"`
	Messages int       `json:"messages"` // mails done so far
	Since    time.Time `json:"since,omitzero"`
	// Mode is the connection's backfill mode (new, since, all); "new"
	// passes over the mail already there and has no backfill to show.
	Mode string `json:"mode,omitempty"`
	// Total is how many mails the backfill covers (0: not known yet),
	// Documents how many documents it imported so far, counted with each
	// committed page: after a crash, the documents a dead process imported
	// in the page it had not committed are archived but not counted (at
	// most a page's).
	Total     int       `json:"total,omitempty"`
	Documents int       `json:"documents,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	UpdatedAt time.Time `json:"updatedAt,omitzero"` // when the last page was done
	// ETASeconds estimates the time left as of UpdatedAt from the rate so
	// far; 0 when done or while the rate rests on too little (see eta).
	ETASeconds int `json:"etaSeconds,omitempty"`
}

// Minimum data for an estimate of the time left.
const (
	etaMinMessages = 50
	etaMinElapsed  = 10 * time.Second
)

// eta estimates the time a running backfill has left from its rate so far
// (messages per second since StartedAt); false while it has seen fewer
// than etaMinMessages mails or run less than etaMinElapsed.
func (b BackfillProgress) eta() (time.Duration, bool) {
	elapsed := b.UpdatedAt.Sub(b.StartedAt)
	if b.Done || b.Total == 0 || b.StartedAt.IsZero() || b.Messages < etaMinMessages || elapsed < etaMinElapsed {
		return 0, false
	}
	left := max(b.Total-b.Messages, 0)
	return time.Duration(float64(elapsed) * float64(left) / float64(b.Messages)).Round(time.Second), true
}

// progress is what the cursor tells of the backfill.
func progress(c cursor) BackfillProgress {
	b := BackfillProgress{
		Done: c.Rounds > 0, Messages: c.Messages, Since: c.Since, Mode: c.Mode,
		Total: c.Total, Documents: c.Documents, StartedAt: c.StartedAt, UpdatedAt: c.Progressed,
	}
	if d, ok := b.eta(); ok {
		b.ETASeconds = max(int(d/time.Second), 1)
	}
	return b
}

// HistoryEntry is one imported or skipped document.
type HistoryEntry struct {
	Time       time.Time `json:"time"`
	DocumentID string    `json:"documentId"`
	Name       string    `json:"name"`
	Kind       string    `json:"kind,omitempty"`    // document kind of an import (pdf, zugferd, xrechnung, …)
	Profile    string    `json:"profile,omitempty"` // e-invoice profile, when known
	Reason     string    `json:"reason,omitempty"`  // "" for an import
	Detail     string    `json:"detail,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	// An e-invoice's number (BT-1), seller (BT-27), gross amount (BT-112)
	// and currency (BT-5), for the portal's document list.
	InvoiceNumber string `json:"invoiceNumber,omitempty"`
	Seller        string `json:"seller,omitempty"`
	Gross         string `json:"gross,omitempty"`
	Currency      string `json:"currency,omitempty"`
	// The mail's sender and arrival, for the portal's import log.
	From       string    `json:"from,omitempty"`
	ReceivedAt time.Time `json:"receivedAt,omitzero"`
	// ObjectKey is the stored document's key (imports only), for the
	// portal's download; RenditionKey the key of its readable rendition
	// (XML-only e-invoices).
	ObjectKey    string `json:"objectKey,omitempty"`
	RenditionKey string `json:"renditionKey,omitempty"`
	// The official rules' verdict on an e-invoice: Valid is nil when it
	// was not validated; Findings are the failed fatal rules (capped).
	Valid      *bool            `json:"valid,omitempty"`
	ErrorCount int              `json:"errorCount,omitempty"`
	Findings   []HistoryFinding `json:"findings,omitempty"`
}

// HistoryFinding is one failed rule of an e-invoice, in the rule set's
// own words.
type HistoryFinding struct {
	Rule    string `json:"rule"`
	Message string `json:"message,omitempty"`
}

func (s *Status) add(h []HistoryEntry) {
	s.Recent = append(s.Recent, h...)
	if n := len(s.Recent) - maxRecent; n > 0 {
		s.Recent = append([]HistoryEntry(nil), s.Recent[n:]...)
	}
}

// Summary words the backfill for a person, e.g. "5,120 of 20,000 mails
// (25 %), 4,980 documents, about 12 min left"; "" for mode new or before
// the first page.
func (b BackfillProgress) Summary() string {
	switch {
	case b.Mode == "new" || b.Mode == "" || (b.Messages == 0 && !b.Done):
		return ""
	case b.Done:
		return fmt.Sprintf("done: %s mails, %s documents", thousands(b.Messages), thousands(b.Documents))
	case b.Total == 0:
		return fmt.Sprintf("%s mails so far, %s documents", thousands(b.Messages), thousands(b.Documents))
	}
	s := fmt.Sprintf("%s of %s mails (%d %%), %s documents", thousands(b.Messages), thousands(b.Total),
		min(100, b.Messages*100/b.Total), thousands(b.Documents))
	if b.ETASeconds > 0 {
		s += ", " + left(time.Duration(b.ETASeconds)*time.Second)
	}
	return s
}

// left words the time left as a person reads it: minutes, hours above
// two hours.
func left(d time.Duration) string {
	switch {
	case d < time.Minute:
		return "less than a minute left"
	case d < 2*time.Hour:
		return fmt.Sprintf("about %d min left", (d+30*time.Second)/time.Minute)
	default:
		return fmt.Sprintf("about %d h left", (d+30*time.Minute)/time.Hour)
	}
}

// thousands writes n with commas between thousands.
func thousands(n int) string { return message.NewPrinter(language.English).Sprintf("%d", n) }
