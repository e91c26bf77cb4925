package importer

import (
	"container/heap"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// schedule is Run's view of the connections it polls: when each is due,
// which are triggered and which a worker has now. Only Run's loop uses it.
//
// It keeps every workable connection, also those another replica owns
// (replicas.go): one of those that falls due is parked instead of polled,
// and when it becomes this replica's it is due at once.
type schedule struct {
	byID  map[string]*schedEntry
	queue schedQueue // entries no worker has and not parked, soonest first
	owns  func(id string) bool
	owned int // entries this replica owns
}

type schedEntry struct {
	id        string
	conn      *connector.Connection // as last listed or watched; nil when not known yet
	due       time.Time             // zero: at once (status not read yet)
	triggered bool                  // poll at once, without reading the status
	active    bool                  // a worker has it
	mine      bool                  // this replica owns it: polls it on schedule
	parked    bool                  // not mine and was due: neither queued nor active
	dropped   bool                  // a scan no longer lists it as workable; forget it when the worker is done
	index     int                   // in queue; -1 when not queued
}

// newSchedule returns an empty schedule that owns every connection.
func newSchedule() *schedule {
	return &schedule{byID: make(map[string]*schedEntry), owns: func(string) bool { return true }}
}

// next returns the entry due first, or nil. Entries due at now that
// another replica owns are parked on the way, unless triggered.
func (s *schedule) next(now time.Time) *schedEntry {
	for len(s.queue) > 0 {
		e := s.queue[0]
		if e.mine || e.triggered || e.due.After(now) {
			return e
		}
		heap.Pop(&s.queue)
		e.parked = true
	}
	return nil
}

// add creates an entry and queues it.
func (s *schedule) add(e *schedEntry) {
	e.mine = s.owns(e.id)
	if e.mine {
		s.owned++
	}
	s.byID[e.id] = e
	heap.Push(&s.queue, e)
}

// remove forgets an entry no worker has.
func (s *schedule) remove(e *schedEntry) {
	if e.index >= 0 {
		heap.Remove(&s.queue, e.index)
	}
	if e.mine {
		s.owned--
	}
	delete(s.byID, e.id)
}

// reown takes a new view of the replicas: an entry that became this
// replica's is due at now if it was parked (overdue) and keeps its due
// time otherwise. It returns the connections that became another's.
func (s *schedule) reown(owns func(id string) bool, now time.Time) (lost []string) {
	s.owns = owns
	for id, e := range s.byID {
		mine := owns(id)
		if mine == e.mine {
			continue
		}
		e.mine = mine
		if !mine {
			s.owned--
			lost = append(lost, id)
			continue
		}
		s.owned++
		if e.parked {
			e.parked, e.due = false, now
			heap.Push(&s.queue, e)
		}
	}
	return lost
}

// start marks id as handed to a worker.
func (s *schedule) start(id string) {
	e := s.byID[id]
	if e == nil || e.active {
		return
	}
	heap.Remove(&s.queue, e.index)
	e.active, e.triggered = true, false
}

// done takes a worker's result: the connection is due again at r.next, or
// forgotten when r.next is zero. A trigger that came meanwhile makes it
// due at once. It reports whether it forgot the connection.
func (s *schedule) done(r runResult) (forgot bool) {
	e := s.byID[r.id]
	if e == nil || !e.active {
		return false
	}
	e.active = false
	switch {
	case e.triggered:
		e.due = time.Time{}
	case e.dropped || r.next.IsZero():
		s.remove(e)
		return true
	default:
		e.due = r.next
	}
	heap.Push(&s.queue, e)
	return false
}

// trigger makes id due at once, skipping the status check. An unknown id
// is added: a trigger may come before the scan that lists a new
// connection, and the worker checks that it exists and is workable.
func (s *schedule) trigger(id string) {
	e := s.byID[id]
	if e == nil {
		s.add(&schedEntry{id: id, triggered: true})
		return
	}
	e.triggered, e.dropped, e.parked, e.due = true, false, false, time.Time{}
	if e.active {
		return
	}
	if e.index < 0 {
		heap.Push(&s.queue, e)
	} else {
		heap.Fix(&s.queue, e.index)
	}
}

// assign takes a scan's list: new workable connections are due at once
// (their worker reads the status to learn the real time), and those no
// longer listed as workable are forgotten, unless they wait for a trigger.
// It returns the connections it forgot.
func (s *schedule) assign(conns []connector.Connection) (forgotten []string) {
	listed := make(map[string]bool, len(conns))
	for _, c := range conns {
		if !workable(c.State) {
			continue
		}
		listed[c.ID] = true
		if e := s.byID[c.ID]; e != nil {
			e.dropped, e.conn = false, &c
			continue
		}
		s.add(&schedEntry{id: c.ID, conn: &c})
	}
	for id, e := range s.byID {
		switch {
		case listed[id] || e.triggered:
		case e.active:
			e.dropped = true
		default:
			s.remove(e)
			forgotten = append(forgotten, id)
		}
	}
	return forgotten
}

// update takes one changed connection from a watch: a workable one not
// known yet was just created, resumed or connected again, and is polled
// at once, as on a trigger; one no longer workable is forgotten, unless it waits for a
// trigger. It reports whether it forgot the connection.
func (s *schedule) update(c connector.Connection) (forgot bool) {
	e := s.byID[c.ID]
	switch {
	case workable(c.State) && e != nil:
		e.dropped, e.conn = false, &c
	case workable(c.State):
		s.add(&schedEntry{id: c.ID, conn: &c, triggered: true})
	case e == nil || e.triggered:
	case e.active:
		e.dropped = true
	default:
		s.remove(e)
		return true
	}
	return false
}

// schedQueue is a heap of entries: triggered first, then by due time.
type schedQueue []*schedEntry

func (q schedQueue) Len() int { return len(q) }

func (q schedQueue) Less(i, j int) bool {
	a, b := q[i], q[j]
	if a.triggered != b.triggered {
		return a.triggered
	}
	if !a.due.Equal(b.due) {
		return a.due.Before(b.due)
	}
	return a.id < b.id
}

func (q schedQueue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}

func (q *schedQueue) Push(x any) {
	e := x.(*schedEntry)
	e.index = len(*q)
	*q = append(*q, e)
}

func (q *schedQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
