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
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// hashSink keeps the SHA-256 and size of each content and counts the
// Contents it made and closed.
type hashSink struct {
	mu           sync.Mutex
	made, closed int
}

type hashContent struct {
	sum  [32]byte
	size int64
	s    *hashSink
	once sync.Once
}

func (c *hashContent) Size() int64 { return c.size }
func (c *hashContent) Close() error {
	c.once.Do(func() {
		c.s.mu.Lock()
		c.s.closed++
		c.s.mu.Unlock()
	})
	return nil
}

func (s *hashSink) sink(r io.Reader) (connector.Content, error) {
	h := sha256.New()
	n, err := io.Copy(h, r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	s.made++
	s.mu.Unlock()
	return &hashContent{sum: [32]byte(h.Sum(nil)), size: n, s: s}, nil
}

func (s *hashSink) counts() (made, closed int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.made, s.closed
}

// rewriter wraps the simulator's transport and lets a test change the
// answers to attachment listings (the request still reaches the
// simulator and is counted there).
type rewriter struct {
	mu      sync.Mutex
	rewrite func(body []byte) []byte
}

func (rw *rewriter) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := http.DefaultTransport.RoundTrip(req)
	rw.mu.Lock()
	f := rw.rewrite
	rw.mu.Unlock()
	if err != nil || f == nil || !strings.HasSuffix(req.URL.Path, "/attachments") || resp.StatusCode != 200 {
		return resp, err
	}
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	if err != nil {
		return nil, err
	}
	body = f(body)
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Del("Content-Length")
	return resp, nil
}

func (rw *rewriter) set(f func([]byte) []byte) {
	rw.mu.Lock()
	rw.rewrite = f
	rw.mu.Unlock()
}

// listing is a decoded attachment listing that can be written back with
// its properties in another order.
type listing struct {
	top  map[string]json.RawMessage
	objs []map[string]json.RawMessage
}

func decodeListing(t testing.TB, b []byte) *listing {
	var l listing
	if err := json.Unmarshal(b, &l.top); err != nil {
		t.Fatalf("listing: %v", err)
	}
	if err := json.Unmarshal(l.top["value"], &l.objs); err != nil {
		t.Fatalf("listing value: %v", err)
	}
	delete(l.top, "value")
	return &l
}

// encode writes the listing, "value" last, each object's keys sorted with
// first (if present) in front.
func (l *listing) encode(first string) []byte {
	var b bytes.Buffer
	b.WriteString("{")
	for _, k := range sortedKeys(l.top, "") {
		fmt.Fprintf(&b, "%q:%s,", k, l.top[k])
	}
	b.WriteString(`"value":[`)
	for i, o := range l.objs {
		if i > 0 {
			b.WriteString(",\n")
		}
		b.WriteString("{")
		for j, k := range sortedKeys(o, first) {
			if j > 0 {
				b.WriteString(", ")
			}
			kb, _ := json.Marshal(k)
			b.Write(kb)
			b.WriteString(": ")
			b.Write(o[k])
		}
		b.WriteString("}")
	}
	b.WriteString("]}")
	return b.Bytes()
}

func sortedKeys(m map[string]json.RawMessage, first string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if (keys[i] == first) != (keys[j] == first) {
			return keys[i] == first
		}
		return keys[i] < keys[j]
	})
	return keys
}

type listEnv struct {
	*simEnv
	rw *rewriter
	mb *graph.Mailbox
}

func newListEnv(t testing.TB) *listEnv {
	rw := &rewriter{}
	e := newSim(t, graph.Config{HTTPClient: &http.Client{Transport: rw}})
	return &listEnv{simEnv: e, rw: rw, mb: e.mailbox(graphtest.DefaultMailbox)}
}

// graphRequests counts the Graph requests (not token requests).
func graphRequests(s *graphtest.Server) int {
	n := 0
	for ep := range s.Counters().Requests {
		if ep != "token" {
			n += s.Counters().Total(ep)
		}
	}
	return n
}

func content(n int, seed byte) []byte {
	b := make([]byte, n)
	x := uint32(seed) + 1
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x >> 24)
	}
	return b
}

func TestSimAttachmentsWithContent(t *testing.T) {
	e := newListEnv(t)
	small := content(3000, 1)
	large := content(20<<20, 2)
	logo := content(5000, 3)
	// Bytes whose base64 has many '/' and '+'.
	slashes := bytes.Repeat([]byte{0xff, 0xff, 0xfe, 0xfb, 0xef, 0xbf}, 1000)
	id := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{
		Subject: "Rechnungen", BodyHTML: true, Body: `<img src="cid:logo@x">`,
		Attachments: []graphtest.Attachment{
			{Name: "RE-1.pdf", ContentType: "application/pdf", Content: small},
			{Name: "scan.pdf", ContentType: "application/pdf", Content: large},
			{Name: "logo.png", ContentType: "image/png", Content: logo, Inline: true, ContentID: "logo@x"},
			{Name: "Fwd: Rechnung", Item: &graphtest.Mail{Subject: "Rechnung", Body: "anbei"}},
			{Name: "Rechnung online", ReferenceURL: "https://contoso.sharepoint.com/re.pdf"},
			{Name: "slashes.bin", ContentType: "application/octet-stream", Content: slashes},
			{Name: "empty.txt", ContentType: "text/plain", Content: []byte{}},
		},
	})
	want := map[string][]byte{"RE-1.pdf": small, "scan.pdf": large, "logo.png": logo, "slashes.bin": slashes, "empty.txt": {}}

	for _, tc := range []struct {
		name    string
		rewrite func([]byte) []byte
	}{
		{"as sent", nil},
		{"escaped slashes", func(b []byte) []byte { return bytes.ReplaceAll(b, []byte("/"), []byte(`\/`)) }},
		{"contentBytes first", func(b []byte) []byte { return decodeListing(t, b).encode("contentBytes") }},
		{"unicode escapes", func(b []byte) []byte {
			b = bytes.ReplaceAll(b, []byte("+"), []byte(`\u002b`))
			return bytes.ReplaceAll(b, []byte("A"), []byte(`\u0041`))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.rw.set(tc.rewrite)
			e.s.ResetCounters()
			var s hashSink
			atts, err := e.mb.Attachments(t.Context(), id, s.sink)
			if err != nil {
				t.Fatal(err)
			}
			if n := e.s.Counters().Total("attachments.list"); n != 1 || graphRequests(e.s) != 1 {
				t.Errorf("%d listing requests, %d Graph requests; want exactly one", n, graphRequests(e.s))
			}
			if len(atts) != 7 {
				t.Fatalf("%d attachments: %+v", len(atts), atts)
			}
			for _, a := range atts {
				w, isFile := want[a.Name]
				switch {
				case isFile:
					c, ok := a.Data.(*hashContent)
					if a.Type != connector.FileAttachment || !ok {
						t.Errorf("%s: type %q, data %v", a.Name, a.Type, a.Data)
						continue
					}
					if c.sum != sha256.Sum256(w) || c.size != int64(len(w)) || a.Size != int64(len(w)) {
						t.Errorf("%s: %d bytes (size %d), sha256 differs: %v; want %d", a.Name, c.size, a.Size, c.sum != sha256.Sum256(w), len(w))
					}
				case a.Name == "Fwd: Rechnung":
					if a.Type != connector.ItemAttachment || a.Data != nil || a.Size == 0 {
						t.Errorf("item = %+v", a)
					}
				case a.Name == "Rechnung online":
					if a.Type != connector.ReferenceAttachment || a.Data != nil {
						t.Errorf("reference = %+v", a)
					}
				default:
					t.Errorf("unexpected %+v", a)
				}
				if a.ID == "" || a.Content != nil {
					t.Errorf("%s: id %q, Content %d bytes", a.Name, a.ID, len(a.Content))
				}
				if inline := a.Name == "logo.png"; a.IsInline != inline || (a.ContentID == "logo@x") != inline {
					t.Errorf("%s: inline %v, contentId %q", a.Name, a.IsInline, a.ContentID)
				}
				if a.Name == "scan.pdf" && a.ContentType != "application/pdf" {
					t.Errorf("scan.pdf: content type %q", a.ContentType)
				}
			}
			closeData(atts)
			if made, closed := s.counts(); made != 5 || closed != 5 {
				t.Errorf("made %d, closed %d contents; want 5, 5", made, closed)
			}
		})
	}
}

func closeData(atts []connector.Attachment) {
	for _, a := range atts {
		if a.Data != nil {
			a.Data.Close()
		}
	}
}

// The ids the metadata listing (no sink) reports are those of the listing
// with content, and the importer's fallback works on a null contentBytes.
func TestSimAttachmentsNullContentFallsBack(t *testing.T) {
	e := newListEnv(t)
	pdf := content(10000, 4)
	id := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "x", Attachments: []graphtest.Attachment{
		{Name: "a.pdf", ContentType: "application/pdf", Content: pdf},
		{Name: "b.pdf", ContentType: "application/pdf", Content: content(100, 5)},
	}})
	e.rw.set(func(b []byte) []byte {
		l := decodeListing(t, b)
		l.objs[0]["contentBytes"] = json.RawMessage("null")
		delete(l.objs[1], "contentBytes")
		return l.encode("")
	})
	var s hashSink
	atts, err := e.mb.Attachments(t.Context(), id, s.sink)
	if err != nil {
		t.Fatal(err)
	}
	defer closeData(atts)
	if len(atts) != 2 || atts[0].Data != nil || atts[1].Data != nil || atts[0].Type != connector.FileAttachment {
		t.Fatalf("attachments = %+v, want two file attachments without Data", atts)
	}
	rc, err := e.mb.OpenAttachment(t.Context(), id, atts[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, pdf) {
		t.Errorf("fallback: %d bytes, %v", len(got), err)
	}
}

func TestSimAttachmentsNextLink(t *testing.T) {
	e := newListEnv(t)
	a := content(4000, 6)
	b := content(3<<20, 7)
	first := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "1", Attachments: []graphtest.Attachment{{Name: "a.pdf", Content: a}}})
	second := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "2", Attachments: []graphtest.Attachment{{Name: "b.pdf", Content: b}}})
	// The first page links to a second one: the listing of another mail
	// (the simulator doesn't page attachments; the client must not care).
	next := e.s.GraphURL() + "/users/" + url.PathEscape(graphtest.DefaultMailbox) + "/messages/" + url.PathEscape(second) + "/attachments"
	e.rw.set(func(body []byte) []byte {
		if bytes.Contains(body, []byte("messages('"+second+"')")) {
			return body
		}
		l := decodeListing(t, body)
		l.top["@odata.nextLink"], _ = json.Marshal(next)
		return l.encode("")
	})
	var s hashSink
	atts, err := e.mb.Attachments(t.Context(), first, s.sink)
	if err != nil {
		t.Fatal(err)
	}
	defer closeData(atts)
	if len(atts) != 2 || atts[0].Name != "a.pdf" || atts[1].Name != "b.pdf" {
		t.Fatalf("attachments = %+v", atts)
	}
	for i, w := range [][]byte{a, b} {
		if c, ok := atts[i].Data.(*hashContent); !ok || c.sum != sha256.Sum256(w) {
			t.Errorf("%s: content differs", atts[i].Name)
		}
	}
	if n := e.s.Counters().Total("attachments.list"); n != 2 {
		t.Errorf("%d listing requests, want 2 (one per page)", n)
	}

	// A next link to another host is refused, and what was made is closed.
	e.rw.set(func(body []byte) []byte {
		l := decodeListing(t, body)
		l.top["@odata.nextLink"] = json.RawMessage(`"https://evil.example/v1.0/users/x/messages/y/attachments"`)
		return l.encode("")
	})
	var s2 hashSink
	if _, err := e.mb.Attachments(t.Context(), first, s2.sink); !connector.IsKind(err, connector.Invalid) {
		t.Errorf("foreign next link: %v, want Invalid", err)
	}
	if made, closed := s2.counts(); made != 1 || closed != 1 {
		t.Errorf("foreign next link: made %d, closed %d", made, closed)
	}
}

func TestSimAttachmentsFailures(t *testing.T) {
	e := newListEnv(t)
	id := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "x", Attachments: []graphtest.Attachment{
		{Name: "a.pdf", ContentType: "application/pdf", Content: content(50000, 8)},
		{Name: "b.pdf", ContentType: "application/pdf", Content: content(4<<20, 9)},
		{Name: "c.pdf", ContentType: "application/pdf", Content: content(50000, 10)},
	}})
	for _, tc := range []struct {
		name    string
		fault   *graphtest.Fault
		rewrite func([]byte) []byte
		kind    connector.Kind
	}{
		{name: "truncated body", fault: &graphtest.Fault{PathContains: "/attachments", Truncate: true, Count: 1}, kind: connector.Transient},
		{name: "cut short", fault: &graphtest.Fault{PathContains: "/attachments", Malformed: true, Count: 1}, kind: connector.Transient},
		{name: "throttled", fault: &graphtest.Fault{PathContains: "/attachments", Status: 429, Count: 1}, kind: connector.Throttled},
		{name: "invalid base64", rewrite: func(b []byte) []byte {
			// A character that is no base64 in the middle of the third content.
			i := bytes.LastIndex(b, []byte(`"contentBytes":"`)) + 5000
			return slices.Concat(b[:i], []byte("!"), b[i+1:])
		}, kind: connector.Invalid},
		{name: "base64 after padding", rewrite: func(b []byte) []byte {
			i := bytes.LastIndex(b, []byte(`"contentBytes":"`)) + len(`"contentBytes":"`)
			return slices.Concat(b[:i], []byte("AQ=="), b[i:])
		}, kind: connector.Invalid},
		{name: "base64 cut", rewrite: func(b []byte) []byte {
			i := bytes.LastIndex(b, []byte(`"contentBytes":"`)) + len(`"contentBytes":"`)
			j := i + bytes.IndexByte(b[i:], '"')
			return slices.Concat(b[:j-1], b[j:])
		}, kind: connector.Invalid},
		{name: "oversize name", rewrite: func(b []byte) []byte {
			l := decodeListing(t, b)
			l.objs[2]["name"], _ = json.Marshal(strings.Repeat("x", 2<<20))
			return l.encode("")
		}, kind: connector.Invalid},
		{name: "oversize unknown value", rewrite: func(b []byte) []byte {
			l := decodeListing(t, b)
			l.objs[2]["extra"], _ = json.Marshal([]string{strings.Repeat("x", 1<<19), strings.Repeat("y", 1<<19)})
			return l.encode("")
		}, kind: connector.Invalid},
		{name: "malformed", rewrite: func(b []byte) []byte {
			return bytes.Replace(b, []byte(`"isInline":false`), []byte(`"isInline":nope`), 1)
		}, kind: connector.Invalid},
		{name: "not json", rewrite: func(b []byte) []byte { return []byte("<html>busy</html>") }, kind: connector.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.rw.set(tc.rewrite)
			if tc.fault != nil {
				e.s.Inject(*tc.fault)
			}
			e.s.ResetCounters()
			var s hashSink
			atts, err := e.mb.Attachments(t.Context(), id, s.sink)
			if !connector.IsKind(err, tc.kind) || atts != nil {
				t.Errorf("err = %v (%d attachments), want %v", err, len(atts), tc.kind)
			}
			if made, closed := s.counts(); made != closed {
				t.Errorf("made %d contents, closed %d", made, closed)
			}
			if n := e.s.Counters().Total("attachments.list"); n != 1 {
				t.Errorf("%d listing requests, want 1 (no hidden retry)", n)
			}
		})
	}
	// A sink failure comes back, and the slot was given back (in flight 0).
	e.rw.set(nil)
	boom := connector.E("store", connector.Transient, io.ErrShortWrite)
	var made int
	_, err := e.mb.Attachments(t.Context(), id, func(r io.Reader) (connector.Content, error) {
		if made++; made == 2 {
			return nil, boom
		}
		_, err := io.Copy(io.Discard, r)
		return nopContent{}, err
	})
	if err != boom {
		t.Errorf("sink failure: %v, want the sink's error", err)
	}
	var s hashSink
	if atts, err := e.mb.Attachments(t.Context(), id, s.sink); err != nil || len(atts) != 3 {
		t.Errorf("after failures: %d attachments, %v", len(atts), err)
	}
}

// A context cancelled while the sink reads ends the listing: the error
// comes back, what was made is closed, the in-flight slot is given back.
func TestSimAttachmentsCancelled(t *testing.T) {
	e := newSim(t, graph.Config{MaxInFlight: 1})
	mb := e.mailbox(graphtest.DefaultMailbox)
	id := e.deliver(t, graphtest.DefaultMailbox, graphtest.Mail{Subject: "x", Attachments: []graphtest.Attachment{
		{Name: "a.pdf", ContentType: "application/pdf", Content: content(1000, 12)},
		{Name: "b.pdf", ContentType: "application/pdf", Content: content(8<<20, 13)},
	}})
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var s hashSink
	atts, err := mb.Attachments(ctx, id, func(r io.Reader) (connector.Content, error) {
		if s.made == 1 {
			if _, err := io.CopyN(io.Discard, r, 1<<20); err != nil {
				return nil, err
			}
			cancel()
		}
		return s.sink(r)
	})
	if err == nil || atts != nil {
		t.Fatalf("cancelled: %d attachments, %v", len(atts), err)
	}
	t.Logf("cancelled: %v", err)
	if made, closed := s.counts(); made != 1 || closed != 1 {
		t.Errorf("made %d, closed %d; want 1, 1", made, closed)
	}
	var s2 hashSink
	if atts, err := mb.Attachments(t.Context(), id, s2.sink); err != nil || len(atts) != 2 {
		t.Errorf("afterwards: %d attachments, %v", len(atts), err)
	}
}

type nopContent struct{}

func (nopContent) Size() int64  { return 0 }
func (nopContent) Close() error { return nil }

// BenchmarkAttachmentsWithContent20MB lists a mail with a 20 MB attachment
// and its content through the simulator (both in this process) into
// SHA-256, and reports the peak heap growth while doing so ("peak-bytes"):
// neither side holds the attachment, its base64 or the listing.
func BenchmarkAttachmentsWithContent20MB(b *testing.B) {
	const size = 20 << 20
	e := newSim(b, graph.Config{})
	data := content(size, 11)
	want := sha256.Sum256(data)
	id := e.deliver(b, graphtest.DefaultMailbox, graphtest.Mail{
		Subject:     "large",
		Attachments: []graphtest.Attachment{{Name: "scan.pdf", ContentType: "application/pdf", Content: data}},
	})
	mb := e.mailbox(graphtest.DefaultMailbox)
	var peak uint64
	b.SetBytes(size)
	b.ReportAllocs()
	for b.Loop() {
		runtime.GC()
		base := heapObjects()
		var sum [32]byte
		var pr *peakReader
		atts, err := mb.Attachments(b.Context(), id, func(r io.Reader) (connector.Content, error) {
			h := sha256.New()
			pr = &peakReader{r: r, every: 1 << 20}
			n, err := io.Copy(h, pr)
			sum = [32]byte(h.Sum(nil))
			return nopContentN(n), err
		})
		if err != nil || len(atts) != 1 || atts[0].Data.Size() != size || sum != want {
			b.Fatalf("attachments = %+v, %v", atts, err)
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

type nopContentN int64

func (n nopContentN) Size() int64 { return int64(n) }
func (nopContentN) Close() error  { return nil }
