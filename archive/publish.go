package archive

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// publishTimeout bounds one publish, also under a longer deadline of the
// caller: a publish in flight when the connection to NATS breaks is lost
// (nats.go does not send it again after reconnecting) and its
// acknowledgement never comes. The caller publishes again; the event id
// keeps the stream from storing it twice.
const publishTimeout = 10 * time.Second

// MaxEventSize bounds an encoded event, whatever the server would take:
// events carry data, never documents, and a DMS reads them one by one.
// The bound a publisher applies is the smaller of this and half the
// connected server's max_payload, leaving room for headers and for a
// server in the cluster configured smaller.
const MaxEventSize = 256 << 10

// ErrEventRefused says that an event was refused for what it holds (it
// is over the size bound, cannot be encoded, or the stream turned the
// message down): publishing it again cannot succeed. It is the item's
// failure, never the bus's.
var ErrEventRefused = errors.New("event refused")

// Publisher sends archive events to the MAILGATE stream. Every publish waits
// for the stream's acknowledgement, so a nil error means the event is stored;
// an event published again with the same id within the stream's duplicate
// window is acknowledged as a duplicate and stored once.
type Publisher struct {
	js     jetstream.JetStream
	source string
	now    func() time.Time
}

// NewPublisher returns a publisher whose events have the source
// <source>/<customer>/<connection>; source is normally "mailgate".
func NewPublisher(js jetstream.JetStream, source string) *Publisher {
	return &Publisher{js: js, source: source, now: time.Now}
}

// Imported publishes a document.imported event; id is the document id.
func (p *Publisher) Imported(ctx context.Context, id string, d Imported) error {
	return p.publish(ctx, id, TypeImported, d.Customer, d.Connection, &d)
}

// Skipped publishes a document.skipped event; id is the document id.
func (p *Publisher) Skipped(ctx context.Context, id string, d Skipped) error {
	return p.publish(ctx, id, TypeSkipped, d.Customer, d.Connection, &d)
}

// ConnectionChanged publishes a connection.changed event under a new unique id.
func (p *Publisher) ConnectionChanged(ctx context.Context, d ConnectionChanged) error {
	id, err := NewEventID(p.now())
	if err != nil {
		return fmt.Errorf("archive: publish %s: %w", TypeConnectionChanged, err)
	}
	return p.publish(ctx, id, TypeConnectionChanged, d.Customer, d.Connection, &d)
}

func (p *Publisher) publish(ctx context.Context, id, typ, customer, connection string, data any) error {
	if id == "" {
		return fmt.Errorf("archive: publish %s: empty id", typ)
	}
	if err := ValidCustomer(customer); err != nil {
		return fmt.Errorf("archive: publish %s %s: %w", typ, id, err)
	}
	ev := Event{
		SpecVersion:     SpecVersion,
		ID:              id,
		Source:          p.source + "/" + customer + "/" + connection,
		Type:            typ,
		Time:            p.now().UTC(),
		DataContentType: "application/json",
		Data:            data,
	}
	body, err := json.Marshal(ev)
	if err != nil {
		return fmt.Errorf("archive: publish %s %s: %w: %w", typ, id, ErrEventRefused, err)
	}
	if limit := p.maxEvent(); len(body) > limit {
		return fmt.Errorf("archive: publish %s %s: %w: %d bytes, over the bound of %d", typ, id, ErrEventRefused, len(body), limit)
	}
	ctx, cancel := context.WithTimeout(ctx, publishTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: Subject(customer, typ), Data: body, Header: nats.Header{}}
	msg.Header.Set("Content-Type", "application/cloudevents+json")
	// A PubAck with Duplicate set is success: the event is already stored.
	if _, err := p.js.PublishMsg(ctx, msg, jetstream.WithMsgID(id), jetstream.WithExpectStream(StreamName)); err != nil {
		if refused(err) {
			return fmt.Errorf("archive: publish %s %s: %w: %w", typ, id, ErrEventRefused, err)
		}
		return fmt.Errorf("archive: publish %s %s: %w", typ, id, err)
	}
	return nil
}

// maxEvent is the size bound of an encoded event: MaxEventSize, or half
// the connected server's max_payload when that is smaller. The server's
// limit is read at each publish, since a reconnect may reach another.
func (p *Publisher) maxEvent() int {
	limit := MaxEventSize
	if nc := p.js.Conn(); nc != nil {
		if mp := nc.MaxPayload(); mp > 0 {
			limit = min(limit, int(mp/2))
		}
	}
	return limit
}

// jsMessageTooLarge is JetStream's error code for a message over the
// stream's max_msg_size (JSStreamMessageExceedsMaximumErr).
const jsMessageTooLarge = 10054

// refused reports whether a publish failed for the message itself rather
// than for the bus: over the server's max_payload or the stream's
// message size.
func refused(err error) bool {
	if errors.Is(err, nats.ErrMaxPayload) {
		return true
	}
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jsMessageTooLarge
}

// NewEventID returns a unique id that sorts by time: 12 hex digits of Unix
// milliseconds and 20 random hex digits.
func NewEventID(now time.Time) (string, error) {
	var b [10]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", fmt.Errorf("event id: %w", err)
	}
	return fmt.Sprintf("%012x%s", now.UnixMilli(), hex.EncodeToString(b[:])), nil
}

// AnnouncedSince returns the ids of the customer's document events
// (document.imported and document.skipped) that the stream holds from
// since on, a minute earlier for clock skew. It reads headers only. A
// replay that may lie beyond the stream's duplicate window asks it before
// publishing, since the stream would then store an event again.
func (p *Publisher) AnnouncedSince(ctx context.Context, customer string, since time.Time) (map[string]bool, error) {
	if err := ValidCustomer(customer); err != nil {
		return nil, fmt.Errorf("archive: announced since: %w", err)
	}
	start := since.Add(-time.Minute)
	c, err := p.js.OrderedConsumer(ctx, StreamName, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{Subject(customer, "document.>")},
		DeliverPolicy:  jetstream.DeliverByStartTimePolicy,
		OptStartTime:   &start,
		HeadersOnly:    true,
	})
	if err != nil {
		return nil, fmt.Errorf("archive: announced since: %w", err)
	}
	info, err := c.Info(ctx)
	if err != nil {
		return nil, fmt.Errorf("archive: announced since: %w", err)
	}
	ids := make(map[string]bool)
	for pending := info.NumPending; pending > 0; {
		batch, err := c.Fetch(int(min(pending, 1000)), jetstream.FetchMaxWait(5*time.Second))
		if err != nil {
			return nil, fmt.Errorf("archive: announced since: %w", err)
		}
		n := 0
		for msg := range batch.Messages() {
			n++
			ids[msg.Headers().Get(jetstream.MsgIDHeader)] = true
			if md, err := msg.Metadata(); err == nil {
				pending = md.NumPending
			}
		}
		if err := batch.Error(); err != nil {
			return nil, fmt.Errorf("archive: announced since: %w", err)
		}
		if n == 0 {
			return nil, fmt.Errorf("archive: announced since: %d events pending but none delivered", pending)
		}
	}
	return ids, nil
}
