package graph

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// Tests of listings a compromised or broken upstream might send.

// TestContentRejectsRawLineBreaks: a raw line break inside contentBytes is
// no JSON (a control character in a string) and no base64 Graph sends;
// the listing is Invalid whatever the line breaks' place, as a control
// character in any other string is.
func TestContentRejectsRawLineBreaks(t *testing.T) {
	for _, cb := range []string{"\r\n\r\nAQID", "AQID\r\n\r\nAQID", "AQID\n\n\n\nAQID", "\n\n\n\n", "AQID\r\r\r\r"} {
		in := `{"value":[{"name":"a","contentBytes":"` + cb + `"}]}`
		if json.Valid([]byte(in)) {
			t.Fatalf("%q is valid JSON", in)
		}
		s := &memSink{failOn: -1}
		atts, _, err := parseAttachments(strings.NewReader(in), s.sink)
		if k := kindOfList(err); k != connector.Invalid {
			var got []byte
			if len(atts) == 1 && atts[0].Data != nil {
				got = atts[0].Data.(*memContent).b
			}
			t.Errorf("contentBytes %q: err %v (kind %v), content %x; want Invalid", cb, err, k, got)
		}
		if err != nil && s.made != s.closed {
			t.Errorf("contentBytes %q: made %d, closed %d", cb, s.made, s.closed)
		}
	}
}

// repeatedListing yields head, then body n times, then tail, without holding
// more than one copy of each.
func repeatedListing(head, body string, n int, tail string) io.Reader {
	rs := []io.Reader{strings.NewReader(head)}
	for range n {
		rs = append(rs, strings.NewReader(body))
	}
	return io.MultiReader(append(rs, strings.NewReader(tail))...)
}

// TestListingMetadataBounded: every value is bounded, and so must be what
// a listing keeps of all of them together: a listing of many attachments
// with large names, or of very many empty ones, is refused rather than
// kept whole (package doc: "Memory stays bounded per listing however
// large the attachments").
func TestListingMetadataBounded(t *testing.T) {
	bigName := `{"name":"` + strings.Repeat("n", maxValue-100) + `","id":"x"},`
	for _, tc := range []struct {
		name string
		in   func() io.Reader
	}{
		{"64 names of 1 MB", func() io.Reader { return repeatedListing(`{"value":[`, bigName, 64, `{}]}`) }},
		{"a million empty attachments", func() io.Reader { return repeatedListing(`{"value":[`, `{},`, 1_000_000, `{}]}`) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &memSink{failOn: -1}
			atts, _, err := parseAttachments(tc.in(), s.sink)
			var kept int
			for _, a := range atts {
				kept += len(a.Name) + len(a.ID) + 136 // the strings and the Attachment itself
			}
			if k := kindOfList(err); k != connector.Invalid {
				t.Errorf("err %v (kind %v): %d attachments kept, %d MB", err, k, len(atts), kept>>20)
			}
		})
	}
}

// TestNextLinkLoopEnds: a listing whose next link leads back to itself
// (or on to ever new empty pages) ends with an error, not after as many
// requests as the context allows.
func TestNextLinkLoopEnds(t *testing.T) {
	for _, withContent := range []bool{true, false} {
		ctx, cancel := context.WithCancel(t.Context())
		defer cancel()
		const giveUp = 2000
		var reqs atomic.Int64
		var self string
		h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if reqs.Add(1) >= giveUp {
				cancel() // the test's own bound, not the client's
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"value":[],"@odata.nextLink":%q}`, self)
		})
		c := newFakeClient(t, h, Config{Requests: 1 << 30, Window: time.Minute})
		self = c.base.String() + "/users/a@b/messages/m1/attachments?$skiptoken=again"
		var sink connector.Sink
		if withContent {
			sink = (&memSink{failOn: -1}).sink
		}
		_, err := c.Mailbox("a@b", staticToken).Attachments(ctx, "m1", sink)
		if err == nil || errors.Is(err, context.Canceled) || reqs.Load() >= giveUp {
			t.Errorf("with content %v: after %d requests: %v; want an error of its own, long before", withContent, reqs.Load(), err)
		}
	}
}

// TestSinkDiskErrorKeepsItsChain: a sink whose disk fails (archive.ErrDisk)
// comes back with ErrDisk in the chain and not as Transient, so the
// importer neither retries the list without content nor parks the mail,
// but reports the disk.
func TestSinkDiskErrorKeepsItsChain(t *testing.T) {
	in := `{"value":[{"name":"a","contentBytes":"AQID"},{"name":"b","contentBytes":"AQIDBA=="}]}`
	var made int
	sink := func(r io.Reader) (connector.Content, error) {
		b, err := io.ReadAll(io.LimitReader(r, 2))
		if made++; made == 2 && err == nil && len(b) == 2 {
			return nil, fmt.Errorf("archive: spool: %w: %w", archive.ErrDisk, errors.New("no space left on device"))
		}
		io.Copy(io.Discard, r)
		return &memContent{b: b, s: &memSink{}}, nil
	}
	_, _, err := parseAttachments(strings.NewReader(in), sink)
	err = classifyList("graph: attachments", err)
	if !errors.Is(err, archive.ErrDisk) || connector.IsKind(err, connector.Transient) {
		t.Errorf("err = %v (kind %v), want ErrDisk in the chain, not Transient", err, connector.KindOf(err))
	}
}

// TestSpoolSinkLeavesNoFileOnError: with the importer's sink (a spool
// file per attachment), a listing that breaks off, turns malformed or
// fails the sink leaves no file in the spool directory.
func TestSpoolSinkLeavesNoFileOnError(t *testing.T) {
	blob := base64.StdEncoding.EncodeToString(make([]byte, 30000))
	full := `{"value":[{"name":"a","contentBytes":"` + blob + `"},{"name":"b","contentBytes":"` + blob + `"},{"name":"c","contentBytes":"` + blob + `"}]}`
	for _, tc := range []struct{ name, in string }{
		{"cut in the third content", full[:len(full)-20000]},
		{"cut after the last content", full[:len(full)-3]},
		{"garbage in the third content", strings.Replace(full, `"c","contentBytes":"AAAA`, `"c","contentBytes":"A!AA`, 1)},
		{"malformed after the contents", strings.Replace(full, `"}]}`, `"},]}`, 1)},
		{"deep after the contents", strings.Replace(full, `"}]}`, `","x":`+strings.Repeat("[", 100)+`}]}`, 1)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			made := 0
			sink := func(r io.Reader) (connector.Content, error) {
				sp, err := archive.NewSpool(r, 0, dir)
				if err != nil {
					return nil, err // not a nil *Spool in the interface
				}
				made++
				return sp, nil
			}
			atts, _, err := parseAttachments(strings.NewReader(tc.in), sink)
			left, _ := os.ReadDir(dir)
			if err == nil || atts != nil || made == 0 || len(left) != 0 {
				t.Errorf("err %v, %d attachments, %d spools made, %d files left", err, len(atts), made, len(left))
			}
		})
	}
}

// FuzzAttachmentStreamIsJSON: what the parser accepts is JSON. (The
// resource checks are FuzzAttachmentStream's.)
func FuzzAttachmentStreamIsJSON(f *testing.F) {
	f.Add([]byte(`{"value":[{"contentBytes":"AQID","name":"a"},{"contentBytes":null}],"@odata.nextLink":"https://x/y"}`))
	f.Add([]byte(`{"value":[{"contentBytes":"\u0041\u0051\u003d\u003d\/\n"}]}`))
	f.Add([]byte("{\"value\":[{\"contentBytes\":\"AQID\r\n\r\nAQID\"}]}"))
	f.Add([]byte(`{"value":[{"x":[1,-2.5e3,true,null,{"y":"z"}]}]}`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &memSink{failOn: -1}
		atts, _, err := parseAttachments(bytes.NewReader(in), s.sink)
		if err != nil {
			return
		}
		closeAll(atts)
		if !json.Valid(in) {
			t.Fatalf("accepted %q, which is not JSON", in)
		}
	})
}
