package graphtest

import (
	"bytes"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Fault is an injected failure for requests whose method and path match.
type Fault struct {
	Method       string // empty = any
	PathContains string // matched against the decoded and the raw request URI
	Status       int    // answer with this status and a service-shaped error body
	Code         string // error code for Status (default by status, e.g. 410 SyncStateNotFound)
	RetryAfter   time.Duration
	Count        int           // how many requests it hits; 0 = until ClearFaults
	Delay        time.Duration // wait before answering (honours the request context)
	Truncate     bool          // send half the body then close the connection
	Malformed    bool          // send half the body as a complete response (invalid JSON)
	// DuplicateDelta repeats the first message of a delta page at the end of
	// the page, as the real service sometimes does.
	DuplicateDelta bool
	// Token shapes an identity platform refusal; Graph requests ignore it.
	Token TokenFault
}

// TokenFault is the identity platform part of a Fault.
type TokenFault struct {
	// Grant limits the fault to token requests of this grant_type
	// ("refresh_token", "client_credentials", "authorization_code").
	Grant string
	// AADSTS makes an identity platform answer (Status, default 400) carry
	// this AADSTS code, known to Microsoft's error reference or not, in the
	// platform's documented error body: Code as the OAuth error (default
	// invalid_grant), error_description "AADSTS<n>: <Description>" with trace
	// and correlation ids, error_codes, Suberror when set, trace_id,
	// correlation_id and timestamp. Without it an identity answer is a
	// transient AADSTS90033.
	AADSTS      int
	Suberror    string
	Description string
}

// faultSet is the injected faults, first match applies.
type faultSet struct {
	list []*Fault
}

// Inject adds a fault; the first matching fault applies to a request.
func (s *Server) Inject(f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.list = append(s.faults.list, &f)
}

// ClearFaults removes all faults.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.faults.list = nil
}

// matchFault finds the first fault for the request and uses one of its hits.
func (s *Server) matchFault(r *http.Request) *Fault {
	grant := tokenGrant(r) // read before the lock: it reads the body
	s.mu.Lock()
	defer s.mu.Unlock()
	for i, f := range s.faults.list {
		if f.Method != "" && !strings.EqualFold(f.Method, r.Method) {
			continue
		}
		if f.PathContains != "" && !strings.Contains(r.URL.Path, f.PathContains) && !strings.Contains(r.URL.RequestURI(), f.PathContains) {
			continue
		}
		if f.Token.Grant != "" && f.Token.Grant != grant {
			continue
		}
		hit := *f
		if f.Count > 0 {
			f.Count--
			if f.Count == 0 {
				s.faults.list = append(s.faults.list[:i:i], s.faults.list[i+1:]...)
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
		hold := s.hooks.onHold
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
	if f.Status == 0 && f.Token.AADSTS != 0 && !c.graph {
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
		} else if f.Token.AADSTS != 0 {
			desc := firstNonEmpty(f.Token.Description, "The request was refused. Send a new interactive authorization request for this user and resource.")
			aadErrorSub(c.w, f.Status, firstNonEmpty(f.Code, "invalid_grant"), f.Token.AADSTS, f.Token.Suberror, desc)
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
