package graph_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// simEnv is a simulator with an app-only token source and a Client on it.
type simEnv struct {
	s     *graphtest.Server
	c     *graph.Client
	token graph.TokenFunc
}

func newSim(tb testing.TB, cfg graph.Config) *simEnv {
	tb.Helper()
	s := graphtest.NewServer()
	tb.Cleanup(s.Close)
	u, err := url.Parse(s.GraphURL())
	if err != nil {
		tb.Fatal(err)
	}
	cc := clientcredentials.Config{
		ClientID:     graphtest.DefaultClientID,
		ClientSecret: graphtest.DefaultClientSecret,
		TokenURL:     s.LoginURL() + "/" + graphtest.DefaultTenantID + "/oauth2/v2.0/token",
		Scopes:       []string{u.Scheme + "://" + u.Host + "/.default"},
	}
	ts := cc.TokenSource(context.Background())
	cfg.BaseURL = s.GraphURL()
	c, err := graph.New(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	return &simEnv{s: s, c: c, token: func(context.Context) (string, error) {
		tok, err := ts.Token()
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	}}
}

func (e *simEnv) mailbox(address string) *graph.Mailbox { return e.c.Mailbox(address, e.token) }

func (e *simEnv) deliver(tb testing.TB, mailbox string, m graphtest.Mail) string {
	tb.Helper()
	id, err := e.s.Deliver(mailbox, m)
	if err != nil {
		tb.Fatal(err)
	}
	return id
}

// roundIDs runs a delta round from link to its delta link.
func roundIDs(t *testing.T, mb *graph.Mailbox, link string) (pages int, live, removed []string, deltaLink string) {
	t.Helper()
	for {
		page, err := mb.Delta(t.Context(), "inbox", link, time.Time{})
		if err != nil {
			t.Fatalf("delta page %d: %v", pages+1, err)
		}
		pages++
		for _, m := range page.Messages {
			if m.Removed {
				removed = append(removed, m.ID)
			} else {
				live = append(live, m.InternetMessageID)
			}
		}
		if page.DeltaLink != "" {
			return pages, live, removed, page.DeltaLink
		}
		link = page.NextLink
	}
}

func TestSimDeltaPagingRemovalReset(t *testing.T) {
	e := newSim(t, graph.Config{PageSize: 3})
	mb := e.mailbox(graphtest.DefaultMailbox)
	var ids []string
	for i := range 7 {
		ids = append(ids, e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{
			From: "lieferant@example.com", Subject: fmt.Sprintf("Rechnung %d", i),
			InternetMessageID: fmt.Sprintf("<re-%d@example.com>", i),
		}))
	}
	pages, live, removed, deltaLink := roundIDs(t, mb, "")
	if pages != 3 || len(live) != 7 || len(removed) != 0 {
		t.Fatalf("first round: %d pages, %d live, %d removed; want 3, 7, 0", pages, len(live), len(removed))
	}

	// A deleted mail comes back as a removal, a new one as a message.
	if err := e.s.DeleteMessage(graphtest.DefaultMailbox, ids[2]); err != nil {
		t.Fatal(err)
	}
	e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "Rechnung 7", InternetMessageID: "<re-7@example.com>"})
	_, live, removed, deltaLink = roundIDs(t, mb, deltaLink)
	if len(live) != 1 || live[0] != "<re-7@example.com>" {
		t.Errorf("second round live = %q, want the new mail", live)
	}
	if len(removed) != 1 {
		t.Errorf("second round removed = %q, want one", removed)
	}

	// A reset sync state is SyncReset; a fresh round then works.
	e.s.ResetDelta(graphtest.DefaultMailbox)
	_, err := mb.Delta(t.Context(), "inbox", deltaLink, time.Time{})
	if !connector.IsKind(err, connector.SyncReset) {
		t.Fatalf("after reset: %v, want SyncReset", err)
	}
	_, live, _, _ = roundIDs(t, mb, "")
	if len(live) != 7 {
		t.Errorf("full resync: %d live, want 7", len(live))
	}
}

func TestSimDeltaSinceAndDuplicates(t *testing.T) {
	e := newSim(t, graph.Config{})
	mb := e.mailbox(graphtest.DefaultMailbox)
	base := time.Now().Add(-48 * time.Hour).UTC().Truncate(time.Second)
	for i := range 4 {
		e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{
			Subject: fmt.Sprintf("m%d", i), ReceivedAt: base.Add(time.Duration(i) * time.Hour),
			InternetMessageID: fmt.Sprintf("<m%d@x>", i),
		})
	}
	e.s.Inject(graphtest.Fault{PathContains: "delta", DuplicateDelta: true, Count: 1})
	page, err := mb.Delta(t.Context(), "inbox", "", base.Add(2*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 2 {
		t.Errorf("since filter + duplicate: %d messages, want 2: %+v", len(page.Messages), page.Messages)
	}
	for _, m := range page.Messages {
		if m.ReceivedAt.Before(base.Add(2*time.Hour)) || m.InternetMessageID == "" || m.ID == "" {
			t.Errorf("unexpected message %+v", m)
		}
	}
}

func TestSimPlusAddressAndAttachments(t *testing.T) {
	e := newSim(t, graph.Config{})
	const addr = "rech+nungen@firma.example"
	e.s.AddMailbox(graphtest.Mailbox{Address: addr, DisplayName: "Plus", Shared: true})
	pdf := bytes.Repeat([]byte("%PDF-1.7 "), 1000)
	e.deliver(t, addr, graphtest.Mail{
		Subject: "Rechnung", BodyHTML: true, Body: `<p><img src="cid:logo@x"></p>`,
		Attachments: []graphtest.Attachment{
			{Name: "RE-1.pdf", ContentType: "application/octet-stream", Content: pdf},
			{Name: "logo.png", ContentType: "image/png", Content: []byte("\x89PNG...."), Inline: true, ContentID: "logo@x"},
		},
	})
	mb := e.mailbox(addr)
	page, err := mb.Delta(t.Context(), "inbox", "", time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || !page.Messages[0].HasAttachments || page.Messages[0].BodyRefs != "cid:logo@x" {
		t.Fatalf("delta = %+v", page.Messages)
	}
	id := page.Messages[0].ID
	if st := e.s.Messages(addr, "inbox"); len(st) != 1 || st[0].ImmutableID != id {
		t.Errorf("delta id %q is not the immutable id of %+v", id, st)
	}
	atts, err := mb.Attachments(t.Context(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(atts) != 2 {
		t.Fatalf("attachments = %+v", atts)
	}
	if a := atts[0]; a.Name != "RE-1.pdf" || a.Type != connector.FileAttachment || a.Content != nil || a.Size < int64(len(pdf)) {
		t.Errorf("pdf = %+v", a)
	}
	if a := atts[1]; !a.IsInline || a.ContentID != "" {
		t.Errorf("logo listed without its bytes = %+v (contentId cannot be selected on the collection)", a)
	}
	var logo bytes.Buffer
	a, err := mb.Attachment(t.Context(), id, atts[1].ID, func(r io.Reader) (connector.Content, error) {
		n, err := io.Copy(&logo, r)
		return sized(n), err
	})
	if err != nil || a.ContentID != "logo@x" || a.Data == nil || logo.String() != "\x89PNG...." {
		t.Errorf("logo read on its own = %+v, %q, %v", a, logo.String(), err)
	}
	rc, err := mb.OpenAttachment(t.Context(), id, atts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, pdf) {
		t.Errorf("OpenAttachment: %d bytes, %v", len(got), err)
	}
	rc, err = mb.OpenMessage(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	mime, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Contains(mime, []byte("Subject: Rechnung")) {
		t.Errorf("OpenMessage: %v\n%.300s", err, mime)
	}
}

func TestSimRetryAfterHonoured(t *testing.T) {
	e := newSim(t, graph.Config{})
	mb := e.mailbox(graphtest.DefaultMailbox)
	e.s.Inject(graphtest.Fault{PathContains: "delta", Status: 429, RetryAfter: 2 * time.Second, Count: 1})
	_, err := mb.Delta(t.Context(), "inbox", "", time.Time{})
	if !connector.IsKind(err, connector.Throttled) || connector.RetryAfter(err) != 2*time.Second {
		t.Fatalf("err = %v, want Throttled with RetryAfter 2s", err)
	}
	// The importer would wait; an eager caller is held by the limiter.
	var wg sync.WaitGroup
	for range 3 {
		wg.Go(func() {
			if _, err := mb.Delta(t.Context(), "inbox", "", time.Time{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	log := e.s.Counters().Log[graphtest.DefaultMailbox]
	var throttledAt time.Time
	var after int
	for _, r := range log {
		switch {
		case r.Status == 429:
			throttledAt = r.At.Add(r.RetryAfter)
		case !throttledAt.IsZero():
			after++
			if r.At.Before(throttledAt) {
				t.Errorf("request %s at %v, before Retry-After elapsed at %v", r.Endpoint, r.At, throttledAt)
			}
		}
	}
	if throttledAt.IsZero() || after != 3 {
		t.Errorf("log: throttled=%v, %d requests after; want a 429 and 3 after it", !throttledAt.IsZero(), after)
	}
}

func TestSimMaxInFlight(t *testing.T) {
	e := newSim(t, graph.Config{}) // default MaxInFlight 4 = the simulator's limit
	mb := e.mailbox(graphtest.DefaultMailbox)
	content := bytes.Repeat([]byte("x"), 1<<20)
	id := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{
		Subject:     "big",
		Attachments: []graphtest.Attachment{{Name: "a.pdf", ContentType: "application/pdf", Content: content}},
	})
	atts, err := mb.Attachments(t.Context(), id, nil)
	if err != nil {
		t.Fatal(err)
	}
	e.s.ResetCounters()
	// Slow answers make the requests overlap, whatever the machine's load.
	e.s.Inject(graphtest.Fault{Delay: 20 * time.Millisecond})
	var wg sync.WaitGroup
	for i := range 24 {
		// Separate Mailbox values of one address share the limiter.
		mb := e.mailbox(graphtest.DefaultMailbox)
		wg.Go(func() {
			var err error
			switch i % 3 {
			case 0:
				_, err = mb.Delta(t.Context(), "inbox", "", time.Time{})
			case 1:
				_, err = mb.Attachments(t.Context(), id, nil)
			case 2:
				var rc io.ReadCloser
				if rc, err = mb.OpenAttachment(t.Context(), id, atts[0].ID); err == nil {
					_, err = io.Copy(io.Discard, rc)
					rc.Close()
				}
			}
			if err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	c := e.s.Counters()
	if got := c.MaxInFlight[graphtest.DefaultMailbox]; got > 4 || got < 2 {
		t.Errorf("max in flight = %d, want 2..4", got)
	}
	if c.Throttled != 0 {
		t.Errorf("throttled %d times", c.Throttled)
	}
}

func TestSimAccessDenied(t *testing.T) {
	e := newSim(t, graph.Config{})
	e.s.AllowAppMailbox(graphtest.DefaultClientID, graphtest.DefaultMailbox)
	denied := e.mailbox(graphtest.DefaultOtherUser)
	_, err := denied.Delta(t.Context(), "inbox", "", time.Time{})
	if !connector.IsKind(err, connector.AccessDenied) {
		t.Errorf("delta: %v, want AccessDenied", err)
	}
	res, err := denied.Test(t.Context())
	if !connector.IsKind(err, connector.AccessDenied) || res.CanRead || res.CanWrite || res.Detail == "" {
		t.Errorf("Test = %+v, %v; want denied", res, err)
	}
	res, err = e.mailbox(graphtest.DefaultMailbox).Test(t.Context())
	if err != nil || !res.CanRead || !res.CanWrite || res.Folder == "" {
		t.Errorf("Test on the allowed mailbox = %+v, %v", res, err)
	}
}

func TestSimPostProcessing(t *testing.T) {
	e := newSim(t, graph.Config{})
	mb := e.mailbox(graphtest.DefaultMailbox)
	e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "Rechnung", InternetMessageID: "<p@x>"})
	id := e.s.Messages(graphtest.DefaultMailbox, "inbox")[0].ImmutableID

	// EnsureFolder is idempotent, also when racing with itself.
	ids := make([]string, 5)
	var wg sync.WaitGroup
	for i := range ids {
		wg.Go(func() {
			var err error
			if ids[i], err = mb.EnsureFolder(t.Context(), "Archiviert"); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	for _, fid := range ids {
		if fid == "" || fid != ids[0] {
			t.Fatalf("EnsureFolder ids = %q, want one id", ids)
		}
	}
	again, err := mb.EnsureFolder(t.Context(), "Archiviert")
	if err != nil || again != ids[0] {
		t.Fatalf("EnsureFolder again = %q, %v; want %q", again, err, ids[0])
	}

	if err := mb.MarkRead(t.Context(), id); err != nil {
		t.Fatal(err)
	}
	if err := mb.AddCategory(t.Context(), id, "mailgate", nil); err != nil {
		t.Fatal(err)
	}
	newID, err := mb.Move(t.Context(), id, ids[0])
	if err != nil {
		t.Fatal(err)
	}
	if newID != id {
		t.Errorf("Move returned %q, want the immutable id %q", newID, id)
	}
	got := e.s.Messages(graphtest.DefaultMailbox, "Archiviert")
	if len(got) != 1 || got[0].InternetMessageID != "<p@x>" || !got[0].IsRead || len(got[0].Categories) != 1 || got[0].FolderID != ids[0] {
		t.Errorf("archived = %+v", got)
	}
	if _, err := mb.Move(t.Context(), "AAMkNoSuchMessage", ids[0]); !connector.IsKind(err, connector.NotFound) {
		t.Errorf("move of a missing message: %v, want NotFound", err)
	}
}

func TestSimFaults(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault graphtest.Fault
		kind  connector.Kind
	}{
		{"truncated", graphtest.Fault{PathContains: "delta", Truncate: true, Count: 1}, connector.Transient},
		{"malformed", graphtest.Fault{PathContains: "delta", Malformed: true, Count: 1}, connector.Transient},
		{"unavailable", graphtest.Fault{PathContains: "delta", Status: 503, Count: 1}, connector.Transient},
		{"gone", graphtest.Fault{PathContains: "delta", Status: 410, Count: 1}, connector.SyncReset},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newSim(t, graph.Config{})
			e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "x"})
			e.s.Inject(tc.fault)
			_, err := e.mailbox(graphtest.DefaultMailbox).Delta(t.Context(), "inbox", "", time.Time{})
			if !connector.IsKind(err, tc.kind) {
				t.Errorf("err = %v, want %v", err, tc.kind)
			}
			// No hidden retry: the fault hit once and the error came back.
			if n := e.s.Counters().Total("messages.delta"); n != 1 {
				t.Errorf("%d delta requests, want 1", n)
			}
		})
	}
}

// heapObjects is the live heap as the runtime counts it, cheap to read.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// peakReader samples the heap every MiB read.
type peakReader struct {
	r     io.Reader
	n     int
	peak  uint64
	every int
}

func (p *peakReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.n += n
	if p.n >= p.every {
		p.n = 0
		p.peak = max(p.peak, heapObjects())
	}
	return n, err
}

// BenchmarkOpenAttachment20MB streams a 20 MB attachment through
// OpenAttachment into SHA-256 and reports the peak heap growth while doing
// so ("peak-bytes"), which must stay far below the attachment's size.
func BenchmarkOpenAttachment20MB(b *testing.B) {
	const size = 20 << 20
	e := newSim(b, graph.Config{})
	content := bytes.Repeat([]byte("%PDF-1.7 0123456789abcdef"), size/25+1)[:size]
	want := sha256.Sum256(content)
	id := e.deliver(b, graphtest.DefaultMailbox, graphtest.Mail{
		Subject:     "large",
		Attachments: []graphtest.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Content: content}},
	})
	mb := e.mailbox(graphtest.DefaultMailbox)
	atts, err := mb.Attachments(b.Context(), id, nil)
	if err != nil || len(atts) != 1 || atts[0].Content != nil {
		b.Fatalf("attachments = %+v, %v", atts, err)
	}
	var peak uint64
	b.SetBytes(size)
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
		base := heapObjects()
		rc, err := mb.OpenAttachment(b.Context(), id, atts[0].ID)
		if err != nil {
			b.Fatal(err)
		}
		h := sha256.New()
		pr := &peakReader{r: rc, every: 1 << 20}
		if _, err := io.Copy(h, pr); err != nil {
			b.Fatal(err)
		}
		rc.Close()
		if [32]byte(h.Sum(nil)) != want {
			b.Fatal("content differs")
		}
		if pr.peak > base {
			peak = max(peak, pr.peak-base)
		}
	}
	b.ReportMetric(float64(peak), "peak-bytes")
	if peak > size/4 {
		b.Errorf("peak heap growth %d bytes for a %d byte attachment: not streamed", peak, size)
	}
}

func TestSimRequestBudget(t *testing.T) {
	// 10 requests per second, on both sides: the limiter spaces the calls
	// so that the simulator's sliding window never overflows.
	e := newSim(t, graph.Config{Requests: 10, Window: time.Second})
	e.s.SetThrottle(graphtest.Throttle{Requests: 10, Window: time.Second})
	mb := e.mailbox(graphtest.DefaultMailbox)
	start := time.Now()
	for i := range 20 {
		if _, err := mb.Delta(t.Context(), "inbox", "", time.Time{}); err != nil {
			t.Fatalf("request %d: %v", i, err)
		}
	}
	if c := e.s.Counters(); c.Throttled != 0 {
		t.Errorf("throttled %d times", c.Throttled)
	}
	// Burst 1, then 9 per second: 19 more requests take about 2.1 s.
	if d := time.Since(start); d < 1800*time.Millisecond {
		t.Errorf("20 requests in %v: the budget did not hold them back", d)
	}
}

func TestSimStreamFaults(t *testing.T) {
	e := newSim(t, graph.Config{MaxInFlight: 1})
	e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{
		Subject:     "x",
		Attachments: []graphtest.Attachment{{Name: "a.pdf", ContentType: "application/pdf", Content: bytes.Repeat([]byte("y"), 4<<20)}},
	})
	mb := e.mailbox(graphtest.DefaultMailbox)
	id := e.s.Messages(graphtest.DefaultMailbox, "inbox")[0].ImmutableID
	atts, err := mb.Attachments(t.Context(), id, nil)
	if err != nil {
		t.Fatal(err)
	}

	e.s.Inject(graphtest.Fault{PathContains: "$value", Truncate: true, Count: 1})
	rc, err := mb.OpenAttachment(t.Context(), id, atts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	_, err = io.Copy(io.Discard, rc)
	rc.Close()
	if !connector.IsKind(err, connector.Transient) {
		t.Errorf("truncated stream: %v, want Transient", err)
	}

	e.s.Inject(graphtest.Fault{PathContains: "$value", Status: 429, RetryAfter: time.Second, Count: 1})
	if _, err := mb.OpenAttachment(t.Context(), id, atts[0].ID); !connector.IsKind(err, connector.Throttled) || connector.RetryAfter(err) != time.Second {
		t.Errorf("throttled stream: %v, want Throttled 1s", err)
	}
	if _, err := mb.OpenAttachment(t.Context(), id, "AAMkNoSuchAttachment"); !connector.IsKind(err, connector.NotFound) {
		t.Errorf("missing attachment: %v, want NotFound", err)
	}
	// Every failure gave its slot back (MaxInFlight 1).
	rc, err = mb.OpenAttachment(t.Context(), id, atts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	n, err := io.Copy(io.Discard, rc)
	rc.Close()
	if err != nil || n != 4<<20 {
		t.Errorf("after failures: %d bytes, %v", n, err)
	}
}

// TestSimCountMessages counts what a backfill covers: the folder's
// totalItemCount for "all", @odata.count of the messages received since a
// date for "since" (one request each, mail elsewhere not counted), and the
// simulator refuses a $count that is not a boolean, and $count on delta.
func TestSimCountMessages(t *testing.T) {
	e := newSim(t, graph.Config{})
	mb := e.mailbox(graphtest.DefaultMailbox)
	base := time.Now().Add(-72 * time.Hour).UTC().Truncate(time.Second)
	for i := range 7 {
		e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: fmt.Sprintf("m%d", i), ReceivedAt: base.Add(time.Duration(i) * time.Hour)})
	}
	e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "elsewhere", ReceivedAt: base.Add(5 * time.Hour), Folder: "archive"})
	e.s.ResetCounters()
	for _, tc := range []struct {
		since time.Time
		want  int
	}{
		{time.Time{}, 7},
		{base.Add(3 * time.Hour), 4}, // ge: the mail of that second counts
		{base.Add(3*time.Hour + time.Second), 3},
		{base.Add(100 * time.Hour), 0},
	} {
		n, err := mb.CountMessages(t.Context(), "inbox", tc.since)
		if err != nil {
			t.Fatalf("count since %v: %v", tc.since, err)
		}
		if n != tc.want {
			t.Errorf("count since %v = %d, want %d", tc.since, n, tc.want)
		}
	}
	c := e.s.Counters()
	if c.Total("folder.get") != 1 || c.Total("messages.list") != 3 {
		t.Errorf("requests %v, want 1 folder.get and 3 messages.list", c.Requests)
	}
	if _, err := mb.CountMessages(t.Context(), "nosuchfolder", time.Time{}); !connector.IsKind(err, connector.NotFound) {
		t.Errorf("count of a missing folder: %v, want NotFound", err)
	}

	tok, err := e.token(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]int{
		"/users/" + graphtest.DefaultMailbox + "/mailFolders/inbox/messages?$count=true&$top=1":      http.StatusOK,
		"/users/" + graphtest.DefaultMailbox + "/mailFolders/inbox/messages?$count=maybe":            http.StatusBadRequest,
		"/users/" + graphtest.DefaultMailbox + "/mailFolders/inbox/messages/delta?$count=true":       http.StatusBadRequest,
		"/users/" + graphtest.DefaultMailbox + "/mailFolders/inbox/messages?$count=false&$select=id": http.StatusOK,
	} {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, e.s.GraphURL()+path, nil)
		req.Header.Set("Authorization", "Bearer "+tok)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("%s: %d, want %d (%v)", path, resp.StatusCode, want, body)
			continue
		}
		_, has := body["@odata.count"]
		if wantCount := strings.Contains(path, "$count=true") && want == http.StatusOK; has != wantCount {
			t.Errorf("%s: @odata.count present %v, want %v", path, has, wantCount)
		}
		if has && body["@odata.count"] != float64(7) {
			t.Errorf("%s: @odata.count %v, want 7 (all pages, not the page of $top=1)", path, body["@odata.count"])
		}
	}
}

// sized is a Content that only knows its size.
type sized int64

func (s sized) Size() int64  { return int64(s) }
func (s sized) Close() error { return nil }
