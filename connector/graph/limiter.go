package graph

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/semaphore"
	"golang.org/x/time/rate"
)

// limiter keeps one mailbox within Graph's limits: at most n requests in
// flight, a request budget per window, and no request while a Retry-After
// is pending.
type limiter struct {
	inFlight *semaphore.Weighted
	budget   *rate.Limiter

	mu        sync.Mutex
	heldUntil time.Time
}

// newLimiter returns a limiter for n concurrent requests and requests per
// window. The token bucket refills (requests-burst)/window with a burst of
// a twentieth, so no sliding window ever sees more than requests, and a
// busy mailbox uses 0.95 of them.
func newLimiter(n, requests int, window time.Duration) *limiter {
	burst := max(1, requests/20)
	refill := requests - burst
	if refill <= 0 {
		refill, burst = requests, 1
	}
	return &limiter{
		inFlight: semaphore.NewWeighted(int64(n)),
		budget:   rate.NewLimiter(rate.Limit(float64(refill)/window.Seconds()), burst),
	}
}

// acquire takes an in-flight slot and a request from the budget, and waits
// out a pending Retry-After. On success the caller must call release. When
// ctx's deadline comes before the wait would end, it fails at once with a
// *waitError saying how long the wait is.
func (l *limiter) acquire(ctx context.Context) error {
	if err := l.inFlight.Acquire(ctx, 1); err != nil {
		return err
	}
	r := l.budget.Reserve()
	if !r.OK() {
		l.inFlight.Release(1)
		return errors.New("request budget cannot be met")
	}
	budgetAt := time.Now().Add(r.Delay())
	for {
		l.mu.Lock()
		until := l.heldUntil
		l.mu.Unlock()
		if budgetAt.After(until) {
			until = budgetAt
		}
		wait := time.Until(until)
		if wait <= 0 {
			return nil
		}
		deadline, ok := ctx.Deadline()
		if !ok {
			// Content streams have no deadline; don't let them sit out
			// a long Retry-After either.
			deadline = time.Now().Add(DefaultTimeout)
		}
		if deadline.Before(until) {
			r.Cancel()
			l.inFlight.Release(1)
			return &waitError{wait: wait}
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			r.Cancel()
			l.inFlight.Release(1)
			return ctx.Err()
		case <-t.C:
		}
	}
}

// waitError says that the mailbox's limits don't allow a request before the
// caller's deadline.
type waitError struct{ wait time.Duration }

func (e *waitError) Error() string {
	return "mailbox limit: next request possible in " + e.wait.Round(time.Millisecond).String()
}

func (l *limiter) release() { l.inFlight.Release(1) }

// hold stops requests until d from now (or later, if already held longer).
func (l *limiter) hold(d time.Duration) {
	until := time.Now().Add(d)
	l.mu.Lock()
	if until.After(l.heldUntil) {
		l.heldUntil = until
	}
	l.mu.Unlock()
}

// limitedTransport is the bottom of the middleware pipeline: every HTTP
// attempt of a mailbox passes its limiter here, and the slot is kept until
// the response body is closed.
type limitedTransport struct {
	base    http.RoundTripper
	lim     *limiter
	metrics *metrics
	log     *slog.Logger
	mailbox string
}

func (t *limitedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if err := t.lim.acquire(req.Context()); err != nil {
		if req.Body != nil {
			req.Body.Close()
		}
		return nil, err
	}
	resp, err := t.base.RoundTrip(req)
	if err != nil {
		t.lim.release()
		t.metrics.request("error")
		return nil, err
	}
	t.metrics.request(strconv.Itoa(resp.StatusCode))
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		d := parseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
		if resp.StatusCode == http.StatusTooManyRequests {
			t.metrics.throttle()
		}
		if d > 0 {
			t.lim.hold(d)
			t.log.Debug("graph asked to wait", "mailbox", t.mailbox, "status", resp.StatusCode, "retry_after", d)
		}
	}
	resp.Body = &releasingBody{ReadCloser: resp.Body, release: t.lim.release}
	return resp, nil
}

// releasingBody gives the in-flight slot back on Close.
type releasingBody struct {
	io.ReadCloser
	once    sync.Once
	release func()
}

func (b *releasingBody) Close() error {
	err := b.ReadCloser.Close()
	b.once.Do(b.release)
	return err
}

// parseRetryAfter reads delay-seconds or an HTTP date; 0 when absent or bad.
func parseRetryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil {
		if s < 0 {
			return 0
		}
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// metrics counts Graph requests; a nil *metrics counts nothing.
type metrics struct {
	requests  *prometheus.CounterVec
	throttled prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	if reg == nil {
		return nil, nil
	}
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "mailgate_graph_requests_total",
			Help: "Microsoft Graph HTTP requests by response status (\"error\" when no response arrived).",
		}, []string{"status"}),
		throttled: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "mailgate_graph_throttled_total",
			Help: "Microsoft Graph responses 429 Too Many Requests.",
		}),
	}
	// A second Client on the same registry shares the counters.
	if err := reg.Register(m.requests); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("graph: register metrics: %w", err)
		}
		existing, ok := are.ExistingCollector.(*prometheus.CounterVec)
		if !ok {
			return nil, fmt.Errorf("graph: register metrics: %w", err)
		}
		m.requests = existing
	}
	if err := reg.Register(m.throttled); err != nil {
		var are prometheus.AlreadyRegisteredError
		if !errors.As(err, &are) {
			return nil, fmt.Errorf("graph: register metrics: %w", err)
		}
		existing, ok := are.ExistingCollector.(prometheus.Counter)
		if !ok {
			return nil, fmt.Errorf("graph: register metrics: %w", err)
		}
		m.throttled = existing
	}
	return m, nil
}

func (m *metrics) request(status string) {
	if m != nil {
		m.requests.WithLabelValues(status).Inc()
	}
}

func (m *metrics) throttle() {
	if m != nil {
		m.throttled.Inc()
	}
}
