package archive_test

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

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
