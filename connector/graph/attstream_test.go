package graph

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/mailgate/mailgate/connector"
)

// memSink keeps each content in memory and counts Contents made and closed.
type memSink struct {
	made, closed int
	failOn       int // fail the sink when a content has this many bytes (-1: never)
}

type memContent struct {
	b      []byte
	s      *memSink
	closed bool
}

func (c *memContent) Size() int64 { return int64(len(c.b)) }
func (c *memContent) Close() error {
	if c.closed {
		return errors.New("closed twice")
	}
	c.closed = true
	c.s.closed++
	return nil
}

var errSinkFailed = errors.New("sink failed")

func (s *memSink) sink(r io.Reader) (connector.Content, error) {
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(b) == s.failOn {
		return nil, errSinkFailed
	}
	s.made++
	return &memContent{b: b, s: s}, nil
}

func kindOfList(err error) connector.Kind {
	if err == nil {
		return -1
	}
	return connector.KindOf(classifyList("test", err))
}

func TestParseAttachments(t *testing.T) {
	const file = `"@odata.type":"#microsoft.graph.fileAttachment"`
	for _, tc := range []struct {
		name     string
		in       string
		want     string // fmt of name:type:size:inline:cid:content per attachment
		next     string
		kind     connector.Kind // when an error is expected
		other    bool           // an error of kind Other is expected
		wantMade int
	}{
		{name: "empty", in: `{"value":[]}`, want: ""},
		{name: "value null", in: `{"value":null}`, want: ""},
		{name: "graph shape", in: `{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('a')/messages('b')/attachments","value":[
			{"@odata.type":"#microsoft.graph.fileAttachment","@odata.mediaContentType":"image/png","id":"AAMk=","lastModifiedDateTime":"2026-01-01T10:00:00Z",
			 "name":"logo.png","contentType":"image/png","size":3,"isInline":true,"contentId":"logo@x","contentLocation":null,"contentBytes":"AQID"}]}`,
			want: "logo.png:#microsoft.graph.fileAttachment:3:true:logo@x:010203;", wantMade: 1},
		{name: "content first, next link first, white space", in: " {\"@odata.nextLink\" : \"https://graph.microsoft.com/v1.0/next\" ,\n\"value\" : [ {\"contentBytes\" : \"aGVsbG8=\" , " + file + " , \"name\" : \"a.txt\" , \"size\" : 5 } ] } \r\n",
			want: "a.txt:#microsoft.graph.fileAttachment:5:false::68656c6c6f;", next: "https://graph.microsoft.com/v1.0/next", wantMade: 1},
		{name: "escapes in content", in: `{"value":[{` + file + `,"contentBytes":"\/\/\/\u002b\n\u0041\u0041\u0041\u003d"}]}`,
			want: ":#microsoft.graph.fileAttachment:0:false::fffffe0000;", wantMade: 1},
		{name: "escapes in metadata", in: `{"value":[{` + file + `,"name":"R\u00e9chnung \"1\"\/2.pdf","contentBytes":""}]}`,
			want: `Réchnung "1"/2.pdf:#microsoft.graph.fileAttachment:0:false::;`, wantMade: 1},
		{name: "null and absent content", in: `{"value":[{` + file + `,"name":"a","contentBytes":null},{` + file + `,"name":"b","size":null,"isInline":null,"contentId":null}]}`,
			want: "a:#microsoft.graph.fileAttachment:0:false::<nil>;b:#microsoft.graph.fileAttachment:0:false::<nil>;"},
		{name: "item and reference, nested values skipped", in: `{"value":[
			{"@odata.type":"#microsoft.graph.itemAttachment","name":"Fwd","size":12,"item":{"@odata.type":"#microsoft.graph.message","body":{"content":"x\"}]"},"toRecipients":[{"a":[1,2.5e3,-1,true,false,null]}]}},
			{"@odata.type":"#microsoft.graph.referenceAttachment","name":"link","sourceUrl":"https://x","providerType":"oneDriveBusiness","isFolder":false}]}`,
			want: "Fwd:#microsoft.graph.itemAttachment:12:false::<nil>;link:#microsoft.graph.referenceAttachment:0:false::<nil>;"},
		{name: "other top-level properties skipped", in: `{"@odata.count":2,"x":{"y":[]},"value":[]}`, want: ""},

		{name: "contents and metadata in turn", in: `{"value":[{"contentBytes":"AQ==","name":"a"} , {"name":"b","contentBytes" :` + "\n" + `"AgM=", "size":2},{"content\u0042ytes":"BA==","isInline":true}],"@odata.nextLink":"n"}`,
			want: "a::0:false::01;b::2:false::0203;::0:true::04;", next: "n", wantMade: 3},
		{name: "cut in a value of the wrong type", in: `{"value":"abc`, kind: connector.Invalid},
		{name: "cut in an attachment of the wrong type", in: `{"value":[{},"abc`, kind: connector.Invalid},
		{name: "cut in a size of the wrong type", in: `{"value":[{"size":"12`, kind: connector.Invalid},
		{name: "cut in a contentBytes of the wrong type", in: `{"value":[{"contentBytes":tr`, kind: connector.Invalid},
		{name: "cut in a top-level value of the wrong type", in: `nul`, kind: connector.Invalid},
		{name: "cut in a value of the wrong type after white space", in: `{"value":` + strings.Repeat(" ", 100) + `"abc`, kind: connector.Invalid},
		{name: "cut after a key", in: `{"value":[{"contentBytes"`, kind: connector.Transient},
		{name: "cut in a null content", in: `{"value":[{"contentBytes":nu`, kind: connector.Transient},
		{name: "truncated in content", in: `{"value":[{` + file + `,"contentBytes":"AQID`, kind: connector.Transient},
		{name: "truncated in escape", in: `{"value":[{` + file + `,"contentBytes":"AQI\u00`, kind: connector.Transient},
		{name: "truncated in metadata", in: `{"value":[{` + file + `,"name":"a`, kind: connector.Transient},
		{name: "truncated after a content", in: `{"value":[{` + file + `,"contentBytes":"AQID"}`, kind: connector.Transient},
		{name: "empty body", in: ``, kind: connector.Transient},
		{name: "invalid base64", in: `{"value":[{` + file + `,"contentBytes":"AQ!D"}]}`, kind: connector.Invalid},
		{name: "base64 without padding", in: `{"value":[{` + file + `,"contentBytes":"AQI"}]}`, kind: connector.Invalid},
		{name: "base64 after padding", in: `{"value":[{` + file + `,"contentBytes":"AQ==AQID"}]}`, kind: connector.Invalid},
		{name: "url-safe base64", in: `{"value":[{` + file + `,"contentBytes":"_-__"}]}`, kind: connector.Invalid},
		{name: "escaped tab in content", in: `{"value":[{` + file + `,"contentBytes":"AQ\tID"}]}`, kind: connector.Invalid},
		{name: "escaped backslash in content", in: `{"value":[{` + file + `,"contentBytes":"AQ\\tID"}]}`, kind: connector.Invalid},
		{name: "non-ascii escape in content", in: `{"value":[{` + file + `,"contentBytes":"AQ\u00e9D"}]}`, kind: connector.Invalid},
		{name: "contentBytes twice", in: `{"value":[{` + file + `,"contentBytes":"AQID","contentBytes":"AQID"}]}`, kind: connector.Invalid},
		{name: "contentBytes a number", in: `{"value":[{` + file + `,"contentBytes":12}]}`, kind: connector.Invalid},
		{name: "size a string", in: `{"value":[{` + file + `,"size":"12"}]}`, kind: connector.Invalid},
		{name: "size a fraction", in: `{"value":[{` + file + `,"size":1.5}]}`, kind: connector.Invalid},
		{name: "data after the object", in: `{"value":[]} {}`, kind: connector.Invalid},
		{name: "bad literal", in: `{"value":[{"isInline":truth}]}`, kind: connector.Invalid},
		{name: "missing comma", in: `{"value":[{"a":1 "b":2}]}`, kind: connector.Invalid},
		{name: "mismatched brackets in a skipped value", in: `{"value":[{"a":[1}]}`, kind: connector.Invalid},
		{name: "too deep", in: `{"value":[{"a":` + strings.Repeat("[", 100) + strings.Repeat("]", 100) + `}]}`, kind: connector.Invalid},
		{name: "oversize name", in: `{"value":[{"name":"` + strings.Repeat("x", maxValue) + `"}]}`, kind: connector.Invalid},
		{name: "oversize skipped string", in: `{"value":[{"other":"` + strings.Repeat("x", maxValue) + `"}]}`, kind: connector.Invalid},
		{name: "oversize next link", in: `{"@odata.nextLink":"` + strings.Repeat("x", maxValue) + `","value":[]}`, kind: connector.Invalid},
		{name: "not an object", in: `[]`, kind: connector.Invalid},
		{name: "control character", in: "{\"value\":[{\"name\":\"a\x01\"}]}", kind: connector.Invalid},
		{name: "sink fails", in: `{"value":[{` + file + `,"contentBytes":"AQID"},{` + file + `,"contentBytes":"AQIDBA=="}]}`, other: true},
		{name: "made then malformed", in: `{"value":[{` + file + `,"contentBytes":"AQID"},{` + file + `,"contentBytes":"AQID"},]}`, kind: connector.Invalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &memSink{failOn: 4}
			atts, next, err := parseAttachments(strings.NewReader(tc.in), s.sink)
			if tc.kind != connector.Other || tc.other {
				if k := kindOfList(err); k != tc.kind || atts != nil {
					t.Errorf("err = %v (kind %v, %d attachments), want %v", err, k, len(atts), tc.kind)
				}
				if s.made != s.closed {
					t.Errorf("made %d, closed %d", s.made, s.closed)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got strings.Builder
			for _, a := range atts {
				fmt.Fprintf(&got, "%s:%s:%d:%v:%s:", a.Name, a.Type, a.Size, a.IsInline, a.ContentID)
				if a.Data == nil {
					got.WriteString("<nil>;")
				} else {
					fmt.Fprintf(&got, "%x;", a.Data.(*memContent).b)
				}
			}
			if got.String() != tc.want || next != tc.next {
				t.Errorf("got  %s next %q\nwant %s next %q", got.String(), next, tc.want, tc.next)
			}
			if s.made != tc.wantMade || s.closed != 0 {
				t.Errorf("made %d, closed %d; want %d, 0", s.made, s.closed, tc.wantMade)
			}
		})
	}
}

// A sink may stop right after the last byte; one that stops earlier fails.
func TestParseAttachmentsSinkReadsPart(t *testing.T) {
	in := `{"value":[{"contentBytes":"AQIDBA=="}]}`
	exact := func(r io.Reader) (connector.Content, error) {
		b := make([]byte, 4)
		_, err := io.ReadFull(r, b)
		return &memContent{b: b, s: &memSink{}}, err
	}
	atts, _, err := parseAttachments(strings.NewReader(in), exact)
	if err != nil || len(atts) != 1 || !bytes.Equal(atts[0].Data.(*memContent).b, []byte{1, 2, 3, 4}) {
		t.Errorf("exact reader: %v, %+v", err, atts)
	}
	s := &memSink{}
	half := func(r io.Reader) (connector.Content, error) {
		b := make([]byte, 2)
		_, err := io.ReadFull(r, b)
		s.made++
		return &memContent{b: b, s: s}, err
	}
	if _, _, err := parseAttachments(strings.NewReader(in), half); kindOfList(err) != connector.Other || s.closed != 1 {
		t.Errorf("half reader: %v, closed %d", err, s.closed)
	}
}

// Whatever the sizes of the reads on either side, the content is the same:
// quanta cut by the read buffer, by escapes and by small reads of the sink.
func TestParseAttachmentsReadSizes(t *testing.T) {
	data := content(10000)
	for _, esc := range []bool{false, true} {
		in := listingOf(data, esc)
		for name, wrap := range map[string]func(io.Reader) io.Reader{
			"whole":     func(r io.Reader) io.Reader { return r },
			"one byte":  iotest.OneByteReader,
			"half":      iotest.HalfReader,
			"data+EOF":  iotest.DataErrReader,
			"odd sizes": func(r io.Reader) io.Reader { return &oddReader{r: r} },
		} {
			for sinkName, sinkWrap := range map[string]func(io.Reader) io.Reader{
				"copy":     func(r io.Reader) io.Reader { return r },
				"one byte": iotest.OneByteReader,
				"two":      func(r io.Reader) io.Reader { return &oddReader{r: r, sizes: []int{2}} },
			} {
				var got []byte
				atts, _, err := parseAttachments(wrap(bytes.NewReader(in)), func(r io.Reader) (connector.Content, error) {
					b, err := io.ReadAll(sinkWrap(r))
					got = b
					return &discard{n: int64(len(b))}, err
				})
				if err != nil || len(atts) != 1 || !bytes.Equal(got, data) {
					t.Errorf("escaped %v, input %s, sink %s: %v, %d bytes, equal %v", esc, name, sinkName, err, len(got), bytes.Equal(got, data))
				}
			}
		}
	}
}

// oddReader reads in sizes taken in turn from sizes (default 1, 2, 3, 5, 7, 4093).
type oddReader struct {
	r     io.Reader
	sizes []int
	i     int
}

func (o *oddReader) Read(p []byte) (int, error) {
	sizes := o.sizes
	if sizes == nil {
		sizes = []int{1, 2, 3, 5, 7, 4093}
	}
	n := sizes[o.i%len(sizes)]
	o.i++
	return o.r.Read(p[:min(n, len(p))])
}

// content is deterministic bytes whose base64 has many '/' and '+'.
func content(n int) []byte {
	b := make([]byte, n)
	x := uint32(1)
	for i := range b {
		x = x*1664525 + 1013904223
		b[i] = byte(x>>24) | 0xf0
	}
	return b
}

// listingOf writes a listing with one file attachment of content.
func listingOf(content []byte, escapeSlashes bool) []byte {
	enc := base64.StdEncoding.EncodeToString(content)
	if escapeSlashes {
		enc = strings.ReplaceAll(enc, "/", `\/`)
	}
	return []byte(`{"@odata.context":"https://graph.microsoft.com/v1.0/$metadata#users('a')/messages('b')/attachments","value":[` +
		`{"@odata.type":"#microsoft.graph.fileAttachment","@odata.mediaContentType":"application/pdf","id":"AAMkAGI=",` +
		`"lastModifiedDateTime":"2026-01-01T10:00:00Z","name":"scan.pdf","contentType":"application/pdf","size":` +
		fmt.Sprint(len(content)) + `,"isInline":false,"contentId":null,"contentLocation":null,"contentBytes":"` + enc + `"}]}`)
}

func FuzzAttachmentStream(f *testing.F) {
	f.Add(listingOf([]byte("%PDF-1.7 hello"), false))
	f.Add(listingOf(bytes.Repeat([]byte{0xff, 0xfe, 0xfd}, 40), true))
	f.Add([]byte(`{"value":[{"contentBytes":"AQID","name":"a"},{"contentBytes":null},{"@odata.type":"#microsoft.graph.itemAttachment","item":{"a":[1,{"b":"c"}]}}],"@odata.nextLink":"https://x/y"}`))
	f.Add([]byte(`{"value":[{"contentBytes":"\u0041\u0051\u003d\u003d\/\n"}]}`))
	f.Add([]byte(`{"value":[{"contentBytes":"AQIDBA=="},{"contentBytes":"AQID"`))
	f.Fuzz(func(t *testing.T, in []byte) {
		s := &memSink{failOn: 7}
		atts, _, err := parseAttachments(bytes.NewReader(in), s.sink)
		if err != nil {
			if atts != nil {
				t.Fatalf("attachments with error %v", err)
			}
			if s.made != s.closed {
				t.Fatalf("error %v: made %d contents, closed %d", err, s.made, s.closed)
			}
			if k := kindOfList(err); k != connector.Invalid && k != connector.Transient && k != connector.Other {
				t.Fatalf("error %v classified %v", err, k)
			}
			return
		}
		n := 0
		for _, a := range atts {
			if a.Data != nil {
				n++
			}
		}
		if n != s.made || s.closed != 0 {
			t.Fatalf("%d contents in the result, made %d, closed %d", n, s.made, s.closed)
		}
		closeAll(atts)
		if s.closed != s.made {
			t.Fatalf("closeAll closed %d of %d", s.closed, s.made)
		}
	})
}

// discard is a Sink that reads the content into a hash and keeps nothing.
type discard struct{ n int64 }

func (d *discard) Size() int64  { return d.n }
func (d *discard) Close() error { return nil }

func discardSink(r io.Reader) (connector.Content, error) {
	n, err := io.Copy(io.Discard, r)
	return &discard{n: n}, err
}

// BenchmarkAttachmentStream30MB parses a listing with one 30 MB attachment
// (40 MB of base64) from memory into a discarding sink: the decoding speed
// (MB/s of attachment) and the allocations per listing.
func BenchmarkAttachmentStream30MB(b *testing.B) {
	const size = 30 << 20
	pattern := []byte("%PDF-1.7 \x00\xff\xfe binary stream 0123456789")
	content := bytes.Repeat(pattern, size/len(pattern)+1)[:size]
	for _, esc := range []bool{false, true} {
		in := listingOf(content, esc)
		b.Run(fmt.Sprintf("escapedSlashes=%v", esc), func(b *testing.B) {
			b.SetBytes(size)
			b.ReportAllocs()
			for b.Loop() {
				atts, _, err := parseAttachments(bytes.NewReader(in), discardSink)
				if err != nil || len(atts) != 1 || atts[0].Data.Size() != size {
					b.Fatalf("%v %+v", err, atts)
				}
			}
		})
	}
}

// repeatReader yields block count times.
type repeatReader struct {
	block []byte
	count int
	off   int
}

func (r *repeatReader) Read(p []byte) (int, error) {
	if r.count == 0 {
		return 0, io.EOF
	}
	n := copy(p, r.block[r.off:])
	if r.off += n; r.off == len(r.block) {
		r.off = 0
		r.count--
	}
	return n, nil
}

// TestAttachmentStreamMemory parses a listing with a 100 MB attachment,
// generated on the fly, into a hashing sink: the parser allocates far less
// than the attachment, whatever its size.
func TestAttachmentStreamMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("100 MB")
	}
	block := make([]byte, 3<<10)
	for i := range block {
		block[i] = byte(i*7 + i/256)
	}
	const count = 100 << 20 / (3 << 10)
	want := sha256.New()
	for range count {
		want.Write(block)
	}
	enc := []byte(base64.StdEncoding.EncodeToString(block))
	prefix := `{"value":[{"@odata.type":"#microsoft.graph.fileAttachment","id":"x","name":"huge.pdf","size":104857600,"contentBytes":"`
	in := io.MultiReader(strings.NewReader(prefix), &repeatReader{block: enc, count: count}, strings.NewReader(`"}]}`))
	h := sha256.New()
	var got int64
	sink := func(r io.Reader) (connector.Content, error) {
		n, err := io.Copy(h, r)
		got = n
		return &discard{n: n}, err
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	atts, _, err := parseAttachments(in, sink)
	runtime.ReadMemStats(&after)
	if err != nil || len(atts) != 1 {
		t.Fatalf("%v %+v", err, atts)
	}
	if got != count*int64(len(block)) || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Errorf("%d bytes, sha256 equal %v", got, bytes.Equal(h.Sum(nil), want.Sum(nil)))
	}
	alloc := after.TotalAlloc - before.TotalAlloc
	t.Logf("allocated %d bytes for a %d byte attachment", alloc, got)
	if alloc > 1<<20 {
		t.Errorf("allocated %d bytes parsing a %d byte attachment, want < 1 MiB", alloc, got)
	}
}
