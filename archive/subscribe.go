package archive

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Subscription defaults.
const (
	DefaultAckWait    = 30 * time.Second
	ephemeralInactive = time.Minute // an ephemeral consumer outlives short disconnects
	retryPause        = time.Second // after a transient fetch error
	ackTimeout        = 5 * time.Second
)

// SubscribeConfig selects the events a subscriber receives.
type SubscribeConfig struct {
	// Durable names a consumer that keeps its position across restarts;
	// "" makes an ephemeral consumer that the server removes a minute
	// after the subscriber is gone.
	Durable string
	// Customer limits the events to one customer; "" means all.
	Customer string
	// Types limits the event types (TypeImported, …); none means all three.
	Types []string
	// StartSeq or StartTime choose where a new consumer starts; neither
	// means from the first event in the stream. Both only take effect when
	// the consumer is created, as JetStream fixes them then.
	StartSeq  uint64
	StartTime time.Time
	// AckWait is how long an unacknowledged delivery waits before it is
	// delivered again; 0 means 30s.
	AckWait time.Duration
	// MaxDeliver bounds deliveries of one event; 0 means no limit.
	MaxDeliver int
	// Logger receives events that can't be decoded and fetch errors; nil
	// discards them.
	Logger *slog.Logger
}

// Delivery is one event handed to a subscriber.
type Delivery struct {
	Event        Event
	Seq          uint64    // stream sequence, a stable position to resume from
	Subject      string    // mailgate.<customer>.<type suffix>
	NumDelivered uint64    // 1 on the first delivery
	Stored       time.Time // when the stream stored the event

	msg     jetstream.Msg
	settled bool
}

// Ack acknowledges the delivery; Subscribe won't settle it again.
func (d *Delivery) Ack() error { d.settled = true; return d.msg.Ack() }

// Nak asks for redelivery now; Subscribe won't settle it again.
func (d *Delivery) Nak() error { d.settled = true; return d.msg.Nak() }

// Term tells the server never to deliver the event again to this consumer.
func (d *Delivery) Term() error { d.settled = true; return d.msg.Term() }

// Subscribe delivers events to handle, one at a time in stream order, until
// ctx ends; then it returns nil. When handle returns nil the delivery is
// acknowledged (and the server's confirmation awaited, even if ctx ends
// meanwhile); when it returns an error it is negatively acknowledged and comes
// back. A handler that settles the delivery itself (Ack, Nak, Term) takes
// over. A handler that fails because ctx ended leaves the delivery
// unacknowledged; it is delivered again after AckWait — a subscriber that dies
// before its ack loses nothing.
// Events that can't be decoded are logged and terminated.
func Subscribe(ctx context.Context, js jetstream.JetStream, cfg SubscribeConfig, handle func(ctx context.Context, d *Delivery) error) error {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	cc, err := consumerConfig(cfg)
	if err != nil {
		return fmt.Errorf("archive: subscribe: %w", err)
	}
	// Consumers are looked up and created by name, without the stream's
	// info, which an identity limited to one customer's events may not
	// read (it names every customer's subjects).
	if cfg.Durable != "" {
		// The start position is fixed when a consumer is created; keep an
		// existing durable's so an update doesn't fail over it.
		if old, err := js.Consumer(ctx, StreamName, cfg.Durable); err == nil {
			oc := old.CachedInfo().Config
			cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = oc.DeliverPolicy, oc.OptStartSeq, oc.OptStartTime
		} else if !errors.Is(err, jetstream.ErrConsumerNotFound) {
			return fmt.Errorf("archive: subscribe: consumer %q: %w", cfg.Durable, err)
		}
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, StreamName, cc)
	if err != nil {
		return fmt.Errorf("archive: subscribe: consumer %q: %w", cfg.Durable, err)
	}
	// One message in flight: its AckWait starts when the handler gets it,
	// not while it waits behind others in a prefetch buffer.
	it, err := cons.Messages(jetstream.PullMaxMessages(1))
	if err != nil {
		return fmt.Errorf("archive: subscribe: %w", err)
	}
	defer it.Stop()

	for {
		msg, err := it.Next(jetstream.NextContext(ctx))
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			if errors.Is(err, jetstream.ErrMsgIteratorClosed) || errors.Is(err, nats.ErrConnectionClosed) {
				return fmt.Errorf("archive: subscribe: %w", err)
			}
			log.Warn("archive subscribe: next event", "consumer", cfg.Durable, "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(retryPause):
			}
			continue
		}
		deliver(ctx, msg, handle, log)
		if ctx.Err() != nil {
			return nil
		}
	}
}

// deliver hands one message to handle and settles it.
func deliver(ctx context.Context, msg jetstream.Msg, handle func(context.Context, *Delivery) error, log *slog.Logger) {
	ev, err := Decode(msg.Data())
	if err != nil {
		log.Error("archive subscribe: undecodable event, terminating it", "subject", msg.Subject(), "err", err)
		if err := msg.Term(); err != nil {
			log.Warn("archive subscribe: term", "subject", msg.Subject(), "err", err)
		}
		return
	}
	d := &Delivery{Event: ev, Subject: msg.Subject(), msg: msg}
	if md, err := msg.Metadata(); err == nil {
		d.Seq, d.NumDelivered, d.Stored = md.Sequence.Stream, md.NumDelivered, md.Timestamp
	}
	herr := handle(ctx, d)
	switch {
	case d.settled:
	case herr == nil:
		// The work is done: confirm the ack even when ctx has just ended.
		actx, cancel := context.WithTimeout(context.WithoutCancel(ctx), ackTimeout)
		defer cancel()
		if err := msg.DoubleAck(actx); err != nil {
			// The event may come again; handlers are at-least-once anyway.
			log.Warn("archive subscribe: ack", "event_id", ev.ID, "seq", d.Seq, "err", err)
		}
	case ctx.Err() != nil:
		// Interrupted: leave it for redelivery after AckWait.
	default:
		log.Warn("archive subscribe: handler failed, redelivering", "event_id", ev.ID, "seq", d.Seq, "err", herr)
		if err := msg.Nak(); err != nil {
			log.Warn("archive subscribe: nak", "event_id", ev.ID, "err", err)
		}
	}
}

func consumerConfig(cfg SubscribeConfig) (jetstream.ConsumerConfig, error) {
	customer := "*"
	if cfg.Customer != "" {
		if err := ValidCustomer(cfg.Customer); err != nil {
			return jetstream.ConsumerConfig{}, err
		}
		customer = cfg.Customer
	}
	types := cfg.Types
	if len(types) == 0 {
		types = []string{TypeImported, TypeSkipped, TypeConnectionChanged}
	}
	var filters []string
	for _, t := range types {
		suffix := typeSuffix(t)
		if suffix == "" {
			return jetstream.ConsumerConfig{}, fmt.Errorf("unknown event type %q", t)
		}
		filters = append(filters, Subject(customer, suffix))
	}
	cc := jetstream.ConsumerConfig{
		Durable:       cfg.Durable,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
	if len(filters) == 1 {
		cc.FilterSubject = filters[0]
	} else {
		cc.FilterSubjects = filters
	}
	if cc.AckWait <= 0 {
		cc.AckWait = DefaultAckWait
	}
	if cc.MaxDeliver == 0 {
		cc.MaxDeliver = -1
	}
	if cfg.Durable == "" {
		cc.InactiveThreshold = ephemeralInactive
	}
	switch {
	case cfg.StartSeq > 0:
		cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, cfg.StartSeq
	case !cfg.StartTime.IsZero():
		t := cfg.StartTime
		cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &t
	}
	return cc, nil
}
