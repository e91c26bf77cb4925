package graphtest

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// maxLogPerMailbox bounds Counters.Log; the older half is dropped when full.
const maxLogPerMailbox = 20000

// Counters are request statistics, for assertions.
type Counters struct {
	// Requests counts requests by endpoint name (e.g. "messages.delta",
	// "attachment.value", "token") and HTTP status.
	Requests map[string]map[int]int
	// Throttled counts 429 answers from the throttle (not injected faults).
	Throttled int
	// MaxInFlight is the highest number of concurrent Graph requests seen
	// per mailbox address.
	MaxInFlight map[string]int
	// Log lists the Graph requests per mailbox address in arrival order
	// (the most recent 10,000 to 20,000).
	Log map[string][]RequestRecord
}

// RequestRecord is one Graph request against a mailbox.
type RequestRecord struct {
	At         time.Time // arrival
	Endpoint   string
	Status     int
	RetryAfter time.Duration // the Retry-After sent, if any
	ClientID   string
}

// Total is the number of requests to an endpoint with any status.
func (c Counters) Total(endpoint string) int {
	n := 0
	for _, v := range c.Requests[endpoint] {
		n += v
	}
	return n
}

func newCounters() Counters {
	return Counters{Requests: map[string]map[int]int{}, MaxInFlight: map[string]int{}, Log: map[string][]RequestRecord{}}
}

// Counters returns a copy of the statistics.
func (s *Server) Counters() Counters {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := newCounters()
	out.Throttled = s.counters.Throttled
	for k, v := range s.counters.Requests {
		m := map[int]int{}
		for st, n := range v {
			m[st] = n
		}
		out.Requests[k] = m
	}
	for k, v := range s.counters.MaxInFlight {
		out.MaxInFlight[k] = v
	}
	for k, v := range s.counters.Log {
		out.Log[k] = append([]RequestRecord(nil), v...)
	}
	return out
}

// ResetCounters clears the statistics.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.counters = newCounters()
}

// call is one request on its way through the server.
type call struct {
	w        *recorder
	r        *http.Request
	start    time.Time
	endpoint string
	mailbox  string // address, once resolved
	clientID string
	graph    bool // errors in Graph's shape (else the identity platform's)
	dupDelta bool
}

// recorder remembers the status and Retry-After for the counters, and
// counts the request the moment its status is set: before a byte of the
// answer leaves, so a client that has an answer always finds its request
// counted (a count taken after answering spilled into the next test).
type recorder struct {
	http.ResponseWriter
	status   int
	wrote    bool
	buf      *bytes.Buffer // set while a Truncate/Malformed fault buffers the body
	onStatus func()        // counts the request; called once, before the answer
}

func (rw *recorder) WriteHeader(code int) {
	if rw.wrote {
		return
	}
	rw.status, rw.wrote = code, true
	if rw.onStatus != nil {
		rw.onStatus()
	}
	if rw.buf != nil {
		return
	}
	rw.ResponseWriter.WriteHeader(code)
}

func (rw *recorder) Write(p []byte) (int, error) {
	if !rw.wrote {
		rw.WriteHeader(http.StatusOK)
	}
	if rw.buf != nil {
		return rw.buf.Write(p)
	}
	return rw.ResponseWriter.Write(p)
}

func (rw *recorder) Flush() {
	if f, ok := rw.ResponseWriter.(http.Flusher); ok && rw.buf == nil {
		f.Flush()
	}
}

// Handler serves the identity platform, Graph and the /_sim/ control API.
// Links (next, delta) are built from the request's Host.
func (s *Server) Handler() http.Handler { return http.HandlerFunc(s.serve) }

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	c := &call{w: &recorder{ResponseWriter: w, status: http.StatusOK}, r: r, start: s.clock()}
	var once sync.Once
	count := func() { once.Do(func() { s.record(c) }) }
	c.w.onStatus = count
	// A request never answered (the client gave up during a Delay) or
	// answered with an empty 200 is counted when its handler returns,
	// which is still before net/http sends the empty answer.
	defer count()
	segs := splitPath(r.URL.EscapedPath())
	c.graph = len(segs) > 0 && (segs[0] == "v1.0" || segs[0] == "beta")
	if strings.EqualFold(r.Header.Get("Content-Encoding"), "gzip") && r.Body != nil {
		zr, err := gzip.NewReader(r.Body)
		if err != nil {
			c.endpoint = "bad_request"
			graphError(c.w, r, http.StatusBadRequest, "BadRequest", "The request body is not valid gzip.")
			return
		}
		defer zr.Close()
		r.Body = zr
		r.Header.Del("Content-Encoding")
	}
	switch {
	case c.graph:
		s.serveGraph(c, segs[1:])
	case len(segs) > 0 && segs[0] == "_sim":
		s.serveControl(c, segs[1:])
	default:
		s.serveIdentity(c, segs)
	}
}

func (s *Server) clock() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now()
}

func (s *Server) record(c *call) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ep := c.endpoint
	if ep == "" {
		ep = "unknown"
	}
	if s.counters.Requests[ep] == nil {
		s.counters.Requests[ep] = map[int]int{}
	}
	s.counters.Requests[ep][c.w.status]++
	if c.mailbox != "" {
		var ra time.Duration
		if v := c.w.Header().Get("Retry-After"); v != "" {
			if d, err := time.ParseDuration(v + "s"); err == nil {
				ra = d
			}
		}
		log := append(s.counters.Log[c.mailbox], RequestRecord{
			At: c.start, Endpoint: ep, Status: c.w.status, RetryAfter: ra, ClientID: c.clientID,
		})
		if len(log) > maxLogPerMailbox { // bound memory in a long-running `mailgate sim`
			log = append(log[:0:0], log[len(log)-maxLogPerMailbox/2:]...)
		}
		s.counters.Log[c.mailbox] = log
	}
}

// splitPath splits a raw (escaped) path and unescapes each segment, so
// %2F inside an id stays inside the segment.
func splitPath(raw string) []string {
	var out []string
	for _, p := range strings.Split(strings.Trim(raw, "/"), "/") {
		if p == "" {
			continue
		}
		if u, err := url.PathUnescape(p); err == nil {
			p = u
		}
		out = append(out, p)
	}
	return out
}

// matchFault finds the first fault for the request and uses one of its hits.
func (s *Server) matchFault(r *http.Request) *Fault {
	grant := tokenGrant(r) // read before the lock: it reads the body
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if f.PathContains != "" && !strings.Contains(r.URL.Path, f.PathContains) && !strings.Contains(r.URL.RequestURI(), f.PathContains) {
			continue
		}
		if f.Grant != "" && f.Grant != grant {
			continue
		}
		hit := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return &hit
	}
	return nil
}

// tokenGrant is the grant_type of a token request, or "". The parsed form
// stays on r for the token endpoint.
func tokenGrant(r *http.Request) string {
	if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/oauth2/v2.0/token") {
		return ""
	}
	if err := r.ParseForm(); err != nil {
		return ""
	}
	return r.PostForm.Get("grant_type")
}

// applyFault applies an injected fault. It reports whether the request is
// answered; if not, finish must run after the handler.
func (s *Server) applyFault(c *call) (answered bool, finish func()) {
	f := s.matchFault(c.r)
	if f == nil {
		return false, func() {}
	}
	if f.Delay > 0 {
		s.mu.Lock()
		hold := s.onHold
		s.mu.Unlock()
		if hold != nil {
			hold()
		}
		t := time.NewTimer(f.Delay)
		select {
		case <-t.C:
		case <-c.r.Context().Done():
			t.Stop()
			c.w.status = 499 // client closed request
			return true, nil
		}
	}
	if f.Status == 0 && f.AADSTS != 0 && !c.graph {
		f.Status = http.StatusBadRequest
	}
	if f.Status != 0 {
		if f.RetryAfter > 0 {
			c.w.Header().Set("Retry-After", retryAfterSeconds(f.RetryAfter))
		}
		if c.graph {
			code, msg := faultCode(f.Status)
			if f.Code != "" {
				code = f.Code
			}
			graphError(c.w, c.r, f.Status, code, msg)
		} else if f.AADSTS != 0 {
			desc := firstNonEmpty(f.Description, "The request was refused. Send a new interactive authorization request for this user and resource.")
			aadErrorSub(c.w, f.Status, firstNonEmpty(f.Code, "invalid_grant"), f.AADSTS, f.Suberror, desc)
		} else {
			aadError(c.w, f.Status, firstNonEmpty(f.Code, "temporarily_unavailable"), 90033, "A transient error has occurred. Please try again.")
		}
		return true, nil
	}
	c.dupDelta = f.DuplicateDelta
	if !f.Truncate && !f.Malformed {
		return false, func() {}
	}
	c.w.buf = &bytes.Buffer{}
	return false, func() {
		body := c.w.buf.Bytes()
		c.w.buf = nil
		half := body[:len(body)/2]
		if f.Truncate {
			c.w.Header().Set("Content-Length", strconv.Itoa(len(body)))
			c.w.ResponseWriter.WriteHeader(c.w.status)
			_, _ = c.w.ResponseWriter.Write(half)
			c.w.Flush()
			panic(http.ErrAbortHandler)
		}
		c.w.Header().Set("Content-Length", strconv.Itoa(len(half)))
		c.w.ResponseWriter.WriteHeader(c.w.status)
		_, _ = c.w.ResponseWriter.Write(half)
	}
}

func faultCode(status int) (string, string) {
	switch status {
	case http.StatusTooManyRequests:
		return "TooManyRequests", "Too many requests. Please retry after the interval given in the Retry-After header."
	case http.StatusServiceUnavailable:
		return "ServiceNotAvailable", "The service is temporarily unavailable. Please retry later."
	case http.StatusGatewayTimeout:
		return "GatewayTimeout", "The gateway timed out waiting for the backend."
	case http.StatusBadGateway:
		return "BadGateway", "Bad gateway."
	case http.StatusUnauthorized:
		return "InvalidAuthenticationToken", "Access token has expired or is not yet valid."
	case http.StatusForbidden:
		return "ErrorAccessDenied", "Access is denied. Check credentials and try again."
	case http.StatusNotFound:
		return "ErrorItemNotFound", "The specified object was not found in the store."
	case http.StatusGone:
		return "SyncStateNotFound", "The sync state generation is no longer valid. Please restart the synchronization."
	}
	return "UnknownError", http.StatusText(status)
}

// limiter is the throttle state of one app and mailbox.
type limiter struct {
	inFlight int
	times    []time.Time
}

// acquire takes a concurrency slot and a request from the budget, or
// answers how long to wait.
func (s *Server) acquire(clientID, mailboxID, address string) (release func(), retry time.Duration, code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := clientID + "|" + mailboxID
	l := s.limits[key]
	if l == nil {
		l = &limiter{}
		s.limits[key] = l
	}
	now := s.now()
	cut := now.Add(-s.throttle.Window)
	i := 0
	for i < len(l.times) && !l.times[i].After(cut) {
		i++
	}
	l.times = l.times[i:]
	if l.inFlight >= s.throttle.MaxConcurrent {
		s.counters.Throttled++
		return nil, time.Second, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
	}
	if len(l.times) >= s.throttle.Requests {
		s.counters.Throttled++
		return nil, l.times[0].Add(s.throttle.Window).Sub(now), "ApplicationThrottled", "Application is over its MailboxRequestRate limit."
	}
	l.times = append(l.times, now)
	l.inFlight++
	s.inFlight[address]++
	if s.inFlight[address] > s.counters.MaxInFlight[address] {
		s.counters.MaxInFlight[address] = s.inFlight[address]
	}
	return func() {
		s.mu.Lock()
		l.inFlight--
		s.inFlight[address]--
		released := s.onRelease
		s.mu.Unlock()
		if released != nil {
			released()
		}
	}, 0, "", ""
}
