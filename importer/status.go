package importer

import "time"

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
	Messages int       `json:"messages"`
	Since    time.Time `json:"since,omitzero"`
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
}

func (s *Status) add(h []HistoryEntry) {
	s.Recent = append(s.Recent, h...)
	if n := len(s.Recent) - maxRecent; n > 0 {
		s.Recent = append([]HistoryEntry(nil), s.Recent[n:]...)
	}
}
