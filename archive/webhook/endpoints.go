package webhook

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/internal/kvrec"
)

// Buckets of the webhook state.
const (
	EndpointsBucket  = "webhooks"
	DeliveriesBucket = "webhook_deliveries"
	// CursorsBucket keeps each endpoint's acknowledged floor: the stream
	// sequence up to which every event was delivered or settled. A
	// consumer that vanished (deleted by hand, or by an identity that
	// should not have) is recreated from there, not at the stream's end.
	CursorsBucket = "webhook_cursors"
)

// MaxEndpoints bounds the endpoints of one customer.
const MaxEndpoints = 10

// Endpoint states.
const (
	StateActive   = "active"
	StateDisabled = "disabled"
)

// Types an endpoint may ask for; none means all of them.
var Types = []string{archive.TypeImported, archive.TypeSkipped, archive.TypeConnectionChanged, archive.TypeWebhookDisabled}

// Endpoint is a registered webhook receiver of one customer.
type Endpoint struct {
	ID            string    `json:"id"`
	Customer      string    `json:"customer"`
	URL           string    `json:"url"`
	Types         []string  `json:"types"`
	SubjectFilter string    `json:"subjectFilter,omitempty"`
	State         string    `json:"state"`
	FailingSince  time.Time `json:"failingSince,omitzero"`
	DisabledAt    time.Time `json:"disabledAt,omitzero"`
	CreatedBy     string    `json:"createdBy"`
	CreatedAt     time.Time `json:"createdAt"`
	Secret        []byte    `json:"-"` // sealed
}

// stored is Endpoint as kept in KV, with the sealed secret.
type stored struct {
	Endpoint
	SealedSecret []byte `json:"sealedSecret"`
}

// Delivery is one event's entry in an endpoint's delivery log.
type Delivery struct {
	EventID       string    `json:"eventId"`
	EventType     string    `json:"eventType"`
	Subject       string    `json:"subject"`
	Sequence      uint64    `json:"sequence"` // in the MAILGATE stream
	Status        string    `json:"status"`   // delivered, failed
	Attempts      int       `json:"attempts"`
	LastStatus    int       `json:"lastStatusCode,omitempty"`
	LastError     string    `json:"lastError,omitempty"`
	LastAttemptAt time.Time `json:"lastAttemptAt"`
	DeliveredAt   time.Time `json:"deliveredAt,omitzero"`
}

// Delivery statuses.
const (
	Delivered = "delivered"
	Failed    = "failed"
)

// Sentinel kinds; callers decide with errors.Is / errors.As.
var ErrNotFound = errors.New("webhook: not found")

// InvalidError is a registration the service refuses, with a message safe
// to show.
type InvalidError struct{ Msg string }

func (e *InvalidError) Error() string { return e.Msg }

func invalid(format string, a ...any) error { return &InvalidError{Msg: fmt.Sprintf(format, a...)} }

// Registration is what a customer asks for.
type Registration struct {
	URL           string   `json:"url"`
	Types         []string `json:"types,omitempty"`
	SubjectFilter string   `json:"subjectFilter,omitempty"`
}

// validate checks r for customer and returns it normalised.
func (s *Service) validate(customer string, r Registration) (Registration, error) {
	u, err := url.Parse(r.URL)
	if err != nil || u.Host == "" || u.User != nil || u.Fragment != "" {
		return r, invalid("url must be an absolute https URL without user info or fragment")
	}
	if u.Scheme != "https" && !(s.cfg.AllowPrivate && u.Scheme == "http") {
		return r, invalid("url must use https")
	}
	if ip, err := netip.ParseAddr(u.Hostname()); err == nil && !s.cfg.AllowPrivate {
		if why := deniedRange(ip); why != "" {
			return r, invalid("url must not point to a private, loopback, link-local or other special-purpose address (%s: %s)", ip, why)
		}
	}
	if strings.EqualFold(u.Hostname(), "localhost") && !s.cfg.AllowPrivate {
		return r, invalid("url must not point to a private, loopback or link-local address")
	}
	if len(r.Types) == 0 {
		r.Types = slices.Clone(Types)
	}
	for _, t := range r.Types {
		if !slices.Contains(Types, t) {
			return r, invalid("unknown event type %q; known: %s", t, strings.Join(Types, ", "))
		}
	}
	slices.Sort(r.Types)
	r.Types = slices.Compact(r.Types)
	if f := r.SubjectFilter; f != "" {
		prefix := "mailgate." + customer + "."
		if !strings.HasPrefix(f, prefix) || len(f) == len(prefix) || strings.ContainsAny(f, " \t\r\n") {
			return r, invalid("subjectFilter must be a NATS subject pattern under %s>", prefix)
		}
	}
	return r, nil
}

// subjectMatches reports whether a NATS subject matches pattern (* one
// token, > the rest).
func subjectMatches(pattern, subject string) bool {
	p, s := strings.Split(pattern, "."), strings.Split(subject, ".")
	for i, tok := range p {
		if tok == ">" {
			return len(s) > i
		}
		if i >= len(s) || (tok != "*" && tok != s[i]) {
			return false
		}
	}
	return len(p) == len(s)
}

func newID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "wh_" + hex.EncodeToString(b[:])
}

func consumerName(id string) string { return "webhook_" + strings.TrimPrefix(id, "wh_") }

// deliveryKey is the log key of an event at an endpoint; event ids may hold
// characters KV keys do not allow.
func deliveryKey(endpointID, eventID string) string {
	h := sha256.Sum256([]byte(eventID))
	return endpointID + "." + hex.EncodeToString(h[:16])
}

// Create registers an endpoint for customer and returns it with its secret,
// which is not shown again. Its consumer starts at the next event.
func (s *Service) Create(ctx context.Context, customer string, r Registration, actor string) (Endpoint, string, error) {
	if err := archive.ValidCustomer(customer); err != nil {
		return Endpoint{}, "", invalid("invalid customer")
	}
	r, err := s.validate(customer, r)
	if err != nil {
		return Endpoint{}, "", err
	}
	// Each endpoint is a consumer on the stream: bound them per customer.
	if eps, err := s.List(ctx, customer); err != nil {
		return Endpoint{}, "", err
	} else if len(eps) >= MaxEndpoints {
		return Endpoint{}, "", invalid("at most %d webhook endpoints per customer", MaxEndpoints)
	}
	if s.sealer == nil {
		return Endpoint{}, "", errors.New("webhook: no key to seal the secret with")
	}
	secret, err := NewSecret()
	if err != nil {
		return Endpoint{}, "", err
	}
	sealed, err := s.sealer.Seal([]byte(secret))
	if err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: seal secret: %w", err)
	}
	ep := Endpoint{ID: newID(), Customer: customer, URL: r.URL, Types: r.Types, SubjectFilter: r.SubjectFilter,
		State: StateActive, CreatedBy: actor, CreatedAt: s.now().UTC()}
	// The consumer first, so no event between registration and the
	// dispatcher picking the endpoint up is missed.
	if _, err := s.stream.CreateOrUpdateConsumer(ctx, s.consumerConfig(ep)); err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: create consumer: %w", err)
	}
	raw, _ := json.Marshal(stored{Endpoint: ep, SealedSecret: sealed})
	if _, err := s.endpoints.Create(ctx, ep.ID, raw); err != nil {
		return Endpoint{}, "", fmt.Errorf("webhook: store endpoint: %w", err)
	}
	return ep, secret, nil
}

func (s *Service) consumerConfig(ep Endpoint) jetstream.ConsumerConfig {
	var subjects []string
	for _, t := range ep.Types {
		subjects = append(subjects, archive.Subject(ep.Customer, t))
	}
	return jetstream.ConsumerConfig{
		Durable:        consumerName(ep.ID),
		Description:    "webhook " + ep.ID + " of " + ep.Customer,
		DeliverPolicy:  jetstream.DeliverNewPolicy,
		AckPolicy:      jetstream.AckExplicitPolicy,
		AckWait:        s.cfg.Timeout + 30*time.Second,
		MaxDeliver:     -1,
		MaxAckPending:  256,
		FilterSubjects: subjects,
		Replicas:       s.cfg.Replicas,
	}
}

func (s *Service) load(ctx context.Context, id string) (stored, uint64, error) {
	e, err := s.endpoints.Get(ctx, id)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return stored{}, 0, ErrNotFound
	}
	if err != nil {
		return stored{}, 0, fmt.Errorf("webhook: get %s: %w", id, err)
	}
	var st stored
	if err := json.Unmarshal(e.Value(), &st); err != nil {
		return stored{}, 0, fmt.Errorf("webhook: decode %s: %w", id, err)
	}
	return st, e.Revision(), nil
}

// Get returns customer's endpoint id; another customer's is ErrNotFound.
func (s *Service) Get(ctx context.Context, customer, id string) (Endpoint, error) {
	if !validID(id) {
		return Endpoint{}, ErrNotFound
	}
	st, _, err := s.load(ctx, id)
	if err != nil {
		return Endpoint{}, err
	}
	if st.Customer != customer {
		return Endpoint{}, ErrNotFound
	}
	return st.Endpoint, nil
}

func validID(id string) bool {
	rest, ok := strings.CutPrefix(id, "wh_")
	_, err := hex.DecodeString(rest)
	return ok && err == nil && len(rest) == 16
}

// List returns customer's endpoints.
func (s *Service) List(ctx context.Context, customer string) ([]Endpoint, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := []Endpoint{}
	for _, st := range all {
		if st.Customer == customer {
			out = append(out, st.Endpoint)
		}
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

func (s *Service) all(ctx context.Context) ([]stored, error) {
	keys, err := s.endpoints.ListKeys(ctx)
	if err != nil {
		return nil, fmt.Errorf("webhook: list: %w", err)
	}
	var out []stored
	for k := range keys.Keys() {
		st, _, err := s.load(ctx, k)
		if errors.Is(err, ErrNotFound) {
			continue
		}
		if err != nil {
			return nil, err
		}
		out = append(out, st)
	}
	return out, nil
}

// Delete removes customer's endpoint, its consumer and its delivery log.
func (s *Service) Delete(ctx context.Context, customer, id string) (Endpoint, error) {
	ep, err := s.Get(ctx, customer, id)
	if err != nil {
		return ep, err
	}
	if err := s.endpoints.Delete(ctx, id); err != nil {
		return ep, fmt.Errorf("webhook: delete %s: %w", id, err)
	}
	if err := s.stream.DeleteConsumer(ctx, consumerName(id)); err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
		return ep, fmt.Errorf("webhook: delete consumer %s: %w", id, err)
	}
	if err := s.cursors.Delete(ctx, id); err != nil && !errors.Is(err, jetstream.ErrKeyNotFound) {
		return ep, fmt.Errorf("webhook: delete cursor %s: %w", id, err)
	}
	if err := s.purgeLog(ctx, id); err != nil {
		return ep, err
	}
	return ep, nil
}

// update changes an endpoint with compare-and-set.
func (s *Service) update(ctx context.Context, id string, fn func(*Endpoint) bool) (Endpoint, error) {
	rec := kvrec.Record[stored]{KV: s.endpoints, Codec: kvrec.JSON[stored]()}
	st, _, err := rec.Update(ctx, id, func(st *stored, _ uint64) error {
		if !fn(&st.Endpoint) {
			return kvrec.ErrUnchanged
		}
		return nil
	})
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return Endpoint{}, ErrNotFound
	}
	if err != nil {
		return Endpoint{}, fmt.Errorf("webhook: update endpoint: %w", err)
	}
	return st.Endpoint, nil
}

// Deliveries returns the delivery log of customer's endpoint, latest
// attempt first.
func (s *Service) Deliveries(ctx context.Context, customer, id string) ([]Delivery, error) {
	if _, err := s.Get(ctx, customer, id); err != nil {
		return nil, err
	}
	keys, err := s.deliveries.ListKeysFiltered(ctx, id+".*")
	if err != nil {
		return nil, fmt.Errorf("webhook: deliveries %s: %w", id, err)
	}
	out := []Delivery{}
	for k := range keys.Keys() {
		e, err := s.deliveries.Get(ctx, k)
		if err != nil {
			continue // expired or purged meanwhile
		}
		var d Delivery
		if json.Unmarshal(e.Value(), &d) == nil {
			out = append(out, d)
		}
	}
	slices.SortFunc(out, func(a, b Delivery) int { return b.LastAttemptAt.Compare(a.LastAttemptAt) })
	return out, nil
}

func (s *Service) purgeLog(ctx context.Context, id string) error {
	keys, err := s.deliveries.ListKeysFiltered(ctx, id+".*")
	if err != nil {
		return fmt.Errorf("webhook: purge log %s: %w", id, err)
	}
	for k := range keys.Keys() {
		_ = s.deliveries.Purge(ctx, k)
	}
	return nil
}

// record updates the delivery log after an attempt.
func (s *Service) record(ctx context.Context, ep Endpoint, d Delivery) Delivery {
	key := deliveryKey(ep.ID, d.EventID)
	if e, err := s.deliveries.Get(ctx, key); err == nil {
		var prev Delivery
		if json.Unmarshal(e.Value(), &prev) == nil {
			d.Attempts += prev.Attempts
			if d.DeliveredAt.IsZero() {
				d.DeliveredAt = prev.DeliveredAt
			}
		}
	}
	raw, _ := json.Marshal(d)
	if _, err := s.deliveries.Put(ctx, key, raw); err != nil {
		s.log.WarnContext(ctx, "webhook: delivery log", "endpoint_id", ep.ID, "event_id", d.EventID, "err", err)
	}
	return d
}

// ListAll returns every customer's endpoints, for the operator.
func (s *Service) ListAll(ctx context.Context) ([]Endpoint, error) {
	all, err := s.all(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]Endpoint, 0, len(all))
	for _, st := range all {
		out = append(out, st.Endpoint)
	}
	slices.SortFunc(out, func(a, b Endpoint) int { return a.CreatedAt.Compare(b.CreatedAt) })
	return out, nil
}

// Lookup returns the endpoint id of whichever customer, for the operator.
func (s *Service) Lookup(ctx context.Context, id string) (Endpoint, error) {
	if !validID(id) {
		return Endpoint{}, ErrNotFound
	}
	st, _, err := s.load(ctx, id)
	return st.Endpoint, err
}

// Enable makes customer's disabled endpoint active again. Its consumer
// resumes where it stopped, so the events since it was disabled arrive
// too.
func (s *Service) Enable(ctx context.Context, customer, id string) (Endpoint, error) {
	if _, err := s.Get(ctx, customer, id); err != nil {
		return Endpoint{}, err
	}
	return s.update(ctx, id, func(ep *Endpoint) bool {
		if ep.State == StateActive {
			return false
		}
		ep.State, ep.FailingSince, ep.DisabledAt = StateActive, time.Time{}, time.Time{}
		return true
	})
}
