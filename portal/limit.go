package portal

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// failureLimiter counts failures per key (an IP, a user name, an API key)
// with a token bucket: each failure takes a token, and a key without tokens
// is refused until one has refilled. Successes cost nothing.
type failureLimiter struct {
	every time.Duration
	burst int

	mu   sync.Mutex
	keys map[string]*rate.Limiter
	seen map[string]time.Time
}

func newFailureLimiter(every time.Duration, burst int) *failureLimiter {
	return &failureLimiter{every: every, burst: burst, keys: map[string]*rate.Limiter{}, seen: map[string]time.Time{}}
}

func (l *failureLimiter) limiter(key string, now time.Time) *rate.Limiter {
	lim, ok := l.keys[key]
	if !ok {
		// Forget keys that have been quiet long enough to be full again, so
		// the map does not grow without bound.
		full := l.every * time.Duration(l.burst)
		if len(l.keys) > 1024 {
			for k, t := range l.seen {
				if now.Sub(t) > full {
					delete(l.keys, k)
					delete(l.seen, k)
				}
			}
		}
		lim = rate.NewLimiter(rate.Every(l.every), l.burst)
		l.keys[key] = lim
	}
	l.seen[key] = now
	return lim
}

// Wait reports how long key must wait before its next attempt (0: go ahead).
func (l *failureLimiter) Wait(key string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	lim := l.limiter(key, now)
	if lim.TokensAt(now) >= 1 {
		return 0
	}
	r := lim.ReserveN(now, 1)
	d := r.DelayFrom(now)
	r.CancelAt(now)
	return max(d, time.Second)
}

// Fail records a failed attempt of key.
func (l *failureLimiter) Fail(key string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.limiter(key, now).AllowN(now, 1)
}

// reset forgets every key.
func (l *failureLimiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.keys)
	clear(l.seen)
}
