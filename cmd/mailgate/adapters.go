package main

import (
	"context"
	"time"

	"golang.org/x/oauth2"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/importer"
	"github.com/mailgate/mailgate/portal"
)

// graphMailboxes opens a connection's mailbox on the shared Graph client,
// authenticated with the connection's tokens.
type graphMailboxes struct {
	graph  *graph.Client
	tokens *connector.Tokens
}

func (g graphMailboxes) mailbox(c connector.Connection) *graph.Mailbox {
	id := c.ID
	return g.graph.Mailbox(c.Mailbox, func(ctx context.Context) (string, error) {
		return g.tokens.AccessToken(ctx, id)
	})
}

func (g graphMailboxes) Open(_ context.Context, c connector.Connection) (importer.Mailbox, error) {
	return g.mailbox(c), nil
}

// tester runs the Graph connection test for the portal.
type tester struct{ mailboxes graphMailboxes }

// Prime keeps the access token of the portal's code exchange for the
// connection test (portal.TokenPrimer).
func (t tester) Prime(connectionID string, tok *oauth2.Token) {
	t.mailboxes.tokens.Prime(connectionID, tok)
}

// Test tests c as given: a reconnect tests new credentials before it
// stores them (connector.Tokens.TestToken).
func (t tester) Test(ctx context.Context, c connector.Connection) (portal.TestResult, error) {
	mb := t.mailboxes.graph.Mailbox(c.Mailbox, func(ctx context.Context) (string, error) {
		return t.mailboxes.tokens.TestToken(ctx, c)
	})
	r, err := mb.Test(ctx)
	return portal.TestResult{CanRead: r.CanRead, CanWrite: r.CanWrite, Detail: r.Detail}, err
}

// statusAdapter shows the importer's per-connection status in the portal.
type statusAdapter struct{ r *importer.StatusReader }

func (s statusAdapter) Retry(ctx context.Context, id string) (int, error) {
	return s.r.Retry(ctx, id, "")
}

func (s statusAdapter) Status(ctx context.Context, id string) (portal.ConnectionStatus, error) {
	st, err := s.r.Status(ctx, id)
	if err != nil {
		return portal.ConnectionStatus{}, err
	}
	out := portal.ConnectionStatus{
		LastSync:          st.LastSync,
		NextSync:          st.NextSync,
		LastError:         st.LastError,
		LastErrorKind:     st.LastErrorKind,
		Imported:          st.Imported,
		Skipped:           st.Skipped,
		SkippedByReason:   st.SkippedByReason,
		BackfillDone:      st.Backfill.Done,
		BackfillMessages:  st.Backfill.Messages,
		BackfillMode:      st.Backfill.Mode,
		BackfillTotal:     st.Backfill.Total,
		BackfillDocuments: st.Backfill.Documents,
		BackfillLeft:      time.Duration(st.Backfill.ETASeconds) * time.Second,
		Parked:            st.Parked,
		GivenUp:           st.GivenUp,
	}
	for _, pm := range st.ParkedMails {
		out.ParkedMails = append(out.ParkedMails, portal.ParkedMail{
			Subject: pm.Subject, From: pm.From, ReceivedAt: pm.ReceivedAt, Attempts: pm.Attempts,
			NextRetry: pm.NextRetry, LastError: pm.LastError, GaveUp: pm.GaveUp,
		})
	}
	// A backfill's pass runs long; its last committed page is its last sync.
	if st.Backfill.UpdatedAt.After(out.LastSync) {
		out.LastSync = st.Backfill.UpdatedAt
	}
	out.Recent = historyEntries(st.Recent)
	return out, nil
}

// History is the connection's import history for the portal's import log.
func (s statusAdapter) History(ctx context.Context, id string) ([]portal.HistoryEntry, error) {
	h, err := s.r.History(ctx, id)
	if err != nil {
		return nil, err
	}
	return historyEntries(h), nil
}

func historyEntries(in []importer.HistoryEntry) []portal.HistoryEntry {
	out := make([]portal.HistoryEntry, 0, len(in))
	for _, h := range in {
		out = append(out, portal.HistoryEntry{
			Time: h.Time, DocumentID: h.DocumentID, Name: h.Name, Kind: h.Kind, Profile: h.Profile,
			Reason: h.Reason, Detail: h.Detail, Subject: h.Subject,
			InvoiceNumber: h.InvoiceNumber, Seller: h.Seller, Gross: h.Gross, Currency: h.Currency,
			From: h.From, ReceivedAt: h.ReceivedAt, ObjectKey: h.ObjectKey, RenditionKey: h.RenditionKey,
			Valid: h.Valid, ErrorCount: h.ErrorCount, Findings: findings(h.Findings),
		})
	}
	return out
}

func findings(in []importer.HistoryFinding) []portal.Finding {
	var out []portal.Finding
	for _, f := range in {
		out = append(out, portal.Finding{Rule: f.Rule, Message: f.Message})
	}
	return out
}
