package portal

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// The pull feed: GET /api/v1/events?after=<cursor>&limit=N&wait=30s for a
// DMS that can neither receive webhooks nor speak NATS. The cursor is the
// MAILGATE stream's sequence of the last event read (archive.Feed), so it
// survives restarts; the API key's customer's events only, each once, in
// the order published.

const (
	feedDefaultLimit = 100
	feedMaxLimit     = 1000
	// feedMaxWait stays below the HTTP server's write timeout.
	feedMaxWait = 60 * time.Second
)

type feedItem struct {
	Cursor string          `json:"cursor"`
	Event  json.RawMessage `json:"event"`
}

type feedPage struct {
	Events []feedItem `json:"events"`
	// Cursor is where the next request continues: the last event's, or
	// the request's own when there was none.
	Cursor string `json:"cursor"`
}

func (s *Server) apiEvents(w http.ResponseWriter, r *http.Request, key APIKey) {
	if s.deps.Events == nil {
		s.apiError(w, r, errNotFound)
		return
	}
	q := r.URL.Query()
	var after uint64
	if v := q.Get("after"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			s.apiError(w, r, invalid("after must be a cursor from an earlier answer"))
			return
		}
		after = n
	}
	limit := feedDefaultLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > feedMaxLimit {
			s.apiError(w, r, invalid(fmt.Sprintf("limit must be 1 to %d", feedMaxLimit)))
			return
		}
		limit = n
	}
	var wait time.Duration
	if v := q.Get("wait"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || d > feedMaxWait {
			s.apiError(w, r, invalid("wait must be a duration from 0s to 60s, e.g. 30s"))
			return
		}
		wait = d
	}
	evs, err := s.deps.Events.Read(r.Context(), key.Customer, after, limit, wait)
	if err != nil {
		s.apiError(w, r, fmt.Errorf("events: %w", err))
		return
	}
	page := feedPage{Events: make([]feedItem, 0, len(evs)), Cursor: strconv.FormatUint(after, 10)}
	for _, e := range evs {
		page.Cursor = strconv.FormatUint(e.Seq, 10)
		page.Events = append(page.Events, feedItem{Cursor: page.Cursor, Event: e.Event})
	}
	s.apiJSON(w, r, http.StatusOK, page)
}
