package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// readinessCollector reports at scrape time what /readyz reports, so an
// alert sees an unready process that still answers scrapes, and the poll
// interval, so the lag alert compares with the configured interval.
type readinessCollector struct {
	ready        func(ctx context.Context) error
	pollInterval time.Duration

	readyDesc, pollDesc *prometheus.Desc
}

func newReadinessCollector(ready func(ctx context.Context) error, pollInterval time.Duration) *readinessCollector {
	return &readinessCollector{
		ready: ready, pollInterval: pollInterval,
		readyDesc: prometheus.NewDesc("mailgate_ready", "1 when NATS and the document store are reachable (as /readyz), else 0.", nil, nil),
		pollDesc:  prometheus.NewDesc("mailgate_poll_interval_seconds", "How often an idle connection is polled (MAILGATE_POLL_INTERVAL).", nil, nil),
	}
}

func (c *readinessCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.readyDesc
	ch <- c.pollDesc
}

func (c *readinessCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	v := 1.0
	if err := c.ready(ctx); err != nil {
		v = 0
	}
	ch <- prometheus.MustNewConstMetric(c.readyDesc, prometheus.GaugeValue, v)
	ch <- prometheus.MustNewConstMetric(c.pollDesc, prometheus.GaugeValue, c.pollInterval.Seconds())
}
