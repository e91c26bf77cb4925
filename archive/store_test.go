package archive_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// testStore is the conformance suite every archive.Store must pass.
func testStore(t *testing.T, st archive.Store) {
	ctx := context.Background()
	received := time.Date(2026, 3, 9, 23, 30, 0, 0, time.FixedZone("CET", 3600))

	tests := []struct {
		name string
		run  func(t *testing.T)
	}{
		{"round trip keeps bytes and metadata", func(t *testing.T) {
			body := []byte("%PDF-1.7 invoice body")
			key := archive.Key("acme", received, sum(body), "pdf")
			meta := archive.Meta{ContentType: "application/pdf", Name: "Rechnung März 2026 – Müller & Söhne.pdf", DocumentID: "doc-1"}
			ref, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), meta)
			if err != nil {
				t.Fatalf("Put: %v", err)
			}
			if ref.Bucket != st.Bucket() || ref.Key != key {
				t.Errorf("ref = %+v, want bucket %q key %q", ref, st.Bucket(), key)
			}
			rc, info, err := st.Get(ctx, key)
			if err != nil {
				t.Fatalf("Get: %v", err)
			}
			got, err := io.ReadAll(rc)
			_ = rc.Close()
			if err != nil || !bytes.Equal(got, body) {
				t.Fatalf("Get body = %q, %v; want %q", got, err, body)
			}
			want := archive.Info{Key: key, Size: int64(len(body)), SHA256: sum(body), ContentType: meta.ContentType, Name: meta.Name, DocumentID: "doc-1"}
			created := info.Created
			info.Created = time.Time{}
			if info != want {
				t.Errorf("Get info = %+v\nwant %+v", info, want)
			}
			if time.Since(created) > time.Hour || created.IsZero() {
				t.Errorf("Created = %v, want about now", created)
			}
			stat, err := st.Stat(ctx, key)
			stat.Created = time.Time{}
			if err != nil || stat != want {
				t.Errorf("Stat = %+v, %v; want %+v", stat, err, want)
			}
		}},
		{"repeated put is success and keeps the first object", func(t *testing.T) {
			body := []byte("same content twice")
			key := archive.Key("acme", received, sum(body), "txt")
			first := archive.Meta{ContentType: "text/plain", Name: "a.txt", DocumentID: "first"}
			if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), first); err != nil {
				t.Fatalf("first Put: %v", err)
			}
			before, _ := st.Stat(ctx, key)
			second := archive.Meta{ContentType: "text/plain", Name: "b.txt", DocumentID: "second"}
			if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), second); err != nil {
				t.Fatalf("second Put: %v", err)
			}
			after, err := st.Stat(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			if after != before || after.DocumentID != "first" {
				t.Errorf("after second put: %+v, want unchanged %+v", after, before)
			}
		}},
		{"wrong sha256 fails and leaves nothing", func(t *testing.T) {
			body := []byte("the real bytes")
			claimed := sum([]byte("other bytes"))
			key := archive.Key("acme", received, claimed, "bin")
			_, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), claimed, archive.Meta{})
			if !errors.Is(err, archive.ErrChecksum) {
				t.Fatalf("Put = %v, want ErrChecksum", err)
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("Stat after failed put = %v, want ErrNotFound", err)
			}
		}},
		{"wrong sha256 on a plain reader fails", func(t *testing.T) {
			body := "streamed bytes"
			claimed := sum([]byte("something else"))
			key := archive.Key("acme", received, claimed, "bin")
			_, err := st.Put(ctx, key, io.MultiReader(strings.NewReader(body)), int64(len(body)), claimed, archive.Meta{})
			if !errors.Is(err, archive.ErrChecksum) {
				t.Fatalf("Put = %v, want ErrChecksum", err)
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("Stat after failed put = %v, want ErrNotFound", err)
			}
		}},
		{"spool with a wrong hash fails and leaves nothing", func(t *testing.T) {
			// Put trusts a spool's hash; the store must still catch a wrong one.
			body := bytes.Repeat([]byte("spooled bytes "), 100)
			claimed := sum([]byte("not these bytes"))
			key := archive.Key("acme", received, claimed, "bin")
			_, err := st.Put(ctx, key, archive.SpoolReaderClaiming(body, claimed), int64(len(body)), claimed, archive.Meta{})
			if !errors.Is(err, archive.ErrChecksum) {
				t.Fatalf("Put = %v, want ErrChecksum", err)
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("Stat after failed put = %v, want ErrNotFound", err)
			}
		}},
		{"short body fails", func(t *testing.T) {
			body := []byte("short")
			key := archive.Key("acme", received, sum(body), "bin")
			_, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body))+10, sum(body), archive.Meta{})
			if err == nil {
				t.Fatal("Put with a size larger than the body succeeded")
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("Stat after failed put = %v, want ErrNotFound", err)
			}
		}},
		{"empty document", func(t *testing.T) {
			key := archive.Key("acme", received, sum(nil), "bin")
			if _, err := st.Put(ctx, key, bytes.NewReader(nil), 0, sum(nil), archive.Meta{}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			if info, err := st.Stat(ctx, key); err != nil || info.Size != 0 || info.SHA256 != sum(nil) {
				t.Errorf("Stat = %+v, %v", info, err)
			}
		}},
		{"other content under an existing key is refused", func(t *testing.T) {
			body, other := []byte("original"), []byte("impostor")
			key := "acme/fixed/key.bin"
			if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), archive.Meta{}); err != nil {
				t.Fatal(err)
			}
			if _, err := st.Put(ctx, key, bytes.NewReader(other), int64(len(other)), sum(other), archive.Meta{}); !errors.Is(err, archive.ErrChecksum) {
				t.Errorf("Put = %v, want ErrChecksum", err)
			}
			rc, _, err := st.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			_ = rc.Close()
			if !bytes.Equal(got, body) {
				t.Errorf("stored %q, want the original", got)
			}
		}},
		{"not found", func(t *testing.T) {
			key := archive.Key("acme", received, sum([]byte("never stored")), "pdf")
			if _, _, err := st.Get(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("Get = %v, want ErrNotFound", err)
			}
			if _, err := st.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
				t.Errorf("Stat = %v, want ErrNotFound", err)
			}
		}},
		{"invalid keys are refused", func(t *testing.T) {
			body := []byte("x")
			for _, key := range []string{"", "../escape", "a//b", "/abs", "a/.hidden", `a\b`} {
				if _, err := st.Put(ctx, key, bytes.NewReader(body), 1, sum(body), archive.Meta{}); err == nil {
					t.Errorf("Put(%q) succeeded", key)
				}
			}
		}},
		{"concurrent puts of one key all succeed", func(t *testing.T) {
			body := bytes.Repeat([]byte("concurrent "), 5000)
			key := archive.Key("acme", received, sum(body), "txt")
			var wg sync.WaitGroup
			errs := make([]error, 8)
			for i := range errs {
				wg.Go(func() {
					_, errs[i] = st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), archive.Meta{ContentType: "text/plain"})
				})
			}
			wg.Wait()
			for i, err := range errs {
				if err != nil {
					t.Errorf("put %d: %v", i, err)
				}
			}
			rc, _, err := st.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(rc)
			_ = rc.Close()
			if !bytes.Equal(got, body) {
				t.Errorf("stored %d bytes, want the %d put", len(got), len(body))
			}
		}},
		{"spool body larger than a part", func(t *testing.T) {
			body := bytes.Repeat([]byte{0, 1, 2, 3, 4, 5, 6, 7}, 3<<20) // 24 MiB: multipart on S3
			sp, err := archive.NewSpool(bytes.NewReader(body), 1<<20, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			defer sp.Close()
			key := archive.Key("acme", received, sp.SHA256(), "bin")
			if _, err := st.Put(ctx, key, sp.Reader(), sp.Size(), sp.SHA256(), archive.Meta{ContentType: "application/octet-stream"}); err != nil {
				t.Fatalf("Put: %v", err)
			}
			info, err := st.Stat(ctx, key)
			if err != nil || info.Size != int64(len(body)) || info.SHA256 != sum(body) {
				t.Errorf("Stat = %+v, %v", info, err)
			}
			rc, _, err := st.Get(ctx, key)
			if err != nil {
				t.Fatal(err)
			}
			h := sha256.New()
			_, err = io.Copy(h, rc)
			_ = rc.Close()
			if err != nil || hex.EncodeToString(h.Sum(nil)) != sum(body) {
				t.Errorf("read back sha256 %x, %v", h.Sum(nil), err)
			}
		}},
		{"ping", func(t *testing.T) {
			if err := st.Ping(ctx); err != nil {
				t.Errorf("Ping: %v", err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, tt.run)
	}
}

func TestDirStore(t *testing.T) {
	st, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.Bucket(), "dir:/") {
		t.Errorf("Bucket = %q, want dir:<absolute path>", st.Bucket())
	}
	testStore(t, st)
}

// A crash mid-put leaves a temporary file; the next process's first put
// into that directory removes it once it is an hour old.
func TestDirStoreSweepsCrashLeftovers(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "firma", "2026", "11")
	if err := os.MkdirAll(dir, 0o750); err != nil {
		t.Fatal(err)
	}
	stale, fresh := filepath.Join(dir, ".tmp-123"), filepath.Join(dir, ".tmp-456")
	for _, f := range []string{stale, fresh} {
		if err := os.WriteFile(f, []byte("half a docu"), 0o640); err != nil {
			t.Fatal(err)
		}
	}
	old := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(stale, old, old); err != nil {
		t.Fatal(err)
	}
	st, err := archive.NewDir(root)
	if err != nil {
		t.Fatal(err)
	}
	body := []byte("%PDF-1.7 invoice")
	sum := sha256.Sum256(body)
	key := "firma/2026/11/" + hex.EncodeToString(sum[:]) + ".pdf"
	if _, err := st.Put(t.Context(), key, bytes.NewReader(body), int64(len(body)), hex.EncodeToString(sum[:]), archive.Meta{}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(stale); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("a 2-hour-old temporary file survived the put: %v", err)
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file (a put in progress?) was removed: %v", err)
	}
}

func TestS3Store(t *testing.T) {
	cfg := archivetest.RunMinIO(t)
	st, err := archive.NewS3(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if st.Bucket() != cfg.Bucket {
		t.Errorf("Bucket = %q, want %q", st.Bucket(), cfg.Bucket)
	}
	testStore(t, st)
}

// TestS3PutRequests counts the requests a put costs, through a proxy in
// front of MinIO: a new document is one PUT; a repeated one is a PUT that
// ends in 412 plus the stat that checks the stored object.
func TestS3PutRequests(t *testing.T) {
	cfg := archivetest.RunMinIO(t)
	target, err := url.Parse("http://" + cfg.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var reqs []string
	proxy := httputil.NewSingleHostReverseProxy(target) // keeps the signed Host header
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		reqs = append(reqs, r.Method)
		mu.Unlock()
		proxy.ServeHTTP(w, r)
	}))
	defer srv.Close()
	taken := func() []string {
		mu.Lock()
		defer mu.Unlock()
		r := reqs
		reqs = nil
		return r
	}

	ctx := context.Background()
	cfg.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	st, err := archive.NewS3(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	taken()
	body := bytes.Repeat([]byte("%PDF-1.7 "), 100<<10/9)
	sp, err := archive.NewSpool(bytes.NewReader(body), 1<<20, "")
	if err != nil {
		t.Fatal(err)
	}
	defer sp.Close()
	key := archive.Key("acme", time.Now(), sp.SHA256(), "pdf")
	for _, tt := range []struct {
		name string
		want []string
	}{
		{"new key", []string{http.MethodPut}},
		{"repeated put", []string{http.MethodPut, http.MethodHead}},
	} {
		if _, err := st.Put(ctx, key, sp.Reader(), sp.Size(), sp.SHA256(), archive.Meta{DocumentID: "d"}); err != nil {
			t.Fatalf("%s: Put: %v", tt.name, err)
		}
		if got := taken(); !slices.Equal(got, tt.want) {
			t.Errorf("%s: requests %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestS3Unreachable(t *testing.T) {
	m := archivetest.StartMinIO(t)
	ctx := context.Background()
	st, err := archive.NewS3(ctx, m.Config())
	if err != nil {
		t.Fatal(err)
	}
	m.Stop()

	body := []byte("while s3 is down")
	key := archive.Key("acme", time.Now(), sum(body), "txt")
	tctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	if _, err := st.Put(tctx, key, bytes.NewReader(body), int64(len(body)), sum(body), archive.Meta{}); err == nil {
		t.Fatal("Put succeeded with S3 down")
	} else if errors.Is(err, archive.ErrNotFound) {
		t.Errorf("Put error = %v; must not look like a missing object", err)
	} else {
		t.Logf("Put with S3 down: %v", err)
	}
	if err := st.Ping(tctx); err == nil {
		t.Error("Ping succeeded with S3 down")
	}
	if _, err := archive.NewS3(tctx, m.Config()); err == nil {
		t.Error("NewS3 succeeded with S3 down")
	}

	m.Start()
	if _, err := st.Stat(ctx, key); !errors.Is(err, archive.ErrNotFound) {
		t.Errorf("after restart, Stat = %v; want ErrNotFound (nothing stored)", err)
	}
	if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), archive.Meta{}); err != nil {
		t.Errorf("Put after restart: %v", err)
	}
}

func TestS3PreconditionFailedIsSuccess(t *testing.T) {
	ctx := context.Background()
	st, err := archive.NewS3(ctx, archivetest.RunMinIO(t))
	if err != nil {
		t.Fatal(err)
	}
	archive.SkipPrecheck(st)
	small := []byte("small object")
	large := bytes.Repeat([]byte("L"), 20<<20) // multipart
	for _, body := range [][]byte{small, large} {
		key := archive.Key("acme", time.Now(), sum(body), "bin")
		for i := range 2 {
			if _, err := st.Put(ctx, key, bytes.NewReader(body), int64(len(body)), sum(body), archive.Meta{DocumentID: "d"}); err != nil {
				t.Fatalf("%d bytes, put %d: %v", len(body), i, err)
			}
		}
	}
	// A different object already under the key is not success.
	other := []byte("other content")
	key := archive.Key("acme", time.Now(), sum(small), "bin")
	if _, err := st.Put(ctx, key, bytes.NewReader(other), int64(len(other)), sum(other), archive.Meta{}); !errors.Is(err, archive.ErrChecksum) {
		t.Errorf("put of other content under an existing key = %v, want ErrChecksum", err)
	}
}
