package importer

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// BenchmarkPass measures a pass over 100 new mails, each with a PDF and an
// inline logo, against the embedded JetStream and in-memory fakes.
func BenchmarkPass(b *testing.B) {
	e := newEnv(b, connector.PostMove)
	e.mb.pageSize = 50
	logo := logoPNG(b)
	im := e.importer(b, "r1", nil)
	n := 0
	b.ResetTimer()
	for i := range b.N {
		b.StopTimer()
		for j := range 100 {
			n++
			inline := file("image001.png", "image/png", logo)
			inline.IsInline = true
			e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<b%d-%d@x>", i, j), ReceivedAt: t0},
				file("RE.pdf", "application/pdf", pdfDoc(n)), inline)
		}
		b.StartTimer()
		res, err := im.SyncNow(context.Background(), e.conn.ID)
		if err != nil || res.Imported != 100 {
			b.Fatalf("pass %+v, %v", res, err)
		}
	}
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "mails/s")
}

func TestMetrics(t *testing.T) {
	e := newEnv(t, connector.PostNone)
	want := deliverMix(t, e.mb, 20)
	reg := prometheus.NewRegistry()
	im := e.importer(t, "r1", func(c *Config) { c.Registerer = reg })
	e.sync(t, im)
	if got := testutil.ToFloat64(im.metrics.imported); got != float64(want.imported) {
		t.Errorf("documents_imported_total = %v, want %d", got, want.imported)
	}
	if got := testutil.ToFloat64(im.metrics.skipped.WithLabelValues(archive.ReasonInline)); got != 2 {
		t.Errorf("documents_skipped_total{reason=inline_image} = %v, want 2", got)
	}
	if n, err := testutil.GatherAndCount(reg, "mailgate_sync_duration_seconds"); err != nil || n != 1 {
		t.Errorf("sync_duration_seconds: %d series, %v", n, err)
	}
	if got := testutil.ToFloat64(im.metrics.lag.WithLabelValues(e.conn.ID)); got != 0 {
		t.Errorf("lag after a complete round = %v", got)
	}
	// A second importer on the same registry is refused, not silently unmeasured.
	if _, err := New(context.Background(), e.js, Deps{Connections: e.conns, Mailboxes: e.mbs, Store: e.store, Events: e.events},
		Config{Registerer: reg, Now: func() time.Time { return t0 }}); err == nil {
		t.Error("second registration succeeded")
	}
}
