package graphtest

import (
	"bytes"
	"compress/gzip"
	"net/http"
	"net/url"
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
	out.Throttled = s.lim.counters.Throttled
	for k, v := range s.lim.counters.Requests {
		m := map[int]int{}
		for st, n := range v {
			m[st] = n
		}
		out.Requests[k] = m
	}
	for k, v := range s.lim.counters.MaxInFlight {
		out.MaxInFlight[k] = v
	}
	for k, v := range s.lim.counters.Log {
		out.Log[k] = append([]RequestRecord(nil), v...)
	}
	return out
}

// ResetCounters clears the statistics.
func (s *Server) ResetCounters() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.lim.counters = newCounters()
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
	if s.lim.counters.Requests[ep] == nil {
		s.lim.counters.Requests[ep] = map[int]int{}
	}
	s.lim.counters.Requests[ep][c.w.status]++
	if c.mailbox != "" {
		var ra time.Duration
		if v := c.w.Header().Get("Retry-After"); v != "" {
			if d, err := time.ParseDuration(v + "s"); err == nil {
				ra = d
			}
		}
		log := append(s.lim.counters.Log[c.mailbox], RequestRecord{
			At: c.start, Endpoint: ep, Status: c.w.status, RetryAfter: ra, ClientID: c.clientID,
		})
		if len(log) > maxLogPerMailbox { // bound memory in a long-running `mailgate sim`
			log = append(log[:0:0], log[len(log)-maxLogPerMailbox/2:]...)
		}
		s.lim.counters.Log[c.mailbox] = log
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
