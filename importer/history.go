package importer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// The import history is a JetStream stream, one subject per connection
// (history.<connection>), that keeps each connection's newest
// MaxHistory entries: bounded per connection by the server
// (MaxMsgsPerSubject, old ones discarded), independent of the status
// entry in KV (whose Recent list stays the short summary), and read by
// the portal's import log with one ordered consumer on the subject.
const (
	historyStream  = "MAILGATE_HISTORY"
	historyPrefix  = "history."
	MaxHistory     = 5000
	historyTimeout = 10 * time.Second
)

type history struct {
	js     jetstream.JetStream
	stream jetstream.Stream
}

func openHistory(ctx context.Context, js jetstream.JetStream, replicas int) (*history, error) {
	st, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:              historyStream,
		Description:       "mailgate: import history per connection (the portal's import log)",
		Subjects:          []string{historyPrefix + ">"},
		Storage:           jetstream.FileStorage,
		Replicas:          max(replicas, 1),
		MaxMsgsPerSubject: MaxHistory,
		Discard:           jetstream.DiscardOld,
		Duplicates:        2 * time.Minute,
	})
	if err != nil {
		return nil, fmt.Errorf("importer: stream %s: %w", historyStream, err)
	}
	return &history{js: js, stream: st}, nil
}

// append writes a pass's entries of a connection. A replayed entry (the
// same document and outcome within the duplicate window) is written once.
func (h *history) append(ctx context.Context, connectionID string, entries []HistoryEntry) error {
	if len(entries) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(entries))
	for _, e := range entries {
		b, err := json.Marshal(e)
		if err != nil {
			return fmt.Errorf("importer: history: %w", err)
		}
		f, err := h.js.PublishMsgAsync(&nats.Msg{
			Subject: historyPrefix + connectionID, Data: b,
			Header: nats.Header{jetstream.MsgIDHeader: []string{e.DocumentID + "/" + e.Reason}},
		})
		if err != nil {
			return fmt.Errorf("importer: history: publish: %w", err)
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			return fmt.Errorf("importer: history: publish: %w", err)
		case <-ctx.Done():
			return fmt.Errorf("importer: history: publish: %w", ctx.Err())
		}
	}
	return nil
}

// read returns a connection's history, oldest first.
func (h *history) read(ctx context.Context, connectionID string) ([]HistoryEntry, error) {
	ctx, cancel := context.WithTimeout(ctx, historyTimeout)
	defer cancel()
	subject := historyPrefix + connectionID
	info, err := h.stream.Info(ctx, jetstream.WithSubjectFilter(subject))
	if err != nil {
		return nil, fmt.Errorf("importer: history: %w", err)
	}
	n := info.State.Subjects[subject]
	if n == 0 {
		return nil, nil
	}
	c, err := h.stream.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{FilterSubjects: []string{subject}})
	if err != nil {
		return nil, fmt.Errorf("importer: history: %w", err)
	}
	out := make([]HistoryEntry, 0, n)
	for {
		batch, err := c.FetchNoWait(500)
		if err != nil {
			return nil, fmt.Errorf("importer: history: %w", err)
		}
		got := 0
		var last uint64
		for m := range batch.Messages() {
			got++
			var e HistoryEntry
			if err := json.Unmarshal(m.Data(), &e); err == nil {
				out = append(out, e)
			}
			if md, err := m.Metadata(); err == nil {
				last = md.NumPending
			}
		}
		if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) {
			return nil, fmt.Errorf("importer: history: %w", err)
		}
		if got == 0 || last == 0 {
			return out, nil
		}
	}
}
