package graph

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/connector"
)

// These tests run against small httptest handlers: they pin what goes over
// the wire and how answers are classified. sim_test.go runs the same client
// against the Graph simulator.

func newFakeClient(t *testing.T, h http.Handler, cfg Config) *Client {
	t.Helper()
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	cfg.BaseURL = srv.URL + "/v1.0"
	cfg.HTTPClient = srv.Client()
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func staticToken(context.Context) (string, error) { return "tok", nil }

func TestNewBaseURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"https://graph.microsoft.com/v1.0", true},
		{"http://127.0.0.1:8080/v1.0", true},
		{"http://localhost:8080/v1.0", true},
		{"http://[::1]:8080/v1.0", true},
		{"http://graph.microsoft.com/v1.0", false},
		{"ftp://graph.microsoft.com/v1.0", false},
		{"", false},
		{"/v1.0", false},
	} {
		_, err := New(Config{BaseURL: tc.url})
		if (err == nil) != tc.ok {
			t.Errorf("New(%q) err = %v, want ok=%v", tc.url, err, tc.ok)
		}
	}
}

func TestDeltaRequestAndParse(t *testing.T) {
	var got *http.Request
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.Clone(context.Background())
		w.Header().Set("Content-Type", "application/json; odata.metadata=minimal")
		fmt.Fprintf(w, `{"value":[
 {"id":"m1","subject":"Rechnung","internetMessageId":"<a@x>","receivedDateTime":"2026-03-01T10:00:00Z",
  "from":{"emailAddress":{"address":"lief@x.de","name":"Lieferant"}},"hasAttachments":true,"isRead":false,
  "body":{"contentType":"html","content":"<img src=\"cid:logo\">"},"categories":["A"],"parentFolderId":"inboxid"},
 {"id":"m2","@removed":{"reason":"deleted"}},
 {"id":"m1","subject":"Rechnung v2","internetMessageId":"<a@x>"}],
 "@odata.nextLink":"http://%s/v1.0/users/x/mailFolders/inbox/messages/delta()?$skiptoken=abc"}`, r.Host)
	})
	c := newFakeClient(t, h, Config{PageSize: 7})
	mb := c.Mailbox("rech+nungen@firma.de", staticToken)
	page, err := mb.Delta(t.Context(), "inbox", "", time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	if want := "/v1.0/users/rech%2Bnungen%40firma.de/mailFolders/inbox/messages/delta()"; got.URL.EscapedPath() != want {
		t.Errorf("path = %s, want %s", got.URL.EscapedPath(), want)
	}
	q := got.URL.Query()
	if q.Get("$filter") != "receivedDateTime ge 2026-01-02T03:04:05Z" {
		t.Errorf("$filter = %q", q.Get("$filter"))
	}
	if !strings.Contains(q.Get("$select"), "internetMessageId") || !strings.Contains(q.Get("$select"), "body") {
		t.Errorf("$select = %q", q.Get("$select"))
	}
	if p := got.Header.Get("Prefer"); !strings.Contains(p, `IdType="ImmutableId"`) || !strings.Contains(p, "odata.maxpagesize=7") {
		t.Errorf("Prefer = %q", p)
	}
	if got.Header.Get("Authorization") != "Bearer tok" {
		t.Errorf("Authorization = %q", got.Header.Get("Authorization"))
	}
	if page.NextLink == "" || page.DeltaLink != "" {
		t.Errorf("links = %q / %q", page.NextLink, page.DeltaLink)
	}
	if len(page.Messages) != 2 {
		t.Fatalf("messages = %+v, want 2 (duplicate folded)", page.Messages)
	}
	m1, m2 := page.Messages[0], page.Messages[1]
	if m1.ID != "m1" || m1.Subject != "Rechnung v2" || m1.Removed {
		t.Errorf("m1 = %+v", m1)
	}
	if m2.ID != "m2" || !m2.Removed {
		t.Errorf("m2 = %+v", m2)
	}

	// The next link is followed verbatim, without query options of our own.
	if _, err := mb.Delta(t.Context(), "inbox", page.NextLink, time.Time{}); err != nil {
		t.Fatal(err)
	}
	if got.URL.RawQuery != "$skiptoken=abc" && got.URL.RawQuery != "%24skiptoken=abc" {
		t.Errorf("followed link query = %q", got.URL.RawQuery)
	}
}

func TestMessageFields(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"value":[
 {"id":"m1","subject":"Rechnung","internetMessageId":"<a@x>","receivedDateTime":"2026-03-01T10:00:00Z",
  "from":{"emailAddress":{"address":"lief@x.de","name":"Lieferant"}},"hasAttachments":true,"isRead":true,
  "body":{"contentType":"html","content":"<p>x<img src=\"cid:logo@x\" width=1><img src='CID:Logo@x'><a href=\"cid:scan@y\">s</a></p>"},"categories":["A","B"],"parentFolderId":"inboxid"},
 {"id":"m3","body":{"contentType":"text","content":"plain"}}],
 "@odata.deltaLink":"`+"http://"+r.Host+`/v1.0/d?$deltatoken=1"}`)
	})
	c := newFakeClient(t, h, Config{})
	page, err := c.Mailbox("a@b", staticToken).Delta(t.Context(), "inbox", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	want := connector.Message{
		ID: "m1", InternetMessageID: "<a@x>", Subject: "Rechnung", From: "lief@x.de", FromName: "Lieferant",
		ReceivedAt: time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC), HasAttachments: true, IsRead: true,
		BodyRefs: "cid:logo@x CID:Logo@x cid:scan@y", Categories: []string{"A", "B"}, ParentFolderID: "inboxid",
	}
	if fmt.Sprint(page.Messages[0]) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", page.Messages[0], want)
	}
	if page.Messages[1].BodyRefs != "" {
		t.Errorf("text body read as HTML: %q", page.Messages[1].BodyRefs)
	}
	if page.DeltaLink == "" || page.NextLink != "" {
		t.Errorf("links = %q / %q", page.NextLink, page.DeltaLink)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name       string
		status     int
		body       string
		header     string
		kind       connector.Kind
		code       string
		retryAfter time.Duration
	}{
		{"gone", 410, `{"error":{"code":"SyncStateNotFound","message":"x"}}`, "", connector.SyncReset, "SyncStateNotFound", 0},
		{"resync 400", 400, `{"error":{"code":"ResyncRequired","message":"x"}}`, "", connector.SyncReset, "ResyncRequired", 0},
		{"sync invalid", 400, `{"error":{"code":"SyncStateInvalid","message":"x"}}`, "", connector.SyncReset, "SyncStateInvalid", 0},
		{"sync folder", 404, `{"error":{"code":"ErrorSyncFolderNotFound","message":"x"}}`, "", connector.SyncReset, "ErrorSyncFolderNotFound", 0},
		{"throttled", 429, `{"error":{"code":"ApplicationThrottled","message":"x"}}`, "7", connector.Throttled, "ApplicationThrottled", 7 * time.Second},
		{"denied", 403, `{"error":{"code":"ErrorAccessDenied","message":"Access is denied."}}`, "", connector.AccessDenied, "ErrorAccessDenied", 0},
		{"unauthorized", 401, `{"error":{"code":"InvalidAuthenticationToken","message":"x"}}`, "", connector.Transient, "InvalidAuthenticationToken", 0},
		{"not found", 404, `{"error":{"code":"ErrorItemNotFound","message":"x"}}`, "", connector.NotFound, "ErrorItemNotFound", 0},
		{"unavailable", 503, `{"error":{"code":"ServiceUnavailable","message":"x"}}`, "3", connector.Transient, "ServiceUnavailable", 3 * time.Second},
		{"server error", 500, `{"error":{"code":"InternalServerError","message":"x"}}`, "", connector.Transient, "InternalServerError", 0},
		{"bad request", 400, `{"error":{"code":"ErrorInvalidIdMalformed","message":"x"}}`, "", connector.Invalid, "ErrorInvalidIdMalformed", 0},
		{"no message", 403, `{"error":{"code":"ErrorAccessDenied"}}`, "", connector.AccessDenied, "ErrorAccessDenied", 0},
		{"no body", 502, ``, "", connector.Transient, "", 0},
		{"malformed ok", 200, `{"value":[{"id":"m1"`, "", connector.Transient, "", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "application/json")
				if tc.header != "" {
					w.Header().Set("Retry-After", tc.header)
				}
				w.WriteHeader(tc.status)
				io.WriteString(w, tc.body)
			})
			c := newFakeClient(t, h, Config{})
			_, err := c.Mailbox("a@b", staticToken).Delta(t.Context(), "inbox", "", time.Time{})
			var ce *connector.Error
			if !errors.As(err, &ce) {
				t.Fatalf("err = %v (%T), want *connector.Error", err, err)
			}
			if ce.Kind != tc.kind || ce.Code != tc.code || ce.RetryAfter != tc.retryAfter {
				t.Errorf("got kind=%v code=%q retryAfter=%v, want %v %q %v (%v)", ce.Kind, ce.Code, ce.RetryAfter, tc.kind, tc.code, tc.retryAfter, err)
			}
			if !strings.HasPrefix(ce.Op, "graph: delta a@b") {
				t.Errorf("op = %q", ce.Op)
			}
			_ = err.Error() // must not panic
		})
	}
}

func TestTokenErrors(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("request sent despite token failure: %s", r.URL)
	})
	c := newFakeClient(t, h, Config{})
	consent := &connector.Error{Op: "connector: token", Kind: connector.NeedsConsent, Code: "AADSTS50173"}
	_, err := c.Mailbox("a@b", func(context.Context) (string, error) { return "", consent }).Delta(t.Context(), "inbox", "", time.Time{})
	if err != consent {
		t.Errorf("NeedsConsent not passed through unchanged: %v", err)
	}
	_, err = c.Mailbox("a@b", func(context.Context) (string, error) { return "", errors.New("dial tcp: refused") }).Delta(t.Context(), "inbox", "", time.Time{})
	if !connector.IsKind(err, connector.Transient) {
		t.Errorf("plain token error = %v, want Transient", err)
	}
}

func TestForeignLinkRefused(t *testing.T) {
	var hits atomic.Int32
	evil := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		if r.Header.Get("Authorization") != "" {
			t.Errorf("token sent to a foreign host")
		}
	}))
	defer evil.Close()
	c := newFakeClient(t, http.NotFoundHandler(), Config{})
	_, err := c.Mailbox("a@b", staticToken).Delta(t.Context(), "inbox", evil.URL+"/v1.0/users/a/delta()", time.Time{})
	if !connector.IsKind(err, connector.Invalid) {
		t.Errorf("err = %v, want Invalid", err)
	}
	if hits.Load() != 0 {
		t.Errorf("foreign host got %d requests", hits.Load())
	}
}

func TestInFlightLimit(t *testing.T) {
	const max = 3
	var cur, peak atomic.Int32
	release := make(chan struct{})
	arrived := make(chan struct{}, 100)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := cur.Add(1)
		defer cur.Add(-1)
		for {
			p := peak.Load()
			if n <= p || peak.CompareAndSwap(p, n) {
				break
			}
		}
		arrived <- struct{}{}
		<-release
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"value":[],"@odata.deltaLink":"http://`+r.Host+`/v1.0/d"}`)
	})
	c := newFakeClient(t, h, Config{MaxInFlight: max})
	var wg sync.WaitGroup
	for i := 0; i < 10; i++ {
		// Two Mailbox values of the same address share one limiter.
		mb := c.Mailbox("Shared@x", staticToken)
		if i%2 == 1 {
			mb = c.Mailbox("shared@x", staticToken)
		}
		wg.Go(func() {
			if _, err := mb.Delta(t.Context(), "inbox", "", time.Time{}); err != nil {
				t.Error(err)
			}
		})
	}
	for range max {
		<-arrived
	}
	select {
	case <-arrived:
		t.Errorf("a request beyond the limit of %d arrived", max)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	wg.Wait()
	if peak.Load() != max {
		t.Errorf("peak in flight = %d, want %d", peak.Load(), max)
	}
}

func TestRequestBudget(t *testing.T) {
	l := newLimiter(4, 40, time.Hour) // burst 2, then 38 more over the hour: one per 94.7 s
	ctx, cancel := context.WithTimeout(t.Context(), 50*time.Millisecond)
	defer cancel()
	for i := range 2 {
		if err := l.acquire(ctx); err != nil {
			t.Fatalf("acquire %d: %v", i, err)
		}
		l.release()
	}
	err := l.acquire(ctx)
	var we *waitError
	if !errors.As(err, &we) || we.wait < 90*time.Second || we.wait > 95*time.Second {
		t.Errorf("third request within the window: %v, want a wait of about 94.7s", err)
	}
	// The refused reservation was given back: nothing else changed.
	if l.budget.Tokens() > 0.01 {
		t.Errorf("tokens = %v", l.budget.Tokens())
	}
}

func TestLongHoldFailsFast(t *testing.T) {
	var hits atomic.Int32
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Retry-After", "300")
		w.WriteHeader(429)
		io.WriteString(w, `{"error":{"code":"ApplicationThrottled","message":"slow down"}}`)
	})
	c := newFakeClient(t, h, Config{})
	mb := c.Mailbox("a@b", staticToken)
	_, err := mb.Delta(t.Context(), "inbox", "", time.Time{})
	if connector.RetryAfter(err) != 300*time.Second {
		t.Fatalf("err = %v", err)
	}
	// The hold outlasts the request's deadline: Throttled at once, nothing sent.
	start := time.Now()
	_, err = mb.Attachments(t.Context(), "m1", nil)
	if !connector.IsKind(err, connector.Throttled) || connector.RetryAfter(err) < 290*time.Second {
		t.Errorf("during the hold: %v, want Throttled with ~300s", err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v, want an immediate answer", d)
	}
	if hits.Load() != 1 {
		t.Errorf("%d requests reached the server, want 1", hits.Load())
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		in   string
		want time.Duration
	}{
		{"", 0}, {"5", 5 * time.Second}, {"-1", 0}, {"x", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Second).Format(http.TimeFormat), 0},
	} {
		if got := parseRetryAfter(tc.in, now); got != tc.want {
			t.Errorf("parseRetryAfter(%q) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

func TestOpenAttachmentStreamsAndHoldsSlot(t *testing.T) {
	content := strings.Repeat("%PDF-1.7 invoice ", 1<<12)
	var paths []string
	var mu sync.Mutex
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		paths = append(paths, r.URL.EscapedPath())
		mu.Unlock()
		if strings.Contains(r.URL.Path, "missing") {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"ErrorItemNotFound","message":"The specified object was not found in the store."}}`)
			return
		}
		w.Header().Set("Content-Type", "application/pdf")
		io.WriteString(w, content)
	})
	c := newFakeClient(t, h, Config{MaxInFlight: 1})
	mb := c.Mailbox("a+b@x.de", staticToken)
	rc, err := mb.OpenAttachment(t.Context(), "AAMk/msg=", "att=1")
	if err != nil {
		t.Fatal(err)
	}
	// The only slot is held by the open stream: a second request waits.
	ctx, cancel := context.WithTimeout(t.Context(), 100*time.Millisecond)
	_, err = mb.OpenMessage(ctx, "other")
	cancel()
	if err == nil {
		t.Error("second request went out while the stream held the only slot")
	}
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if string(b) != content {
		t.Errorf("content differs: %d bytes, want %d", len(b), len(content))
	}
	if err := rc.Close(); err != nil {
		t.Fatal(err)
	}
	rc, err = mb.OpenMessage(t.Context(), "msg2")
	if err != nil {
		t.Fatalf("after Close: %v", err)
	}
	rc.Close()
	_, err = mb.OpenAttachment(t.Context(), "missing", "x")
	if !connector.IsKind(err, connector.NotFound) {
		t.Errorf("missing attachment: %v, want NotFound", err)
	}
	// The failed stream released its slot too.
	rc, err = mb.OpenMessage(t.Context(), "msg3")
	if err != nil {
		t.Fatalf("after error: %v", err)
	}
	rc.Close()
	mu.Lock()
	defer mu.Unlock()
	want := []string{
		"/v1.0/users/a%2Bb%40x.de/messages/AAMk%2Fmsg%3D/attachments/att%3D1/$value",
		"/v1.0/users/a%2Bb%40x.de/messages/msg2/$value",
	}
	for i, w := range want {
		if i >= len(paths) || paths[i] != w {
			t.Errorf("path %d = %q, want %q", i, paths[i], w)
		}
	}
}

func TestRetryAfterHoldsMailbox(t *testing.T) {
	var mu sync.Mutex
	var times []time.Time
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		times = append(times, time.Now())
		n := len(times)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		if n == 1 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(429)
			io.WriteString(w, `{"error":{"code":"ApplicationThrottled","message":"slow down"}}`)
			return
		}
		io.WriteString(w, `{"value":[],"@odata.deltaLink":"http://`+r.Host+`/v1.0/d"}`)
	})
	reg := prometheus.NewRegistry()
	c := newFakeClient(t, h, Config{Registerer: reg})
	if _, err := New(Config{BaseURL: "https://graph.example/v1.0", Registerer: reg}); err != nil {
		t.Fatalf("second client on one registry: %v", err)
	}
	mb := c.Mailbox("a@b", staticToken)
	_, err := mb.Delta(t.Context(), "inbox", "", time.Time{})
	if !connector.IsKind(err, connector.Throttled) || connector.RetryAfter(err) != time.Second {
		t.Fatalf("err = %v, want Throttled after 1s", err)
	}
	// No SDK retry: exactly one request so far.
	mu.Lock()
	if len(times) != 1 {
		t.Errorf("%d requests after a 429, want 1 (no hidden retry)", len(times))
	}
	mu.Unlock()
	// The caller retries at once; the limiter holds the request.
	if _, err := c.Mailbox("A@B", staticToken).Delta(t.Context(), "inbox", "", time.Time{}); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if gap := times[1].Sub(times[0]); gap < time.Second {
		t.Errorf("second request %v after the 429, want ≥ 1s", gap)
	}
	want := `
# HELP mailgate_graph_requests_total Microsoft Graph HTTP requests by response status ("error" when no response arrived).
# TYPE mailgate_graph_requests_total counter
mailgate_graph_requests_total{status="200"} 1
mailgate_graph_requests_total{status="429"} 1
# HELP mailgate_graph_throttled_total Microsoft Graph responses 429 Too Many Requests.
# TYPE mailgate_graph_throttled_total counter
mailgate_graph_throttled_total 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestAttachments(t *testing.T) {
	var mu sync.Mutex
	var reqs []string
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.URL.EscapedPath()+"?"+r.URL.Query().Get("$select"))
		mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case strings.HasSuffix(r.URL.Path, "/attachments"):
			io.WriteString(w, `{"value":[
 {"@odata.type":"#microsoft.graph.fileAttachment","id":"small","name":"logo.png","contentType":"image/png","size":3,"isInline":true},
 {"@odata.type":"#microsoft.graph.fileAttachment","id":"inv","name":"RE-2.pdf","contentType":"application/pdf","size":3000,"isInline":false},
 {"@odata.type":"#microsoft.graph.fileAttachment","id":"big","name":"RE-1.pdf","contentType":"application/pdf","size":20000000,"isInline":false},
 {"@odata.type":"#microsoft.graph.itemAttachment","id":"item","name":"Fwd","size":500,"isInline":false},
 {"@odata.type":"#microsoft.graph.referenceAttachment","id":"ref","name":"link","size":10,"isInline":false}]}`)
		case strings.HasSuffix(r.URL.Path, "/attachments/small"):
			io.WriteString(w, `{"@odata.type":"#microsoft.graph.fileAttachment","id":"small","name":"logo.png","contentType":"image/png","size":3,"isInline":true,"contentId":"logo@1","contentBytes":"AQID"}`)
		default:
			w.WriteHeader(404)
			io.WriteString(w, `{"error":{"code":"ErrorItemNotFound","message":"nope"}}`)
		}
	})
	c := newFakeClient(t, h, Config{})
	mb := c.Mailbox("a@b", staticToken)
	got, err := mb.Attachments(t.Context(), "m1", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := []connector.Attachment{
		{ID: "small", Type: connector.FileAttachment, Name: "logo.png", ContentType: "image/png", Size: 3, IsInline: true},
		{ID: "inv", Type: connector.FileAttachment, Name: "RE-2.pdf", ContentType: "application/pdf", Size: 3000},
		{ID: "big", Type: connector.FileAttachment, Name: "RE-1.pdf", ContentType: "application/pdf", Size: 20000000},
		{ID: "item", Type: connector.ItemAttachment, Name: "Fwd", Size: 500},
		{ID: "ref", Type: connector.ReferenceAttachment, Name: "link", Size: 10},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
	// The image on its own: its contentId, and its bytes through the sink.
	var s memSink
	logo, err := mb.Attachment(t.Context(), "m1", "small", s.sink)
	if err != nil {
		t.Fatal(err)
	}
	if mc, ok := logo.Data.(*memContent); !ok || logo.ContentID != "logo@1" || logo.Name != "logo.png" || !bytes.Equal(mc.b, []byte{1, 2, 3}) {
		t.Errorf("the image read on its own = %+v", logo)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(reqs) != 2 || strings.Contains(reqs[0], "contentBytes") || strings.Contains(reqs[0], "contentId") ||
		!strings.Contains(reqs[0], "isInline") || reqs[1] != "/v1.0/users/a%40b/messages/m1/attachments/small?" {
		t.Errorf("requests = %q, want a metadata list (base type fields only) and one read of the image without $select", reqs)
	}
}

// fakeMailbox answers the post-processing requests like Graph does.
type fakeMailbox struct {
	mu       sync.Mutex
	folders  map[string]string // display name → id
	requests []string          // method path body
	conflict bool              // answer the next create with 409 after creating
}

func (f *fakeMailbox) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	f.mu.Lock()
	defer f.mu.Unlock()
	body, _ := io.ReadAll(r.Body)
	f.requests = append(f.requests, r.Method+" "+r.URL.EscapedPath()+" "+string(body))
	w.Header().Set("Content-Type", "application/json")
	p := r.URL.Path
	switch {
	case r.Method == "POST" && strings.HasSuffix(p, "/move"):
		io.WriteString(w, `{"id":"moved-id","parentFolderId":"f1"}`)
	case r.Method == "PATCH":
		io.WriteString(w, `{"id":"m1"}`)
	case r.Method == "GET" && strings.HasSuffix(p, "/msgfolderroot/childFolders"):
		io.WriteString(w, `{"value":[`)
		first := true
		for name, id := range f.folders {
			if !strings.Contains(r.URL.Query().Get("$filter"), "'"+name+"'") {
				continue
			}
			if !first {
				io.WriteString(w, ",")
			}
			first = false
			fmt.Fprintf(w, `{"id":%q,"displayName":%q}`, id, name)
		}
		io.WriteString(w, `]}`)
	case r.Method == "POST" && strings.HasSuffix(p, "/msgfolderroot/childFolders"):
		f.folders["Archiviert"] = "folder-archiviert"
		if f.conflict {
			w.WriteHeader(409)
			io.WriteString(w, `{"error":{"code":"ErrorFolderExists","message":"A folder with the specified name already exists."}}`)
			return
		}
		w.WriteHeader(201)
		io.WriteString(w, `{"id":"folder-archiviert","displayName":"Archiviert"}`)
	case r.Method == "GET" && strings.HasSuffix(p, "/mailFolders/inbox"):
		io.WriteString(w, `{"id":"inbox-id","displayName":"Posteingang","totalItemCount":42}`)
	case r.Method == "GET" && strings.HasSuffix(p, "/mailFolders/inbox/messages"):
		io.WriteString(w, `{"value":[{"id":"m1"}]}`)
	default:
		w.WriteHeader(400)
		io.WriteString(w, `{"error":{"code":"BadRequest","message":"unexpected"}}`)
	}
}

func (f *fakeMailbox) take() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	r := f.requests
	f.requests = nil
	return r
}

func TestPostProcessing(t *testing.T) {
	f := &fakeMailbox{folders: map[string]string{}}
	c := newFakeClient(t, f, Config{})
	mb := c.Mailbox("a@b", staticToken)
	ctx := t.Context()

	id, err := mb.Move(ctx, "m1", "f1")
	if err != nil || id != "moved-id" {
		t.Fatalf("Move = %q, %v", id, err)
	}
	if r := f.take(); len(r) != 1 || !strings.HasPrefix(r[0], "POST /v1.0/users/a%40b/messages/m1/move") {
		t.Errorf("move requests = %q", r)
	}
	if err := mb.MarkRead(ctx, "m1"); err != nil {
		t.Fatal(err)
	}
	if r := f.take(); len(r) != 1 || !strings.HasPrefix(r[0], "PATCH /v1.0/users/a%40b/messages/m1 ") {
		t.Errorf("mark read requests = %q", r)
	}
	if err := mb.AddCategory(ctx, "m1", "Archiviert", []string{"rot"}); err != nil {
		t.Fatal(err)
	}
	if r := f.take(); len(r) != 1 || !strings.HasPrefix(r[0], "PATCH ") {
		t.Errorf("add category requests = %q", r)
	}
	if err := mb.AddCategory(ctx, "m1", "archiviert", []string{"rot", "Archiviert"}); err != nil {
		t.Fatal(err)
	}
	if r := f.take(); len(r) != 0 {
		t.Errorf("category already present, yet requests %q", r)
	}
}

func TestEnsureFolder(t *testing.T) {
	for _, tc := range []struct {
		name     string
		existing bool
		conflict bool
		requests int
	}{
		{"missing", false, false, 2},
		{"exists", true, false, 1},
		{"concurrent create", false, true, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := &fakeMailbox{folders: map[string]string{}, conflict: tc.conflict}
			if tc.existing {
				f.folders["Archiviert"] = "folder-archiviert"
			}
			c := newFakeClient(t, f, Config{})
			id, err := c.Mailbox("a@b", staticToken).EnsureFolder(t.Context(), "Archiviert")
			if err != nil || id != "folder-archiviert" {
				t.Fatalf("EnsureFolder = %q, %v", id, err)
			}
			if r := f.take(); len(r) != tc.requests {
				t.Errorf("requests = %q, want %d", r, tc.requests)
			}
		})
	}
}

func TestConnectionTest(t *testing.T) {
	f := &fakeMailbox{folders: map[string]string{"Archiviert": "folder-archiviert"}}
	c := newFakeClient(t, f, Config{})
	res, err := c.Mailbox("a@b", staticToken).Test(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	want := TestResult{Mailbox: "a@b", CanRead: true, CanWrite: true, Folder: "Posteingang", Messages: 42}
	if res != want {
		t.Errorf("got %+v, want %+v", res, want)
	}
	for _, r := range f.take() {
		if strings.HasPrefix(r, "PATCH") || strings.Contains(r, "/move") {
			t.Errorf("the test touched mail: %s", r)
		}
	}
}
