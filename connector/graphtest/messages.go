package graphtest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"html"
	"net/http"
	"strings"
)

// messageJSON renders a message as Graph does; s.mu held.
func (g *graphCall) messageJSON(m *message) map[string]any {
	id := m.id
	if g.immutable {
		id = m.immutableID
	}
	body := map[string]any{"contentType": "text", "content": m.mail.Body}
	if m.mail.BodyHTML {
		body["contentType"] = "html"
	}
	switch want := preferBodyType(g.r); {
	case want == "text" && m.mail.BodyHTML:
		body["contentType"], body["content"] = "text", stripTags(m.mail.Body)
	case want == "html" && !m.mail.BodyHTML:
		body["contentType"], body["content"] = "html", "<html><body><div>"+html.EscapeString(m.mail.Body)+"</div></body></html>"
	}
	from := map[string]any{"emailAddress": map[string]any{"name": firstNonEmpty(m.mail.FromName, m.mail.From), "address": m.mail.From}}
	to := []any{map[string]any{"emailAddress": map[string]any{"name": g.mb.DisplayName, "address": g.mb.Address}}}
	preview := m.mail.Body
	if len(preview) > 255 {
		preview = preview[:255]
	}
	ck := m.changeKey()
	cats := m.categories
	if cats == nil {
		cats = []string{}
	}
	return map[string]any{
		"@odata.etag":                `W/"` + ck + `"`,
		"id":                         id,
		"createdDateTime":            fmtTime(m.created),
		"lastModifiedDateTime":       fmtTime(m.modified),
		"changeKey":                  ck,
		"categories":                 cats,
		"receivedDateTime":           fmtTime(m.mail.ReceivedAt),
		"sentDateTime":               fmtTime(m.mail.ReceivedAt),
		"hasAttachments":             m.hasAttachments(),
		"internetMessageId":          m.mail.InternetMessageID,
		"subject":                    m.mail.Subject,
		"bodyPreview":                preview,
		"importance":                 "normal",
		"parentFolderId":             m.folderID,
		"conversationId":             "AAQkAD" + base64.URLEncoding.EncodeToString([]byte(m.mail.Subject + "            ")[:12]),
		"isDeliveryReceiptRequested": false,
		"isReadReceiptRequested":     false,
		"isRead":                     m.isRead,
		"isDraft":                    false,
		"inferenceClassification":    "focused",
		"body":                       body,
		"sender":                     from,
		"from":                       from,
		"toRecipients":               to,
		"ccRecipients":               []any{},
		"bccRecipients":              []any{},
		"replyTo":                    []any{},
		"flag":                       map[string]any{"flagStatus": "notFlagged"},
	}
}

func (g *graphCall) messageContext() string {
	return baseURL(g.r) + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages"
}

func (g *graphCall) listMessages() result {
	q := g.r.URL.Query()
	flt, err := parseMessageFilter(q.Get("$filter"), false)
	if err != "" {
		return fail(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", err)
	}
	desc := true
	if ob := strings.ToLower(strings.TrimSpace(q.Get("$orderby"))); ob != "" {
		switch ob {
		case "receiveddatetime desc":
		case "receiveddatetime", "receiveddatetime asc":
			desc = false
		default:
			return fail(http.StatusBadRequest, "ErrorInvalidProperty", "The property in $orderby is not supported.")
		}
	}
	var f *folder
	if len(g.rt.folders) > 0 {
		if f = g.resolveFolder(); f == nil {
			return notFound()
		}
	}
	msgs := g.mb.sorted()
	if desc {
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	}
	var all []any
	for _, m := range msgs {
		if f != nil && m.folderID != f.id {
			continue
		}
		if !flt.match(m) {
			continue
		}
		all = append(all, g.expand(selectFields(g.messageJSON(m), q.Get("$select")), m))
	}
	return page(g.r, g.messageContext(), all, 10)
}

func (g *graphCall) getMessage() result {
	m := g.lookupMessage()
	if m == nil {
		return notFound()
	}
	obj := g.messageJSON(m)
	obj["@odata.context"] = g.messageContext() + "/$entity"
	snap := &message{attachments: append([]*attachment(nil), m.attachments...)}
	return result{write: func(w http.ResponseWriter) {
		// $expand encodes the stored bytes: outside the lock.
		writeJSON(w, http.StatusOK, g.expandUnlocked(selectFields(obj, g.r.URL.Query().Get("$select")), snap))
	}}
}

func (g *graphCall) deleteMessage() result {
	m := g.lookupMessage()
	if m == nil {
		return notFound()
	}
	if f := g.mb.folder("deleteditems"); f != nil && m.folderID != f.id {
		g.mb.move(m, f)
	} else {
		g.mb.remove(m)
	}
	return result{status: http.StatusNoContent}
}

func (g *graphCall) updateMessage() result {
	if g.lookupMessage() == nil {
		return notFound()
	}
	var body map[string]json.RawMessage
	if err := json.NewDecoder(bytes.NewReader(g.body)).Decode(&body); err != nil {
		return fail(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
	}
	m := g.lookupMessage()
	for k, v := range body {
		switch strings.ToLower(k) {
		case "isread":
			_ = json.Unmarshal(v, &m.isRead)
		case "categories":
			var cats []string
			_ = json.Unmarshal(v, &cats)
			m.categories = cats
		}
	}
	g.mb.touch(m, g.s.now())
	return answerJSON(http.StatusOK, g.messageJSON(m))
}

func (g *graphCall) moveMessage() result {
	if g.lookupMessage() == nil {
		return notFound()
	}
	var body map[string]any
	_ = json.Unmarshal(g.body, &body)
	dest := ""
	for k, v := range body {
		if strings.EqualFold(k, "destinationId") { // the SDK sends DestinationId
			dest, _ = v.(string)
		}
	}
	if dest == "" {
		return fail(http.StatusBadRequest, "ErrorInvalidRequest", "The request body must contain a destinationId.")
	}
	m := g.lookupMessage()
	f := g.mb.folders[dest]
	if f == nil {
		for _, c := range g.mb.folders {
			if c.wellKnown != "" && strings.EqualFold(c.wellKnown, dest) {
				f = c
			}
		}
	}
	if f == nil {
		return notFound()
	}
	g.mb.move(m, f)
	m.modified = g.s.now()
	return answerJSON(http.StatusCreated, g.messageJSON(m))
}

// lookupMessage finds the route's message (in the route's folder, if
// any); s.mu held.
func (g *graphCall) lookupMessage() *message {
	m := g.mb.message(g.rt.msgID)
	if m == nil {
		return nil
	}
	if len(g.rt.folders) > 0 {
		if f := g.resolveFolder(); f == nil || f.id != m.folderID {
			return nil
		}
	}
	return m
}

func (g *graphCall) messageValue() result {
	m := g.lookupMessage()
	if m == nil {
		return notFound()
	}
	mail := m.mail
	atts := make([]Attachment, 0, len(m.attachments))
	for _, a := range m.attachments {
		atts = append(atts, a.a)
	}
	return result{write: func(w http.ResponseWriter) {
		w.Header().Set("Content-Type", "text/plain")
		w.WriteHeader(http.StatusOK)
		_ = writeMIME(w, mail, atts)
	}}
}

// nested $select); s.mu held.
func (g *graphCall) expand(obj map[string]any, m *message) map[string]any {
	return g.expandUnlocked(obj, &message{attachments: append([]*attachment(nil), m.attachments...)})
}

// expandUnlocked is expand for a message snapshot taken under the lock.
func (g *graphCall) expandUnlocked(obj map[string]any, m *message) map[string]any {
	exp := strings.TrimSpace(g.r.URL.Query().Get("$expand"))
	if exp == "" {
		return obj
	}
	name, opts, _ := strings.Cut(exp, "(")
	if !strings.EqualFold(strings.TrimSpace(name), "attachments") {
		return obj
	}
	sel := ""
	for _, o := range strings.Split(strings.TrimSuffix(opts, ")"), ";") {
		if v, ok := cutPrefixFold(strings.TrimSpace(o), "$select="); ok {
			sel = v
		}
	}
	withContent := sel == "" || containsFold(strings.Split(sel, ","), "contentBytes")
	list := make([]any, 0, len(m.attachments))
	for _, a := range m.attachments {
		list = append(list, selectFields(attachmentObject(a, withContent), sel))
	}
	obj["attachments"] = list
	return obj
}
