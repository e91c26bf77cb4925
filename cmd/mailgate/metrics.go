package main

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailgate/mailgate/connector"
)

// connectionCollector reports the connections' states, token ages and secret
// expiry at scrape time, read from the connection store, so every replica
// reports the same numbers without keeping its own copy.
type connectionCollector struct {
	store *connector.Store
	now   func() time.Time

	byState, tokenAge, secretExpiry *prometheus.Desc
	// Timestamps, for alert rules that compare with time() and
	// dashboards that show dates; one series per connection for its state.
	state, tokenUsed, secretExpires *prometheus.Desc
}

func newConnectionCollector(store *connector.Store) *connectionCollector {
	return &connectionCollector{
		store: store,
		now:   time.Now,
		byState: prometheus.NewDesc("mailgate_connections", "Connections by state.",
			[]string{"state"}, nil),
		tokenAge: prometheus.NewDesc("mailgate_connection_token_age_seconds",
			"Time since a delegated connection's refresh token was last used; Microsoft expires it after 90 days without use.",
			[]string{"connection", "customer"}, nil),
		secretExpiry: prometheus.NewDesc("mailgate_connection_secret_expiry_seconds",
			"Time until an app-only connection's client secret expires (negative: expired).",
			[]string{"connection", "customer"}, nil),
		state: prometheus.NewDesc("mailgate_connection_state",
			"1 for the state each connection is in (deleted ones are left out).",
			[]string{"connection", "customer", "state"}, nil),
		tokenUsed: prometheus.NewDesc("mailgate_connection_token_last_used_timestamp_seconds",
			"When a delegated connection's refresh token was last used (Unix time); Microsoft expires it after 90 days without use.",
			[]string{"connection", "customer"}, nil),
		secretExpires: prometheus.NewDesc("mailgate_connection_secret_expiry_timestamp_seconds",
			"When an app-only connection's client secret expires (Unix time).",
			[]string{"connection", "customer"}, nil),
	}
}

func (c *connectionCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.byState
	ch <- c.tokenAge
	ch <- c.secretExpiry
	ch <- c.state
	ch <- c.tokenUsed
	ch <- c.secretExpires
}

func (c *connectionCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	list, err := c.store.List(ctx)
	if err != nil {
		ch <- prometheus.NewInvalidMetric(c.byState, err)
		return
	}
	now := c.now()
	counts := map[connector.State]int{
		connector.StatePending: 0, connector.StateActive: 0, connector.StatePaused: 0,
		connector.StateNeedsConsent: 0, connector.StateFailing: 0, connector.StateDeleted: 0,
	}
	for _, conn := range list {
		counts[conn.State]++
		if conn.State == connector.StateDeleted {
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.state, prometheus.GaugeValue, 1, conn.ID, conn.Customer, string(conn.State))
		if conn.Mode == connector.Delegated && !conn.TokenRefreshedAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.tokenAge, prometheus.GaugeValue, now.Sub(conn.TokenRefreshedAt).Seconds(), conn.ID, conn.Customer)
			ch <- prometheus.MustNewConstMetric(c.tokenUsed, prometheus.GaugeValue, unixSeconds(conn.TokenRefreshedAt), conn.ID, conn.Customer)
		}
		if conn.Mode == connector.AppOnly && !conn.SecretExpiresAt.IsZero() {
			ch <- prometheus.MustNewConstMetric(c.secretExpiry, prometheus.GaugeValue, conn.SecretExpiresAt.Sub(now).Seconds(), conn.ID, conn.Customer)
			ch <- prometheus.MustNewConstMetric(c.secretExpires, prometheus.GaugeValue, unixSeconds(conn.SecretExpiresAt), conn.ID, conn.Customer)
		}
	}
	for state, n := range counts {
		ch <- prometheus.MustNewConstMetric(c.byState, prometheus.GaugeValue, float64(n), string(state))
	}
}

func unixSeconds(t time.Time) float64 { return float64(t.UnixMilli()) / 1000 }
