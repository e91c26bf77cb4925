package importer

import (
	"slices"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

func TestSchedule(t *testing.T) {
	conn := func(id string, s connector.State) connector.Connection {
		return connector.Connection{ID: id, State: s}
	}
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	// order lists the queued entries soonest first (by popping a copy).
	order := func(s *schedule) []string {
		var ids []string
		q := slices.Clone(s.queue)
		for len(q) > 0 {
			e := q[0]
			ids = append(ids, e.id)
			s.start(e.id)
			q = slices.Clone(s.queue)
		}
		return ids
	}
	tests := []struct {
		name string
		run  func(s *schedule)
		want []string
	}{
		{"new connections are due at once, paused ones not listed", func(s *schedule) {
			s.assign([]connector.Connection{conn("b", connector.StateActive), conn("a", connector.StateFailing), conn("p", connector.StatePaused)})
		}, []string{"a", "b"}},
		{"due times order the queue", func(s *schedule) {
			s.assign([]connector.Connection{conn("a", connector.StateActive), conn("b", connector.StateActive), conn("c", connector.StateActive)})
			for _, id := range []string{"a", "b", "c"} {
				s.start(id)
			}
			s.done(runResult{id: "a", next: at(3)})
			s.done(runResult{id: "b", next: at(1)})
			s.done(runResult{id: "c", next: at(2)})
		}, []string{"b", "c", "a"}},
		{"a trigger goes first", func(s *schedule) {
			s.assign([]connector.Connection{conn("a", connector.StateActive), conn("b", connector.StateActive)})
			s.start("b")
			s.done(runResult{id: "b", next: at(5)})
			s.trigger("b")
		}, []string{"b", "a"}},
		{"a trigger during a pass polls again after it", func(s *schedule) {
			s.assign([]connector.Connection{conn("a", connector.StateActive)})
			s.start("a")
			s.trigger("a")
			s.done(runResult{id: "a", next: at(60)})
		}, []string{"a"}},
		{"a trigger for an unlisted connection is kept until worked", func(s *schedule) {
			s.trigger("new")
			s.assign(nil)
		}, []string{"new"}},
		{"removed from the list: forgotten, also after its pass", func(s *schedule) {
			s.assign([]connector.Connection{conn("a", connector.StateActive), conn("b", connector.StateActive)})
			s.start("a")
			s.assign([]connector.Connection{conn("a", connector.StatePaused)})
			s.done(runResult{id: "a", next: at(1)})
		}, nil},
		{"a worker that finds it not workable drops it", func(s *schedule) {
			s.assign([]connector.Connection{conn("a", connector.StateActive), conn("b", connector.StateActive)})
			s.start("a")
			s.done(runResult{id: "a"})
		}, []string{"b"}},
		{"a listed connection in a pass is not queued twice", func(s *schedule) {
			s.assign([]connector.Connection{conn("a", connector.StateActive)})
			s.start("a")
			s.assign([]connector.Connection{conn("a", connector.StateActive)})
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSchedule()
			tt.run(s)
			if got := order(s); !slices.Equal(got, tt.want) {
				t.Errorf("queue %v, want %v", got, tt.want)
			}
		})
	}
}
