package archive_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

// BenchmarkPut100KB compares S3Store.Put of a spooled 100 KB document (as the
// importer puts it: a fresh key, the spool's reader and hash) with raw
// minio-go PutObject of the same bytes (size known, default options: the
// ceiling of mailgate bench), against one MinIO. It reports both rates and
// their ratio; issue 7's goal is ≥ 0.70 of raw for the whole import path.
func BenchmarkPut100KB(b *testing.B) {
	ctx := context.Background()
	cfg := archivetest.RunMinIO(b)
	st, err := archive.NewS3(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	raw, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		b.Fatal(err)
	}
	benchPut100KB(b, st, func(i int, body []byte) error {
		key := "raw/" + strconv.Itoa(i) + ".pdf"
		_, err := raw.PutObject(ctx, cfg.Bucket, key, bytes.NewReader(body), int64(len(body)), minio.PutObjectOptions{ContentType: "application/pdf"})
		return err
	})
}

// BenchmarkDirPut100KB compares DirStore.Put of a spooled 100 KB document
// with writing and fsyncing a file of the same bytes (mailgate bench's
// ceiling for the directory archive).
func BenchmarkDirPut100KB(b *testing.B) {
	st, err := archive.NewDir(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	rawDir := b.TempDir()
	benchPut100KB(b, st, func(i int, body []byte) error {
		f, err := os.Create(filepath.Join(rawDir, strconv.Itoa(i)+".pdf"))
		if err != nil {
			return err
		}
		_, err = f.Write(body)
		if err == nil {
			err = f.Sync()
		}
		return errors.Join(err, f.Close())
	})
}

// benchPut100KB runs one put into st and one raw put of the same 100 KB per
// iteration, alternating which goes first so that both see the same machine
// load, and reports the rates of each and their ratio.
func benchPut100KB(b *testing.B, st archive.Store, raw func(i int, body []byte) error) {
	const size = 100 << 10
	ctx := context.Background()
	body := make([]byte, size)
	_, _ = rand.NewChaCha8([32]byte{7}).Read(body)
	sp, err := archive.NewSpool(bytes.NewReader(body), 4<<20, "")
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()

	putStore := func(i int) {
		// One customer and month, as in an import: only the names differ.
		key := "acme/2026/11/" + sp.SHA256() + "-" + strconv.Itoa(i) + ".pdf"
		meta := archive.Meta{ContentType: "application/pdf", Name: "RE-2026-001.pdf", DocumentID: "doc-" + strconv.Itoa(i)}
		if _, err := st.Put(ctx, key, sp.Reader(), sp.Size(), sp.SHA256(), meta); err != nil {
			b.Fatal(err)
		}
	}
	putRaw := func(i int) {
		if err := raw(i, body); err != nil {
			b.Fatalf("raw put: %v", err)
		}
	}
	putStore(-1) // warm up connections and the directory
	putRaw(-1)

	var inStore, inRaw time.Duration
	b.SetBytes(2 * size)
	b.ResetTimer()
	for i := range b.N {
		t0 := time.Now()
		if i%2 == 0 {
			putStore(i)
			t1 := time.Now()
			putRaw(i)
			inStore, inRaw = inStore+t1.Sub(t0), inRaw+time.Since(t1)
		} else {
			putRaw(i)
			t1 := time.Now()
			putStore(i)
			inRaw, inStore = inRaw+t1.Sub(t0), inStore+time.Since(t1)
		}
	}
	b.StopTimer()
	storeRate := float64(b.N) / inStore.Seconds()
	rawRate := float64(b.N) / inRaw.Seconds()
	b.ReportMetric(storeRate, "store-docs/s")
	b.ReportMetric(rawRate, "raw-docs/s")
	b.ReportMetric(storeRate/rawRate, "store/raw")
}

// BenchmarkPut200MB stores a 200 MB spooled document into MinIO and reports
// the peak Go heap and the peak resident set size during the put.
func BenchmarkPut200MB(b *testing.B) {
	const size = 200 << 20
	ctx := context.Background()
	st, err := archive.NewS3(ctx, archivetest.RunMinIO(b))
	if err != nil {
		b.Fatal(err)
	}
	sp, err := archive.NewSpool(io.LimitReader(rand.NewChaCha8([32]byte{1}), size), 1<<20, b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer sp.Close()

	runtime.GC()
	resetPeakRSS()
	stop := sampleHeap()
	b.SetBytes(size)
	b.ResetTimer()
	for i := range b.N {
		key := archive.Key("bench"+strconv.Itoa(i), time.Now(), sp.SHA256(), "bin")
		if _, err := st.Put(ctx, key, sp.Reader(), sp.Size(), sp.SHA256(), archive.Meta{ContentType: "application/octet-stream"}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	peakHeap := stop()
	b.ReportMetric(float64(peakHeap)/(1<<20), "peak-heap-MB")
	if rss, ok := peakRSS(); ok {
		b.ReportMetric(float64(rss)/(1<<20), "peak-MB")
	}
}

// sampleHeap records the largest HeapAlloc until the returned func is called.
func sampleHeap() (stop func() uint64) {
	done := make(chan struct{})
	var wg sync.WaitGroup
	var peak uint64
	wg.Go(func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapAlloc)
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	})
	return func() uint64 { close(done); wg.Wait(); return peak }
}

// resetPeakRSS resets VmHWM (Linux ≥ 4.0); elsewhere peakRSS covers the
// whole process.
func resetPeakRSS() { _ = os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) }

// peakRSS reads VmHWM from /proc/self/status.
func peakRSS() (uint64, bool) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, false
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			var kb uint64
			if _, err := fmt.Sscanf(strings.TrimSpace(v), "%d kB", &kb); err == nil {
				return kb << 10, true
			}
		}
	}
	return 0, false
}
