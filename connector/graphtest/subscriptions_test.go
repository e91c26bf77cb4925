package graphtest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// hook is a notification endpoint on loopback, as a subscriber runs it.
type hook struct {
	*httptest.Server
	validations chan string         // tokens received
	notes       chan map[string]any // notification collections received

	mu       sync.Mutex
	validate string        // echo (default), wrong, status, html, hang
	failN    int           // the next failN notifications are answered 500
	slowN    int           // the next slowN notifications take slowFor
	slowFor  time.Duration // how slow a slow answer is
	hangNote bool          // notifications wait until the caller gives up
}

func newHook(t *testing.T) *hook {
	t.Helper()
	h := &hook{validations: make(chan string, 100), notes: make(chan map[string]any, 1000)}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *hook) set(f func(h *hook)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(h)
}

func (h *hook) serve(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	mode, fail, slow, slowFor, hang := h.validate, h.failN > 0, h.slowN > 0, h.slowFor, h.hangNote
	if r.URL.Query().Get("validationToken") == "" {
		if fail {
			h.failN--
		}
		if slow {
			h.slowN--
		}
	}
	h.mu.Unlock()
	if tok := r.URL.Query().Get("validationToken"); tok != "" {
		h.validations <- tok
		switch mode {
		case "wrong":
			w.Header().Set("Content-Type", "text/plain")
			_, _ = io.WriteString(w, tok+"x")
		case "status":
			http.Error(w, "no", http.StatusInternalServerError)
		case "html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, tok)
		case "hang":
			<-r.Context().Done() // until the simulator gives up
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
			_, _ = io.WriteString(w, tok)
		}
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if hang {
		h.notes <- body
		<-r.Context().Done()
		return
	}
	if slow {
		// The endpoint is slow: that is what is simulated, not an event to await.
		t := time.NewTimer(slowFor)
		defer t.Stop()
		select {
		case <-t.C:
		case <-r.Context().Done():
		}
	}
	h.notes <- body
	if fail {
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	w.WriteHeader(http.StatusAccepted)
}

// next awaits the next notification collection's single item.
func (h *hook) next(t *testing.T) map[string]any {
	t.Helper()
	select {
	case b := <-h.notes:
		v, _ := b["value"].([]any)
		if len(v) != 1 {
			t.Fatalf("collection of %d: %v", len(v), b)
		}
		return v[0].(map[string]any)
	case <-time.After(10 * time.Second):
		t.Fatal("no notification within 10s")
	}
	return nil
}

// watchPosts reports each notification POST once its outcome is counted.
func watchPosts(s *Server) chan struct{} {
	ch := make(chan struct{}, 1000)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.hooks.onPosted = func() { ch <- struct{}{} }
	return ch
}

func awaitPosts(t *testing.T, s *Server, ch chan struct{}, n int) {
	t.Helper()
	for i := range n {
		select {
		case <-ch:
		case <-time.After(10 * time.Second):
			t.Fatalf("%d of %d posts counted: %+v", i, n, s.NotificationStats())
		}
	}
}

func subURL(s *Server, id string) string {
	return s.GraphURL() + "/subscriptions/" + url.PathEscape(id)
}

// subscribe creates a subscription on the default mailbox's inbox.
func subscribe(t *testing.T, s *Server, tok string, body map[string]any) answer {
	t.Helper()
	req := map[string]any{
		"changeType": "created", "resource": "users/" + DefaultMailbox + "/mailFolders('inbox')/messages",
		"expirationDateTime": time.Now().Add(24 * time.Hour).UTC().Format(time.RFC3339Nano), "clientState": "secret-state",
	}
	for k, v := range body {
		if v == nil {
			delete(req, k)
			continue
		}
		req[k] = v
	}
	return do(t, s, "POST", s.GraphURL()+"/subscriptions", tok, jsonBody(req), nil)
}

func mustSubscribe(t *testing.T, s *Server, tok string, body map[string]any) map[string]any {
	t.Helper()
	a := subscribe(t, s, tok, body)
	if a.status != http.StatusCreated {
		t.Fatalf("create: %d %s", a.status, a.body)
	}
	return a.json(t)
}

func defaultAppToken(t *testing.T, s *Server) string {
	t.Helper()
	return appToken(t, s, DefaultClientID, DefaultClientSecret)
}

func TestSubscriptionResource(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := defaultAppToken(t, s)
	h, life := newHook(t), newHook(t)
	exp := time.Now().Add(2 * time.Hour).UTC().Truncate(time.Second)
	sub := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL + "/notify?tenant=firma",
		"lifecycleNotificationUrl": life.URL, "expirationDateTime": exp.Format(time.RFC3339)})
	// Both URLs were validated at creation, before the answer.
	for _, hk := range []*hook{h, life} {
		select {
		case tok := <-hk.validations:
			if tok == "" {
				t.Error("empty validation token")
			}
		default:
			t.Fatal("an endpoint was not validated before the answer")
		}
	}
	for k, want := range map[string]any{"resource": "users/" + DefaultMailbox + "/mailFolders('inbox')/messages",
		"changeType": "created", "clientState": "secret-state", "notificationUrl": h.URL + "/notify?tenant=firma",
		"lifecycleNotificationUrl": life.URL, "applicationId": DefaultClientID, "latestSupportedTlsVersion": "v1_2",
		"creatorId": servicePrincipalID(DefaultTenantID, DefaultClientID)} {
		if sub[k] != want {
			t.Errorf("%s = %v, want %v", k, sub[k], want)
		}
	}
	if got, _ := parseODataTime(sub["expirationDateTime"].(string)); !got.Equal(exp) {
		t.Errorf("expirationDateTime %v, want %v", sub["expirationDateTime"], exp)
	}
	if !strings.HasSuffix(sub["@odata.context"].(string), "/v1.0/$metadata#subscriptions/$entity") {
		t.Errorf("@odata.context %v", sub["@odata.context"])
	}
	id := sub["id"].(string)

	get := do(t, s, "GET", subURL(s, id), tok, nil, nil)
	if get.status != http.StatusOK || get.json(t)["clientState"] != "secret-state" {
		t.Fatalf("get: %d %s", get.status, get.body)
	}
	list := do(t, s, "GET", s.GraphURL()+"/subscriptions", tok, nil, nil)
	vals, _ := list.json(t)["value"].([]any)
	if list.status != http.StatusOK || len(vals) != 1 || vals[0].(map[string]any)["clientState"] != nil {
		t.Fatalf("list (one, clientState null): %d %s", list.status, list.body)
	}
	// Another app sees none of them.
	s.AddApp(App{ClientID: "other-app", ClientSecret: "other-secret"})
	s.GrantAdminConsent(DefaultTenantID, "other-app")
	other := appToken(t, s, "other-app", "other-secret")
	wantGraphError(t, do(t, s, "GET", subURL(s, id), other, nil, nil), http.StatusNotFound, "ResourceNotFound")

	renewed := time.Now().Add(48 * time.Hour).UTC().Truncate(time.Second)
	patch := do(t, s, "PATCH", subURL(s, id), tok, jsonBody(map[string]any{"expirationDateTime": renewed.Format(time.RFC3339)}), nil)
	if patch.status != http.StatusOK {
		t.Fatalf("patch: %d %s", patch.status, patch.body)
	}
	if got, _ := parseODataTime(patch.json(t)["expirationDateTime"].(string)); !got.Equal(renewed) {
		t.Errorf("renewed to %v, want %v", patch.json(t)["expirationDateTime"], renewed)
	}
	wantGraphError(t, do(t, s, "PATCH", subURL(s, id), tok, jsonBody(map[string]any{"lifecycleNotificationUrl": life.URL + "/x"}), nil),
		http.StatusBadRequest, "BadRequest")
	wantGraphError(t, do(t, s, "PATCH", subURL(s, id), tok, jsonBody(map[string]any{"clientState": "other"}), nil),
		http.StatusBadRequest, "BadRequest")
	// The same values again are no change.
	if a := do(t, s, "PATCH", subURL(s, id), tok, jsonBody(map[string]any{"lifecycleNotificationUrl": life.URL,
		"clientState": "secret-state", "changeType": "created"}), nil); a.status != http.StatusOK {
		t.Errorf("patch with unchanged values: %d %s", a.status, a.body)
	}
	// A new notificationUrl is validated first.
	moved := newHook(t)
	moved.set(func(h *hook) { h.validate = "wrong" })
	wantGraphError(t, do(t, s, "PATCH", subURL(s, id), tok, jsonBody(map[string]any{"notificationUrl": moved.URL}), nil),
		http.StatusBadRequest, "ValidationError")
	moved.set(func(h *hook) { h.validate = "" })
	if a := do(t, s, "PATCH", subURL(s, id), tok, jsonBody(map[string]any{"notificationUrl": moved.URL}), nil); a.status != http.StatusOK ||
		a.json(t)["notificationUrl"] != moved.URL {
		t.Errorf("move notificationUrl: %d %s", a.status, a.body)
	}
	if a := do(t, s, "POST", subURL(s, id)+"/reauthorize", tok, nil, nil); a.status != http.StatusNoContent {
		t.Fatalf("reauthorize: %d %s", a.status, a.body)
	}
	if a := do(t, s, "DELETE", subURL(s, id), tok, nil, nil); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	wantGraphError(t, do(t, s, "GET", subURL(s, id), tok, nil, nil), http.StatusNotFound, "ResourceNotFound")
	wantGraphError(t, do(t, s, "DELETE", subURL(s, id), tok, nil, nil), http.StatusNotFound, "ResourceNotFound")
	wantGraphError(t, do(t, s, "GET", subURL(s, id), "", nil, nil), http.StatusUnauthorized, "InvalidAuthenticationToken")
}

func TestSubscriptionCreateRefusals(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := defaultAppToken(t, s)
	h := newHook(t)
	s.AddMailbox(Mailbox{Address: "privat@firma.example"})
	s.AddApp(App{ClientID: "policy-app", ClientSecret: "policy-secret"})
	s.GrantAdminConsent(DefaultTenantID, "policy-app")
	s.AllowAppMailbox("policy-app", "privat@firma.example")
	policy := appToken(t, s, "policy-app", "policy-secret")
	delegated, _ := userToken(t, s, DefaultUser)
	tooLong := time.Now().Add(10071 * time.Minute).UTC().Format(time.RFC3339)
	for _, tt := range []struct {
		name    string
		tok     string
		body    map[string]any
		status  int
		code    string
		message string // contained in the error message
	}{
		{"no changeType", tok, map[string]any{"changeType": nil}, 400, "BadRequest", "changeType"},
		{"bad changeType", tok, map[string]any{"changeType": "created,moved"}, 400, "BadRequest", "changeType"},
		{"no notificationUrl", tok, map[string]any{"notificationUrl": nil}, 400, "BadRequest", "notificationUrl"},
		{"no expiration", tok, map[string]any{"expirationDateTime": nil}, 400, "BadRequest", "expirationDateTime"},
		{"clientState of 129", tok, map[string]any{"clientState": strings.Repeat("c", 129)}, 400, "BadRequest", "128"},
		{"past expiration", tok, map[string]any{"expirationDateTime": time.Now().Add(-time.Minute).UTC().Format(time.RFC3339)},
			400, "ExtensionError", "in the future"},
		{"beyond the lifetime", tok, map[string]any{"expirationDateTime": tooLong}, 400, "ExtensionError",
			"Subscription expiration can only be 10070 minutes in the future."},
		{"not a message resource", tok, map[string]any{"resource": "users/" + DefaultMailbox + "/events"}, 400, "ExtensionError", "not supported"},
		{"unknown folder", tok, map[string]any{"resource": "users/" + DefaultMailbox + "/mailFolders/nope/messages"}, 404, "ExtensionError", "folder"},
		{"unknown mailbox", tok, map[string]any{"resource": "users/nobody@firma.example/messages"}, 404, "ExtensionError", "invalid"},
		{"outside the access policy", policy, nil, 403, "ExtensionError", "AccessPolicy"},
		{"delegated shared mailbox", delegated, nil, 403, "ExtensionError",
			"Operation: Create; Exception: [Status Code: Forbidden; Reason: Access is denied. Check credentials and try again.]"},
		{"bad lifecycle url", tok, map[string]any{"lifecycleNotificationUrl": "ftp://x"}, 400, "InvalidRequest", "notification url"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			body := map[string]any{"notificationUrl": h.URL}
			for k, v := range tt.body {
				body[k] = v
			}
			a := subscribe(t, s, tt.tok, body)
			wantGraphError(t, a, tt.status, tt.code)
			if msg := a.json(t)["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tt.message) {
				t.Errorf("message %q, want it to contain %q", msg, tt.message)
			}
		})
	}
	if n := len(s.Subscriptions("")); n != 0 {
		t.Fatalf("%d subscriptions stored after refusals", n)
	}
	// The limits that pass: 128 characters of clientState, 10070 minutes.
	mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL, "clientState": strings.Repeat("c", 128),
		"expirationDateTime": time.Now().Add(10069 * time.Minute).UTC().Format(time.RFC3339)})
	// A delegated token subscribes to its own mailbox.
	mustSubscribe(t, s, delegated, map[string]any{"notificationUrl": h.URL, "resource": "me/mailFolders('Inbox')/messages"})
	// HTTPS when asked for.
	s.SetNotifications(Notifications{RequireHTTPS: true})
	wantGraphError(t, subscribe(t, s, tok, map[string]any{"notificationUrl": h.URL}), 400, "InvalidRequest")
}

func TestSubscriptionHTTPSEndpoint(t *testing.T) {
	s := NewServer()
	defer s.Close()
	h := &hook{validations: make(chan string, 10), notes: make(chan map[string]any, 10)}
	h.Server = httptest.NewTLSServer(http.HandlerFunc(h.serve))
	defer h.Close()
	s.SetNotifications(Notifications{RequireHTTPS: true, Client: h.Client()})
	tok := defaultAppToken(t, s)
	sub := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL})
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "over TLS"}); err != nil {
		t.Fatal(err)
	}
	if got := h.next(t); got["subscriptionId"] != sub["id"] {
		t.Fatalf("notification %v", got)
	}
}

func TestSubscriptionValidationFailures(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.SetNotifications(Notifications{ValidationTimeout: 2 * time.Second})
	tok := defaultAppToken(t, s)
	for _, tt := range []struct {
		mode, code, message string
		lifecycle           bool // only the lifecycle URL fails
	}{
		{"wrong", "ValidationError", "Response must exactly match validationToken query parameter.", false},
		{"html", "ValidationError", "Response must exactly match validationToken query parameter.", false},
		{"status", "ValidationError", "Notification endpoint must respond with 200 OK to validation request.", false},
		{"hang", "InvalidRequest", "Subscription validation request timed out.", false},
		{"wrong", "ValidationError", "Response must exactly match", true},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			good, bad := newHook(t), newHook(t)
			bad.set(func(h *hook) { h.validate = tt.mode })
			body := map[string]any{"notificationUrl": bad.URL}
			if tt.lifecycle {
				body = map[string]any{"notificationUrl": good.URL, "lifecycleNotificationUrl": bad.URL}
			}
			a := subscribe(t, s, tok, body)
			wantGraphError(t, a, http.StatusBadRequest, tt.code)
			if msg := a.json(t)["error"].(map[string]any)["message"]; !strings.Contains(msg.(string), tt.message) {
				t.Errorf("message %q, want %q", msg, tt.message)
			}
			if len(bad.validations) != 1 {
				t.Errorf("%d validation calls to the failing URL, want 1", len(bad.validations))
			}
			if n := len(s.Subscriptions(DefaultMailbox)); n != 0 {
				t.Errorf("%d subscriptions stored", n)
			}
		})
	}
}

func TestChangeNotifications(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := defaultAppToken(t, s)
	posted := watchPosts(s)
	h := newHook(t)
	sub := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL, "changeType": "created,updated"})
	immutable := newHook(t)
	subImm := do(t, s, "POST", s.GraphURL()+"/subscriptions", tok, jsonBody(map[string]any{
		"changeType": "created", "notificationUrl": immutable.URL, "resource": "users/" + DefaultMailbox + "/messages",
		"expirationDateTime": time.Now().Add(time.Hour).UTC().Format(time.RFC3339)}),
		map[string]string{"Prefer": `IdType="ImmutableId"`}).json(t)

	id, err := s.Deliver(DefaultMailbox, Mail{Subject: "RE-1"})
	if err != nil {
		t.Fatal(err)
	}
	msg := s.Messages(DefaultMailbox, "inbox")[0]
	n := h.next(t)
	rd, _ := n["resourceData"].(map[string]any)
	for k, want := range map[string]any{"subscriptionId": sub["id"], "changeType": "created", "clientState": "secret-state",
		"tenantId": DefaultTenantID} {
		if n[k] != want {
			t.Errorf("%s = %v, want %v", k, n[k], want)
		}
	}
	if n["subscriptionExpirationDateTime"] != sub["expirationDateTime"] {
		t.Errorf("subscriptionExpirationDateTime %v, want %v", n["subscriptionExpirationDateTime"], sub["expirationDateTime"])
	}
	if rd["id"] != id || rd["@odata.type"] != "#Microsoft.Graph.Message" || !strings.HasSuffix(rd["@odata.id"].(string), "/Messages/"+id) ||
		n["resource"] != rd["@odata.id"] || !strings.HasPrefix(rd["@odata.etag"].(string), `W/"`) {
		t.Errorf("resourceData %v, resource %v for message %s", rd, n["resource"], id)
	}
	// The subscription made with ImmutableId names the immutable id.
	if ni := immutable.next(t); ni["resourceData"].(map[string]any)["id"] != msg.ImmutableID || ni["subscriptionId"] != subImm["id"] {
		t.Errorf("immutable subscription's notification %v, want id %s", ni, msg.ImmutableID)
	}

	// A change in another folder queues nothing for the inbox subscription
	// (the mailbox-wide one hears it); an update does.
	before := s.NotificationStats().Queued
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "elsewhere", Folder: "archive"}); err != nil {
		t.Fatal(err)
	}
	if q := s.NotificationStats().Queued - before; q != 1 {
		t.Errorf("archive delivery queued %d notifications, want 1 (the mailbox-wide subscription)", q)
	}
	immutable.next(t)
	patch := do(t, s, "PATCH", s.GraphURL()+"/users/"+DefaultMailbox+"/messages/"+url.PathEscape(id), tok,
		jsonBody(map[string]any{"isRead": true}), nil)
	if patch.status != http.StatusOK {
		t.Fatalf("patch: %d %s", patch.status, patch.body)
	}
	if u := h.next(t); u["changeType"] != "updated" || u["resourceData"].(map[string]any)["id"] != id {
		t.Errorf("update notification %v", u)
	}
	awaitPosts(t, s, posted, 4)
	st := s.NotificationStats()
	if st.Delivered != 4 || st.Posts != 4 || st.Failed != 0 {
		t.Errorf("stats %+v, want 4 delivered of 4 posts", st)
	}
}

func TestNotificationDropsDuplicatesRetries(t *testing.T) {
	for _, tt := range []struct {
		name             string
		cfg              Notifications
		failN            int
		posts, delivered int
		dropped          int
	}{
		{"drop all", Notifications{DropRate: 1}, 0, 0, 0, 3},
		{"duplicate all", Notifications{DuplicateRate: 1}, 0, 6, 6, 0},
		{"retry after failures", Notifications{RetryDelay: 10 * time.Millisecond}, 2, 5, 3, 0},
		{"give up after RetryFor", Notifications{RetryDelay: 10 * time.Millisecond, RetryFor: 15 * time.Millisecond}, 3, 3, 0, 3},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			s.SetNotifications(tt.cfg)
			posted := watchPosts(s)
			h := newHook(t)
			h.set(func(h *hook) { h.failN = tt.failN })
			mustSubscribe(t, s, defaultAppToken(t, s), map[string]any{"notificationUrl": h.URL})
			for i := range 3 {
				if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "RE-" + itoaTest(i)}); err != nil {
					t.Fatal(err)
				}
			}
			awaitPosts(t, s, posted, tt.posts)
			st := s.NotificationStats()
			if st.Posts != tt.posts || st.Delivered != tt.delivered || st.Dropped != tt.dropped {
				t.Errorf("stats %+v, want %d posts, %d delivered, %d dropped", st, tt.posts, tt.delivered, tt.dropped)
			}
		})
	}
}

func TestSlowEndpointRule(t *testing.T) {
	for _, tt := range []struct {
		name       string
		slow       int // of the first 10
		throttled  int
		dropped    int
		lifecycles int // missed sent
	}{
		{"below 10% goes on", 0, 0, 0, 0},
		{"10% is delayed", 1, 1, 0, 0},
		{"15% is dropped with missed", 2, 0, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			s := NewServer()
			defer s.Close()
			s.SetNotifications(Notifications{SlowAfter: 300 * time.Millisecond, EvaluateAfter: 10, ThrottleDelay: 10 * time.Millisecond})
			posted := watchPosts(s)
			h, life := newHook(t), newHook(t)
			h.set(func(h *hook) { h.slowN, h.slowFor = tt.slow, 600*time.Millisecond })
			mustSubscribe(t, s, defaultAppToken(t, s), map[string]any{"notificationUrl": h.URL, "lifecycleNotificationUrl": life.URL})
			for i := range 10 {
				if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "RE-" + itoaTest(i)}); err != nil {
					t.Fatal(err)
				}
				awaitPosts(t, s, posted, 1) // one at a time: the 11th is judged on all 10
			}
			if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "the 11th"}); err != nil {
				t.Fatal(err)
			}
			if tt.dropped != 0 {
				if got := life.next(t); got["lifecycleEvent"] != Missed {
					t.Errorf("lifecycle %v, want missed", got)
				}
			}
			awaitPosts(t, s, posted, 1) // the 11th, or missed
			st := s.NotificationStats()
			if st.Slow != tt.slow || st.Throttled != tt.throttled || st.Dropped != tt.dropped || st.Lifecycle != tt.lifecycles {
				t.Errorf("stats %+v, want slow %d throttled %d dropped %d lifecycle %d", st, tt.slow, tt.throttled, tt.dropped, tt.lifecycles)
			}
		})
	}
}

func TestLifecycleEvents(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := defaultAppToken(t, s)
	h, life := newHook(t), newHook(t)
	sub := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL, "lifecycleNotificationUrl": life.URL})
	id := sub["id"].(string)
	noLife := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL})

	// reauthorizationRequired: the notification, then delivery pauses and
	// changes are lost until reauthorize.
	if err := s.Lifecycle(id, ReauthorizationRequired); err != nil {
		t.Fatal(err)
	}
	got := life.next(t)
	for k, want := range map[string]any{"lifecycleEvent": ReauthorizationRequired, "subscriptionId": id,
		"clientState": "secret-state", "tenantId": DefaultTenantID, "subscriptionExpirationDateTime": sub["expirationDateTime"]} {
		if got[k] != want {
			t.Errorf("%s = %v, want %v", k, got[k], want)
		}
	}
	if _, ok := got["changeType"]; ok {
		t.Error("a lifecycle notification carries changeType")
	}
	if st := s.Subscriptions(DefaultMailbox); !st[0].Paused && !st[1].Paused {
		t.Fatal("not paused")
	}
	before := s.NotificationStats()
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "while paused"}); err != nil {
		t.Fatal(err)
	}
	after := s.NotificationStats()
	if after.LostPaused-before.LostPaused != 1 || after.Queued-before.Queued != 1 {
		t.Fatalf("while paused: lost %d queued %d, want 1 and 1 (the other subscription)",
			after.LostPaused-before.LostPaused, after.Queued-before.Queued)
	}
	if n := h.next(t); n["subscriptionId"] != noLife["id"] {
		t.Fatalf("notification for %v, want the unpaused subscription", n["subscriptionId"])
	}
	if a := do(t, s, "POST", subURL(s, id)+"/reauthorize", tok, nil, nil); a.status != http.StatusNoContent {
		t.Fatalf("reauthorize: %d %s", a.status, a.body)
	}
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "after"}); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	h.next(t)

	// missed: a notification, nothing else changes.
	if err := s.Lifecycle(id, Missed); err != nil {
		t.Fatal(err)
	}
	if got := life.next(t); got["lifecycleEvent"] != Missed {
		t.Errorf("lifecycle %v, want missed", got)
	}
	// subscriptionRemoved for the whole mailbox: both gone, one notified.
	if n, err := s.LifecycleMailbox(DefaultMailbox, SubscriptionRemoved); err != nil || n != 2 {
		t.Fatalf("removed %d, %v; want 2", n, err)
	}
	if got := life.next(t); got["lifecycleEvent"] != SubscriptionRemoved {
		t.Errorf("lifecycle %v, want subscriptionRemoved", got)
	}
	wantGraphError(t, do(t, s, "GET", subURL(s, id), tok, nil, nil), http.StatusNotFound, "ResourceNotFound")
	if err := s.Lifecycle(id, Missed); err == nil {
		t.Error("lifecycle for a removed subscription")
	}
	if err := s.Lifecycle(noLife["id"].(string), "bogus"); err == nil {
		t.Error("unknown lifecycle event accepted")
	}
}

func TestSubscriptionExpiry(t *testing.T) {
	s := NewServer()
	defer s.Close()
	clock := &fakeClock{t: time.Now()}
	s.SetNow(clock.now)
	tok := defaultAppToken(t, s)
	h := newHook(t)
	sub := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL,
		"expirationDateTime": clock.now().Add(time.Hour).UTC().Format(time.RFC3339)})
	clock.add(2 * time.Hour)
	before := s.NotificationStats().Queued
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "late"}); err != nil {
		t.Fatal(err)
	}
	if q := s.NotificationStats().Queued - before; q != 0 {
		t.Errorf("an expired subscription queued %d", q)
	}
	if n := len(s.Subscriptions(DefaultMailbox)); n != 0 {
		t.Errorf("%d live subscriptions after expiry", n)
	}
	tok = defaultAppToken(t, s) // the old token expired with the clock
	wantGraphError(t, do(t, s, "GET", subURL(s, sub["id"].(string)), tok, nil, nil), http.StatusNotFound, "ResourceNotFound")
}

func TestSubscriptionLimits(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.SetNotifications(Notifications{MaxPerMailbox: 2, WriteLimit: 3, WriteWindow: time.Hour})
	tok := defaultAppToken(t, s)
	h := newHook(t)
	first := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL})
	mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL})
	a := subscribe(t, s, tok, map[string]any{"notificationUrl": h.URL})
	wantGraphError(t, a, http.StatusForbidden, "ExtensionError")
	if !strings.Contains(string(a.body), "Number of subscriptions on item has exceeded limit") {
		t.Errorf("limit text: %s", a.body)
	}
	// Two writes so far (the refused one took none): one more, then 429.
	if a := do(t, s, "DELETE", subURL(s, first["id"].(string)), tok, nil, nil); a.status != http.StatusNoContent {
		t.Fatalf("delete: %d %s", a.status, a.body)
	}
	a = subscribe(t, s, tok, map[string]any{"notificationUrl": h.URL})
	wantGraphError(t, a, http.StatusTooManyRequests, "TooManyRequests")
	if ra := a.header.Get("Retry-After"); ra == "" || ra == "0" {
		t.Errorf("Retry-After %q", ra)
	}
}

func TestSharedDelegatedAcceptedNeverDelivers(t *testing.T) {
	s := NewServer()
	defer s.Close()
	s.SetNotifications(Notifications{AcceptSharedDelegated: true})
	delegated, _ := userToken(t, s, DefaultUser)
	h := newHook(t)
	mustSubscribe(t, s, delegated, map[string]any{"notificationUrl": h.URL})
	if st := s.Subscriptions(DefaultMailbox); len(st) != 1 || !st[0].Silent {
		t.Fatalf("subscriptions %+v, want one silent", st)
	}
	before := s.NotificationStats().Queued
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "never told"}); err != nil {
		t.Fatal(err)
	}
	if q := s.NotificationStats().Queued - before; q != 0 {
		t.Errorf("a silent subscription queued %d", q)
	}
}

func TestNotificationControlAPI(t *testing.T) {
	s := NewServer()
	defer s.Close()
	tok := defaultAppToken(t, s)
	h, life := newHook(t), newHook(t)
	if a := do(t, s, "POST", "/_sim/notifications", "", jsonBody(map[string]any{"delaySeconds": 0.01, "duplicateRate": 1}), nil); a.status != http.StatusNoContent {
		t.Fatalf("notifications: %d %s", a.status, a.body)
	}
	sub := mustSubscribe(t, s, tok, map[string]any{"notificationUrl": h.URL, "lifecycleNotificationUrl": life.URL})
	list := do(t, s, "GET", "/_sim/subscriptions?mailbox="+DefaultMailbox, "", nil, nil)
	if vals, _ := list.json(t)["value"].([]any); len(vals) != 1 || vals[0].(map[string]any)["ID"] != sub["id"] {
		t.Fatalf("subscriptions: %s", list.body)
	}
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "twice"}); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	h.next(t)
	for _, path := range []string{"/_sim/subscriptions/" + sub["id"].(string) + "/lifecycle", "/_sim/mailboxes/" + DefaultMailbox + "/lifecycle"} {
		a := do(t, s, "POST", path, "", jsonBody(map[string]any{"event": Missed}), nil)
		if a.status != http.StatusOK || a.json(t)["count"] != float64(1) {
			t.Fatalf("%s: %d %s", path, a.status, a.body)
		}
		if got := life.next(t); got["lifecycleEvent"] != Missed {
			t.Errorf("lifecycle %v", got)
		}
	}
	if a := do(t, s, "POST", "/_sim/subscriptions/nope/lifecycle", "", jsonBody(map[string]any{"event": Missed}), nil); a.status != http.StatusNotFound {
		t.Errorf("unknown subscription: %d", a.status)
	}
	if a := do(t, s, "POST", "/_sim/mailboxes/"+DefaultMailbox+"/lifecycle", "", jsonBody(map[string]any{"event": "later"}), nil); a.status != http.StatusBadRequest {
		t.Errorf("unknown event: %d", a.status)
	}
	stats := do(t, s, "GET", "/_sim/notifications", "", nil, nil).json(t)
	if stats["Duplicated"] != float64(1) || stats["Created"] != float64(1) {
		t.Errorf("stats %v", stats)
	}
}

func TestCloseStopsDelivery(t *testing.T) {
	s := NewServer()
	h := newHook(t)
	h.set(func(h *hook) { h.hangNote = true })
	s.SetNotifications(Notifications{Timeout: time.Hour})
	mustSubscribe(t, s, defaultAppToken(t, s), map[string]any{"notificationUrl": h.URL})
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "held"}); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	// Close returns while the endpoint still holds the call.
	done := make(chan struct{})
	go func() { s.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not stop the sender")
	}
	if _, err := s.Deliver(DefaultMailbox, Mail{Subject: "after close"}); err != nil {
		t.Fatal(err)
	}
}
