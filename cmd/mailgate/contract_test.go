package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/legacy"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/importer/policy"
)

// openAPIClient is a DMS's HTTP client that validates every response of
// the binary against the OpenAPI document the binary serves.
type openAPIClient struct {
	t      *testing.T
	router routers.Router
	mu     sync.Mutex
	ops    map[string]int
}

func newOpenAPIClient(t *testing.T, base string) *openAPIClient {
	t.Helper()
	resp, err := http.Get(base + "/api/v1/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	doc, err := openapi3.NewLoader().LoadFromData(raw)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /api/v1/openapi.json: %s %v", resp.Status, err)
	}
	if err := doc.Validate(t.Context()); err != nil {
		t.Fatalf("served OpenAPI document: %v", err)
	}
	doc.Servers = openapi3.Servers{{URL: base}}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	return &openAPIClient{t: t, router: router, ops: map[string]int{}}
}

func (c *openAPIClient) call(method, url, key, body string) (int, []byte) {
	c.t.Helper()
	req, _ := http.NewRequest(method, url, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)

	vreq, _ := http.NewRequest(method, url, strings.NewReader(body))
	vreq.Header = req.Header.Clone()
	route, params, err := c.router.FindRoute(vreq)
	if err != nil {
		c.t.Errorf("%s %s is not in the served OpenAPI document: %v", method, url, err)
		return resp.StatusCode, raw
	}
	in := &openapi3filter.RequestValidationInput{Request: vreq, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
	if err := openapi3filter.ValidateRequest(context.Background(), in); err != nil {
		c.t.Errorf("%s %s: request leaves the document: %v", method, url, err)
	}
	if err := openapi3filter.ValidateResponse(context.Background(), &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header, Body: io.NopCloser(bytes.NewReader(raw)),
		Options: &openapi3filter.Options{IncludeResponseStatus: true},
	}); err != nil {
		c.t.Errorf("%s %s → %d: response leaves the document: %v\n%s", method, url, resp.StatusCode, err, raw)
	}
	c.mu.Lock()
	c.ops[route.Operation.OperationID]++
	c.mu.Unlock()
	return resp.StatusCode, raw
}

// TestContractsThroughBinary runs the demo binary as a DMS meets it: the
// connection is made in the portal and redeemed over the API, the sample
// mailbox is imported, the connection is tested and deleted. Every API
// response must fit the OpenAPI document the binary serves, and every
// event the binary stored in the stream (document.imported, .skipped and
// connection.changed) must fit archive/asyncapi.yaml.
func TestContractsThroughBinary(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	_, base, password, apiKey, natsURL := startDemo(t, bin, dataDir)

	api := newOpenAPIClient(t, base)
	code := connectMailbox(t, base, password)
	if status, body := api.call("POST", base+"/api/v1/connections/redeem", apiKey, `{"code":"`+code+`"}`); status != 200 {
		t.Fatalf("redeem: %d %s", status, body)
	}
	api.call("POST", base+"/api/v1/connections/redeem", apiKey, `{"code":"`+code+`"}`) // used: 400
	// The demo delivered samples 0..5 before the connection.
	events := waitForSamples(t, natsURL, dataDir, 90*time.Second)
	var id string
	for _, e := range events {
		if d, ok := e.Data.(*archive.ConnectionChanged); ok {
			id = d.Connection
		}
	}
	if id == "" {
		t.Fatal("no connection.changed event")
	}
	api.call("GET", base+"/api/v1/connections", apiKey, "")
	api.call("GET", base+"/api/v1/connections/"+id, apiKey, "")
	api.call("POST", base+"/api/v1/connections/"+id+"/test", apiKey, "")
	api.call("GET", base+"/api/v1/connections/nope", apiKey, "")
	api.call("GET", base+"/api/v1/connections", "mgk_wrong", "")
	if status, body := api.call("DELETE", base+"/api/v1/connections/"+id, apiKey, ""); status != 200 {
		t.Fatalf("delete: %d %s", status, body)
	}
	if len(api.ops) != 5 {
		t.Errorf("operations called: %v, want all 5", api.ops)
	}

	contract, err := archivetest.NewContract(archive.AsyncAPI())
	if err != nil {
		t.Fatal(err)
	}
	nc := cliConnect(t, natsURL, dataDir) // the embedded server admits its own identities only
	js, _ := jetstream.New(nc)
	// The delete's connection.changed is published after the answer.
	var raw []archivetest.RawEvent
	deadline := time.Now().Add(10 * time.Second)
	for {
		if raw, err = archivetest.ReadStream(t.Context(), js, archive.StreamName, "mailgate.>"); err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw[len(raw)-1].Data, []byte(`"to":"deleted"`)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond) // polling another process' publish
	}
	seen := map[string]int{}
	invoices := 0
	for _, ev := range raw {
		if bytes.Contains(ev.Data, []byte(`"invoice":{`)) {
			invoices++
		}
		name, err := contract.Validate(ev.Subject, ev.Header, ev.Data)
		if err != nil {
			t.Errorf("%v\n%s", err, ev.Data)
		}
		seen[name]++
	}
	for _, want := range []string{"documentImported", "documentSkipped", "connectionChanged"} {
		if seen[want] == 0 {
			t.Errorf("no %s event in the stream: %v", want, seen)
		}
	}
	// The samples' XRechnung and ZUGFeRD carry data.invoice, so its schema
	// is held to real events too.
	if invoices == 0 {
		t.Error("no event with data.invoice")
	}
	if !strings.Contains(fmt.Sprint(string(raw[len(raw)-1].Data)), `"to":"deleted"`) {
		t.Errorf("the last event is not the deletion: %s", raw[len(raw)-1].Data)
	}
	t.Logf("validated %d events %v (%d with data.invoice) and API operations %v", len(raw), seen, invoices, api.ops)
}

// TestRealEInvoicesFitAsyncAPI classifies every file of the shared
// e-invoice corpus (../shared/einvoices from the repository's root) with
// the importer's policy, publishes what an import would announce, invoice
// data included, and validates each stored event against
// archive/asyncapi.yaml.
func TestRealEInvoicesFitAsyncAPI(t *testing.T) {
	const corpus = "../../../shared/einvoices/files"
	files, err := os.ReadDir(corpus)
	if os.IsNotExist(err) {
		t.Skipf("the shared e-invoice corpus is missing at %s", corpus)
	}
	if err != nil {
		t.Fatal(err)
	}
	contract, err := archivetest.NewContract(archive.AsyncAPI())
	if err != nil {
		t.Fatal(err)
	}
	js, _ := archivetest.RunJetStream(t)
	ctx := t.Context()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	pol := policy.New(policy.Config{})
	received := time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC)
	invoices := 0
	for i, f := range files {
		b, err := os.ReadFile(filepath.Join(corpus, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		a := connector.Attachment{Type: connector.FileAttachment, Name: f.Name(), ContentType: "application/octet-stream"}
		d, err := pol.Classify(context.Background(), a, "", int64(len(b)), bytes.NewReader(b))
		if err != nil || !d.Import {
			continue
		}
		if d.Invoice != nil {
			invoices++
		}
		sum := sha256hex(b)
		imp := archive.Imported{Customer: "firma", Connection: "con-1", Mailbox: "rechnungen@firma.example",
			Message:  archive.MessageInfo{InternetMessageID: fmt.Sprintf("<%d@lieferant.example>", i), From: "rechnung@lieferant.example", Subject: f.Name(), ReceivedAt: received},
			Document: archive.DocumentInfo{Name: f.Name(), Size: int64(len(b)), SHA256: sum, ContentType: d.ContentType, DeclaredContentType: a.ContentType, Kind: d.Kind, Profile: d.Profile, Syntax: d.Syntax},
			Object:   archive.ObjectRef{Bucket: "invoices", Key: archive.Key("firma", received, sum, "xml")},
			Invoice:  d.Invoice,
		}
		if err := pub.Imported(ctx, fmt.Sprintf("doc-%d", i), imp); err != nil {
			t.Fatal(err)
		}
	}
	events, err := archivetest.ReadStream(ctx, js, archive.StreamName, "mailgate.>")
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if _, err := contract.Validate(ev.Subject, ev.Header, ev.Data); err != nil {
			t.Errorf("%v\n%s", err, ev.Data)
		}
	}
	if invoices < 50 {
		t.Errorf("only %d of %d corpus files gave invoice data", invoices, len(files))
	}
	t.Logf("%d events from %d corpus files validated, %d with data.invoice", len(events), len(files), invoices)
}
