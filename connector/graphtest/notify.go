package graphtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// Notifications configures how the simulator delivers change and
// lifecycle notifications, and the subscription limits. Zero fields take
// the defaults (Graph's documented numbers, where Graph has one).
type Notifications struct {
	// Delay is how long after a change its notification is sent
	// (default 100ms; Graph sends within seconds).
	Delay time.Duration
	// DropRate (0..1) of change notifications are never sent; DuplicateRate
	// (0..1) are sent twice. Seed seeds the draw (default 1).
	DropRate, DuplicateRate float64
	Seed                    uint64
	// Timeout is how long an endpoint has to answer a notification with
	// 2xx (default 3s); SlowAfter makes an answer slow (default 2.9s).
	Timeout, SlowAfter time.Duration
	// Once an endpoint had EvaluateAfter notifications (default 100) in
	// the current EvaluationWindow (default 10m), a share of slow answers
	// of at least 10% delays its notifications by ThrottleDelay (default
	// 10m), at least 15% drops them (and sends missed), as Graph documents.
	EvaluateAfter    int
	EvaluationWindow time.Duration
	ThrottleDelay    time.Duration
	// A failed delivery (no 2xx in time) is retried after RetryDelay
	// (default 10m) for up to RetryFor (default 4h) after the change.
	RetryDelay, RetryFor time.Duration
	// ValidationTimeout is how long a notification URL has to echo its
	// validationToken at creation (default 10s).
	ValidationTimeout time.Duration
	// RequireHTTPS refuses http:// notification URLs, as Graph does; off
	// by default so tests can use plain loopback endpoints.
	RequireHTTPS bool
	// AcceptSharedDelegated accepts a subscription on another mailbox with
	// a delegated token (Mail.Read.Shared) and then never delivers, as the
	// live service is reported to do; by default it is refused with 403.
	AcceptSharedDelegated bool
	// MaxLifetime is the furthest expirationDateTime accepted (default
	// 10070 minutes, the live service's limit for messages).
	MaxLifetime time.Duration
	// MaxPerMailbox is the limit of subscriptions per mailbox across apps
	// (default 1000); WriteLimit subscription writes per WriteWindow per
	// app and tenant (default 1000 per 20s).
	MaxPerMailbox int
	WriteLimit    int
	WriteWindow   time.Duration
	// Client makes the notification and validation calls (default: a
	// plain client; give httptest.Server.Client() for a TLS endpoint).
	Client *http.Client
}

func (n Notifications) withDefaults() Notifications {
	def := func(d *time.Duration, v time.Duration) {
		if *d <= 0 {
			*d = v
		}
	}
	def(&n.Delay, 100*time.Millisecond)
	def(&n.Timeout, 3*time.Second)
	def(&n.SlowAfter, 2900*time.Millisecond)
	def(&n.EvaluationWindow, 10*time.Minute)
	def(&n.ThrottleDelay, 10*time.Minute)
	def(&n.RetryDelay, 10*time.Minute)
	def(&n.RetryFor, 4*time.Hour)
	def(&n.ValidationTimeout, 10*time.Second)
	def(&n.MaxLifetime, 10070*time.Minute)
	def(&n.WriteWindow, 20*time.Second)
	if n.EvaluateAfter <= 0 {
		n.EvaluateAfter = 100
	}
	if n.MaxPerMailbox <= 0 {
		n.MaxPerMailbox = 1000
	}
	if n.WriteLimit <= 0 {
		n.WriteLimit = 1000
	}
	if n.Seed == 0 {
		n.Seed = 1
	}
	return n
}

// NotificationStats counts what the simulator did with notifications.
type NotificationStats struct {
	Created     int // subscriptions created
	Validations int // validation calls made
	Queued      int // change notifications queued (after drops)
	Dropped     int // never sent: DropRate, a throttled endpoint, or retries given up
	Duplicated  int // sent twice on purpose
	Posts       int // POSTs to notification URLs (each try, each duplicate)
	Delivered   int // notifications answered 2xx in time
	Failed      int // tries that were not (retried while RetryFor lasts)
	Slow        int // answers slower than SlowAfter
	Throttled   int // notifications delayed by ThrottleDelay
	Lifecycle   int // lifecycle notifications delivered
	LostPaused  int // changes not notified because their subscription was paused
}

// notifier delivers notifications from one goroutine the Server owns.
type notifier struct {
	cfg       Notifications
	rng       *rand.Rand
	pending   []*delivery
	stats     NotificationStats
	endpoints map[string]*endpointHealth // by notification URL
	wake      chan struct{}
	stop      context.CancelFunc
	wg        sync.WaitGroup
	started   bool
	closed    bool // Close ran: nothing more is sent
}

type endpointHealth struct {
	since       time.Time
	total, slow int
	missedSent  bool
}

// delivery is one POST to come: a collection of one notification.
type delivery struct {
	url       string
	payload   map[string]any
	due       time.Time
	first     time.Time // when the change happened; retries stop RetryFor after
	subID     string
	life      bool // a lifecycle notification
	throttled bool // already delayed once by the slow endpoint rule
}

func (n *notifier) init() {
	n.cfg = Notifications{}.withDefaults()
	n.rng = rand.New(rand.NewPCG(n.cfg.Seed, n.cfg.Seed))
	n.endpoints = map[string]*endpointHealth{}
	n.wake = make(chan struct{}, 1)
}

// SetNotifications sets the delivery knobs and limits; zero fields take
// the defaults. It resets the drop and duplicate draw to the seed.
func (s *Server) SetNotifications(n Notifications) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify.cfg = n.withDefaults()
	s.notify.rng = rand.New(rand.NewPCG(s.notify.cfg.Seed, s.notify.cfg.Seed))
}

// NotificationStats returns the notification counters.
func (s *Server) NotificationStats() NotificationStats {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notify.stats
}

func (s *Server) client() *http.Client {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.notify.cfg.Client != nil {
		return s.notify.cfg.Client
	}
	return http.DefaultClient
}

// withQuery adds a query parameter to a URL, keeping its own (Graph keeps
// a notificationUrl's query string on every call).
func withQuery(raw, k, v string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return raw
	}
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.String()
}

// validateEndpoint makes Graph's validation call: a POST with
// ?validationToken=, to be answered within ValidationTimeout with 200,
// text/plain and the decoded token. It reports the live service's error
// texts for the ways it fails.
func (s *Server) validateEndpoint(ctx context.Context, target string) *result {
	timeout := s.countNotify(func(st *NotificationStats) { st.Validations++ }).ValidationTimeout
	token := "Validation: Testing client application reachability for subscription Request-Id: " + newGUID()
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, withQuery(target, "validationToken", token), nil)
	if err != nil {
		r := fail(http.StatusBadRequest, "InvalidRequest", "Invalid notification url '"+target+"'.")
		return &r
	}
	req.Header.Set("Content-Type", "text/plain; charset=utf-8")
	resp, err := s.client().Do(req)
	if err != nil {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			r := fail(http.StatusBadRequest, "InvalidRequest", "Subscription validation request timed out.")
			return &r
		}
		r := fail(http.StatusBadRequest, "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.")
		return &r
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	switch {
	case err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
		r := fail(http.StatusBadRequest, "InvalidRequest", "Subscription validation request timed out.")
		return &r
	case resp.StatusCode != http.StatusOK:
		r := fail(http.StatusBadRequest, "ValidationError", "Subscription validation request failed. Notification endpoint must respond with 200 OK to validation request.")
		return &r
	case !strings.HasPrefix(strings.ToLower(resp.Header.Get("Content-Type")), "text/plain") || string(body) != token:
		r := fail(http.StatusBadRequest, "ValidationError", "Subscription validation request failed. Response must exactly match validationToken query parameter.")
		return &r
	}
	return nil
}

// enqueueChange queues the change notifications a mailbox change raises;
// s.mu held (it is the mailbox's onChange).
func (s *Server) enqueueChange(mb *mailbox, ch mailChange) {
	n := &s.notify
	for _, sub := range s.subs.subs {
		if sub.mailboxID != mb.ID || (sub.folderID != "" && sub.folderID != ch.folderID) || !sub.changes[ch.changeType] || !s.live(sub) {
			continue
		}
		if sub.Silent {
			continue
		}
		if sub.Paused {
			n.stats.LostPaused++ // only delta is the record
			continue
		}
		if n.rng.Float64() < n.cfg.DropRate {
			n.stats.Dropped++
			continue
		}
		id := ch.id
		if sub.ImmutableIDs {
			id = ch.immutableID
		}
		res := "Users/" + mb.ID + "/Messages/" + id
		item := map[string]any{
			"subscriptionId": sub.ID, "subscriptionExpirationDateTime": sub.Expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"),
			"changeType": ch.changeType, "resource": res, "clientState": nilIfEmpty(sub.ClientState), "tenantId": sub.tenantID,
			"resourceData": map[string]any{"@odata.type": "#Microsoft.Graph.Message", "@odata.id": res, "@odata.etag": ch.etag, "id": id},
		}
		now := time.Now()
		d := &delivery{url: sub.NotificationURL, payload: map[string]any{"value": []any{item}}, due: now.Add(n.cfg.Delay), first: now, subID: sub.ID}
		n.stats.Queued++
		s.schedule(d)
		if n.rng.Float64() < n.cfg.DuplicateRate {
			n.stats.Duplicated++
			dup := *d
			s.schedule(&dup)
		}
	}
}

// lifecycleItem is a lifecycle notification's body.
func lifecycleItem(sub *subscription, event string) map[string]any {
	return map[string]any{"value": []any{map[string]any{
		"subscriptionId": sub.ID, "subscriptionExpirationDateTime": sub.Expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"),
		"tenantId": sub.tenantID, "clientState": nilIfEmpty(sub.ClientState), "lifecycleEvent": event,
	}}}
}

// queueLifecycle sends a lifecycle event for a subscription and applies
// it: reauthorizationRequired pauses delivery until reauthorize or a
// renewal, subscriptionRemoved removes the subscription; s.mu held. A
// subscription without a lifecycleNotificationUrl gets no notification.
func (s *Server) queueLifecycle(sub *subscription, event string) {
	switch event {
	case ReauthorizationRequired:
		sub.Paused = true
	case SubscriptionRemoved:
		delete(s.subs.subs, sub.ID)
	}
	if sub.LifecycleURL == "" {
		return
	}
	now := time.Now()
	s.schedule(&delivery{url: sub.LifecycleURL, payload: lifecycleItem(sub, event), due: now.Add(s.notify.cfg.Delay),
		first: now, subID: sub.ID, life: true})
}

// Lifecycle sends a lifecycle event (ReauthorizationRequired,
// SubscriptionRemoved or Missed) for one subscription.
func (s *Server) Lifecycle(subscriptionID, event string) error {
	if !validEvent(event) {
		return fmt.Errorf("graphtest: lifecycle: unknown event %q", event)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.subs.subs[subscriptionID]
	if sub == nil || !s.live(sub) {
		return fmt.Errorf("graphtest: lifecycle %s: no subscription %q", event, subscriptionID)
	}
	s.queueLifecycle(sub, event)
	return nil
}

// LifecycleMailbox sends a lifecycle event for every subscription on a
// mailbox and tells how many there were.
func (s *Server) LifecycleMailbox(mailbox, event string) (int, error) {
	if !validEvent(event) {
		return 0, fmt.Errorf("graphtest: lifecycle: unknown event %q", event)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	mb := s.mailboxByAddress(mailbox)
	if mb == nil {
		return 0, fmt.Errorf("graphtest: lifecycle %s: no mailbox %q", event, mailbox)
	}
	n := 0
	for _, sub := range s.subs.subs {
		if sub.mailboxID == mb.ID && s.live(sub) {
			s.queueLifecycle(sub, event)
			n++
		}
	}
	return n, nil
}

func validEvent(e string) bool {
	return e == ReauthorizationRequired || e == SubscriptionRemoved || e == Missed
}

// schedule adds a delivery and wakes the sender, starting it on first
// use (a server that is never subscribed to starts no goroutine); s.mu held.
func (s *Server) schedule(d *delivery) {
	n := &s.notify
	if n.closed {
		return
	}
	n.pending = append(n.pending, d)
	if !n.started {
		n.started = true
		ctx, cancel := context.WithCancel(context.Background()) // ended by Close
		n.stop = cancel
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			s.sendLoop(ctx)
		}()
	}
	select {
	case n.wake <- struct{}{}:
	default:
	}
}

// stopNotifier stops the sender and waits for it and its calls.
func (s *Server) stopNotifier() {
	if stop := s.closeNotifier(); stop != nil {
		stop()
	}
	s.notify.wg.Wait()
}

// closeNotifier marks the notifier closed and hands back its stop.
func (s *Server) closeNotifier() context.CancelFunc {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.notify.closed = true
	return s.notify.stop
}

// countNotify updates the stats and returns the knobs in force.
func (s *Server) countNotify(count func(*NotificationStats)) Notifications {
	s.mu.Lock()
	defer s.mu.Unlock()
	count(&s.notify.stats)
	return s.notify.cfg
}

// sendLoop posts deliveries as they fall due, each in its own goroutine
// so a slow endpoint holds up only itself.
func (s *Server) sendLoop(ctx context.Context) {
	var calls sync.WaitGroup
	defer calls.Wait()
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		due, next := s.takeDue(time.Now())
		for _, d := range due {
			calls.Add(1)
			go func() {
				defer calls.Done()
				s.post(ctx, d)
			}()
		}
		wait := time.Hour
		if !next.IsZero() {
			wait = max(time.Until(next), 0)
		}
		timer.Reset(wait)
		select {
		case <-ctx.Done():
			return
		case <-s.notify.wake:
		case <-timer.C:
		}
	}
}

// takeDue removes the deliveries due at now and tells when the next one is.
func (s *Server) takeDue(now time.Time) (due []*delivery, next time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.notify
	keep := n.pending[:0]
	for _, d := range n.pending {
		if d.due.After(now) {
			keep = append(keep, d)
			if next.IsZero() || d.due.Before(next) {
				next = d.due
			}
			continue
		}
		due = append(due, d)
	}
	clear(n.pending[len(keep):])
	n.pending = keep
	return due, next
}

// post makes one delivery and records how the endpoint answered; a
// change notification whose endpoint failed is retried, one to a slow
// endpoint is delayed or dropped by Graph's documented rule.
func (s *Server) post(ctx context.Context, d *delivery) {
	if !d.life && !s.admit(d) {
		return
	}
	body, _ := json.Marshal(d.payload)
	cfg := s.countNotify(func(st *NotificationStats) { st.Posts++ })
	cctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	start := time.Now()
	ok := false
	if req, err := http.NewRequestWithContext(cctx, http.MethodPost, d.url, bytes.NewReader(body)); err == nil {
		req.Header.Set("Content-Type", "application/json; charset=utf-8")
		if resp, err := s.client().Do(req); err == nil {
			_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
			resp.Body.Close()
			ok = resp.StatusCode >= 200 && resp.StatusCode < 300
		}
	}
	took := time.Since(start)
	if ctx.Err() != nil {
		return // closing
	}
	if posted := s.recordPost(d, ok, took, cfg); posted != nil {
		posted()
	}
}

// recordPost counts a POST's outcome and schedules a retry of a failure;
// it hands back the test hook to call once the lock is released.
func (s *Server) recordPost(d *delivery, ok bool, took time.Duration, cfg Notifications) (posted func()) {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.notify
	slow := took > cfg.SlowAfter
	if !d.life {
		h := n.endpoints[d.url]
		if h == nil || time.Since(h.since) > cfg.EvaluationWindow {
			h = &endpointHealth{since: time.Now()}
			n.endpoints[d.url] = h
		}
		h.total++
		if slow {
			h.slow++
		}
	}
	if slow {
		n.stats.Slow++
	}
	switch {
	case ok && d.life:
		n.stats.Lifecycle++
	case ok:
		n.stats.Delivered++
	default:
		n.stats.Failed++
		if time.Since(d.first)+cfg.RetryDelay <= cfg.RetryFor {
			d.due = time.Now().Add(cfg.RetryDelay)
			s.schedule(d)
		} else if !d.life {
			n.stats.Dropped++
		}
	}
	return s.hooks.onPosted
}

// admit applies the slow endpoint rule before a change notification is
// sent: at 15% slow answers it is dropped (and missed sent once per
// evaluation window), at 10% delayed by ThrottleDelay.
func (s *Server) admit(d *delivery) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := &s.notify
	h := n.endpoints[d.url]
	if h == nil || h.total < n.cfg.EvaluateAfter || time.Since(h.since) > n.cfg.EvaluationWindow {
		return true
	}
	share := float64(h.slow) / float64(h.total)
	switch {
	case share >= 0.15:
		n.stats.Dropped++
		if sub := s.subs.subs[d.subID]; sub != nil && !h.missedSent {
			h.missedSent = true
			s.queueLifecycle(sub, Missed)
		}
		return false
	case share >= 0.10 && !d.throttled:
		n.stats.Throttled++
		d.throttled = true
		d.due = time.Now().Add(n.cfg.ThrottleDelay)
		s.schedule(d)
		return false
	}
	return true
}
