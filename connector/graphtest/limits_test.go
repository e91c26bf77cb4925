package graphtest

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeClock is a settable clock safe to read from handlers.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *fakeClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestThrottleConcurrency(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	held, released := make(chan struct{}, 4), make(chan struct{}, 8)
	s.mu.Lock()
	s.hooks.onHold = func() { held <- struct{}{} }
	s.hooks.onRelease = func() { released <- struct{}{} }
	s.mu.Unlock()
	s.Inject(Fault{PathContains: "/messages", Delay: time.Minute, Count: 4})
	path := "/v1.0/users/" + DefaultMailbox + "/messages"

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			callCtx(ctx, t, s, "GET", path, access, nil, nil)
		}()
	}
	for range 4 {
		<-held
	}
	a := do(t, s, "GET", path, access, nil, nil)
	cancel()
	wg.Wait()
	// The clients gave up; the server gives the slots back when it notices,
	// which may be after they returned.
	for range 4 {
		<-released
	}
	wantGraphError(t, a, http.StatusTooManyRequests, "ApplicationThrottled")
	if !strings.Contains(string(a.body), "MailboxConcurrency") || a.header.Get("Retry-After") == "" {
		t.Errorf("want MailboxConcurrency with Retry-After: %v %s", a.header, a.body)
	}
	c := s.Counters()
	if c.MaxInFlight[DefaultMailbox] != 4 || c.Throttled != 1 {
		t.Errorf("max in flight %d, throttled %d", c.MaxInFlight[DefaultMailbox], c.Throttled)
	}
	// Another app on the same mailbox has its own slots.
	if a := do(t, s, "GET", path, appToken(t, s, DefaultClientID, DefaultClientSecret), nil, nil); a.status != 200 {
		t.Errorf("after release: %d", a.status)
	}
}

func TestThrottleBudget(t *testing.T) {
	s := NewServer()
	defer s.Close()
	clock := &fakeClock{t: time.Date(2026, 11, 23, 12, 0, 0, 0, time.UTC)}
	s.SetNow(clock.now)
	access, _ := userToken(t, s, DefaultUser)
	s.SetThrottle(Throttle{Requests: 3, Window: time.Minute})
	path := "/v1.0/users/" + DefaultMailbox + "/mailFolders/inbox"
	steps := []struct {
		name       string
		advance    time.Duration
		status     int
		retryAfter string
	}{
		{name: "1", status: 200},
		{name: "2", advance: 10 * time.Second, status: 200},
		{name: "3", advance: 10 * time.Second, status: 200},
		{name: "budget exhausted", status: 429, retryAfter: "40"},
		{name: "still exhausted", advance: 30 * time.Second, status: 429, retryAfter: "10"},
		{name: "first request left the window", advance: 10 * time.Second, status: 200},
		{name: "exhausted again", status: 429, retryAfter: "10"},
	}
	for _, st := range steps {
		clock.add(st.advance)
		a := do(t, s, "GET", path, access, nil, nil)
		if a.status != st.status || a.header.Get("Retry-After") != st.retryAfter {
			t.Fatalf("%s: %d Retry-After %q, want %d %q: %s", st.name, a.status, a.header.Get("Retry-After"), st.status, st.retryAfter, truncate(a.body))
		}
		if st.status == 429 {
			wantGraphError(t, a, 429, "ApplicationThrottled")
		}
	}
	log := s.Counters().Log[DefaultMailbox]
	if len(log) != len(steps) || log[3].Status != 429 || log[3].RetryAfter != 40*time.Second || log[3].ClientID != DefaultClientID {
		t.Errorf("log %+v", log)
	}
}

func TestFaults(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "x"}); err != nil {
		t.Fatal(err)
	}
	path := "/v1.0/users/" + DefaultMailbox + "/messages"
	tests := []struct {
		name  string
		fault Fault
		path  string
		check func(t *testing.T, a answer)
	}{
		{name: "429 storm with Retry-After", fault: Fault{Status: 429, RetryAfter: 2 * time.Second, Count: 1, PathContains: "/messages"},
			check: func(t *testing.T, a answer) {
				wantGraphError(t, a, 429, "TooManyRequests")
				if a.header.Get("Retry-After") != "2" {
					t.Errorf("Retry-After %q", a.header.Get("Retry-After"))
				}
			}},
		{name: "503", fault: Fault{Status: 503, Count: 1, Method: "GET"}, check: func(t *testing.T, a answer) { wantGraphError(t, a, 503, "ServiceNotAvailable") }},
		{name: "504", fault: Fault{Status: 504, Count: 1}, check: func(t *testing.T, a answer) { wantGraphError(t, a, 504, "GatewayTimeout") }},
		{name: "410 with a chosen code", fault: Fault{Status: 410, Code: "ResyncRequired", Count: 1}, check: func(t *testing.T, a answer) { wantGraphError(t, a, 410, "ResyncRequired") }},
		{name: "truncated body", fault: Fault{Truncate: true, Count: 1}, check: func(t *testing.T, a answer) {
			if a.status >= 0 {
				t.Errorf("want a read error, got %d %d bytes", a.status, len(a.body))
			}
		}},
		{name: "malformed JSON", fault: Fault{Malformed: true, Count: 1}, check: func(t *testing.T, a answer) {
			var v any
			if a.status != 200 || json.Unmarshal(a.body, &v) == nil {
				t.Errorf("want 200 with invalid JSON: %d %s", a.status, truncate(a.body))
			}
		}},
		{name: "token endpoint 503 in identity shape", fault: Fault{Status: 503, Count: 1, PathContains: "/oauth2/v2.0/token"}, path: "token",
			check: func(t *testing.T, a answer) {
				var body map[string]any
				_ = json.Unmarshal(a.body, &body)
				wantTokenError(t, a.status, body, 503, "temporarily_unavailable", 90033)
			}},
		{name: "fault used up", fault: Fault{Status: 503, Count: 1, PathContains: "/nothing-matches"}, check: func(t *testing.T, a answer) {
			if a.status != 200 {
				t.Errorf("%d", a.status)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.ClearFaults()
			s.Inject(tt.fault)
			var a answer
			if tt.path == "token" {
				a = do(t, s, "POST", "/organizations/oauth2/v2.0/token", "", strings.NewReader(url.Values{"grant_type": {"client_credentials"}}.Encode()),
					map[string]string{"Content-Type": "application/x-www-form-urlencoded"})
			} else {
				a = do(t, s, "GET", path, access, nil, nil)
			}
			tt.check(t, a)
			if a := do(t, s, "GET", path, access, nil, nil); tt.fault.Count == 1 && a.status != 200 {
				t.Errorf("fault with Count 1 hit twice: %d", a.status)
			}
		})
	}
}

func TestDelayHonoursContext(t *testing.T) {
	s := NewServer()
	access, _ := userToken(t, s, DefaultUser)
	s.Inject(Fault{Delay: time.Hour})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	a := callCtx(ctx, t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages", access, nil, nil)
	if a.status != -1 {
		t.Fatalf("want a client timeout, got %d", a.status)
	}
	start := time.Now()
	s.Close() // waits for handlers: a delay that ignored the context would hold it for an hour
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Close took %v", d)
	}
}

func TestErrorBodies(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, _ := userToken(t, s, DefaultUser)
	mb := "/v1.0/users/" + DefaultMailbox
	id, _ := s.Deliver(DefaultMailbox, Mail{Subject: "x"})
	tests := []struct {
		name   string
		method string
		path   string
		body   []byte
		hdr    map[string]string
		status int
		code   string
	}{
		{name: "unknown route", method: "GET", path: "/v1.0/nothing", status: 400, code: "BadRequest"},
		{name: "no token", method: "GET", path: mb + "/messages", status: 401, code: "InvalidAuthenticationToken"},
		{name: "bad gzip", method: "PATCH", path: mb + "/messages/" + url.PathEscape(id), body: []byte("not gzip"), hdr: map[string]string{"Content-Encoding": "gzip"}, status: 400, code: "BadRequest"},
		{name: "move without destination", method: "POST", path: mb + "/messages/" + url.PathEscape(id) + "/move", body: []byte(`{}`), status: 400, code: "ErrorInvalidRequest"},
		{name: "move to unknown folder", method: "POST", path: mb + "/messages/" + url.PathEscape(id) + "/move", body: []byte(`{"destinationId":"nope"}`), status: 404, code: "ErrorItemNotFound"},
		{name: "bad filter", method: "GET", path: mb + "/messages?$filter=" + url.QueryEscape("subject eq 'x'"), status: 400, code: "ErrorInvalidUrlQueryFilter"},
		{name: "mailbox-wide delta", method: "GET", path: mb + "/messages/delta", status: 400, code: "BadRequest"},
		{name: "unknown attachment", method: "GET", path: mb + "/messages/" + url.PathEscape(id) + "/attachments/AAMkAD1%3D", status: 404, code: "ErrorItemNotFound"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tok := access
			if tt.code == "InvalidAuthenticationToken" {
				tok = ""
			}
			var body *bytes.Reader
			if tt.body != nil {
				body = bytes.NewReader(tt.body)
			}
			var a answer
			if body != nil {
				a = do(t, s, tt.method, tt.path, tok, body, tt.hdr)
			} else {
				a = do(t, s, tt.method, tt.path, tok, nil, tt.hdr)
			}
			wantGraphError(t, a, tt.status, tt.code)
		})
	}
}

func TestControlAPI(t *testing.T) {
	s := NewServer()
	defer s.Close()
	access, rt := userToken(t, s, DefaultUser)
	msg := map[string]any{"from": "lieferant@example.com", "subject": "via API", "folder": "inbox",
		"attachments": []map[string]any{{"name": "a.pdf", "contentType": "application/pdf", "content": []byte("%PDF-1.4")}}}
	a := do(t, s, "POST", "/_sim/mailboxes/"+url.PathEscape(DefaultMailbox)+"/messages", "", jsonBody(msg), nil)
	if a.status != 201 {
		t.Fatalf("deliver: %d %s", a.status, a.body)
	}
	id := a.json(t)["id"].(string)
	att := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/messages/"+url.PathEscape(id)+"/attachments", access, nil, nil).json(t)["value"].([]any)
	if len(att) != 1 || att[0].(map[string]any)["size"].(float64) != 8 {
		t.Errorf("attachments %v", att)
	}
	for _, p := range []string{"/_sim/mailboxes", "/_sim/users", "/_sim/counters"} {
		if a := do(t, s, "GET", p, "", nil, nil); a.status != 200 || len(a.json(t)) == 0 {
			t.Errorf("%s: %d", p, a.status)
		}
	}
	users := do(t, s, "GET", "/_sim/users", "", nil, nil)
	if !strings.Contains(string(users.body), DefaultGroupName) {
		t.Errorf("users without groups: %s", users.body)
	}
	if a := do(t, s, "POST", "/_sim/faults", "", jsonBody(map[string]any{"status": 503, "count": 1, "pathContains": "/mailFolders"}), nil); a.status != 204 {
		t.Fatalf("fault: %d", a.status)
	}
	if a := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/mailFolders", access, nil, nil); a.status != 503 {
		t.Errorf("injected fault: %d", a.status)
	}
	do(t, s, "POST", "/_sim/faults", "", jsonBody(map[string]any{"status": 503, "pathContains": "/mailFolders"}), nil)
	do(t, s, "DELETE", "/_sim/faults", "", nil, nil)
	if a := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/mailFolders", access, nil, nil); a.status != 200 {
		t.Errorf("after clear: %d", a.status)
	}
	d := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/mailFolders/inbox/messages/delta", access, nil, nil).json(t)
	if a := do(t, s, "POST", "/_sim/mailboxes/"+DefaultMailbox+"/reset-delta", "", nil, nil); a.status != 204 {
		t.Fatalf("reset: %d", a.status)
	}
	wantGraphError(t, do(t, s, "GET", d["@odata.deltaLink"].(string), access, nil, nil), 410, "SyncStateNotFound")
	if a := do(t, s, "POST", "/_sim/mailboxes/"+DefaultMailbox+"/messages/"+url.PathEscape(id)+"/move", "", jsonBody(map[string]string{"folder": "archive"}), nil); a.status != 200 {
		t.Errorf("move: %d %s", a.status, a.body)
	}
	if got := s.Messages(DefaultMailbox, "archive"); len(got) != 1 || got[0].Subject != "via API" {
		t.Errorf("archive %+v", got)
	}
	if a := do(t, s, "POST", "/_sim/throttle", "", jsonBody(map[string]any{"requests": 1, "windowSeconds": 60}), nil); a.status != 204 {
		t.Errorf("throttle: %d", a.status)
	}
	do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/mailFolders", access, nil, nil)
	if a := do(t, s, "GET", "/v1.0/users/"+DefaultMailbox+"/mailFolders", access, nil, nil); a.status != 429 {
		t.Errorf("throttle not applied: %d", a.status)
	}
	if a := do(t, s, "POST", "/_sim/users/"+DefaultUser+"/revoke", "", nil, nil); a.status != 204 {
		t.Fatalf("revoke: %d", a.status)
	}
	st, body := tokenCall(t, s, "organizations", url.Values{"grant_type": {"refresh_token"}, "client_id": {DefaultClientID},
		"client_secret": {DefaultClientSecret}, "refresh_token": {rt}})
	wantTokenError(t, st, body, 400, "invalid_grant", 50173)
	c := s.Counters()
	if c.Requests["messages.delta"][410] != 1 || c.Total("token") < 2 {
		t.Errorf("counters %v", c.Requests)
	}
}

func TestUnstartedHandlerUsesRequestHost(t *testing.T) {
	s := NewUnstartedServer()
	if s.URL != "" {
		t.Fatal("unstarted server has a URL")
	}
	for i := range 12 {
		if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "m", ReceivedAt: time.Date(2026, 1, 1, 0, i, 0, 0, time.UTC)}); err != nil {
			t.Fatal(err)
		}
	}
	tok := s.signJWT(map[string]any{"aud": graphResource, "exp": time.Now().Add(time.Hour).Unix(), "tid": DefaultTenantID,
		"oid": DefaultUserID, "scp": "Mail.ReadWrite.Shared", "appid": DefaultClientID, "idtyp": "user"})
	req, _ := http.NewRequest("GET", "http://sim.internal:9999/v1.0/users/"+DefaultMailbox+"/mailFolders/inbox/messages/delta", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	rec := httptest.NewRecorder()
	s.Handler().ServeHTTP(rec, req)
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("%d %s", rec.Code, rec.Body.String())
	}
	if next, _ := body["@odata.nextLink"].(string); !strings.HasPrefix(next, "http://sim.internal:9999/v1.0/users/") {
		t.Errorf("nextLink %q", next)
	}
}
