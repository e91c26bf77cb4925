package graphtest

import (
	"io"
	"net/http"
	"strings"
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

func lastSeg(segs []string) string {
	if len(segs) == 0 {
		return ""
	}
	return segs[len(segs)-1]
}

// maxRequestBody bounds what a Graph write request may send (folder names,
// message patches and moves are small).
const maxRequestBody = 4 << 20

// serveGraph runs a Graph request through routing, authentication, mailbox
// access, throttling and faults to its handler, then writes the answer.
func (s *Server) serveGraph(c *call, segs []string) {
	if len(segs) > 0 && segs[0] == "subscriptions" {
		s.serveSubscriptions(c, segs[1:])
		return
	}
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
		answered, finish := s.applyFault(c)
		if answered {
			return
		}
		respond(c, s.directory(c.r, p, rt, who))
		finish()
		return
	}
	mb, denied := s.resolveMailbox(p, who, rt.write)
	if mb == nil {
		graphError(c.w, c.r, http.StatusNotFound, "ErrorInvalidUser", "The requested user '"+rt.user+"' is invalid.")
		return
	}
	c.mailbox = strings.ToLower(mb.Address)
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
	if c.r.Method == http.MethodPost || c.r.Method == http.MethodPatch {
		// Read before the lock: a slow client must not hold the model.
		g.body, _ = io.ReadAll(io.LimitReader(c.r.Body, maxRequestBody))
	}
	respond(c, g.run())
	finish()
}

// graphCall is one authorized mail request.
type graphCall struct {
	*call
	s         *Server
	mb        *mailbox
	rt        graphRoute
	immutable bool
	body      []byte // the request body of a POST or PATCH
}

// run calls the route's handler with s.mu held.
func (g *graphCall) run() result {
	g.s.mu.Lock()
	defer g.s.mu.Unlock()
	switch g.rt.endpoint {
	case "folders.list":
		return g.listFolders()
	case "folders.create":
		return g.createFolder()
	case "folder.get":
		return g.getFolder()
	case "messages.list":
		return g.listMessages()
	case "messages.delta":
		return g.delta()
	case "message.get":
		return g.getMessage()
	case "message.update":
		return g.updateMessage()
	case "message.delete":
		return g.deleteMessage()
	case "message.move":
		return g.moveMessage()
	case "message.value":
		return g.messageValue()
	case "attachments.list", "attachment.get", "attachment.value":
		return g.attachments()
	}
	return fail(http.StatusBadRequest, "BadRequest", "Unsupported request.")
}
