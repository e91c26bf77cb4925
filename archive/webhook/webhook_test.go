package webhook

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

// plainSealer stands in for connector.Sealer, which archive must not import.
type plainSealer struct{}

func (plainSealer) Seal(b []byte) ([]byte, error) { return append([]byte("sealed:"), b...), nil }
func (plainSealer) Open(b []byte) ([]byte, error) {
	rest, ok := strings.CutPrefix(string(b), "sealed:")
	if !ok {
		return nil, errors.New("not sealed")
	}
	return []byte(rest), nil
}

// The Standard Webhooks specification's example: secret, id, timestamp and
// body give this signature, so receivers using its libraries verify ours.
func TestSignStandardWebhooksVector(t *testing.T) {
	got, err := Sign("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, []byte(`{"test": 2432232314}`))
	if err != nil || got != "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=" {
		t.Fatalf("Sign = %q, %v", got, err)
	}
	h := http.Header{"Webhook-Id": {"msg_p5jXN8AQM9LWM0D4loKWxJek"}, "Webhook-Timestamp": {"1614265330"}, "Webhook-Signature": {"v1,bogus " + got}}
	now := time.Unix(1614265330, 0).Add(time.Minute)
	if err := Verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, []byte(`{"test": 2432232314}`), now, 5*time.Minute); err != nil {
		t.Errorf("Verify: %v", err)
	}
	for name, check := range map[string]func() error{
		"tampered body": func() error {
			return Verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, []byte(`{"test": 2432232315}`), now, 5*time.Minute)
		},
		"other secret": func() error {
			return Verify("whsec_"+strings.Repeat("A", 32), h, []byte(`{"test": 2432232314}`), now, 5*time.Minute)
		},
		"replayed later": func() error {
			return Verify("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", h, []byte(`{"test": 2432232314}`), now.Add(time.Hour), 5*time.Minute)
		},
	} {
		if err := check(); !errors.Is(err, ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
}

func newService(t *testing.T, cfg Config) (*Service, *archive.Publisher) {
	t.Helper()
	js, _ := archivetest.RunJetStream(t)
	if _, err := archive.EnsureStream(t.Context(), js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	svc, err := New(t.Context(), js, plainSealer{}, pub, cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return svc, pub
}

// receiver records verified deliveries; fail makes it answer 503.
type receiver struct {
	t      *testing.T
	secret string
	mu     sync.Mutex
	fail   bool
	got    map[string][]byte // webhook-id → body
	calls  int
	notify chan struct{}
}

func newReceiver(t *testing.T) (*receiver, *httptest.Server) {
	r := &receiver{t: t, got: map[string][]byte{}, notify: make(chan struct{}, 1000)}
	srv := httptest.NewServer(r)
	t.Cleanup(srv.Close)
	return r, srv
}

func (r *receiver) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls++
	defer func() { r.notify <- struct{}{} }()
	if r.fail {
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if err := Verify(r.secret, req.Header, body, time.Now(), 5*time.Minute); err != nil {
		r.t.Errorf("delivery does not verify: %v", err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if ct := req.Header.Get("Content-Type"); ct != "application/cloudevents+json" {
		r.t.Errorf("content type %q", ct)
	}
	r.got[req.Header.Get("webhook-id")] = body
	w.WriteHeader(http.StatusNoContent)
}

func (r *receiver) wait(t *testing.T, n int, timeout time.Duration) map[string][]byte {
	t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		if len(r.got) >= n {
			out := map[string][]byte{}
			for k, v := range r.got {
				out[k] = v
			}
			r.mu.Unlock()
			return out
		}
		r.mu.Unlock()
		select {
		case <-r.notify:
		case <-deadline:
			t.Fatalf("%d of %d events arrived within %s", len(r.got), n, timeout)
		}
	}
}

func imported(customer, name string) archive.Imported {
	return archive.Imported{Customer: customer, Connection: "c1", Mailbox: "rechnungen@" + customer + ".example",
		Message:  archive.MessageInfo{InternetMessageID: "<" + name + "@x>", From: "a@b", Subject: name, ReceivedAt: time.Now().UTC()},
		Document: archive.DocumentInfo{Name: name + ".pdf", Size: 1, SHA256: strings.Repeat("a", 64), ContentType: "application/pdf", Kind: "pdf"},
		Object:   archive.ObjectRef{Bucket: "b", Key: customer + "/2026/11/" + strings.Repeat("a", 64) + ".pdf"}}
}

// TestDeliverOnlyToTheCustomer: each endpoint gets exactly its customer's
// events of its types, signed, with the body as stored in the stream;
// events before its registration are not sent.
func TestDeliverOnlyToTheCustomer(t *testing.T) {
	svc, pub := newService(t, Config{AllowPrivate: true})
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(pub.Imported(ctx, "before", imported("acme", "before")))
	ra, srvA := newReceiver(t)
	rb, srvB := newReceiver(t)
	epA, secretA, err := svc.Create(ctx, "acme", Registration{URL: srvA.URL + "/hook", Types: []string{archive.TypeImported}}, "test")
	must(err)
	_, secretB, err := svc.Create(ctx, "globex", Registration{URL: srvB.URL}, "test")
	must(err)
	ra.secret, rb.secret = secretA, secretB
	if !strings.HasPrefix(secretA, "whsec_") || secretA == secretB {
		t.Fatalf("secrets %q %q", secretA, secretB)
	}
	for _, n := range []string{"a1", "a2", "a3"} {
		must(pub.Imported(ctx, n, imported("acme", n)))
	}
	must(pub.Skipped(ctx, "a-skip", archive.Skipped{Customer: "acme", Connection: "c1", Mailbox: "m", Name: "x", Reason: archive.ReasonEmpty}))
	must(pub.Imported(ctx, "g1", imported("globex", "g1")))

	gotA := ra.wait(t, 3, 20*time.Second)
	gotB := rb.wait(t, 1, 20*time.Second)
	stored, err := archivetest.ReadStream(ctx, svc.streamJS(), archive.StreamName, "mailgate.>")
	must(err)
	byID := map[string][]byte{}
	for _, ev := range stored {
		byID[ev.Header["Nats-Msg-Id"][0]] = ev.Data
	}
	for _, id := range []string{"a1", "a2", "a3"} {
		if string(gotA[id]) != string(byID[id]) {
			t.Errorf("event %s arrived as %s, stored as %s", id, gotA[id], byID[id])
		}
	}
	if len(gotA) != 3 || gotA["before"] != nil || gotA["a-skip"] != nil || gotA["g1"] != nil {
		t.Errorf("acme's endpoint got %d events: %v", len(gotA), keys(gotA))
	}
	if len(gotB) != 1 || gotB["g1"] == nil {
		t.Errorf("globex's endpoint got %v", keys(gotB))
	}
	log, err := svc.Deliveries(ctx, "acme", epA.ID)
	if err != nil || len(log) != 3 || log[0].Status != Delivered {
		t.Errorf("delivery log %+v, %v", log, err)
	}
	// Another customer sees neither the endpoint nor its log.
	if _, err := svc.Deliveries(ctx, "globex", epA.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex reads acme's log: %v", err)
	}
	if _, err := svc.Delete(ctx, "globex", epA.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex deletes acme's endpoint: %v", err)
	}
}

func (s *Service) streamJS() jetstream.JetStream { return s.js }

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRetryThenDisable: a receiver that is down gets every event once it
// is back; one that stays down past GiveUpAfter is disabled and announced,
// and a logged event can be delivered again by hand.
func TestRetryThenDisable(t *testing.T) {
	svc, pub := newService(t, Config{AllowPrivate: true, RetryMin: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond, GiveUpAfter: 2 * time.Second})
	ctx := t.Context()
	r, srv := newReceiver(t)
	r.fail = true
	ep, secret, err := svc.Create(ctx, "acme", Registration{URL: srv.URL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	r.secret = secret
	for _, n := range []string{"d1", "d2"} {
		if err := pub.Imported(ctx, n, imported("acme", n)); err != nil {
			t.Fatal(err)
		}
	}
	// Down for a while: several failed attempts, then back.
	for i := 0; i < 6; i++ {
		<-r.notify
	}
	r.mu.Lock()
	r.fail = false
	r.mu.Unlock()
	got := r.wait(t, 2, 10*time.Second)
	if len(got) != 2 {
		t.Fatalf("after the outage: %v", keys(got))
	}
	// The log entry is written after the receiver answered.
	logged := func() bool {
		log, _ := svc.Deliveries(ctx, "acme", ep.ID)
		for _, d := range log {
			if d.Status != Delivered || d.Attempts < 2 {
				return false
			}
		}
		return len(log) == 2
	}
	for deadline := time.Now().Add(5 * time.Second); !logged(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			log, _ := svc.Deliveries(ctx, "acme", ep.ID)
			t.Fatalf("delivery log %+v, want both delivered after retries", log)
		}
	}

	// Down for good: disabled after GiveUpAfter, announced.
	r.mu.Lock()
	r.fail = true
	r.mu.Unlock()
	if err := pub.Imported(ctx, "d3", imported("acme", "d3")); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		e, err := svc.Get(ctx, "acme", ep.ID)
		if err != nil {
			t.Fatal(err)
		}
		if e.State == StateDisabled {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("endpoint still %s", e.State)
		}
		time.Sleep(50 * time.Millisecond) // the state lives in KV; nothing to await
	}
	events, err := archivetest.ReadStream(ctx, svc.streamJS(), archive.StreamName, "mailgate.acme.webhook.disabled")
	if err != nil || len(events) != 1 {
		t.Fatalf("webhook.disabled events: %d, %v", len(events), err)
	}
	ev, err := archive.Decode(events[0].Data)
	if err != nil || ev.Data.(*archive.WebhookDisabled).Endpoint != ep.ID {
		t.Errorf("announcement %+v, %v", ev, err)
	}
	contract, err := archivetest.NewContract(archive.AsyncAPI())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := contract.Validate(events[0].Subject, events[0].Header, events[0].Data); err != nil {
		t.Errorf("webhook.disabled leaves asyncapi.yaml: %v", err)
	}
	// By hand, once the receiver is back.
	r.mu.Lock()
	r.fail = false
	r.mu.Unlock()
	d, err := svc.Redeliver(ctx, "acme", ep.ID, "d3")
	if err != nil || d.Status != Delivered {
		t.Fatalf("redeliver: %+v, %v", d, err)
	}
	if got := r.wait(t, 3, time.Second); got["d3"] == nil {
		t.Errorf("d3 not received after redelivery")
	}
	// An event published while it was disabled arrives once it is enabled.
	if err := pub.Imported(ctx, "d4", imported("acme", "d4")); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Enable(ctx, "globex", ep.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("globex enables acme's endpoint: %v", err)
	}
	if e, err := svc.Enable(ctx, "acme", ep.ID); err != nil || e.State != StateActive || !e.FailingSince.IsZero() {
		t.Fatalf("enable: %+v, %v", e, err)
	}
	// d4, and the endpoint's own webhook.disabled announcement.
	if got := r.wait(t, 5, 10*time.Second); got["d4"] == nil || got[events[0].Header["Nats-Msg-Id"][0]] == nil {
		t.Errorf("after enabling got %v, want d4 and the announcement too", keys(got))
	}
}

// TestNoPrivateAddresses: without AllowPrivate, registration refuses
// private and loopback URLs and plain http, and the dialer refuses an
// address that only turns out private after name resolution. Redirects are
// never followed.
func TestNoPrivateAddresses(t *testing.T) {
	svc, _ := newService(t, Config{})
	for _, u := range []string{
		"http://example.com/hook", "https://127.0.0.1/hook", "https://[::1]/hook", "https://10.1.2.3/", "https://192.168.0.10/",
		"https://169.254.169.254/latest/meta-data", "https://100.64.0.1/", "https://localhost/", "https://user:pw@example.com/", "ftp://example.com/",
	} {
		if _, _, err := svc.Create(t.Context(), "acme", Registration{URL: u}, "test"); err == nil {
			t.Errorf("%s accepted", u)
		}
	}
	if _, _, err := svc.Create(t.Context(), "acme", Registration{URL: "https://dms.example.com/hook", SubjectFilter: "mailgate.globex.>"}, "test"); err == nil {
		t.Error("a subject filter on another customer's events accepted")
	}
	for i := range MaxEndpoints {
		if _, _, err := svc.Create(t.Context(), "many", Registration{URL: fmt.Sprintf("https://dms%d.example.com/hook", i)}, "test"); err != nil {
			t.Fatal(err)
		}
	}
	var inv *InvalidError
	if _, _, err := svc.Create(t.Context(), "many", Registration{URL: "https://dms.example.com/one-more"}, "test"); !errors.As(err, &inv) {
		t.Errorf("endpoint %d of a customer: %v, want refused", MaxEndpoints+1, err)
	}
	hit := false
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer srv.Close()
	// "localhost" resolves to loopback only when dialled.
	_, err := newClient(time.Second, false, nil).Get(strings.Replace(srv.URL, "127.0.0.1", "localhost", 1))
	if !errors.Is(err, ErrForbiddenAddress) || hit {
		t.Errorf("dial to localhost: %v (hit %v), want ErrForbiddenAddress", err, hit)
	}
	// A redirect is an answer, not an instruction.
	target := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { hit = true }))
	defer target.Close()
	redirect := httptest.NewServer(http.RedirectHandler(target.URL, http.StatusFound))
	defer redirect.Close()
	resp, err := newClient(time.Second, true, nil).Get(redirect.URL)
	if err != nil || resp.StatusCode != http.StatusFound || hit {
		t.Errorf("redirect: %v %v, followed %v", resp, err, hit)
	}
}
