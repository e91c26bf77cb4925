package graphtest

import "time"

// Throttle sets the per app and mailbox limits.
type Throttle struct {
	MaxConcurrent int           // default 4
	Requests      int           // default 10000
	Window        time.Duration // default 10m
}

// limits is the throttle state and the request statistics.
type limits struct {
	throttle Throttle
	limiters map[string]*limiter // by client id|mailbox id
	inFlight map[string]int      // Graph requests in flight by mailbox address
	counters Counters
}

// SetThrottle sets the per app and mailbox limits; zero fields keep the defaults.
func (s *Server) SetThrottle(t Throttle) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if t.MaxConcurrent <= 0 {
		t.MaxConcurrent = 4
	}
	if t.Requests <= 0 {
		t.Requests = 10000
	}
	if t.Window <= 0 {
		t.Window = 10 * time.Minute
	}
	s.lim.throttle = t
	s.lim.limiters = map[string]*limiter{}
}

// limiter is the throttle state of one app and mailbox.
type limiter struct {
	inFlight int
	times    []time.Time
}

// acquire takes a concurrency slot and a request from the budget, or
// answers how long to wait.
func (s *Server) acquire(clientID, mailboxID, address string) (release func(), retry time.Duration, code, msg string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	key := clientID + "|" + mailboxID
	l := s.lim.limiters[key]
	if l == nil {
		l = &limiter{}
		s.lim.limiters[key] = l
	}
	now := s.now()
	cut := now.Add(-s.lim.throttle.Window)
	i := 0
	for i < len(l.times) && !l.times[i].After(cut) {
		i++
	}
	l.times = l.times[i:]
	if l.inFlight >= s.lim.throttle.MaxConcurrent {
		s.lim.counters.Throttled++
		return nil, time.Second, "ApplicationThrottled", "Application is over its MailboxConcurrency limit."
	}
	if len(l.times) >= s.lim.throttle.Requests {
		s.lim.counters.Throttled++
		return nil, l.times[0].Add(s.lim.throttle.Window).Sub(now), "ApplicationThrottled", "Application is over its MailboxRequestRate limit."
	}
	l.times = append(l.times, now)
	l.inFlight++
	s.lim.inFlight[address]++
	if s.lim.inFlight[address] > s.lim.counters.MaxInFlight[address] {
		s.lim.counters.MaxInFlight[address] = s.lim.inFlight[address]
	}
	return func() {
		s.mu.Lock()
		l.inFlight--
		s.lim.inFlight[address]--
		released := s.hooks.onRelease
		s.mu.Unlock()
		if released != nil {
			released()
		}
	}, 0, "", ""
}
