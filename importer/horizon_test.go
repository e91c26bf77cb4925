package importer

import (
	"testing"
	"time"
)

// The default horizon outlasts a day-long Microsoft outage, and a parked
// mail is still tried at least hourly within it.
func TestRetryHorizonDefaultAndCap(t *testing.T) {
	var c Config
	c.setDefaults()
	if c.Policy.RetryFor != 72*time.Hour {
		t.Errorf("default RetryFor %v, want 72h", c.Policy.RetryFor)
	}
	for _, tc := range []struct {
		horizon time.Duration
		first   time.Duration // the first wait without jitter
		ceiling time.Duration // the longest wait without jitter
	}{
		{72 * time.Hour, 30 * time.Second, time.Hour},
		{30 * 24 * time.Hour, 30 * time.Second, time.Hour},
		{time.Hour, 30 * time.Second, 30 * time.Minute}, // half the horizon
		{10 * time.Minute, 5 * time.Second, 5 * time.Minute},
	} {
		// Jitter takes a wait d to between d/2 (rand 0) and d (rand → 1).
		top := &Importer{cfg: Config{Policy: PolicyConfig{RetryFor: tc.horizon}}, backoff: backoff{rand: func() float64 { return 1 - 1e-9 }}}
		bottom := &Importer{cfg: Config{Policy: PolicyConfig{RetryFor: tc.horizon}}, backoff: backoff{rand: func() float64 { return 0 }}}
		if d := top.retryBackoff().delay(1); d.Round(time.Second) != tc.first {
			t.Errorf("horizon %v: first wait %v, want %v", tc.horizon, d, tc.first)
		}
		longest := time.Duration(0)
		for attempt := 1; attempt <= 50; attempt++ {
			longest = max(longest, top.retryBackoff().delay(attempt))
		}
		if longest.Round(time.Second) != tc.ceiling {
			t.Errorf("horizon %v: longest wait %v, want %v", tc.horizon, longest, tc.ceiling)
		}
		if d := bottom.retryBackoff().delay(50); d != tc.ceiling/2 {
			t.Errorf("horizon %v: the 50th wait jittered down is %v, want %v", tc.horizon, d, tc.ceiling/2)
		}
	}
}
