package archive

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Feed reads one customer's events from the MAILGATE stream by stream
// sequence, for a DMS that pulls them over HTTP. The sequence is the
// cursor: it belongs to the stream, so it stays valid across restarts of
// mailgate and of NATS, and a reader that passes back the last cursor it
// got sees every later event of its customer once, in order.
type Feed struct {
	js jetstream.JetStream
}

// NewFeed returns a feed on the MAILGATE stream.
func NewFeed(js jetstream.JetStream) *Feed { return &Feed{js: js} }

// FeedEvent is one event of the feed: its stream sequence and the
// CloudEvent as published.
type FeedEvent struct {
	Seq   uint64
	Event json.RawMessage
}

// Read returns up to limit events of customer after stream sequence
// after. When there are none and wait is positive, it waits up to wait
// for the first one (a long poll).
func (f *Feed) Read(ctx context.Context, customer string, after uint64, limit int, wait time.Duration) ([]FeedEvent, error) {
	if err := ValidCustomer(customer); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	st, err := f.js.Stream(ctx, StreamName)
	if err != nil {
		return nil, fmt.Errorf("archive: feed: %w", err)
	}
	c, err := st.OrderedConsumer(ctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{Subject(customer, ">")},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    after + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("archive: feed: %w", err)
	}
	out, err := fetch(c, limit, 0)
	if err != nil || len(out) > 0 || wait <= 0 {
		return out, err
	}
	// Nothing yet: wait for the first, then take what came with it.
	first, err := fetch(c, 1, wait)
	if err != nil || len(first) == 0 {
		return first, err
	}
	more, err := fetch(c, limit-1, 0)
	return append(first, more...), err
}

// fetch takes up to n messages: those there now (wait 0), or the first to
// arrive within wait.
func fetch(c jetstream.Consumer, n int, wait time.Duration) ([]FeedEvent, error) {
	if n <= 0 {
		return nil, nil
	}
	var batch jetstream.MessageBatch
	var err error
	if wait > 0 {
		batch, err = c.Fetch(n, jetstream.FetchMaxWait(wait))
	} else {
		batch, err = c.FetchNoWait(n)
	}
	if err != nil {
		return nil, fmt.Errorf("archive: feed: fetch: %w", err)
	}
	var out []FeedEvent
	for m := range batch.Messages() {
		md, err := m.Metadata()
		if err != nil {
			return nil, fmt.Errorf("archive: feed: %w", err)
		}
		out = append(out, FeedEvent{Seq: md.Sequence.Stream, Event: json.RawMessage(m.Data())})
	}
	if err := batch.Error(); err != nil && !errors.Is(err, jetstream.ErrNoMessages) && !errors.Is(err, context.DeadlineExceeded) {
		return nil, fmt.Errorf("archive: feed: fetch: %w", err)
	}
	return out, nil
}
