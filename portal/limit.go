package portal

import (
	"sync"
	"time"
)

// failureLimiter counts failures per key (an IP, an API key) with a token
// bucket of burst tokens refilling one per every. An attempt takes a token
// before it runs, in the same step as the check, so concurrent attempts
// cannot all pass one check; a success gives its token back, so successes
// cost nothing.
type failureLimiter struct {
	every time.Duration
	burst int

	mu   sync.Mutex
	keys map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newFailureLimiter(every time.Duration, burst int) *failureLimiter {
	return &failureLimiter{every: every, burst: burst, keys: map[string]*bucket{}}
}

// refill brings b's tokens up to now.
func (l *failureLimiter) refill(b *bucket, now time.Time) {
	if now.After(b.at) {
		b.tokens = min(float64(l.burst), b.tokens+float64(now.Sub(b.at))/float64(l.every))
		b.at = now
	}
}

// Take checks and takes a token of key in one step. A refused attempt
// (wait > 0) takes nothing; an allowed one returns release, which gives
// the token back: call it when the attempt succeeded.
func (l *failureLimiter) Take(key string, now time.Time) (wait time.Duration, release func()) {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.keys[key]
	if !ok {
		if len(l.keys) > 1024 {
			// Forget keys that are full again, so the map stays bounded.
			for k, o := range l.keys {
				if l.refill(o, now); o.tokens >= float64(l.burst) {
					delete(l.keys, k)
				}
			}
		}
		b = &bucket{tokens: float64(l.burst), at: now}
		l.keys[key] = b
	}
	l.refill(b, now)
	if b.tokens < 1 {
		return max(time.Duration((1-b.tokens)*float64(l.every)), time.Second), nil
	}
	b.tokens--
	var once sync.Once
	return 0, func() {
		once.Do(func() {
			l.mu.Lock()
			defer l.mu.Unlock()
			b.tokens = min(float64(l.burst), b.tokens+1)
		})
	}
}

// takeAll takes a token of every key or of none.
func takeAll(now time.Time, takes ...func(time.Time) (time.Duration, func())) (time.Duration, func()) {
	var releases []func()
	releaseAll := func() {
		for _, r := range releases {
			r()
		}
	}
	for _, take := range takes {
		wait, release := take(now)
		if wait > 0 {
			releaseAll()
			return wait, nil
		}
		releases = append(releases, release)
	}
	return 0, releaseAll
}

// on binds l to key for takeAll.
func (l *failureLimiter) on(key string) func(time.Time) (time.Duration, func()) {
	return func(now time.Time) (time.Duration, func()) { return l.Take(key, now) }
}

// reset forgets every key.
func (l *failureLimiter) reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	clear(l.keys)
}

// backoff slows repeated failures of one key (an account from one client)
// without locking the account's owner out: the owner's own client is
// another key. The first free attempts run freely; after them, each
// failure doubles the wait, from base up to limit, and only one attempt
// runs at a time. A success forgets the failures.
type backoff struct {
	free        int
	base, limit time.Duration

	mu   sync.Mutex
	keys map[string]*backoffState
}

type backoffState struct {
	fails, pending int
	until, last    time.Time
}

func newBackoff(free int, base, limit time.Duration) *backoff {
	return &backoff{free: free, base: base, limit: limit, keys: map[string]*backoffState{}}
}

// attempt is how an attempt under backoff ended.
type attempt int

const (
	attemptCancelled attempt = iota // did not run (refused by another limit)
	attemptFailed                   // wrong password
	attemptSucceeded                // forgets the key
)

// Begin checks and registers an attempt of key in one step. A refused
// attempt returns how long to wait; an allowed one returns done, to be
// called once with the outcome and the time it ended.
func (b *backoff) Begin(key string, now time.Time) (wait time.Duration, done func(attempt, time.Time)) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st, ok := b.keys[key]
	if !ok {
		if len(b.keys) > 4096 {
			for k, o := range b.keys {
				if o.pending == 0 && now.Sub(o.last) > 2*b.limit {
					delete(b.keys, k)
				}
			}
		}
		st = &backoffState{}
		b.keys[key] = st
	}
	if now.Before(st.until) {
		return st.until.Sub(now), nil
	}
	if st.fails+st.pending >= b.free && st.pending > 0 {
		return b.base, nil // past the free attempts: one at a time
	}
	st.pending++
	st.last = now
	var once sync.Once
	return 0, func(a attempt, end time.Time) {
		once.Do(func() {
			b.mu.Lock()
			defer b.mu.Unlock()
			st.pending--
			switch a {
			case attemptSucceeded:
				st.fails, st.until = 0, time.Time{}
			case attemptFailed:
				st.fails++
				if n := st.fails - b.free; n >= 0 {
					d := b.limit
					if n < 30 {
						d = min(b.base<<n, b.limit)
					}
					st.until = end.Add(d)
				}
			}
		})
	}
}
