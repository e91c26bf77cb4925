package importer

import (
	"container/heap"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// schedule is Run's view of the connections it polls: when each is due,
// which are triggered and which a worker has now. Only Run's loop uses it.
type schedule struct {
	byID  map[string]*schedEntry
	queue schedQueue // entries no worker has, soonest first
}

type schedEntry struct {
	id        string
	conn      *connector.Connection // as last listed or watched; nil when not known yet
	due       time.Time             // zero: at once (status not read yet)
	triggered bool                  // poll at once, without reading the status
	active    bool                  // a worker has it
	dropped   bool                  // a scan no longer lists it as workable; forget it when the worker is done
	index     int                   // in queue; -1 when not queued
}

func newSchedule() *schedule {
	return &schedule{byID: make(map[string]*schedEntry)}
}

// next returns the entry due first, or nil.
func (s *schedule) next() *schedEntry {
	if len(s.queue) == 0 {
		return nil
	}
	return s.queue[0]
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
		delete(s.byID, e.id)
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
		e = &schedEntry{id: id, index: -1}
		s.byID[id] = e
	}
	e.triggered, e.dropped, e.due = true, false, time.Time{}
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
		e := &schedEntry{id: c.ID, conn: &c}
		s.byID[c.ID] = e
		heap.Push(&s.queue, e)
	}
	for id, e := range s.byID {
		switch {
		case listed[id] || e.triggered:
		case e.active:
			e.dropped = true
		default:
			heap.Remove(&s.queue, e.index)
			delete(s.byID, id)
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
		e = &schedEntry{id: c.ID, conn: &c, triggered: true}
		s.byID[c.ID] = e
		heap.Push(&s.queue, e)
	case e == nil || e.triggered:
	case e.active:
		e.dropped = true
	default:
		heap.Remove(&s.queue, e.index)
		delete(s.byID, c.ID)
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
