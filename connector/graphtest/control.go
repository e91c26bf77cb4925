package graphtest

import (
	"encoding/json"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
)

// mailJSON is a mail in the control API.
type mailJSON struct {
	From              string           `json:"from"`
	FromName          string           `json:"fromName"`
	Subject           string           `json:"subject"`
	Body              string           `json:"body"`
	BodyHTML          bool             `json:"bodyHtml"`
	InternetMessageID string           `json:"internetMessageId"`
	ReceivedAt        time.Time        `json:"receivedAt"`
	IsRead            bool             `json:"isRead"`
	Folder            string           `json:"folder"`
	Categories        []string         `json:"categories"`
	Attachments       []attachmentJSON `json:"attachments"`
}

type attachmentJSON struct {
	Name         string    `json:"name"`
	ContentType  string    `json:"contentType"`
	Content      []byte    `json:"content"` // base64
	Inline       bool      `json:"inline"`
	ContentID    string    `json:"contentId"`
	Item         *mailJSON `json:"item"`
	ReferenceURL string    `json:"referenceUrl"`
}

func (m mailJSON) mail() Mail {
	out := Mail{
		From: m.From, FromName: m.FromName, Subject: m.Subject, Body: m.Body, BodyHTML: m.BodyHTML,
		InternetMessageID: m.InternetMessageID, ReceivedAt: m.ReceivedAt, IsRead: m.IsRead, Folder: m.Folder,
		Categories: m.Categories,
	}
	for _, a := range m.Attachments {
		at := Attachment{Name: a.Name, ContentType: a.ContentType, Content: a.Content, Inline: a.Inline,
			ContentID: a.ContentID, ReferenceURL: a.ReferenceURL}
		if a.Item != nil {
			item := a.Item.mail()
			at.Item = &item
		}
		out.Attachments = append(out.Attachments, at)
	}
	return out
}

type faultJSON struct {
	Method         string  `json:"method"`
	PathContains   string  `json:"pathContains"`
	Status         int     `json:"status"`
	Code           string  `json:"code"`
	RetryAfter     float64 `json:"retryAfterSeconds"`
	Count          int     `json:"count"`
	Delay          float64 `json:"delaySeconds"`
	Truncate       bool    `json:"truncate"`
	Malformed      bool    `json:"malformed"`
	DuplicateDelta bool    `json:"duplicateDelta"`
	AADSTS         int     `json:"aadsts"`
	Suberror       string  `json:"suberror"`
	Description    string  `json:"description"`
	Grant          string  `json:"grant"`
}

// notificationsJSON is Notifications in the control API (durations in
// seconds).
type notificationsJSON struct {
	Delay                 float64 `json:"delaySeconds"`
	DropRate              float64 `json:"dropRate"`
	DuplicateRate         float64 `json:"duplicateRate"`
	Seed                  uint64  `json:"seed"`
	Timeout               float64 `json:"timeoutSeconds"`
	SlowAfter             float64 `json:"slowAfterSeconds"`
	EvaluateAfter         int     `json:"evaluateAfter"`
	EvaluationWindow      float64 `json:"evaluationWindowSeconds"`
	ThrottleDelay         float64 `json:"throttleDelaySeconds"`
	RetryDelay            float64 `json:"retryDelaySeconds"`
	RetryFor              float64 `json:"retryForSeconds"`
	ValidationTimeout     float64 `json:"validationTimeoutSeconds"`
	RequireHTTPS          bool    `json:"requireHttps"`
	AcceptSharedDelegated bool    `json:"acceptSharedDelegated"`
	MaxLifetime           float64 `json:"maxLifetimeMinutes"`
	MaxPerMailbox         int     `json:"maxPerMailbox"`
	WriteLimit            int     `json:"writeLimit"`
	WriteWindow           float64 `json:"writeWindowSeconds"`
}

func (n notificationsJSON) config() Notifications {
	sec := func(v float64) time.Duration { return time.Duration(v * float64(time.Second)) }
	return Notifications{
		Delay: sec(n.Delay), DropRate: n.DropRate, DuplicateRate: n.DuplicateRate, Seed: n.Seed,
		Timeout: sec(n.Timeout), SlowAfter: sec(n.SlowAfter), EvaluateAfter: n.EvaluateAfter,
		EvaluationWindow: sec(n.EvaluationWindow), ThrottleDelay: sec(n.ThrottleDelay),
		RetryDelay: sec(n.RetryDelay), RetryFor: sec(n.RetryFor), ValidationTimeout: sec(n.ValidationTimeout),
		RequireHTTPS: n.RequireHTTPS, AcceptSharedDelegated: n.AcceptSharedDelegated,
		MaxLifetime: time.Duration(n.MaxLifetime * float64(time.Minute)), MaxPerMailbox: n.MaxPerMailbox,
		WriteLimit: n.WriteLimit, WriteWindow: sec(n.WriteWindow),
	}
}

func controlError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, map[string]any{"error": map[string]string{"code": code, "message": msg}})
}

// serveControl serves the JSON control API under /_sim/.
func (s *Server) serveControl(c *call, segs []string) {
	c.endpoint = "sim"
	w, r := c.w, c.r
	route := strings.Join(segs, "/")
	switch {
	case route == "mailboxes" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"value": s.controlMailboxes()})
	case route == "users" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"value": s.controlUsers()})
	case route == "counters" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.Counters())
	case route == "counters" && r.Method == http.MethodDelete:
		s.ResetCounters()
		w.WriteHeader(http.StatusNoContent)
	case route == "faults" && r.Method == http.MethodPost:
		var f faultJSON
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			controlError(w, http.StatusBadRequest, "bad_request", "fault: "+err.Error())
			return
		}
		s.Inject(Fault{Method: f.Method, PathContains: f.PathContains, Status: f.Status, Code: f.Code, Count: f.Count,
			RetryAfter: time.Duration(f.RetryAfter * float64(time.Second)), Delay: time.Duration(f.Delay * float64(time.Second)),
			Truncate: f.Truncate, Malformed: f.Malformed, DuplicateDelta: f.DuplicateDelta,
			Token: TokenFault{AADSTS: f.AADSTS, Suberror: f.Suberror, Description: f.Description, Grant: f.Grant}})
		w.WriteHeader(http.StatusNoContent)
	case route == "faults" && r.Method == http.MethodDelete:
		s.ClearFaults()
		w.WriteHeader(http.StatusNoContent)
	case len(segs) == 3 && segs[0] == "mailboxes" && segs[2] == "messages" && r.Method == http.MethodPost:
		var m mailJSON
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			controlError(w, http.StatusBadRequest, "bad_request", "message: "+err.Error())
			return
		}
		id, err := s.Deliver(segs[1], m.mail())
		if err != nil {
			controlError(w, http.StatusNotFound, "not_found", err.Error())
			return
		}
		writeJSON(w, http.StatusCreated, map[string]string{"id": id})
	case len(segs) == 3 && segs[0] == "mailboxes" && segs[2] == "messages" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"value": s.Messages(segs[1], r.URL.Query().Get("folder"))})
	case route == "throttle" && r.Method == http.MethodPost:
		var t struct {
			MaxConcurrent int     `json:"maxConcurrent"`
			Requests      int     `json:"requests"`
			Window        float64 `json:"windowSeconds"`
		}
		if err := json.NewDecoder(r.Body).Decode(&t); err != nil {
			controlError(w, http.StatusBadRequest, "bad_request", "throttle: "+err.Error())
			return
		}
		s.SetThrottle(Throttle{MaxConcurrent: t.MaxConcurrent, Requests: t.Requests, Window: time.Duration(t.Window * float64(time.Second))})
		w.WriteHeader(http.StatusNoContent)
	case len(segs) == 5 && segs[0] == "mailboxes" && segs[2] == "messages" && segs[4] == "move" && r.Method == http.MethodPost:
		var body struct {
			Folder string `json:"folder"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			controlError(w, http.StatusBadRequest, "bad_request", "move: "+err.Error())
			return
		}
		id, err := s.MoveMessage(segs[1], segs[3], body.Folder)
		if err != nil {
			controlError(w, http.StatusNotFound, "not_found", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"id": id})
	case len(segs) == 3 && segs[0] == "mailboxes" && segs[2] == "reset-delta" && r.Method == http.MethodPost:
		s.ResetDelta(segs[1])
		w.WriteHeader(http.StatusNoContent)
	case len(segs) == 3 && segs[0] == "users" && segs[2] == "revoke" && r.Method == http.MethodPost:
		s.RevokeRefreshTokens(segs[1])
		w.WriteHeader(http.StatusNoContent)
	case route == "notifications" && r.Method == http.MethodPost:
		var n notificationsJSON
		if err := json.NewDecoder(r.Body).Decode(&n); err != nil {
			controlError(w, http.StatusBadRequest, "bad_request", "notifications: "+err.Error())
			return
		}
		s.SetNotifications(n.config())
		w.WriteHeader(http.StatusNoContent)
	case route == "notifications" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, s.NotificationStats())
	case route == "subscriptions" && r.Method == http.MethodGet:
		writeJSON(w, http.StatusOK, map[string]any{"value": s.Subscriptions(r.URL.Query().Get("mailbox"))})
	case len(segs) == 3 && (segs[0] == "subscriptions" || segs[0] == "mailboxes") && segs[2] == "lifecycle" && r.Method == http.MethodPost:
		var body struct {
			Event string `json:"event"`
		}
		if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
			controlError(w, http.StatusBadRequest, "bad_request", "lifecycle: "+err.Error())
			return
		}
		if !validEvent(body.Event) {
			controlError(w, http.StatusBadRequest, "bad_request", "lifecycle: unknown event "+strconv.Quote(body.Event))
			return
		}
		n := 1
		var err error
		if segs[0] == "subscriptions" {
			err = s.Lifecycle(segs[1], body.Event)
		} else {
			n, err = s.LifecycleMailbox(segs[1], body.Event)
		}
		if err != nil {
			controlError(w, http.StatusNotFound, "not_found", err.Error())
			return
		}
		writeJSON(w, http.StatusOK, map[string]int{"count": n})
	default:
		controlError(w, http.StatusNotFound, "not_found", "no such control endpoint: "+r.Method+" /_sim/"+route)
	}
}

func (s *Server) controlMailboxes() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, mb := range s.mail.mailboxes {
		out = append(out, map[string]any{"id": mb.ID, "address": mb.Address, "displayName": mb.DisplayName,
			"shared": mb.Shared, "tenantId": mb.TenantID, "messages": len(mb.msgs)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i]["address"].(string) < out[j]["address"].(string) })
	return out
}

func (s *Server) controlUsers() []map[string]any {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []map[string]any
	for _, u := range s.dir.users {
		var groups []string
		for _, g := range s.groupsOf(u) {
			groups = append(groups, g.DisplayName)
		}
		out = append(out, map[string]any{"id": u.ID, "userPrincipalName": u.UPN, "displayName": u.DisplayName,
			"tenantId": u.TenantID, "admin": u.Admin, "groups": groups})
	}
	sort.Slice(out, func(i, j int) bool {
		return out[i]["userPrincipalName"].(string) < out[j]["userPrincipalName"].(string)
	})
	return out
}
