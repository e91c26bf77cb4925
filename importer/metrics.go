package importer

import (
	"context"
	"fmt"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

type metrics struct {
	imported prometheus.Counter
	skipped  *prometheus.CounterVec
	duration prometheus.Histogram
	errors   *prometheus.CounterVec
	lag      *prometheus.GaugeVec
	// pollDelay is how late Run hands a due check to a worker.
	pollDelay prometheus.Histogram
	// replicas is how many live importer replicas Run sees, itself
	// included; owned how many connections it polls on schedule.
	replicas prometheus.Gauge
	owned    prometheus.Gauge

	parked      prometheus.Counter
	givenUp     prometheus.Counter
	infraErrors *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		imported: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mailgate", Name: "documents_imported_total", Help: "Documents archived and announced.",
		}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Name: "documents_skipped_total", Help: "Attachments skipped, by reason.",
		}, []string{"reason"}),
		duration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "mailgate", Name: "sync_duration_seconds", Help: "Duration of sync passes.",
			Buckets: prometheus.ExponentialBuckets(0.05, 2, 14),
		}),
		errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Name: "sync_errors_total", Help: "Failed sync passes, by error kind.",
		}, []string{"kind"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: "mailgate", Name: "lag_seconds", Help: "Age of the oldest mail not yet processed, per connection.",
		}, []string{"connection"}),
		pollDelay: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "mailgate", Name: "poll_delay_seconds",
			Help:    "How long after a connection fell due for its check a worker began it (triggered checks excluded).",
			Buckets: []float64{0.1, 0.5, 1, 2, 5, 10, 30, 60, 300},
		}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mailgate", Subsystem: "importer", Name: "replicas",
			Help: "Live importer replicas this one sees, itself included; they share the scheduled polls.",
		}),
		owned: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "mailgate", Subsystem: "importer", Name: "owned_connections",
			Help: "Connections this replica polls on schedule (the others' polls are made by the other replicas).",
		}),
		parked: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mailgate", Name: "mails_parked_total", Help: "Failures of single mails, each parked for a retry on its own schedule.",
		}),
		givenUp: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "mailgate", Name: "mails_given_up_total", Help: "Mails given up after their retries (announced as document.skipped failed).",
		}),
		infraErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Name: "infrastructure_errors_total", Help: "Passes ended by a fault of the operator's infrastructure, by component (disk, storage, nats).",
		}, []string{"component"}),
	}
	for _, c := range []string{componentDisk, componentStorage, componentNATS} {
		m.infraErrors.WithLabelValues(c)
	}
	// Known label values start at zero, so dashboards and alerts see the
	// series before the first skip or error.
	for _, r := range []string{archive.ReasonInline, archive.ReasonTooSmall, archive.ReasonSignatureLogo, archive.ReasonTypeNotAllowed,
		archive.ReasonDisguised, archive.ReasonDuplicate, archive.ReasonReference, archive.ReasonItemAttachment, archive.ReasonEmpty, archive.ReasonFailed} {
		m.skipped.WithLabelValues(r)
	}
	for _, k := range []connector.Kind{connector.Other, connector.Transient, connector.Throttled, connector.NeedsConsent,
		connector.AccessDenied, connector.NotFound, connector.SyncReset, connector.Invalid} {
		m.errors.WithLabelValues(k.String())
	}
	m.errors.WithLabelValues("infrastructure")
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.imported, m.skipped, m.duration, m.errors, m.lag, m.pollDelay, m.replicas, m.owned, m.parked, m.givenUp, m.infraErrors} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("importer: metrics: %w", err)
		}
	}
	return m, nil
}

// infraUpCollector reports mailgate_infrastructure_up at scrape time: 0
// for a component while a pass met a fault of it that no success has
// cleared, or while Config.Probe finds it failing, so the metric agrees
// with readiness even when no pass runs.
type infraUpCollector struct {
	im   *Importer
	desc *prometheus.Desc
}

func newInfraUpCollector(im *Importer) *infraUpCollector {
	return &infraUpCollector{im: im, desc: prometheus.NewDesc("mailgate_infrastructure_up",
		"0 while the importer meets a fault of the component (disk, storage, nats) or readiness finds it failing, else 1.", []string{"component"}, nil)}
}

func (c *infraUpCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c *infraUpCollector) Collect(ch chan<- prometheus.Metric) {
	var probed map[string]error
	if c.im.cfg.Probe != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		probed = c.im.cfg.Probe(ctx)
		cancel()
	}
	for _, comp := range []string{componentDisk, componentStorage, componentNATS} {
		v := 1.0
		if c.im.faults.has(comp) || probed[comp] != nil {
			v = 0
		}
		ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, v, comp)
	}
}
