package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/nats-io/nats.go/jetstream"
)

// ErrWatchEnded means a watch of the connections bucket ended while its
// context was still live (the watcher's subscription broke); the caller
// watches again, which starts with the whole bucket.
var ErrWatchEnded = errors.New("connector: watch of connections ended")

// Watch follows the connections bucket without listing it: it calls all
// once with every connection there is, deleted ones included, as soon as
// it has caught up, and then changed with every connection as it is
// committed. A connection removed from the bucket altogether (a purge, not
// the state deleted) comes to changed with its ID and State deleted only.
// It blocks until ctx ends (returning nil) or the watch breaks (returning
// an error, ErrWatchEnded when the updates stopped). Both callbacks run in
// Watch's goroutine, one at a time.
func (s *Store) Watch(ctx context.Context, all func([]Connection), changed func(Connection)) error {
	const op = "connector: watch connections"
	w, err := s.kv.WatchAll(ctx)
	if err != nil {
		return fmt.Errorf("%s: %w", op, err)
	}
	defer func() { _ = w.Stop() }()
	var initial []Connection
	caughtUp := false
	for {
		var e jetstream.KeyValueEntry
		select {
		case <-ctx.Done():
			return nil
		case u, ok := <-w.Updates():
			if !ok {
				if ctx.Err() != nil {
					return nil
				}
				return ErrWatchEnded
			}
			e = u
		}
		if e == nil { // the current values are all in
			if !caughtUp {
				caughtUp = true
				all(initial)
				initial = nil
			}
			continue
		}
		if strings.HasPrefix(e.Key(), tenantPrefix) {
			continue // a tenant binding, not a connection
		}
		var c Connection
		switch e.Operation() {
		case jetstream.KeyValueDelete, jetstream.KeyValuePurge:
			c = Connection{ID: e.Key(), State: StateDeleted}
		default:
			if err := json.Unmarshal(e.Value(), &c); err != nil {
				return fmt.Errorf("%s: decode %s: %w", op, e.Key(), err)
			}
		}
		if !caughtUp {
			if c.ID != "" && e.Operation() == jetstream.KeyValuePut {
				initial = append(initial, c)
			}
			continue
		}
		changed(c)
	}
}
