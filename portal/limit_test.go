package portal

import (
	"net/http"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestFailureLimiter(t *testing.T) {
	l := newFailureLimiter(10*time.Second, 3)
	now := time.Now()
	for i := range 3 {
		if w, _ := l.Take("k", now); w != 0 {
			t.Fatalf("attempt %d: wait %v", i, w)
		}
	}
	w, _ := l.Take("k", now)
	if w < 9*time.Second || w > 10*time.Second {
		t.Errorf("after 3 failures wait %v, want ~10s", w)
	}
	if w, _ := l.Take("other", now); w != 0 {
		t.Errorf("other key waits %v", w)
	}
	if w, _ := l.Take("k", now.Add(10*time.Second)); w != 0 {
		t.Errorf("after refill wait %v", w)
	}
	// Successes give their token back.
	l.reset()
	for i := range 10 {
		w, release := l.Take("k", now)
		if w != 0 {
			t.Fatalf("success %d: wait %v", i, w)
		}
		release()
	}
}

// TestFailureLimiterAtomic is the race: 20 concurrent failing
// tries against a limit of 5 let exactly 5 through (7 did, when the check
// and the record were two steps).
func TestFailureLimiterAtomic(t *testing.T) {
	for round := range 20 {
		l := newFailureLimiter(time.Hour, 5)
		now := time.Now()
		var through atomic.Int32
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 20 {
			wg.Go(func() {
				<-start
				if w, _ := l.Take("victim", now); w == 0 {
					through.Add(1)
					time.Sleep(time.Millisecond) // the attempt runs; it fails, so nothing is released
				}
			})
		}
		close(start)
		wg.Wait()
		if n := through.Load(); n != 5 {
			t.Fatalf("round %d: %d of 20 concurrent tries passed a limit of 5", round, n)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := newBackoff(3, time.Second, 8*time.Second)
	now := time.Now()
	fail := func(at time.Time) time.Duration {
		t.Helper()
		w, done := b.Begin("k", at)
		if w == 0 {
			done(attemptFailed, at)
		}
		return w
	}
	for i := range 3 {
		if w := fail(now); w != 0 {
			t.Fatalf("free attempt %d: wait %v", i, w)
		}
	}
	// Then 1s, 2s, 4s, 8s, 8s: doubling up to the cap, never a lock.
	at := now
	for i, want := range []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 8 * time.Second, 8 * time.Second} {
		if w := fail(at); w != want {
			t.Fatalf("after %d failures: wait %v, want %v", 3+i, w, want)
		}
		at = at.Add(want)
		if w := fail(at); w != 0 {
			t.Fatalf("after waiting %v: wait %v", want, w)
		}
	}
	// Another key (the owner's own client) is not slowed.
	if w, _ := b.Begin("k-owner", now); w != 0 {
		t.Errorf("another client waits %v", w)
	}
	// A success forgets the failures.
	at = at.Add(time.Hour)
	w, done := b.Begin("k", at)
	if w != 0 {
		t.Fatal(w)
	}
	done(attemptSucceeded, at)
	for i := range 3 {
		if w := fail(at); w != 0 {
			t.Fatalf("after success, free attempt %d: wait %v", i, w)
		}
	}
}

// TestBackoffAtomic: 20 concurrent tries of one account from one client
// get exactly the 3 free attempts through.
func TestBackoffAtomic(t *testing.T) {
	b := newBackoff(3, time.Second, time.Minute)
	now := time.Now()
	var through atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 20 {
		wg.Go(func() {
			<-start
			if w, done := b.Begin("alice|1.2.3.4", now); w == 0 {
				through.Add(1)
				time.Sleep(time.Millisecond)
				done(attemptFailed, now)
			}
		})
	}
	close(start)
	wg.Wait()
	if n := through.Load(); n != 3 {
		t.Fatalf("%d of 20 concurrent tries passed, want 3", n)
	}
}

// TestLoginAttackerDoesNotLockOutOwner: an attacker guessing alice's
// password from one client is slowed (429 with Retry-After) while alice,
// from her own client, logs in at once.
func TestLoginAttackerDoesNotLockOutOwner(t *testing.T) {
	e := newEnv(t, func(c *Config, _ *Deps) { c.TrustedProxies = []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")} })
	from := func(b *browser, ip, password string) resp {
		t.Helper()
		form := url.Values{"name": {"alice"}, "password": {password}, "csrf": {b.token("/login")}}
		req, _ := http.NewRequest(http.MethodPost, e.ts.URL+"/login", strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("X-Forwarded-For", ip)
		return b.do(req)
	}
	attacker := e.browser()
	var last resp
	for range 10 {
		last = from(attacker, "203.0.113.66", "guess guess")
	}
	if last.status != http.StatusTooManyRequests || last.header.Get("Retry-After") == "" {
		t.Fatalf("10th guess: %d Retry-After %q, want 429", last.status, last.header.Get("Retry-After"))
	}
	owner := e.browser()
	if r := from(owner, "198.51.100.10", pw); r.status != http.StatusSeeOther {
		t.Fatalf("the owner from her own client: %d, want 303 (logged in)", r.status)
	}
}
