package webhook

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/internal/kvrec"
)

// Sealer encrypts endpoint secrets at rest (*connector.Sealer).
type Sealer interface {
	Seal(plain []byte) ([]byte, error)
	Open(sealed []byte) ([]byte, error)
}

// Announcer publishes the event that an endpoint was disabled
// (*archive.Publisher).
type Announcer interface {
	WebhookDisabled(ctx context.Context, d archive.WebhookDisabled) error
}

// Config tunes delivery; zero values take the defaults.
type Config struct {
	// AllowPrivate allows plain http and private, loopback and link-local
	// addresses, for development and closed networks. Off, only https to
	// public addresses is allowed.
	AllowPrivate bool
	Timeout      time.Duration // per attempt; 10s
	RetryMin     time.Duration // first retry delay, doubled per attempt; 5s
	RetryMax     time.Duration // longest delay between attempts; 1h
	GiveUpAfter  time.Duration // failing this long disables the endpoint; 72h
	Replicas     int           // of the buckets and consumers; 1
	Logger       *slog.Logger
	Registerer   prometheus.Registerer
	Now          func() time.Time
}

// Service registers endpoints and delivers events to them.
type Service struct {
	cfg        Config
	log        *slog.Logger
	now        func() time.Time
	js         jetstream.JetStream
	stream     jetstream.Stream
	endpoints  jetstream.KeyValue
	deliveries jetstream.KeyValue
	cursors    jetstream.KeyValue
	sealer     Sealer
	announcer  Announcer
	client     *http.Client

	delivered *prometheus.CounterVec
	disabled  *prometheus.GaugeVec
	foreign   *prometheus.CounterVec
}

// New opens the buckets "webhooks" and "webhook_deliveries" (deliveries are
// kept 30 days). The MAILGATE stream must exist. Without a sealer (a CLI
// without the secret key) endpoints can be listed and removed, not created
// or delivered to; without an announcer disablement is only logged.
func New(ctx context.Context, js jetstream.JetStream, sealer Sealer, announcer Announcer, cfg Config) (*Service, error) {
	if cfg.Timeout == 0 {
		cfg.Timeout = 10 * time.Second
	}
	if cfg.RetryMin == 0 {
		cfg.RetryMin = 5 * time.Second
	}
	if cfg.RetryMax == 0 {
		cfg.RetryMax = time.Hour
	}
	if cfg.GiveUpAfter == 0 {
		cfg.GiveUpAfter = 72 * time.Hour
	}
	if cfg.Replicas == 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	s := &Service{js: js, cfg: cfg, log: cfg.Logger, now: cfg.Now, sealer: sealer, announcer: announcer, client: newClient(cfg.Timeout, cfg.AllowPrivate, nil)}
	var err error
	if s.stream, err = js.Stream(ctx, archive.StreamName); err != nil {
		return nil, fmt.Errorf("webhook: stream: %w", err)
	}
	if s.endpoints, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: EndpointsBucket, Description: "mailgate webhook endpoints", History: 5,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("webhook: bucket %s: %w", EndpointsBucket, err)
	}
	if s.deliveries, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: DeliveriesBucket, Description: "mailgate webhook delivery log", TTL: 30 * 24 * time.Hour,
		Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("webhook: bucket %s: %w", DeliveriesBucket, err)
	}
	if s.cursors, err = js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: CursorsBucket, Description: "mailgate webhook acknowledged floors", Storage: jetstream.FileStorage, Replicas: cfg.Replicas,
	}); err != nil {
		return nil, fmt.Errorf("webhook: bucket %s: %w", CursorsBucket, err)
	}
	s.delivered = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mailgate", Name: "webhook_deliveries_total", Help: "Webhook delivery attempts by endpoint and result (delivered, failed).",
	}, []string{"customer", "endpoint", "result"})
	s.disabled = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: "mailgate", Name: "webhook_endpoint_disabled", Help: "1 for a webhook endpoint disabled after failing for 3 days, 0 for an active one.",
	}, []string{"customer", "endpoint"})
	s.foreign = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: "mailgate", Name: "webhook_foreign_events_total", Help: "Events another customer's, dropped before delivery to an endpoint (its consumer was tampered with).",
	}, []string{"customer", "endpoint"})
	if cfg.Registerer != nil {
		for _, c := range []prometheus.Collector{s.delivered, s.disabled, s.foreign} {
			if err := cfg.Registerer.Register(c); err != nil {
				return nil, fmt.Errorf("webhook: metrics: %w", err)
			}
		}
	}
	return s, nil
}

// Run delivers events to every active endpoint until ctx ends, following
// registrations, deletions and disablements as they happen. Several
// processes may run it: each endpoint's durable consumer hands every event
// to one of them.
func (s *Service) Run(ctx context.Context) error {
	w, err := s.endpoints.WatchAll(ctx)
	if ctx.Err() != nil {
		return nil
	}
	if err != nil {
		return fmt.Errorf("webhook: watch endpoints: %w", err)
	}
	defer func() { _ = w.Stop() }()
	running := map[string]jetstream.ConsumeContext{}
	gone := make(chan string, 64)
	start := func(ep Endpoint) {
		cc, err := s.consume(ctx, ep, gone)
		if err != nil {
			s.log.ErrorContext(ctx, "webhook: consume", "endpoint_id", ep.ID, "err", err)
			return
		}
		running[ep.ID] = cc
	}
	customers := map[string]string{} // endpoint → customer, for its metric series
	stop := func(id string) {
		if cc, ok := running[id]; ok {
			cc.Stop()
			<-cc.Closed()
			delete(running, id)
		}
	}
	defer func() {
		for id := range running {
			stop(id)
		}
	}()
	for {
		var e jetstream.KeyValueEntry
		var open bool
		select {
		case <-ctx.Done():
			return nil
		case e, open = <-w.Updates():
		case id := <-gone:
			// The consumer was deleted under a running endpoint: make it
			// again from the endpoint's cursor.
			if _, ok := running[id]; !ok {
				continue
			}
			stop(id)
			st, _, err := s.load(ctx, id)
			if errors.Is(err, ErrNotFound) {
				continue // removed; the watch says so too
			}
			if err != nil {
				s.log.ErrorContext(ctx, "webhook: endpoint", "endpoint_id", id, "err", err)
				continue
			}
			if st.State == StateActive {
				start(st.Endpoint)
			}
			continue
		}
		if !open {
			// The watch ended under us (NATS went away): watch again
			// once it is back; running consumers carry on by themselves.
			if ctx.Err() != nil {
				return nil
			}
			s.log.WarnContext(ctx, "webhook: endpoint watch ended; watching again")
			nw, err := s.rewatch(ctx)
			if err != nil {
				return nil // ctx ended
			}
			w = nw
			continue
		}
		if e == nil {
			continue // the end of the initial values
		}
		id := e.Key()
		if e.Operation() != jetstream.KeyValuePut {
			stop(id)
			if c, ok := customers[id]; ok {
				s.disabled.DeleteLabelValues(c, id)
				delete(customers, id)
			}
			continue
		}
		var st stored
		if err := json.Unmarshal(e.Value(), &st); err != nil {
			s.log.ErrorContext(ctx, "webhook: undecodable endpoint", "endpoint_id", id, "err", err)
			continue
		}
		customers[id] = st.Customer
		if st.State != StateActive {
			s.disabled.WithLabelValues(st.Customer, id).Set(1)
			stop(id)
			continue
		}
		s.disabled.WithLabelValues(st.Customer, id).Set(0)
		if _, ok := running[id]; ok {
			continue
		}
		start(st.Endpoint)
	}
}

// consume opens ep's consumer (recreating it from the endpoint's cursor
// when it vanished) and delivers from it. gone hears of the endpoint when
// its consumer is deleted under it.
func (s *Service) consume(ctx context.Context, ep Endpoint, gone chan<- string) (jetstream.ConsumeContext, error) {
	cons, err := s.openConsumer(ctx, ep)
	if err != nil {
		return nil, err
	}
	return cons.Consume(func(msg jetstream.Msg) { s.handle(ctx, ep.ID, cons, msg) },
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			if errors.Is(err, jetstream.ErrConsumerDeleted) || errors.Is(err, jetstream.ErrConsumerNotFound) {
				select {
				case gone <- ep.ID:
				default: // Run has heard already
				}
			}
		}))
}

// openConsumer returns ep's durable consumer. An existing one keeps its
// start position (JetStream fixes it at creation). A missing one is made
// again from the endpoint's acknowledged floor, so the events published
// while it was gone are delivered, once; without a floor (nothing settled
// yet) from the endpoint's registration.
func (s *Service) openConsumer(ctx context.Context, ep Endpoint) (jetstream.Consumer, error) {
	cc := s.consumerConfig(ep)
	old, err := s.stream.Consumer(ctx, cc.Durable)
	switch {
	case err == nil:
		oc := old.CachedInfo().Config
		cc.DeliverPolicy, cc.OptStartSeq, cc.OptStartTime = oc.DeliverPolicy, oc.OptStartSeq, oc.OptStartTime
	case errors.Is(err, jetstream.ErrConsumerNotFound):
		floor, err := s.cursor(ctx, ep.ID)
		if err != nil {
			return nil, err
		}
		if floor > 0 {
			cc.DeliverPolicy, cc.OptStartSeq = jetstream.DeliverByStartSequencePolicy, floor+1
		} else {
			created := ep.CreatedAt
			cc.DeliverPolicy, cc.OptStartTime = jetstream.DeliverByStartTimePolicy, &created
		}
		s.log.WarnContext(ctx, "webhook: consumer missing, recreated from the endpoint's cursor",
			"endpoint_id", ep.ID, "customer", ep.Customer, "after_seq", floor)
	default:
		return nil, fmt.Errorf("webhook: consumer %s: %w", ep.ID, err)
	}
	cons, err := s.stream.CreateOrUpdateConsumer(ctx, cc)
	if err != nil {
		return nil, fmt.Errorf("webhook: consumer %s: %w", ep.ID, err)
	}
	return cons, nil
}

// cursor is endpoint id's acknowledged floor, 0 when none is kept.
func (s *Service) cursor(ctx context.Context, id string) (uint64, error) {
	e, err := s.cursors.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("webhook: cursor %s: %w", id, err)
	}
	n, err := strconv.ParseUint(string(e.Value()), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("webhook: cursor %s: %w", id, err)
	}
	return n, nil
}

// settled confirms a settled message with the server, then keeps the
// consumer's acknowledged floor as the endpoint's cursor. A failure only
// means a recreated consumer would start a little earlier: deliveries are
// at least once, and receivers tell repeats by webhook-id.
func (s *Service) settled(ctx context.Context, id string, cons jetstream.Consumer) {
	info, err := cons.Info(ctx)
	if err != nil {
		s.log.WarnContext(ctx, "webhook: consumer info for the cursor", "endpoint_id", id, "err", err)
		return
	}
	floor := info.AckFloor.Stream
	rec := kvrec.Record[uint64]{KV: s.cursors, Codec: cursorCodec(), Create: true}
	if _, _, err := rec.Update(ctx, id, func(old *uint64, _ uint64) error {
		if floor <= *old {
			return kvrec.ErrUnchanged
		}
		*old = floor
		return nil
	}); err != nil {
		s.log.WarnContext(ctx, "webhook: cursor", "endpoint_id", id, "err", err)
	}
}

// cursorCodec stores an endpoint's cursor, a stream sequence, in decimal.
func cursorCodec() kvrec.Codec[uint64] {
	return kvrec.Codec[uint64]{
		Encode: func(n uint64) ([]byte, error) { return strconv.AppendUint(nil, n, 10), nil },
		Decode: func(b []byte) (uint64, error) { return strconv.ParseUint(string(b), 10, 64) },
	}
}

// rewatch opens a new watch of the endpoints, retrying every few seconds
// until it works or ctx ends. The watch replays every endpoint, so none is
// missed.
func (s *Service) rewatch(ctx context.Context) (jetstream.KeyWatcher, error) {
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(s.cfg.RetryMin):
		}
		w, err := s.endpoints.WatchAll(ctx)
		if err == nil {
			return w, nil
		}
		s.log.WarnContext(ctx, "webhook: watch endpoints", "err", err)
	}
}

// eventHead is what delivery needs from an event.
type eventHead struct {
	ID   string `json:"id"`
	Type string `json:"type"`
	Data struct {
		Customer string `json:"customer"`
	} `json:"data"`
}

// subjectCustomer is the customer token of an event subject
// (mailgate.<customer>.…), "" for another subject.
func subjectCustomer(subject string) string {
	parts := strings.SplitN(subject, ".", 3)
	if len(parts) < 3 || parts[0] != "mailgate" {
		return ""
	}
	return parts[1]
}

// handle delivers one event to one endpoint and acknowledges it, or asks
// for it again after the backoff. An event of another customer than the
// endpoint's, by subject or by content, is never delivered: only a
// consumer changed behind mailgate's back hands one over.
func (s *Service) handle(ctx context.Context, id string, cons jetstream.Consumer, msg jetstream.Msg) {
	st, _, err := s.load(ctx, id)
	if errors.Is(err, ErrNotFound) {
		_ = msg.Term() // deleted; its consumer goes next
		return
	}
	if err != nil || st.State != StateActive {
		_ = msg.NakWithDelay(s.cfg.RetryMin)
		return
	}
	var head eventHead
	if err := json.Unmarshal(msg.Data(), &head); err != nil || head.ID == "" {
		s.log.ErrorContext(ctx, "webhook: undecodable event", "endpoint_id", id, "subject", msg.Subject(), "err", err)
		s.settle(ctx, id, cons, msg.Term)
		return
	}
	if subjectCustomer(msg.Subject()) != st.Customer || head.Data.Customer != st.Customer {
		s.foreign.WithLabelValues(st.Customer, id).Inc()
		s.log.ErrorContext(ctx, "webhook: event of another customer dropped; the endpoint's consumer was changed",
			"endpoint_id", id, "customer", st.Customer, "subject", msg.Subject(), "event_id", head.ID)
		s.settle(ctx, id, cons, msg.Term)
		return
	}
	if st.SubjectFilter != "" && !subjectMatches(st.SubjectFilter, msg.Subject()) {
		s.settle(ctx, id, cons, msg.Ack)
		return
	}
	meta, err := msg.Metadata()
	if err != nil {
		_ = msg.NakWithDelay(s.cfg.RetryMin)
		return
	}
	d := s.attempt(ctx, st, head, msg.Subject(), meta.Sequence.Stream, msg.Data())
	if d.Status == Delivered {
		s.settle(ctx, id, cons, func() error { return msg.DoubleAck(ctx) })
		if !st.FailingSince.IsZero() {
			_, _ = s.update(ctx, id, func(ep *Endpoint) bool { ep.FailingSince = time.Time{}; return true })
		}
		return
	}
	now := s.now()
	if st.FailingSince.IsZero() {
		_, _ = s.update(ctx, id, func(ep *Endpoint) bool {
			if ep.FailingSince.IsZero() {
				ep.FailingSince = now.UTC()
				return true
			}
			return false
		})
	} else if now.Sub(st.FailingSince) >= s.cfg.GiveUpAfter {
		s.disable(ctx, st.Endpoint, d.LastError)
		_ = msg.Nak() // kept for a re-registration; this consumer stops
		return
	}
	_ = msg.NakWithDelay(s.backoff(int(meta.NumDelivered)))
}

// settle acknowledges or terminates a message and moves the endpoint's
// cursor.
func (s *Service) settle(ctx context.Context, id string, cons jetstream.Consumer, how func() error) {
	if err := how(); err != nil {
		s.log.WarnContext(ctx, "webhook: settle", "endpoint_id", id, "err", err)
		return
	}
	s.settled(ctx, id, cons)
}

// backoff is the delay before attempt n+1: RetryMin doubled per attempt up
// to RetryMax, with a fifth of jitter so endpoints back on line are not hit
// all at once.
func (s *Service) backoff(n int) time.Duration {
	d := s.cfg.RetryMax
	if n < 30 {
		d = min(s.cfg.RetryMin<<max(n-1, 0), s.cfg.RetryMax)
	}
	return d - time.Duration(rand.Int64N(int64(d/5)+1))
}

func (s *Service) disable(ctx context.Context, ep Endpoint, lastError string) {
	ep, err := s.update(ctx, ep.ID, func(e *Endpoint) bool {
		if e.State == StateDisabled {
			return false
		}
		e.State, e.DisabledAt = StateDisabled, s.now().UTC()
		return true
	})
	if err != nil {
		s.log.ErrorContext(ctx, "webhook: disable", "endpoint_id", ep.ID, "err", err)
		return
	}
	s.log.WarnContext(ctx, "webhook endpoint disabled", "endpoint_id", ep.ID, "customer", ep.Customer, "failing_since", ep.FailingSince)
	if s.announcer != nil {
		if err := s.announcer.WebhookDisabled(ctx, archive.WebhookDisabled{
			Customer: ep.Customer, Endpoint: ep.ID, URL: ep.URL, FailingSince: ep.FailingSince, Error: lastError,
		}); err != nil {
			s.log.ErrorContext(ctx, "webhook: announce disabled", "endpoint_id", ep.ID, "err", err)
		}
	}
}

// attempt posts one event and records the outcome in the delivery log.
func (s *Service) attempt(ctx context.Context, st stored, head eventHead, subject string, seq uint64, body []byte) Delivery {
	d := Delivery{EventID: head.ID, EventType: head.Type, Subject: subject, Sequence: seq, Attempts: 1, LastAttemptAt: s.now().UTC()}
	status, err := s.post(ctx, st, head.ID, body)
	d.LastStatus = status
	if err != nil {
		d.Status, d.LastError = Failed, err.Error()
		s.log.InfoContext(ctx, "webhook delivery failed", "endpoint_id", st.ID, "event_id", head.ID, "status", status, "err", err)
	} else {
		d.Status, d.DeliveredAt = Delivered, d.LastAttemptAt
	}
	s.delivered.WithLabelValues(st.Customer, st.ID, d.Status).Inc()
	return s.record(ctx, st.Endpoint, d)
}

func (s *Service) post(ctx context.Context, st stored, eventID string, body []byte) (int, error) {
	if s.sealer == nil {
		return 0, errors.New("no key to open the secret with")
	}
	secret, err := s.sealer.Open(st.SealedSecret)
	if err != nil {
		return 0, fmt.Errorf("open secret: %w", err)
	}
	ts := s.now().Unix()
	sig, err := Sign(string(secret), eventID, ts, body)
	if err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, st.URL, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/cloudevents+json")
	req.Header.Set("User-Agent", "mailgate-webhook/1")
	req.Header.Set("webhook-id", eventID)
	req.Header.Set("webhook-timestamp", strconv.FormatInt(ts, 10))
	req.Header.Set("webhook-signature", sig)
	resp, err := s.client.Do(req)
	if err != nil {
		// Without the URL, which may carry the receiver's own token.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return resp.StatusCode, fmt.Errorf("answered %s", resp.Status)
	}
	return resp.StatusCode, nil
}

// Redeliver sends a logged event to customer's endpoint again, now, and
// returns its updated log entry.
func (s *Service) Redeliver(ctx context.Context, customer, id, eventID string) (Delivery, error) {
	if _, err := s.Get(ctx, customer, id); err != nil {
		return Delivery{}, err
	}
	e, err := s.deliveries.Get(ctx, deliveryKey(id, eventID))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Delivery{}, ErrNotFound
	}
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook: redeliver: %w", err)
	}
	var d Delivery
	if err := json.Unmarshal(e.Value(), &d); err != nil {
		return Delivery{}, fmt.Errorf("webhook: redeliver: %w", err)
	}
	msg, err := s.stream.GetMsg(ctx, d.Sequence)
	if err != nil {
		return Delivery{}, fmt.Errorf("webhook: redeliver %s: %w", eventID, err)
	}
	st, _, err := s.load(ctx, id)
	if err != nil {
		return Delivery{}, err
	}
	return s.attempt(ctx, st, eventHead{ID: d.EventID, Type: d.EventType}, msg.Subject, d.Sequence, msg.Data), nil
}
