package main

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

// dmsReceiver is a DMS's webhook endpoint. It verifies each request the
// way the README tells a DMS to, independently of mailgate's code, and
// answers 503 while down.
type dmsReceiver struct {
	t *testing.T

	mu       sync.Mutex
	secret   string
	down     bool
	failed   int               // requests answered 503
	got      map[string][]byte // webhook-id → body
	received chan struct{}
}

func newDMSReceiver(t *testing.T) (*dmsReceiver, *httptest.Server) {
	r := &dmsReceiver{t: t, got: map[string][]byte{}, received: make(chan struct{}, 10000)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *dmsReceiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	defer func() { r.received <- struct{}{} }()
	if r.down {
		r.failed++
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	id, ts := req.Header.Get("webhook-id"), req.Header.Get("webhook-timestamp")
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.secret, "whsec_"))
	if err != nil {
		r.t.Errorf("secret %q: %v", r.secret, err)
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if !hmac.Equal([]byte(req.Header.Get("webhook-signature")), []byte(want)) {
		r.t.Errorf("event %s: signature %q does not verify", id, req.Header.Get("webhook-signature"))
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var sec int64
	if _, err := fmt.Sscan(ts, &sec); err != nil || time.Since(time.Unix(sec, 0)).Abs() > 5*time.Minute {
		r.t.Errorf("event %s: timestamp %q", id, ts)
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/cloudevents+json" {
		r.t.Errorf("event %s: Content-Type %q", id, ct)
	}
	r.got[id] = body
	w.WriteHeader(http.StatusOK)
}

func (r *dmsReceiver) set(f func(r *dmsReceiver)) {
	r.mu.Lock()
	defer r.mu.Unlock()
	f(r)
}

func (r *dmsReceiver) snapshot() (map[string][]byte, int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string][]byte{}
	for k, v := range r.got {
		out[k] = v
	}
	return out, r.failed
}

// TestWebhooksThroughBinary registers a DMS's webhook through the demo
// binary's API, lets it be down while the sample mailbox is imported, and
// then requires every event of the customer to arrive, signed, verified and
// byte for byte as stored in the stream, while another customer's endpoint
// gets nothing.
func TestWebhooksThroughBinary(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	p, base, password, apiKey, natsURL := startDemo(t, bin, dataDir, "MAILGATE_WEBHOOK_ALLOW_PRIVATE=true")
	metricsBase := "http://" + p.waitFor(t, metricsRE, time.Second)
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}
	otherKey := strings.TrimSpace(runCLI(t, bin, env, "apikeys", "create", "--customer", "other", "--name", "other dms"))

	api := newOpenAPIClient(t, base)
	dms, dmsSrv := newDMSReceiver(t)
	other, otherSrv := newDMSReceiver(t)
	register := func(key, url string) (string, string) {
		t.Helper()
		status, body := api.call("POST", base+"/api/v1/webhooks", key, `{"url":"`+url+`"}`)
		var out struct {
			Webhook struct{ ID string } `json:"webhook"`
			Secret  string              `json:"secret"`
		}
		if err := json.Unmarshal(body, &out); err != nil || status != http.StatusCreated {
			t.Fatalf("register webhook: %d %s", status, body)
		}
		return out.Webhook.ID, out.Secret
	}
	dms.set(func(r *dmsReceiver) { r.down = true })
	id, secret := register(apiKey, dmsSrv.URL+"/mailgate")
	dms.set(func(r *dmsReceiver) { r.secret = secret })
	_, otherSecret := register(otherKey, otherSrv.URL)
	other.set(func(r *dmsReceiver) { r.secret = otherSecret })
	// The other customer cannot see or delete the DMS's endpoint.
	if status, _ := api.call("DELETE", base+"/api/v1/webhooks/"+id, otherKey, ""); status != http.StatusNotFound {
		t.Errorf("other customer's delete: %d, want 404", status)
	}

	code := connectMailbox(t, base, password)
	if status, body := api.call("POST", base+"/api/v1/connections/redeem", apiKey, `{"code":"`+code+`"}`); status != 200 {
		t.Fatalf("redeem: %d %s", status, body)
	}
	_, docs, skips := demoSamples()
	wantDocs := docs + skips // the samples' document events
	waitForSamples(t, natsURL, dataDir, 90*time.Second)
	// Down for a while: at least two rounds of failed attempts.
	deadline := time.After(60 * time.Second)
	for {
		if _, failed := dms.snapshot(); failed >= 2*wantDocs {
			break
		}
		select {
		case <-dms.received:
		case <-deadline:
			_, failed := dms.snapshot()
			t.Fatalf("only %d failed attempts while the receiver was down", failed)
		}
	}
	dms.set(func(r *dmsReceiver) { r.down = false })
	back := time.Now()

	nc := cliConnect(t, natsURL, dataDir) // the embedded server admits its own identities only
	js, _ := jetstream.New(nc)
	stored, err := archivetest.ReadStream(t.Context(), js, archive.StreamName, "mailgate.firma.>")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]byte{}
	for _, ev := range stored {
		want[ev.Header["Nats-Msg-Id"][0]] = ev.Data
	}
	deadline = time.After(90 * time.Second)
	for {
		got, _ := dms.snapshot()
		missing := 0
		for id := range want {
			if got[id] == nil {
				missing++
			}
		}
		if missing == 0 {
			break
		}
		select {
		case <-dms.received:
		case <-deadline:
			t.Fatalf("%d of %d events did not arrive after the receiver came back", missing, len(want))
		}
	}
	got, failed := dms.snapshot()
	for id, body := range want {
		if string(got[id]) != string(body) {
			t.Errorf("event %s arrived as\n%s\nstored as\n%s", id, got[id], body)
		}
	}
	if len(got) != len(want) {
		t.Errorf("the receiver got %d distinct events, the stream holds %d of the customer", len(got), len(want))
	}
	if g, _ := other.snapshot(); len(g) != 0 {
		t.Errorf("another customer's endpoint got %d events", len(g))
	}
	t.Logf("%d events (%d documents) delivered %s after the receiver came back; %d attempts failed while it was down",
		len(want), wantDocs, time.Since(back).Round(100*time.Millisecond), failed)

	// The delivery log shows the retries; a logged event can be sent again.
	status, body := api.call("GET", base+"/api/v1/webhooks/"+id+"/deliveries", apiKey, "")
	var log struct {
		Deliveries []struct {
			EventID  string
			Status   string
			Attempts int
		}
	}
	if err := json.Unmarshal(body, &log); err != nil || status != 200 || len(log.Deliveries) != len(want) {
		t.Fatalf("delivery log: %d %s", status, body)
	}
	for _, d := range log.Deliveries {
		if d.Status != "delivered" || d.Attempts < 2 {
			t.Errorf("log entry %+v, want delivered after retries", d)
		}
	}
	if status, body := api.call("POST", base+"/api/v1/webhooks/"+id+"/deliveries/"+log.Deliveries[0].EventID+"/redeliver", apiKey, ""); status != 200 {
		t.Errorf("redeliver: %d %s", status, body)
	}
	resp, err := http.Get(metricsBase + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`mailgate_webhook_deliveries_total{customer="firma",endpoint="` + id + `",result="failed"}`,
		`mailgate_webhook_deliveries_total{customer="firma",endpoint="` + id + `",result="delivered"}`,
		`mailgate_webhook_endpoint_disabled{customer="firma",endpoint="` + id + `"} 0`} {
		if !strings.Contains(string(metrics), m) {
			t.Errorf("/metrics lacks %s", m)
		}
	}

	// The operator's CLI sees both customers' endpoints and the log, and
	// adds and removes endpoints with the same rules.
	if out := runCLI(t, bin, env, "webhooks", "list"); !strings.Contains(out, id) || !strings.Contains(out, "other") {
		t.Errorf("webhooks list:\n%s", out)
	}
	if out := runCLI(t, bin, env, "webhooks", "deliveries", id); strings.Count(out, `"status": "delivered"`) != len(want) {
		t.Errorf("webhooks deliveries:\n%s", out)
	}
	refused := exec.Command(bin, "webhooks", "add", "--customer", "firma", "--url", "https://127.0.0.1/hook")
	refused.Env = append(os.Environ(), env...)
	if out, err := refused.CombinedOutput(); err == nil || !strings.Contains(string(out), "private") {
		t.Errorf("webhooks add to loopback without MAILGATE_WEBHOOK_ALLOW_PRIVATE: %v\n%s", err, out)
	}
	added := runCLI(t, bin, append(env, "MAILGATE_WEBHOOK_ALLOW_PRIVATE=true"), "webhooks", "add", "--customer", "firma", "--url", otherSrv.URL+"/cli", "--type", "mailgate.connection.changed")
	if !strings.HasPrefix(strings.TrimSpace(added), "whsec_") {
		t.Errorf("webhooks add printed %q, want the secret", added)
	}
	runCLI(t, bin, env, "webhooks", "remove", id)
	if status, _ := api.call("GET", base+"/api/v1/webhooks/"+id, apiKey, ""); status != http.StatusNotFound {
		t.Errorf("after webhooks remove the API still has it: %d", status)
	}
	// The serving process follows the removal: no consumer, no series.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) { // another process' watch; nothing to await here
		resp, err := http.Get(metricsBase + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		metrics, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(metrics), `mailgate_webhook_endpoint_disabled{customer="firma",endpoint="`+id+`"}`) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the removed endpoint's series is still served")
		}
	}
	if _, err := js.Consumer(t.Context(), archive.StreamName, "webhook_"+strings.TrimPrefix(id, "wh_")); err == nil {
		t.Error("the removed endpoint's consumer still exists")
	}
}
