package portal

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	logins      *prometheus.CounterVec // result: ok, failed, limited
	redeems     *prometheus.CounterVec // result: active, failing, invalid, limited
	connects    *prometheus.CounterVec // result: code_issued, test_failed, consent_error
	apiRequests *prometheus.CounterVec // code: HTTP status class
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		logins: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Subsystem: "portal", Name: "logins_total", Help: "Portal login attempts by result.",
		}, []string{"result"}),
		redeems: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Subsystem: "portal", Name: "redeems_total", Help: "Connection code redemptions by result.",
		}, []string{"result"}),
		connects: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Subsystem: "portal", Name: "connects_total", Help: "Connect wizard completions by result.",
		}, []string{"result"}),
		apiRequests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "mailgate", Subsystem: "portal", Name: "api_requests_total", Help: "DMS API requests by status code.",
		}, []string{"code"}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.logins, m.redeems, m.connects, m.apiRequests} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("metrics: %w", err)
		}
	}
	return m, nil
}
