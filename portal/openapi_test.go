package portal

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/webhook"
	"github.com/mailgate/mailgate/connector"
)

// webhookService gives the portal the real webhook service on the test's
// JetStream, delivering until the test ends. Private addresses are allowed
// for the receiver on loopback.
func (e *env) webhookService() *webhook.Service {
	e.t.Helper()
	if _, err := archive.EnsureStream(e.t.Context(), e.js, archive.StreamConfig{}); err != nil {
		e.t.Fatal(err)
	}
	svc, err := webhook.New(e.t.Context(), e.js, e.sealer, archive.NewPublisher(e.js, "mailgate"), webhook.Config{AllowPrivate: true})
	if err != nil {
		e.t.Fatal(err)
	}
	e.srv.deps.Webhooks = svc
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	e.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			e.t.Error(err)
		}
	})
	return svc
}

// loadOpenAPI parses and validates the OpenAPI document as kin-openapi
// reads it (3.1, JSON Schema 2020-12) and routes it for serverURL.
func loadOpenAPI(t *testing.T, raw []byte, serverURL string) (*openapi3.T, routers.Router) {
	t.Helper()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !doc.IsOpenAPI31OrLater() || doc.IsOpenAPI32OrLater() {
		t.Fatalf("openapi.json is %s, want 3.1", doc.OpenAPI)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("openapi.json is not a valid OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: serverURL}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return doc, router
}

// contract validates every API request and its response that passes
// through it against the OpenAPI document.
type contract struct {
	t      *testing.T
	router routers.Router
	next   http.Handler

	mu   sync.Mutex
	seen map[string][]int // operationId → statuses answered
}

func (c *contract) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !strings.HasPrefix(r.URL.Path, "/api/") {
		c.next.ServeHTTP(w, r)
		return
	}
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := httptest.NewRecorder()
	c.next.ServeHTTP(rec, r)
	res := rec.Result()
	for k, v := range res.Header {
		w.Header()[k] = v
	}
	w.WriteHeader(res.StatusCode)
	_, _ = w.Write(rec.Body.Bytes())

	if err := c.validate(r, body, res.StatusCode, res.Header, rec.Body.Bytes()); err != nil {
		c.t.Errorf("%s %s → %d leaves openapi.json: %v\nbody: %s", r.Method, r.URL.Path, res.StatusCode, err, rec.Body.Bytes())
	}
}

func (c *contract) validate(r *http.Request, reqBody []byte, status int, hdr http.Header, body []byte) error {
	ctx := context.Background()
	vr := r.Clone(ctx)
	vr.URL.Scheme, vr.URL.Host = "http", r.Host
	vr.Body = io.NopCloser(bytes.NewReader(reqBody))
	route, params, err := c.router.FindRoute(vr)
	if err != nil {
		if status == http.StatusNotFound {
			return nil // not a route of the API: the catch-all answered
		}
		return fmt.Errorf("route not in the document: %w", err)
	}
	in := &openapi3filter.RequestValidationInput{
		Request: vr, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, MultiError: true},
	}
	// Requests the server refuses may break the document on purpose
	// (a malformed body); only accepted requests must fit it.
	if status < 400 {
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			return fmt.Errorf("request: %w", err)
		}
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: status, Header: hdr,
		Body:    io.NopCloser(bytes.NewReader(body)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
		return fmt.Errorf("response: %w", err)
	}
	c.mu.Lock()
	c.seen[route.Operation.OperationID] = append(c.seen[route.Operation.OperationID], status)
	c.mu.Unlock()
	return nil
}

// TestOpenAPIContract drives every operation of the DMS API, answering and
// failing, through the real portal and validates each request and response
// against the served OpenAPI document. A field the code adds, drops or
// renames without the document fails here.
func TestOpenAPIContract(t *testing.T) {
	e := newEnv(t)
	// The served document is the embedded one, and it is a valid 3.1
	// document.
	res, err := http.Get(e.ts.URL + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	served, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != 200 || res.Header.Get("Content-Type") != "application/json" || !bytes.Equal(served, OpenAPI()) {
		t.Fatalf("GET /api/v1/openapi.json: %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
	doc, router := loadOpenAPI(t, served, e.ts.URL)
	c := &contract{t: t, router: router, next: e.srv.Handler(), seen: map[string][]int{}}
	e.handler.set(c)

	key := e.apiKey(customerA)
	keyB := e.apiKey(customerB)
	// Connections with every optional field the API can show.
	active := e.connection(customerA, connector.StateActive)
	app := e.connection(customerA, connector.StateFailing)
	if _, err := e.store.Update(t.Context(), app.ID, func(c *connector.Connection) error {
		c.Mode, c.ClientID, c.SecretExpiresAt = connector.AppOnly, "11111111-2222-3333-4444-555555555555", time.Now().Add(20*24*time.Hour)
		c.LastError, c.UpdatedBy = "ErrorAccessDenied", "test"
		c.Backfill = connector.Backfill{Mode: connector.BackfillSince, Since: time.Now().AddDate(0, -1, 0)}
		c.PostProcess = connector.PostProcess{Action: connector.PostCategory, Category: "mailgate"}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pending, code := e.issue(customerA)

	call := func(method, path, key string, body any, want int) map[string]any {
		t.Helper()
		status, out, _ := e.api(method, path, key, body)
		if status != want {
			t.Errorf("%s %s: %d %v, want %d", method, path, status, out, want)
		}
		return out
	}
	call("GET", "/api/v1/connections", key, nil, 200)
	call("GET", "/api/v1/connections/"+active.ID, key, nil, 200)
	call("GET", "/api/v1/connections/"+app.ID, key, nil, 200)
	call("GET", "/api/v1/connections/"+active.ID, keyB, nil, 404)
	call("POST", "/api/v1/connections/redeem", key, map[string]string{"code": code}, 200)
	call("POST", "/api/v1/connections/redeem", key, map[string]string{"code": code}, 400)
	call("POST", "/api/v1/connections/redeem", key, map[string]string{"nocode": "x"}, 400)
	call("POST", "/api/v1/connections/"+pending.ID+"/test", key, nil, 200)
	e.tester.set(func(connector.Connection) (TestResult, error) {
		return TestResult{}, &connector.Error{Op: "graph: test", Kind: connector.AccessDenied}
	})
	call("POST", "/api/v1/connections/"+app.ID+"/test", key, nil, 200)
	call("POST", "/api/v1/connections/nope/test", key, nil, 404)
	call("DELETE", "/api/v1/connections/"+active.ID, key, nil, 200)
	call("DELETE", "/api/v1/connections/"+active.ID, key, nil, 404)
	call("GET", "/api/v1/connections", "", nil, 401)
	call("GET", "/api/v1/connections", "mgk_0123456789abcdef_"+strings.Repeat("a", 48), nil, 401)
	for range 6 {
		status, _, _ := e.api("POST", "/api/v1/connections/redeem", key, map[string]string{"code": "WRONG-CODE"})
		if status == http.StatusTooManyRequests {
			break
		}
	}
	call("POST", "/api/v1/connections/redeem", key, map[string]string{"code": "WRONG-CODE"}, 429)

	// Webhooks, with the real service delivering to a receiver.
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) }))
	defer recv.Close()
	svc := e.webhookService()
	out := call("POST", "/api/v1/webhooks", key, map[string]any{"url": recv.URL + "/hook", "types": []string{archive.TypeImported}}, 201)
	wh, _ := out["webhook"].(map[string]any)
	id, _ := wh["id"].(string)
	call("POST", "/api/v1/webhooks", key, map[string]any{"url": "ftp://dms.example"}, 400)
	call("POST", "/api/v1/webhooks", key, map[string]any{"url": recv.URL, "types": []string{"mailgate.everything"}}, 400)
	call("GET", "/api/v1/webhooks", key, nil, 200)
	call("GET", "/api/v1/webhooks/"+id, key, nil, 200)
	call("GET", "/api/v1/webhooks/"+id, keyB, nil, 404)
	call("DELETE", "/api/v1/webhooks/"+id, keyB, nil, 404)
	if err := archive.NewPublisher(e.js, "mailgate").Imported(t.Context(), "doc-1", archive.Imported{
		Customer: customerA, Connection: active.ID, Mailbox: active.Mailbox,
		Document: archive.DocumentInfo{Name: "RE-1.pdf", Kind: archive.KindPDF},
	}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if ds, _ := svc.Deliveries(t.Context(), customerA, id); len(ds) == 1 && ds[0].Status == "delivered" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the event was not delivered to the webhook")
		}
	}
	call("POST", "/api/v1/webhooks/"+id+"/enable", key, nil, 200)
	call("POST", "/api/v1/webhooks/"+id+"/enable", keyB, nil, 404)
	call("GET", "/api/v1/webhooks/"+id+"/deliveries", key, nil, 200)
	call("POST", "/api/v1/webhooks/"+id+"/deliveries/doc-1/redeliver", key, nil, 200)
	call("POST", "/api/v1/webhooks/"+id+"/deliveries/nope/redeliver", key, nil, 404)
	call("DELETE", "/api/v1/webhooks/"+id, key, nil, 200)
	call("GET", "/api/v1/webhooks/"+id, key, nil, 404)

	// The pull feed, with the event published above.
	e.srv.deps.Events = archive.NewFeed(e.js)
	feed := call("GET", "/api/v1/events?limit=10", key, nil, 200)
	if evs, _ := feed["events"].([]any); len(evs) != 1 {
		t.Errorf("feed: %v, want the one event", feed)
	}
	call("GET", "/api/v1/events?after="+fmt.Sprint(feed["cursor"])+"&wait=10ms", key, nil, 200)
	call("GET", "/api/v1/events?after=x", key, nil, 400)
	call("GET", "/api/v1/events?limit=5000", key, nil, 400)
	call("GET", "/api/v1/events?wait=2h", key, nil, 400)
	call("GET", "/api/v1/events", "", nil, 401)

	// Every documented operation answered successfully at least once.
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			if op.OperationID == "getOpenAPI" {
				continue // fetched above, before the validator was in place
			}
			if !slices.ContainsFunc(c.seen[op.OperationID], func(s int) bool { return s < 300 }) {
				t.Errorf("%s %s (%s) never answered successfully: %v", method, path, op.OperationID, c.seen[op.OperationID])
			}
		}
	}
	t.Logf("validated: %v", c.seen)
}

// TestOpenAPIDocumentsEveryRoute reads the API routes the portal registers
// and requires each in the document, so a new endpoint cannot be left out.
func TestOpenAPIDocumentsEveryRoute(t *testing.T) {
	src, err := os.ReadFile("server.go")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := openapi3.NewLoader().LoadFromData(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	routes := regexp.MustCompile(`mux\.Handle(?:Func)?\("([A-Z]+) (/api/v1/[^"]*)"`).FindAllStringSubmatch(string(src), -1)
	if len(routes) < 6 {
		t.Fatalf("found only %d API routes in server.go: %v", len(routes), routes)
	}
	for _, r := range routes {
		item := doc.Paths.Value(r[2])
		if item == nil || item.GetOperation(r[1]) == nil {
			t.Errorf("route %s %s is not in openapi.json", r[1], r[2])
		}
	}
}

// TestOpenAPIContractCatchesDrift shows that the validation fails when a
// real response gains, loses or retypes a field, so the contract test can
// fail.
func TestOpenAPIContractCatchesDrift(t *testing.T) {
	e := newEnv(t)
	_, router := loadOpenAPI(t, openAPI, e.ts.URL)
	key := e.apiKey(customerA)
	c := e.connection(customerA, connector.StateActive)
	_, real, _ := e.api("GET", "/api/v1/connections/"+c.ID, key, nil)

	check := func(mutate func(conn map[string]any)) error {
		var body map[string]any
		raw, _ := json.Marshal(real)
		_ = json.Unmarshal(raw, &body)
		mutate(body["connection"].(map[string]any))
		raw, _ = json.Marshal(body)
		req := httptest.NewRequest("GET", e.ts.URL+"/api/v1/connections/"+c.ID, nil)
		req.Header.Set("Authorization", "Bearer "+key)
		ct := &contract{t: t, router: router, seen: map[string][]int{}}
		return ct.validate(req, nil, 200, http.Header{"Content-Type": {"application/json"}}, raw)
	}
	if err := check(func(map[string]any) {}); err != nil {
		t.Fatalf("the real response does not validate: %v", err)
	}
	for name, mutate := range map[string]func(map[string]any){
		"added field":     func(m map[string]any) { m["refreshToken"] = "secret" },
		"dropped field":   func(m map[string]any) { delete(m, "mailbox") },
		"unknown state":   func(m map[string]any) { m["state"] = "sleeping" },
		"retyped field":   func(m map[string]any) { m["createdAt"] = 12 },
		"nested addition": func(m map[string]any) { m["postProcess"].(map[string]any)["x"] = 1 },
	} {
		if err := check(mutate); err == nil {
			t.Errorf("%s: the response still validates", name)
		}
	}
}
