package importer

import (
	"context"
	"fmt"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/connector"
)

// StatusReader reads what the importers recorded — per-connection status
// and the ledger of documents — without running an importer, for the portal
// role and the CLI.
type StatusReader struct {
	ledger  *ledger
	history *history
}

// NewStatusReader opens the importer's buckets for reading. replicas is the
// NATS replica count the buckets are created with if they don't exist yet.
func NewStatusReader(ctx context.Context, js jetstream.JetStream, replicas int) (*StatusReader, error) {
	l, err := openLedger(ctx, js, 0, replicas)
	if err != nil {
		return nil, err
	}
	h, err := openHistory(ctx, js, replicas)
	if err != nil {
		return nil, err
	}
	return &StatusReader{ledger: l, history: h}, nil
}

// History returns a connection's import history, oldest first: its newest
// MaxHistory imports and skips.
func (r *StatusReader) History(ctx context.Context, connectionID string) ([]HistoryEntry, error) {
	return r.history.read(ctx, connectionID)
}

// Status returns the persisted status of a connection; a connection never
// synced has a zero Status with its id.
func (r *StatusReader) Status(ctx context.Context, connectionID string) (Status, error) {
	st, _, err := r.ledger.status(ctx, connectionID)
	if err != nil {
		return Status{}, err
	}
	st.ConnectionID = connectionID
	return st, nil
}

// Document is the ledger's record of one document id.
type Document struct {
	ID          string
	State       string // done | skipped
	Connection  string
	Message     string // internetMessageId
	Name        string
	SHA256      string
	Kind        string
	Bucket      string
	ObjectKey   string
	Reason      string
	Detail      string
	DuplicateOf string
}

// Document looks a document id up in the ledger. An unknown id is a
// connector.NotFound error.
func (r *StatusReader) Document(ctx context.Context, id string) (Document, error) {
	rec, found, err := r.ledger.lookup(ctx, id)
	if err != nil {
		return Document{}, err
	}
	if !found {
		return Document{}, connector.E("importer: document "+id, connector.NotFound, fmt.Errorf("no document %q in the ledger", id))
	}
	return Document{
		ID: id, State: rec.State, Connection: rec.Connection, Message: rec.Message, Name: rec.Name,
		SHA256: rec.SHA256, Kind: rec.Kind, Bucket: rec.Bucket, ObjectKey: rec.Key,
		Reason: rec.Reason, Detail: rec.Detail, DuplicateOf: rec.DuplicateOf,
	}, nil
}

// LookupDocument is Document on a fresh reader, for one-off CLI use.
func LookupDocument(ctx context.Context, js jetstream.JetStream, id string) (Document, error) {
	r, err := NewStatusReader(ctx, js, 1)
	if err != nil {
		return Document{}, err
	}
	return r.Document(ctx, id)
}
