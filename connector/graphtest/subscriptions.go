package graphtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"time"
)

// Lifecycle events, as Graph names them in lifecycleEvent.
const (
	ReauthorizationRequired = "reauthorizationRequired"
	SubscriptionRemoved     = "subscriptionRemoved"
	Missed                  = "missed"
)

// SubscriptionState is a subscription as a test sees it.
type SubscriptionState struct {
	ID                 string
	Resource           string
	ChangeType         string
	ClientState        string
	NotificationURL    string
	LifecycleURL       string
	Expiration         time.Time
	ApplicationID      string
	CreatorID          string
	Mailbox            string // address
	Paused             bool   // a reauthorizationRequired is unanswered: nothing is delivered
	Silent             bool   // accepted for a delegated shared-mailbox token: never delivers
	ImmutableIDs       bool   // created with Prefer: IdType="ImmutableId"
	LatestSupportedTLS string
}

// subscription is a Graph subscription on a mailbox's messages.
type subscription struct {
	SubscriptionState
	tenantID  string
	mailboxID string
	folderID  string // empty = the whole mailbox
	changes   map[string]bool
}

// subModel is the subscriptions and their write budget.
type subModel struct {
	subs   map[string]*subscription
	writes map[string][]time.Time // client id|tenant -> recent writes
}

// subscriptionBody is what create and update accept.
type subscriptionBody struct {
	ChangeType               *string `json:"changeType"`
	NotificationURL          *string `json:"notificationUrl"`
	LifecycleNotificationURL *string `json:"lifecycleNotificationUrl"`
	Resource                 *string `json:"resource"`
	ExpirationDateTime       *string `json:"expirationDateTime"`
	ClientState              *string `json:"clientState"`
	LatestSupportedTLS       *string `json:"latestSupportedTlsVersion"`
}

// maxClientState is the documented limit of clientState (the
// changeNotification page says 255; the subscription page and the service
// say 128).
const maxClientState = 128

// extensionError is how Graph's subscription service wraps Exchange's
// refusals (the live service's text, as people meet it).
func extensionError(status int, reason string) result {
	return fail(status, "ExtensionError", "Operation: Create; Exception: [Status Code: "+
		strings.ReplaceAll(http.StatusText(status), " ", "")+"; Reason: "+reason+"]")
}

// serveSubscriptions answers /subscriptions, /subscriptions/{id} and
// /subscriptions/{id}/reauthorize.
func (s *Server) serveSubscriptions(c *call, segs []string) {
	switch {
	case len(segs) == 0 && c.r.Method == http.MethodPost:
		c.endpoint = "subscriptions.create"
	case len(segs) == 0 && c.r.Method == http.MethodGet:
		c.endpoint = "subscriptions.list"
	case len(segs) == 1 && c.r.Method == http.MethodGet:
		c.endpoint = "subscription.get"
	case len(segs) == 1 && c.r.Method == http.MethodPatch:
		c.endpoint = "subscription.update"
	case len(segs) == 1 && c.r.Method == http.MethodDelete:
		c.endpoint = "subscription.delete"
	case len(segs) == 2 && c.r.Method == http.MethodPost && strings.TrimPrefix(segs[1], "microsoft.graph.") == "reauthorize":
		c.endpoint = "subscription.reauthorize"
	default:
		c.endpoint = "unknown"
		graphError(c.w, c.r, http.StatusBadRequest, "BadRequest", "Resource not found for the segment '"+lastSeg(segs)+"'.")
		return
	}
	p, ok := s.authenticate(c)
	if !ok {
		return
	}
	answered, finish := s.applyFault(c)
	if answered {
		return
	}
	var body []byte
	if c.r.Method == http.MethodPost || c.r.Method == http.MethodPatch {
		body, _ = io.ReadAll(io.LimitReader(c.r.Body, maxRequestBody))
	}
	var id string
	if len(segs) > 0 {
		id = segs[0]
	}
	var res result
	switch c.endpoint {
	case "subscriptions.create":
		res = s.createSubscription(c, p, body)
	case "subscriptions.list":
		res = s.listSubscriptions(c.r, p)
	case "subscription.get":
		res = s.getSubscription(c.r, p, id)
	case "subscription.update":
		res = s.updateSubscription(c, p, id, body)
	case "subscription.delete":
		res = s.deleteSubscription(p, id)
	case "subscription.reauthorize":
		res = s.reauthorizeSubscription(p, id)
	}
	respond(c, res)
	finish()
}

func subscriptionNotFound(id string) result {
	return fail(http.StatusNotFound, "ResourceNotFound", "The subscription '"+id+"' was not found.")
}

// subscriptionJSON renders a subscription as Graph does; list answers
// carry clientState null (by design, say Microsoft's engineers).
func subscriptionJSON(sub *subscription, withClientState bool) map[string]any {
	obj := map[string]any{
		"id": sub.ID, "resource": sub.Resource, "applicationId": sub.ApplicationID, "changeType": sub.ChangeType,
		"clientState": nilIfEmpty(sub.ClientState), "notificationUrl": sub.NotificationURL,
		"notificationQueryOptions": nil, "lifecycleNotificationUrl": nilIfEmpty(sub.LifecycleURL),
		"expirationDateTime": sub.Expiration.UTC().Format("2006-01-02T15:04:05.0000000Z"), "creatorId": sub.CreatorID,
		"includeResourceData": nil, "latestSupportedTlsVersion": sub.LatestSupportedTLS,
		"encryptionCertificate": nil, "encryptionCertificateId": nil, "notificationUrlAppId": nil,
	}
	if !withClientState {
		obj["clientState"] = nil
	}
	return obj
}

func subscriptionContext(r *http.Request) string {
	return baseURL(r) + "/v1.0/$metadata#subscriptions/$entity"
}

// checkExpiration checks a requested expirationDateTime against the
// lifetime limit; s.mu held.
func (s *Server) checkExpiration(raw string) (time.Time, *result) {
	t, err := parseODataTime(raw)
	if err != nil {
		r := fail(http.StatusBadRequest, "BadRequest", "Invalid expirationDateTime '"+raw+"'.")
		return t, &r
	}
	now := s.now()
	if !t.After(now) {
		r := fail(http.StatusBadRequest, "ExtensionError", "Subscription expiration can only be in the future.")
		return t, &r
	}
	max := s.notify.cfg.MaxLifetime
	if t.After(now.Add(max)) {
		// The documentation says 4,230 minutes for messages; the live
		// service refuses past what its text names (10070 minutes), and a
		// client reads the number from here.
		r := fail(http.StatusBadRequest, "ExtensionError",
			fmt.Sprintf("Subscription expiration can only be %d minutes in the future.", int(max/time.Minute)))
		return t, &r
	}
	return t, nil
}

// takeWrite spends one subscription write of the app in its tenant, or
// answers 429 with Retry-After; s.mu held.
func (s *Server) takeWrite(p *principal) *result {
	cfg := s.notify.cfg
	key := p.clientID + "|" + p.tid
	now := s.now()
	w := s.subs.writes[key]
	i := 0
	for i < len(w) && !w[i].After(now.Add(-cfg.WriteWindow)) {
		i++
	}
	w = w[i:]
	if len(w) >= cfg.WriteLimit {
		s.subs.writes[key] = w
		r := fail(http.StatusTooManyRequests, "TooManyRequests",
			"Too many requests. Please retry after the interval given in the Retry-After header.").
			withHeader("Retry-After", retryAfterSeconds(w[0].Add(cfg.WriteWindow).Sub(now)))
		return &r
	}
	s.subs.writes[key] = append(w, now)
	return nil
}

// checkURL refuses a notification URL Graph would not call.
func (s *Server) checkURL(raw string) *result {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		r := fail(http.StatusBadRequest, "InvalidRequest", "Invalid notification url '"+raw+"'.")
		return &r
	}
	if s.notify.cfg.RequireHTTPS && u.Scheme != "https" {
		r := fail(http.StatusBadRequest, "InvalidRequest", "The notification url must use the https scheme.")
		return &r
	}
	return nil
}

func parseChangeTypes(raw string) (map[string]bool, bool) {
	out := map[string]bool{}
	for _, v := range strings.Split(raw, ",") {
		v = strings.TrimSpace(v)
		switch v {
		case "created", "updated", "deleted":
			out[v] = true
		default:
			return nil, false
		}
	}
	return out, len(out) > 0
}

// createSubscription validates the request, calls the endpoints with
// their validation tokens (without the lock: they answer within 10 s),
// then stores the subscription.
func (s *Server) createSubscription(c *call, p *principal, raw []byte) result {
	var b subscriptionBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return fail(http.StatusBadRequest, "BadRequest", "Invalid JSON in the request body.")
	}
	for name, v := range map[string]*string{"changeType": b.ChangeType, "notificationUrl": b.NotificationURL,
		"resource": b.Resource, "expirationDateTime": b.ExpirationDateTime} {
		if v == nil || strings.TrimSpace(*v) == "" {
			return fail(http.StatusBadRequest, "BadRequest", "The property '"+name+"' is required.")
		}
	}
	changes, ok := parseChangeTypes(*b.ChangeType)
	if !ok {
		return fail(http.StatusBadRequest, "BadRequest", "Invalid changeType '"+*b.ChangeType+"'; use created, updated or deleted.")
	}
	sub := &subscription{changes: changes, SubscriptionState: SubscriptionState{
		ID: newGUID(), Resource: *b.Resource, ChangeType: *b.ChangeType, NotificationURL: *b.NotificationURL,
		ApplicationID: p.clientID, CreatorID: p.oid, LatestSupportedTLS: "v1_2", ImmutableIDs: preferImmutable(c.r),
	}, tenantID: p.tid}
	if b.ClientState != nil {
		if len(*b.ClientState) > maxClientState {
			return fail(http.StatusBadRequest, "BadRequest", fmt.Sprintf("clientState must be at most %d characters.", maxClientState))
		}
		sub.ClientState = *b.ClientState
	}
	if b.LatestSupportedTLS != nil {
		sub.LatestSupportedTLS = *b.LatestSupportedTLS
	}
	if res := s.checkURL(sub.NotificationURL); res != nil {
		return *res
	}
	if b.LifecycleNotificationURL != nil && *b.LifecycleNotificationURL != "" {
		sub.LifecycleURL = *b.LifecycleNotificationURL
		if res := s.checkURL(sub.LifecycleURL); res != nil {
			return *res
		}
	}
	if res := s.prepareSubscription(p, sub, *b.ExpirationDateTime); res != nil {
		return *res
	}
	urls := []string{sub.NotificationURL}
	if sub.LifecycleURL != "" {
		urls = append(urls, sub.LifecycleURL)
	}
	for _, u := range urls {
		if res := s.validateEndpoint(c.r.Context(), u); res != nil {
			return *res
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if n := s.countSubscriptions(sub.mailboxID); n >= s.notify.cfg.MaxPerMailbox {
		return extensionError(http.StatusForbidden, "Number of subscriptions on item has exceeded limit")
	}
	s.subs.subs[sub.ID] = sub
	s.notify.stats.Created++
	obj := subscriptionJSON(sub, true)
	obj["@odata.context"] = subscriptionContext(c.r)
	return answerJSON(http.StatusCreated, obj)
}

// prepareSubscription resolves the resource, checks access, the lifetime,
// the write budget and the per-mailbox limit; it takes s.mu.
func (s *Server) prepareSubscription(p *principal, sub *subscription, expiration string) *result {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, res := s.checkExpiration(expiration)
	if res != nil {
		return res
	}
	sub.Expiration = t
	rt, ok := parseGraph(http.MethodGet, splitPath(strings.SplitN(sub.Resource, "?", 2)[0]))
	if !ok || rt.endpoint != "messages.list" {
		r := extensionError(http.StatusBadRequest, "The resource '"+sub.Resource+"' is not supported; subscribe to a mailbox's or a folder's messages.")
		return &r
	}
	if rt.user == "me" && p.appOnly {
		r := fail(http.StatusBadRequest, "BadRequest", "/me request is only valid with delegated authentication flow.")
		return &r
	}
	who := rt.user
	if who == "me" {
		who = p.oid
	}
	mb := s.mailboxByAddress(who)
	if mb == nil || mb.TenantID != p.tid {
		r := extensionError(http.StatusNotFound, "The requested user '"+rt.user+"' is invalid.")
		return &r
	}
	if denied := s.accessDenied(p, mb, false); denied != "" {
		r := extensionError(http.StatusForbidden, denied)
		return &r
	}
	if !p.appOnly && mb.ID != p.oid {
		// Mail.Read.Shared and Mail.ReadWrite.Shared "don't support
		// subscribing to change notifications" (documented). The live
		// service is reported to accept and then never deliver; by default
		// the simulator refuses loudly, the way Exchange refuses access,
		// so a client learns it at once and keeps polling.
		if !s.notify.cfg.AcceptSharedDelegated {
			r := extensionError(http.StatusForbidden, "Access is denied. Check credentials and try again.")
			return &r
		}
		sub.Silent = true
	}
	if len(rt.folders) > 0 {
		f := mb.resolve(rt.folders)
		if f == nil {
			r := extensionError(http.StatusNotFound, "The specified folder could not be found in the store.")
			return &r
		}
		sub.folderID = f.id
	}
	sub.mailboxID, sub.Mailbox = mb.ID, mb.Address
	if n := s.countSubscriptions(mb.ID); n >= s.notify.cfg.MaxPerMailbox {
		r := extensionError(http.StatusForbidden, "Number of subscriptions on item has exceeded limit")
		return &r
	}
	return s.takeWrite(p)
}

// countSubscriptions counts the live subscriptions on a mailbox (of every
// app: the limit is per mailbox); s.mu held.
func (s *Server) countSubscriptions(mailboxID string) int {
	n := 0
	for _, sub := range s.subs.subs {
		if sub.mailboxID == mailboxID && s.live(sub) {
			n++
		}
	}
	return n
}

// live reports whether a subscription has not expired, dropping it when
// it has (Graph deletes expired subscriptions); s.mu held.
func (s *Server) live(sub *subscription) bool {
	if s.now().Before(sub.Expiration) {
		return true
	}
	delete(s.subs.subs, sub.ID)
	return false
}

// ownSubscription finds a live subscription the caller may manage: one of
// its app, in its tenant, and for a delegated caller one it created; s.mu held.
func (s *Server) ownSubscription(p *principal, id string) *subscription {
	sub := s.subs.subs[id]
	if sub == nil || !s.live(sub) || sub.ApplicationID != p.clientID || sub.tenantID != p.tid {
		return nil
	}
	if !p.appOnly && sub.CreatorID != p.oid {
		return nil
	}
	return sub
}

func (s *Server) listSubscriptions(r *http.Request, p *principal) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	var subs []*subscription
	for id := range s.subs.subs {
		if sub := s.ownSubscription(p, id); sub != nil {
			subs = append(subs, sub)
		}
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].ID < subs[j].ID })
	all := make([]any, 0, len(subs))
	for _, sub := range subs {
		all = append(all, subscriptionJSON(sub, false))
	}
	return page(r, baseURL(r)+"/v1.0/$metadata#subscriptions", all, 100)
}

func (s *Server) getSubscription(r *http.Request, p *principal, id string) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ownSubscription(p, id)
	if sub == nil {
		return subscriptionNotFound(id)
	}
	obj := subscriptionJSON(sub, true)
	obj["@odata.context"] = subscriptionContext(r)
	return answerJSON(http.StatusOK, obj)
}

// updateSubscription renews (expirationDateTime) and reauthorizes a
// subscription, or moves its notificationUrl (validated again); the
// lifecycleNotificationUrl can be set only at creation.
func (s *Server) updateSubscription(c *call, p *principal, id string, raw []byte) result {
	var b subscriptionBody
	if err := json.Unmarshal(raw, &b); err != nil {
		return fail(http.StatusBadRequest, "BadRequest", "Invalid JSON in the request body.")
	}
	if b.NotificationURL != nil {
		if res := s.checkURL(*b.NotificationURL); res != nil {
			return *res
		}
		if res := s.validateEndpoint(c.r.Context(), *b.NotificationURL); res != nil {
			return *res
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ownSubscription(p, id)
	if sub == nil {
		return subscriptionNotFound(id)
	}
	// A client that sends the whole object back may repeat what it cannot
	// change; only a different value is refused.
	if v := b.LifecycleNotificationURL; v != nil && *v != sub.LifecycleURL {
		return fail(http.StatusBadRequest, "BadRequest",
			"lifecycleNotificationUrl can only be set when the subscription is created.")
	}
	for name, v := range map[string][2]*string{"resource": {b.Resource, &sub.Resource},
		"changeType": {b.ChangeType, &sub.ChangeType}, "clientState": {b.ClientState, &sub.ClientState}} {
		if v[0] != nil && *v[0] != *v[1] {
			return fail(http.StatusBadRequest, "BadRequest", "The property '"+name+"' cannot be updated.")
		}
	}
	var exp time.Time
	if b.ExpirationDateTime != nil {
		t, res := s.checkExpiration(*b.ExpirationDateTime)
		if res != nil {
			return *res
		}
		exp = t
	}
	if res := s.takeWrite(p); res != nil {
		return *res
	}
	if !exp.IsZero() {
		sub.Expiration = exp
	}
	if b.NotificationURL != nil {
		sub.NotificationURL = *b.NotificationURL
	}
	sub.Paused = false // renewing also reauthorizes
	obj := subscriptionJSON(sub, true)
	obj["@odata.context"] = subscriptionContext(c.r)
	return answerJSON(http.StatusOK, obj)
}

func (s *Server) deleteSubscription(p *principal, id string) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ownSubscription(p, id)
	if sub == nil {
		return subscriptionNotFound(id)
	}
	if res := s.takeWrite(p); res != nil {
		return *res
	}
	delete(s.subs.subs, id)
	return result{status: http.StatusNoContent}
}

func (s *Server) reauthorizeSubscription(p *principal, id string) result {
	s.mu.Lock()
	defer s.mu.Unlock()
	sub := s.ownSubscription(p, id)
	if sub == nil {
		return subscriptionNotFound(id)
	}
	sub.Paused = false
	return result{status: http.StatusNoContent}
}

// Subscriptions lists the live subscriptions on a mailbox (every mailbox
// if mailbox is empty), by id.
func (s *Server) Subscriptions(mailbox string) []SubscriptionState {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []SubscriptionState
	for _, sub := range s.subs.subs {
		if !s.live(sub) || (mailbox != "" && !strings.EqualFold(sub.Mailbox, mailbox) && !strings.EqualFold(sub.mailboxID, mailbox)) {
			continue
		}
		out = append(out, sub.SubscriptionState)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out
}
