package graphtest

import (
	"encoding/json"
	"net/http"
	"sort"
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
