package graphtest

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"html"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
)

// graphRoute is a parsed Graph request path.
type graphRoute struct {
	endpoint string
	user     string   // "me" or the id/UPN segment
	folders  []string // folder chain: top folder key, then child folder ids
	msgID    string
	attID    string
	mail     bool // needs a mailbox
	write    bool // needs ReadWrite
}

// parseGraph maps the (unescaped) segments after /v1.0 to a route.
func parseGraph(method string, segs []string) (graphRoute, bool) {
	var rt graphRoute
	var out []string
	for _, s := range segs { // mailFolders('inbox') → mailFolders, inbox
		if i := strings.Index(s, "('"); i > 0 && strings.HasSuffix(s, "')") {
			out = append(out, s[:i], s[i+2:len(s)-2])
			continue
		}
		out = append(out, s)
	}
	segs = out
	if len(segs) == 0 {
		return rt, false
	}
	switch segs[0] {
	case "me":
		rt.user, segs = "me", segs[1:]
	case "users":
		if len(segs) < 2 {
			return rt, false
		}
		rt.user, segs = segs[1], segs[2:]
	default:
		return rt, false
	}
	is := func(s string, names ...string) bool {
		for _, n := range names {
			if s == n || s == "microsoft.graph."+n || s == n+"()" || s == "microsoft.graph."+n+"()" {
				return true
			}
		}
		return false
	}
	switch {
	case len(segs) == 0 && method == http.MethodGet:
		rt.endpoint = "user.get"
		return rt, true
	case len(segs) == 1 && segs[0] == "memberOf" && method == http.MethodGet:
		rt.endpoint = "user.memberOf"
		return rt, true
	case len(segs) == 1 && is(segs[0], "getMemberGroups", "getMemberObjects") && method == http.MethodPost:
		rt.endpoint = "user.getMemberGroups"
		return rt, true
	case len(segs) == 0:
		return rt, false
	}
	rt.mail = true
	switch segs[0] {
	case "mailFolders", "mailfolders":
		segs = segs[1:]
		if len(segs) == 0 {
			rt.endpoint = map[string]string{http.MethodGet: "folders.list", http.MethodPost: "folders.create"}[method]
			rt.write = method == http.MethodPost
			return rt, rt.endpoint != ""
		}
		rt.folders = []string{segs[0]}
		segs = segs[1:]
		for len(segs) >= 2 && segs[0] == "childFolders" {
			rt.folders = append(rt.folders, segs[1])
			segs = segs[2:]
		}
		switch {
		case len(segs) == 0 && method == http.MethodGet:
			rt.endpoint = "folder.get"
			return rt, true
		case len(segs) == 1 && segs[0] == "childFolders":
			rt.endpoint = map[string]string{http.MethodGet: "folders.list", http.MethodPost: "folders.create"}[method]
			rt.write = method == http.MethodPost
			return rt, rt.endpoint != ""
		case len(segs) >= 1 && segs[0] == "messages":
			segs = segs[1:]
		default:
			return rt, false
		}
	case "messages":
		segs = segs[1:]
	default:
		return rt, false
	}
	// messages
	switch {
	case len(segs) == 0 && method == http.MethodGet:
		rt.endpoint = "messages.list"
		return rt, true
	case len(segs) == 1 && is(segs[0], "delta") && method == http.MethodGet:
		rt.endpoint = "messages.delta"
		return rt, len(rt.folders) > 0
	case len(segs) == 0:
		return rt, false
	}
	rt.msgID, segs = segs[0], segs[1:]
	switch {
	case len(segs) == 0:
		rt.endpoint = map[string]string{http.MethodGet: "message.get", http.MethodPatch: "message.update", http.MethodDelete: "message.delete"}[method]
		rt.write = method != http.MethodGet
		return rt, rt.endpoint != ""
	case len(segs) == 1 && segs[0] == "$value" && method == http.MethodGet:
		rt.endpoint = "message.value"
		return rt, true
	case len(segs) == 1 && is(segs[0], "move") && method == http.MethodPost:
		rt.endpoint, rt.write = "message.move", true
		return rt, true
	case len(segs) == 1 && segs[0] == "attachments" && method == http.MethodGet:
		rt.endpoint = "attachments.list"
		return rt, true
	case len(segs) == 2 && segs[0] == "attachments" && method == http.MethodGet:
		rt.endpoint, rt.attID = "attachment.get", segs[1]
		return rt, true
	case len(segs) == 3 && segs[0] == "attachments" && segs[2] == "$value" && method == http.MethodGet:
		rt.endpoint, rt.attID = "attachment.value", segs[1]
		return rt, true
	}
	return rt, false
}

// principal is the caller named by a validated access token.
type principal struct {
	tid, oid, upn, clientID string
	scopes, roles           map[string]bool
	appOnly                 bool
}

func (s *Server) authenticate(c *call) (*principal, bool) {
	h := c.r.Header.Get("Authorization")
	deny := func(msg string) (*principal, bool) {
		c.w.Header().Set("WWW-Authenticate", `Bearer realm="", authorization_uri="https://login.microsoftonline.com/common/oauth2/authorize", client_id="`+graphResourceID+`"`)
		graphError(c.w, c.r, http.StatusUnauthorized, "InvalidAuthenticationToken", msg)
		return nil, false
	}
	if h == "" {
		return deny("Access token is empty.")
	}
	tok, ok := strings.CutPrefix(h, "Bearer ")
	if !ok {
		return deny("Access token is empty.")
	}
	claims, err := s.verifyJWT(strings.TrimSpace(tok), s.clock())
	if err != nil {
		return deny(err.Error())
	}
	if aud := claimString(claims, "aud"); aud != graphResource && aud != graphResource+"/" && aud != graphResourceID {
		return deny("Invalid audience.")
	}
	p := &principal{
		tid: claimString(claims, "tid"), oid: claimString(claims, "oid"), upn: claimString(claims, "upn"),
		clientID: claimString(claims, "appid"), scopes: map[string]bool{}, roles: map[string]bool{},
		appOnly: claimString(claims, "idtyp") == "app",
	}
	for _, sc := range strings.Fields(claimString(claims, "scp")) {
		p.scopes[sc] = true
	}
	if rs, ok := claims["roles"].([]any); ok {
		for _, r := range rs {
			if v, ok := r.(string); ok {
				p.roles[v] = true
			}
		}
	}
	c.clientID = p.clientID
	return p, true
}

func (s *Server) serveGraph(c *call, segs []string) {
	rt, ok := parseGraph(c.r.Method, segs)
	if !ok {
		c.endpoint = "unknown"
		graphError(c.w, c.r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+lastSeg(segs)+"'.")
		return
	}
	c.endpoint = rt.endpoint
	p, ok := s.authenticate(c)
	if !ok {
		return
	}
	if rt.user == "me" && p.appOnly {
		graphError(c.w, c.r, http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
		return
	}
	who := rt.user
	if who == "me" {
		who = p.oid
	}
	if !rt.mail {
		s.serveDirectory(c, p, rt, who)
		return
	}
	s.mu.Lock()
	mb := s.mailboxByAddress(who)
	if mb != nil && mb.TenantID != p.tid {
		mb = nil
	}
	var denied string
	if mb != nil {
		denied = s.accessDenied(p, mb, rt.write)
		c.mailbox = strings.ToLower(mb.Address)
	}
	s.mu.Unlock()
	if mb == nil {
		graphError(c.w, c.r, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+rt.user+"' is invalid.")
		return
	}
	if denied != "" {
		graphError(c.w, c.r, http.StatusForbidden, "ErrorAccessDenied", denied)
		return
	}
	release, retry, code, msg := s.acquire(p.clientID, mb.ID, c.mailbox)
	if release == nil {
		c.w.Header().Set("Retry-After", retryAfterSeconds(retry))
		graphError(c.w, c.r, http.StatusTooManyRequests, code, msg)
		return
	}
	defer release()
	answered, finish := s.applyFault(c)
	if answered {
		return
	}
	g := &graphCall{call: c, s: s, mb: mb, rt: rt, immutable: preferImmutable(c.r)}
	if g.immutable {
		c.w.Header().Add("Preference-Applied", `IdType="ImmutableId"`)
	}
	g.serve()
	finish()
}

// accessDenied returns why p may not use mb, or ""; s.mu held.
func (s *Server) accessDenied(p *principal, mb *mailbox, write bool) string {
	const msg = "Access is denied. Check credentials and try again."
	if p.appOnly {
		if !p.roles["Mail.ReadWrite"] && (write || !p.roles["Mail.Read"]) {
			return msg
		}
		if pol := s.appPolicy[p.clientID]; pol != nil && !pol[mb.ID] {
			return "Access to OData is disabled: [RAOP] : Blocked by tenant configured AppOnly AccessPolicy settings."
		}
		return ""
	}
	own := mb.ID == p.oid
	ok := p.scopes["Mail.ReadWrite.Shared"] || (!write && p.scopes["Mail.Read.Shared"])
	if own {
		ok = ok || p.scopes["Mail.ReadWrite"] || (!write && p.scopes["Mail.Read"])
	} else {
		ok = ok && s.fullAccess[mb.ID][p.oid]
	}
	if !ok {
		return msg
	}
	return ""
}

func preferImmutable(r *http.Request) bool {
	for _, v := range r.Header.Values("Prefer") {
		if strings.Contains(strings.ReplaceAll(v, " ", ""), `IdType="ImmutableId"`) {
			return true
		}
	}
	return false
}

// preferPageSize reads Prefer: odata.maxpagesize=N.
func preferPageSize(r *http.Request) int {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			p = strings.TrimSpace(p)
			if n, ok := strings.CutPrefix(p, "odata.maxpagesize="); ok {
				if i, err := strconv.Atoi(strings.Trim(n, `"`)); err == nil && i > 0 {
					return i
				}
			}
		}
	}
	return 0
}

func lastSeg(segs []string) string {
	if len(segs) == 0 {
		return ""
	}
	return segs[len(segs)-1]
}

// serveDirectory answers /me, /users/{id}, memberOf and getMemberGroups.
func (s *Server) serveDirectory(c *call, p *principal, rt graphRoute, who string) {
	answered, finish := s.applyFault(c)
	if answered {
		return
	}
	defer finish()
	s.mu.Lock()
	u := s.userByID(who)
	if u != nil && u.TenantID != p.tid {
		u = nil
	}
	var groups []*Group
	enabled := true
	if u != nil {
		groups = s.groupsOf(u)
	} else if mb := s.mailboxByAddress(who); mb != nil && mb.TenantID == p.tid {
		// A shared mailbox is a (disabled) user object in the directory.
		u, enabled = &user{User: User{ID: mb.ID, UPN: mb.Address, DisplayName: mb.DisplayName, TenantID: mb.TenantID}}, false
	}
	s.mu.Unlock()
	if u == nil {
		graphError(c.w, c.r, http.StatusNotFound, "Request_ResourceNotFound",
			"Resource '"+rt.user+"' does not exist or one of its queried reference-property objects are not present.")
		return
	}
	base := baseURL(c.r)
	switch rt.endpoint {
	case "user.get":
		obj := map[string]any{
			"@odata.context": base + "/v1.0/$metadata#users/$entity",
			"id":             u.ID, "userPrincipalName": u.UPN, "displayName": u.DisplayName, "mail": u.UPN,
			"givenName": nil, "surname": nil, "jobTitle": nil, "mobilePhone": nil, "officeLocation": nil,
			"preferredLanguage": "de-DE", "businessPhones": []string{}, "accountEnabled": enabled,
		}
		writeJSON(c.w, http.StatusOK, selectFields(obj, c.r.URL.Query().Get("$select")))
	case "user.memberOf":
		all := make([]any, 0, len(groups))
		for _, g := range groups {
			all = append(all, map[string]any{"@odata.type": "#microsoft.graph.group", "id": g.ID, "displayName": g.DisplayName,
				"securityEnabled": true, "mailEnabled": false})
		}
		writePage(c, base+"/v1.0/$metadata#directoryObjects", all, 100)
	case "user.getMemberGroups":
		ids := make([]string, 0, len(groups))
		for _, g := range groups {
			ids = append(ids, g.ID)
		}
		writeJSON(c.w, http.StatusOK, map[string]any{"@odata.context": base + "/v1.0/$metadata#Collection(Edm.String)", "value": ids})
	}
}

// graphCall is one authorized mail request.
type graphCall struct {
	*call
	s         *Server
	mb        *mailbox
	rt        graphRoute
	immutable bool
}

func (g *graphCall) fail(status int, code, msg string) {
	graphError(g.w, g.r, status, code, msg)
}

func (g *graphCall) notFound() {
	g.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
}

func (g *graphCall) serve() {
	switch g.rt.endpoint {
	case "folders.list":
		g.listFolders()
	case "folders.create":
		g.createFolder()
	case "folder.get":
		g.getFolder()
	case "messages.list":
		g.listMessages()
	case "messages.delta":
		g.delta()
	case "message.get", "message.update", "message.delete", "message.move":
		g.message()
	case "message.value":
		g.messageValue()
	case "attachments.list", "attachment.get", "attachment.value":
		g.attachments()
	default:
		g.fail(http.StatusBadRequest, "BadRequest", "Unsupported request.")
	}
}

// resolveFolder finds the route's folder by id or well-known name; s.mu held.
func (g *graphCall) resolveFolder() *folder {
	var f *folder
	for i, key := range g.rt.folders {
		var next *folder
		if i == 0 {
			next = g.mb.folders[key]
			if next == nil {
				for _, c := range g.mb.folders {
					if c.wellKnown != "" && strings.EqualFold(c.wellKnown, key) {
						next = c
					}
				}
			}
		} else if c := g.mb.folders[key]; c != nil && c.parentID == f.id {
			next = c
		}
		if next == nil {
			return nil
		}
		f = next
	}
	return f
}

func (g *graphCall) folderJSON(f *folder) map[string]any {
	total, unread := 0, 0
	for _, m := range g.mb.msgs {
		if m.folderID == f.id {
			total++
			if !m.isRead {
				unread++
			}
		}
	}
	return map[string]any{
		"id": f.id, "displayName": f.name, "parentFolderId": f.parentID,
		"childFolderCount": len(g.mb.children(f.id)), "unreadItemCount": unread, "totalItemCount": total,
		"sizeInBytes": 0, "isHidden": false,
	}
}

func (g *graphCall) listFolders() {
	g.s.mu.Lock()
	parent := g.mb.root()
	if len(g.rt.folders) > 0 {
		parent = g.resolveFolder()
	}
	if parent == nil {
		g.s.mu.Unlock()
		g.notFound()
		return
	}
	q := g.r.URL.Query()
	var name string
	if flt := q.Get("$filter"); flt != "" {
		v, ok := parseEqString(flt, "displayName")
		if !ok {
			g.s.mu.Unlock()
			g.fail(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", "The query filter contains one or more invalid nodes.")
			return
		}
		name = v
	}
	var all []any
	for _, f := range g.mb.children(parent.id) {
		if name != "" && !strings.EqualFold(f.name, name) {
			continue
		}
		all = append(all, selectFields(g.folderJSON(f), q.Get("$select")))
	}
	g.s.mu.Unlock()
	writePage(g.call, baseURL(g.r)+"/v1.0/$metadata#users('"+g.mb.Address+"')/mailFolders", all, 10)
}

func (g *graphCall) getFolder() {
	g.s.mu.Lock()
	f := g.resolveFolder()
	var obj map[string]any
	if f != nil {
		obj = g.folderJSON(f)
	}
	g.s.mu.Unlock()
	if f == nil {
		g.notFound()
		return
	}
	obj["@odata.context"] = baseURL(g.r) + "/v1.0/$metadata#users('" + g.mb.Address + "')/mailFolders/$entity"
	writeJSON(g.w, http.StatusOK, selectFields(obj, g.r.URL.Query().Get("$select")))
}

func (g *graphCall) createFolder() {
	var body struct {
		DisplayName string `json:"displayName"`
	}
	if err := json.NewDecoder(g.r.Body).Decode(&body); err != nil || strings.TrimSpace(body.DisplayName) == "" {
		g.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The request body must contain a displayName.")
		return
	}
	g.s.mu.Lock()
	parent := g.mb.root()
	if len(g.rt.folders) > 0 {
		parent = g.resolveFolder()
	}
	if parent == nil {
		g.s.mu.Unlock()
		g.notFound()
		return
	}
	for _, c := range g.mb.children(parent.id) {
		if strings.EqualFold(c.name, body.DisplayName) {
			g.s.mu.Unlock()
			g.fail(http.StatusConflict, "ErrorFolderExists", "A folder with the specified name already exists.")
			return
		}
	}
	f := &folder{id: exchangeID("AAMkAD"), name: body.DisplayName, parentID: parent.id, created: g.s.now()}
	g.mb.folders[f.id] = f
	obj := g.folderJSON(f)
	g.s.mu.Unlock()
	obj["@odata.context"] = baseURL(g.r) + "/v1.0/$metadata#users('" + g.mb.Address + "')/mailFolders/$entity"
	writeJSON(g.w, http.StatusCreated, obj)
}

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

func (g *graphCall) listMessages() {
	q := g.r.URL.Query()
	flt, err := parseMessageFilter(q.Get("$filter"), false)
	if err != "" {
		g.fail(http.StatusBadRequest, "ErrorInvalidUrlQueryFilter", err)
		return
	}
	desc := true
	if ob := strings.ToLower(strings.TrimSpace(q.Get("$orderby"))); ob != "" {
		switch ob {
		case "receiveddatetime desc":
		case "receiveddatetime", "receiveddatetime asc":
			desc = false
		default:
			g.fail(http.StatusBadRequest, "ErrorInvalidProperty", "The property in $orderby is not supported.")
			return
		}
	}
	g.s.mu.Lock()
	var f *folder
	if len(g.rt.folders) > 0 {
		if f = g.resolveFolder(); f == nil {
			g.s.mu.Unlock()
			g.notFound()
			return
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
	g.s.mu.Unlock()
	ctx := baseURL(g.r) + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages"
	writePage(g.call, ctx, all, 10)
}

func (g *graphCall) message() {
	s := g.s
	m := g.lockMessage()
	if m == nil {
		return
	}
	switch g.rt.endpoint {
	case "message.get":
		obj := g.messageJSON(m)
		atts := append([]*attachment(nil), m.attachments...)
		s.mu.Unlock()
		m = &message{attachments: atts}
		obj["@odata.context"] = baseURL(g.r) + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages/$entity"
		writeJSON(g.w, http.StatusOK, g.expandUnlocked(selectFields(obj, g.r.URL.Query().Get("$select")), m))
	case "message.delete":
		if f := g.mb.folder("deleteditems"); f != nil && m.folderID != f.id {
			g.mb.move(m, f)
		} else {
			g.mb.remove(m)
		}
		s.mu.Unlock()
		g.w.WriteHeader(http.StatusNoContent)
	case "message.update":
		s.mu.Unlock()
		var body map[string]json.RawMessage
		if err := json.NewDecoder(g.r.Body).Decode(&body); err != nil {
			g.fail(http.StatusBadRequest, "RequestBodyRead", "Invalid JSON in the request body.")
			return
		}
		s.mu.Lock()
		if m = g.lookupMessage(); m == nil {
			s.mu.Unlock()
			g.notFound()
			return
		}
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
		g.mb.touch(m, s.now())
		obj := g.messageJSON(m)
		s.mu.Unlock()
		writeJSON(g.w, http.StatusOK, obj)
	case "message.move":
		s.mu.Unlock()
		raw, _ := io.ReadAll(g.r.Body)
		var body map[string]any
		_ = json.Unmarshal(raw, &body)
		dest := ""
		for k, v := range body {
			if strings.EqualFold(k, "destinationId") {
				dest, _ = v.(string)
			}
		}
		if dest == "" {
			g.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The request body must contain a destinationId.")
			return
		}
		s.mu.Lock()
		if m = g.lookupMessage(); m == nil {
			s.mu.Unlock()
			g.notFound()
			return
		}
		f := g.mb.folders[dest]
		if f == nil {
			for _, c := range g.mb.folders {
				if c.wellKnown != "" && strings.EqualFold(c.wellKnown, dest) {
					f = c
				}
			}
		}
		if f == nil {
			s.mu.Unlock()
			g.fail(http.StatusNotFound, "ErrorItemNotFound", "The specified object was not found in the store.")
			return
		}
		g.mb.move(m, f)
		m.modified = s.now()
		obj := g.messageJSON(m)
		s.mu.Unlock()
		writeJSON(g.w, http.StatusCreated, obj)
	}
}

// lockMessage takes s.mu and finds the route's message. Without one it
// answers 404 and releases s.mu again; with one the caller holds s.mu.
func (g *graphCall) lockMessage() *message {
	g.s.mu.Lock()
	m := g.lookupMessage()
	if m == nil {
		g.s.mu.Unlock()
		g.notFound()
	}
	return m
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

func (g *graphCall) messageValue() {
	m := g.lockMessage()
	if m == nil {
		return
	}
	mail := m.mail
	atts := make([]Attachment, 0, len(m.attachments))
	for _, a := range m.attachments {
		atts = append(atts, a.a)
	}
	g.s.mu.Unlock()
	g.w.Header().Set("Content-Type", "text/plain")
	g.w.WriteHeader(http.StatusOK)
	_ = writeMIME(g.w, mail, atts)
}

func (g *graphCall) attachmentJSON(a *attachment, withContent bool) map[string]any {
	obj := map[string]any{
		"id": a.id, "lastModifiedDateTime": fmtTime(a.modified), "name": a.a.Name,
		"contentType": nilIfEmpty(a.a.ContentType), "size": a.size(), "isInline": a.a.Inline,
	}
	switch {
	case a.a.Item != nil:
		obj["@odata.type"] = "#microsoft.graph.itemAttachment"
	case a.a.ReferenceURL != "":
		obj["@odata.type"] = "#microsoft.graph.referenceAttachment"
	default:
		obj["@odata.type"] = "#microsoft.graph.fileAttachment"
		obj["@odata.mediaContentType"] = firstNonEmpty(a.a.ContentType, "application/octet-stream")
		obj["contentId"] = nilIfEmpty(a.a.ContentID)
		obj["contentLocation"] = nil
		if withContent {
			obj["contentBytes"] = base64.StdEncoding.EncodeToString(a.a.Content)
		}
	}
	return obj
}

func (g *graphCall) attachments() {
	m := g.lockMessage()
	if m == nil {
		return
	}
	atts := append([]*attachment(nil), m.attachments...)
	g.s.mu.Unlock()
	sel := g.r.URL.Query().Get("$select")
	// Only encode contentBytes when the answer carries it.
	withContent := sel == "" || containsFold(strings.Split(sel, ","), "contentBytes")
	base := baseURL(g.r)
	if g.rt.endpoint == "attachments.list" {
		odataContext := base + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages('" + g.rt.msgID + "')/attachments"
		if strings.TrimSpace(sel) == "" {
			g.streamAttachments(odataContext, atts)
			return
		}
		all := make([]any, 0, len(atts))
		for _, a := range atts {
			all = append(all, selectFields(g.attachmentJSON(a, withContent), sel))
		}
		writeJSON(g.w, http.StatusOK, map[string]any{
			"@odata.context": odataContext,
			"value":          all,
		})
		return
	}
	var a *attachment
	for _, x := range atts {
		if x.id == g.rt.attID {
			a = x
		}
	}
	if a == nil {
		g.notFound()
		return
	}
	if g.rt.endpoint == "attachment.get" {
		obj := selectFields(g.attachmentJSON(a, withContent), sel)
		obj["@odata.context"] = base + "/v1.0/$metadata#users('" + g.mb.Address + "')/messages('" + g.rt.msgID + "')/attachments/$entity"
		writeJSON(g.w, http.StatusOK, obj)
		return
	}
	switch {
	case a.a.Item != nil:
		g.w.Header().Set("Content-Type", "text/plain")
		g.w.Header().Set("Content-Length", strconv.Itoa(len(a.mime)))
		g.w.WriteHeader(http.StatusOK)
		_, _ = g.w.Write(a.mime)
	case a.a.ReferenceURL != "":
		g.fail(http.StatusBadRequest, "ErrorInvalidRequest", "The attachment has no raw content.")
	default:
		g.w.Header().Set("Content-Type", firstNonEmpty(a.a.ContentType, "application/octet-stream"))
		g.w.Header().Set("Content-Length", strconv.Itoa(len(a.a.Content)))
		g.w.WriteHeader(http.StatusOK)
		_, _ = g.w.Write(a.a.Content) // the stored bytes, not a copy
	}
}

// fileAttachmentMeta is a file attachment in a listing, its properties in
// the order Graph sends them; contentBytes follows.
type fileAttachmentMeta struct {
	Type                 string  `json:"@odata.type"`
	MediaContentType     string  `json:"@odata.mediaContentType"`
	ID                   string  `json:"id"`
	LastModifiedDateTime string  `json:"lastModifiedDateTime"`
	Name                 string  `json:"name"`
	ContentType          *string `json:"contentType"`
	Size                 int     `json:"size"`
	IsInline             bool    `json:"isInline"`
	ContentID            *string `json:"contentId"`
	ContentLocation      *string `json:"contentLocation"`
}

// otherAttachmentMeta is an item or reference attachment in a listing
// (an item attachment's item only comes with $expand, which the simulator
// doesn't offer on this listing).
type otherAttachmentMeta struct {
	Type                 string  `json:"@odata.type"`
	ID                   string  `json:"id"`
	LastModifiedDateTime string  `json:"lastModifiedDateTime"`
	Name                 string  `json:"name"`
	ContentType          *string `json:"contentType"`
	Size                 int     `json:"size"`
	IsInline             bool    `json:"isInline"`
}

func optString(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

// streamAttachments writes the listing without $select, every file
// attachment with its contentBytes, as a stream: the metadata of one
// attachment at a time, then its content through a base64 encoder, never
// the whole answer in memory and without Content-Length (chunked), as
// Graph answers large listings. The simulator runs in-process in
// `mailgate bench`, where its memory counts.
func (g *graphCall) streamAttachments(odataContext string, atts []*attachment) {
	g.w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	g.w.WriteHeader(http.StatusOK)
	bw := bufio.NewWriterSize(g.w, 32<<10)
	ctxJSON, _ := json.Marshal(odataContext)
	bw.WriteString(`{"@odata.context":`)
	bw.Write(ctxJSON)
	bw.WriteString(`,"value":[`)
	for i, a := range atts {
		if i > 0 {
			bw.WriteByte(',')
		}
		var meta any
		file := a.a.Item == nil && a.a.ReferenceURL == ""
		switch {
		case a.a.Item != nil:
			meta = otherAttachmentMeta{Type: "#microsoft.graph.itemAttachment"}
		case a.a.ReferenceURL != "":
			meta = otherAttachmentMeta{Type: "#microsoft.graph.referenceAttachment"}
		}
		if file {
			meta = fileAttachmentMeta{
				Type: "#microsoft.graph.fileAttachment", MediaContentType: firstNonEmpty(a.a.ContentType, "application/octet-stream"),
				ID: a.id, LastModifiedDateTime: fmtTime(a.modified), Name: a.a.Name, ContentType: optString(a.a.ContentType),
				Size: a.size(), IsInline: a.a.Inline, ContentID: optString(a.a.ContentID),
			}
		} else {
			o := meta.(otherAttachmentMeta)
			o.ID, o.LastModifiedDateTime, o.Name = a.id, fmtTime(a.modified), a.a.Name
			o.ContentType, o.Size, o.IsInline = optString(a.a.ContentType), a.size(), a.a.Inline
			meta = o
		}
		b, err := json.Marshal(meta)
		if err != nil {
			panic(http.ErrAbortHandler) // can't happen: plain strings and numbers
		}
		if !file {
			bw.Write(b)
			continue
		}
		bw.Write(b[:len(b)-1]) // without '}'
		bw.WriteString(`,"contentBytes":"`)
		enc := base64.NewEncoder(base64.StdEncoding, bw)
		enc.Write(a.a.Content) // the stored bytes, not a copy
		enc.Close()
		bw.WriteString(`"}`)
	}
	bw.WriteString(`]}`)
	bw.Flush()
}

// messageFilter is a parsed $filter on messages.
type messageFilter struct {
	hasAtt   *bool
	isRead   *bool
	timeOps  []string
	timeVals []time.Time
}

func (f messageFilter) match(m *message) bool {
	if f.hasAtt != nil && m.hasAttachments() != *f.hasAtt {
		return false
	}
	if f.isRead != nil && m.isRead != *f.isRead {
		return false
	}
	for i, op := range f.timeOps {
		t, v := m.mail.ReceivedAt, f.timeVals[i]
		ok := map[string]bool{"ge": !t.Before(v), "gt": t.After(v), "le": !t.After(v), "lt": t.Before(v)}[op]
		if !ok {
			return false
		}
	}
	return true
}

// parseMessageFilter parses "a and b" clauses; delta allows only
// receivedDateTime ge|gt.
func parseMessageFilter(s string, delta bool) (messageFilter, string) {
	var f messageFilter
	if strings.TrimSpace(s) == "" {
		return f, ""
	}
	const bad = "The query filter contains one or more invalid nodes."
	for _, clause := range splitAnd(s) {
		fields := strings.Fields(clause)
		if len(fields) != 3 {
			return f, bad
		}
		prop, op, val := strings.ToLower(fields[0]), strings.ToLower(fields[1]), fields[2]
		switch {
		case prop == "receiveddatetime" && (op == "ge" || op == "gt" || (!delta && (op == "le" || op == "lt"))):
			t, err := parseODataTime(strings.Trim(val, "'"))
			if err != nil {
				return f, bad
			}
			f.timeOps = append(f.timeOps, op)
			f.timeVals = append(f.timeVals, t)
		case !delta && prop == "hasattachments" && op == "eq":
			b := strings.EqualFold(val, "true")
			f.hasAtt = &b
		case !delta && prop == "isread" && op == "eq":
			b := strings.EqualFold(val, "true")
			f.isRead = &b
		default:
			return f, bad
		}
	}
	return f, ""
}

func splitAnd(s string) []string {
	var out []string
	for _, p := range strings.Split(s, " and ") {
		if p = strings.TrimSpace(strings.Trim(strings.TrimSpace(p), "()")); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// parseEqString parses "prop eq 'value'".
func parseEqString(s, prop string) (string, bool) {
	s = strings.TrimSpace(s)
	rest, ok := cutPrefixFold(s, prop+" eq ")
	if !ok || len(rest) < 2 || rest[0] != '\'' || rest[len(rest)-1] != '\'' {
		return "", false
	}
	return strings.ReplaceAll(rest[1:len(rest)-1], "''", "'"), true
}

func cutPrefixFold(s, prefix string) (string, bool) {
	if len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix) {
		return s[len(prefix):], true
	}
	return s, false
}

// selectFields keeps id, annotations and the $select-ed properties. A
// property of a derived type may be selected through a type cast
// ("microsoft.graph.fileAttachment/contentId", OData v4); it applies to
// objects of that @odata.type only.
func selectFields(obj map[string]any, sel string) map[string]any {
	if strings.TrimSpace(sel) == "" {
		return obj
	}
	var want []string
	typ, _ := obj["@odata.type"].(string)
	for _, w := range strings.Split(sel, ",") {
		cast, prop, ok := strings.Cut(strings.TrimSpace(w), "/")
		switch {
		case !ok:
			want = append(want, w)
		case strings.EqualFold("#"+cast, typ):
			want = append(want, prop)
		}
	}
	out := map[string]any{}
	for k, v := range obj {
		if k == "id" || strings.HasPrefix(k, "@odata.") || containsFold(want, k) {
			out[k] = v
		}
	}
	return out
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(strings.TrimSpace(x), s) {
			return true
		}
	}
	return false
}

// writePage writes a collection page honouring $top and $skip, with an
// @odata.nextLink on the request's own host. $count=true adds
// @odata.count, the number of matching items on all pages, as Outlook's
// collections do without a ConsistencyLevel header (that header is needed
// for directory objects only); a $count other than true or false is a 400.
func writePage(c *call, odataContext string, all []any, defaultTop int) {
	q := c.r.URL.Query()
	var count bool
	switch v, ok := q["$count"]; {
	case !ok:
	case len(v) == 1 && strings.EqualFold(v[0], "true"):
		count = true
	case len(v) == 1 && strings.EqualFold(v[0], "false"):
	default:
		graphError(c.w, c.r, http.StatusBadRequest, "BadRequest", "Invalid $count value: must be true or false.")
		return
	}
	top, skip := defaultTop, 0
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			graphError(c.w, c.r, http.StatusBadRequest, "BadRequest", "Invalid $top value.")
			return
		}
		top = min(n, 1000)
	}
	if v := q.Get("$skip"); v != "" {
		skip, _ = strconv.Atoi(v)
	}
	if skip > len(all) {
		skip = len(all)
	}
	end := min(skip+top, len(all))
	page := all[skip:end]
	if page == nil {
		page = []any{}
	}
	resp := map[string]any{"@odata.context": odataContext, "value": page}
	if count {
		resp["@odata.count"] = len(all)
	}
	if end < len(all) {
		q.Set("$skip", strconv.Itoa(end))
		resp["@odata.nextLink"] = baseURL(c.r) + c.r.URL.EscapedPath() + "?" + encodeQuery(q)
	}
	writeJSON(c.w, http.StatusOK, resp)
}

// encodeQuery encodes like Graph's links do: '$' stays literal.
func encodeQuery(q url.Values) string {
	keys := make([]string, 0, len(q))
	for k := range q {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		for _, v := range q[k] {
			if b.Len() > 0 {
				b.WriteByte('&')
			}
			b.WriteString(strings.ReplaceAll(url.QueryEscape(k), "%24", "$"))
			b.WriteByte('=')
			b.WriteString(url.QueryEscape(v))
		}
	}
	return b.String()
}

func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; odata.metadata=minimal; odata.streaming=true; IEEE754Compatible=false; charset=utf-8")
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	w.WriteHeader(status)
	_, _ = w.Write(b)
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func firstNonEmpty(v ...string) string {
	for _, s := range v {
		if s != "" {
			return s
		}
	}
	return ""
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

// parseODataTime accepts the DateTimeOffset forms clients send.
func parseODataTime(v string) (time.Time, error) {
	var err error
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02T15:04:05", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		var t time.Time
		if t, err = time.Parse(layout, v); err == nil {
			return t, nil
		}
	}
	return time.Time{}, err
}

// expand adds the attachments for $expand=attachments (optionally with a
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
		list = append(list, selectFields(g.attachmentJSON(a, withContent), sel))
	}
	obj["attachments"] = list
	return obj
}

// preferBodyType reads Prefer: outlook.body-content-type="text"|"html".
func preferBodyType(r *http.Request) string {
	for _, v := range r.Header.Values("Prefer") {
		for _, p := range strings.Split(v, ",") {
			if t, ok := strings.CutPrefix(strings.TrimSpace(p), "outlook.body-content-type="); ok {
				return strings.ToLower(strings.Trim(t, `"`))
			}
		}
	}
	return ""
}

// stripTags is a crude HTML to text conversion, enough for previews.
func stripTags(s string) string {
	var b strings.Builder
	in := false
	for _, r := range s {
		switch {
		case r == '<':
			in = true
		case r == '>':
			in = false
		case !in:
			b.WriteRune(r)
		}
	}
	return strings.TrimSpace(html.UnescapeString(b.String()))
}
