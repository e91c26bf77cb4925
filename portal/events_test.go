package portal

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// feedNATS is a real NATS server with JetStream over a store directory
// that outlives it, so the test can restart it.
type feedNATS struct {
	t   *testing.T
	dir string
	srv *server.Server
	nc  *nats.Conn
	js  jetstream.JetStream
}

func (n *feedNATS) start() {
	n.t.Helper()
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: n.dir, NoLog: true, NoSigs: true})
	if err != nil {
		n.t.Fatal(err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		n.t.Fatal("nats not ready")
	}
	n.srv = srv
	if n.nc, err = nats.Connect(srv.ClientURL()); err != nil {
		n.t.Fatal(err)
	}
	if n.js, err = jetstream.New(n.nc); err != nil {
		n.t.Fatal(err)
	}
}

func (n *feedNATS) stop() {
	n.nc.Close()
	n.srv.Shutdown()
	n.srv.WaitForShutdown()
}

// feedPortal is a portal on js with the real feed, served on httptest.
func feedPortal(t *testing.T, js jetstream.JetStream) (*Server, *httptest.Server) {
	t.Helper()
	ctx := t.Context()
	store, err := connector.NewStore(ctx, js, connector.StoreOptions{})
	if err != nil {
		t.Fatal(err)
	}
	codes, err := connector.NewCodes(ctx, js, connector.CodesOptions{})
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := connector.NewSealer(make([]byte, connector.KeySize))
	if err != nil {
		t.Fatal(err)
	}
	id, err := connector.NewIdentity(connector.IdentityConfig{ClientID: graphtest.DefaultClientID, ClientSecret: "x", LoginURL: "http://127.0.0.1:1", GraphURL: "http://127.0.0.1:1", RedirectURL: "http://localhost/connect/callback"})
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(ctx, js, Deps{Identity: id, Connections: store, Tenants: store, Codes: codes, Sealer: sealer, Tester: &fakeTester{}, Events: archive.NewFeed(js)},
		Config{PublicURL: "http://localhost", Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(s.Handler())
	t.Cleanup(ts.Close)
	return s, ts
}

type feedAnswer struct {
	Events []struct {
		Cursor string `json:"cursor"`
		Event  struct {
			ID   string `json:"id"`
			Type string `json:"type"`
			Data struct {
				Customer string `json:"customer"`
			} `json:"data"`
		} `json:"event"`
	} `json:"events"`
	Cursor string `json:"cursor"`
}

func getFeed(t *testing.T, base, key, query string) feedAnswer {
	t.Helper()
	req, _ := http.NewRequest("GET", base+"/api/v1/events?"+query, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	raw, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 {
		t.Fatalf("GET events?%s: %d %s", query, res.StatusCode, raw)
	}
	var a feedAnswer
	if err := json.Unmarshal(raw, &a); err != nil {
		t.Fatal(err)
	}
	return a
}

// TestEventFeedAcrossRestart publishes 1,000 events of one customer among
// another's through real NATS, reads part of them, restarts NATS and the
// portal, and reads on from the cursor: every event once, in order; the
// other customer's key gets only its own; a long poll returns the event
// that arrives while it waits.
func TestEventFeedAcrossRestart(t *testing.T) {
	const total = 1000
	n := &feedNATS{t: t, dir: t.TempDir()}
	n.start()
	ctx := t.Context()
	if _, err := archive.EnsureStream(ctx, n.js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(n.js, "mailgate")
	publish := func(pub *archive.Publisher, customer string, i int) error {
		return pub.Imported(ctx, fmt.Sprintf("doc_%s_%04d", customer, i), archive.Imported{
			Customer: customer, Connection: "con_" + customer, Mailbox: "rechnungen@" + customer + ".example",
			Document: archive.DocumentInfo{Name: fmt.Sprintf("RE-%04d.pdf", i), Kind: archive.KindPDF},
		})
	}
	var g errgroup.Group
	g.SetLimit(8)
	for i := range total {
		g.Go(func() error {
			if i%3 == 0 {
				if err := publish(pub, customerB, i); err != nil {
					return err
				}
			}
			return publish(pub, customerA, i)
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	// The order of the stream is the order published; the feed must keep it.
	want, err := streamOrder(ctx, n.js, customerA)
	if err != nil || len(want) != total {
		t.Fatalf("stream holds %d events of %s: %v", len(want), customerA, err)
	}

	s1, ts1 := feedPortal(t, n.js)
	keyA, _, err := s1.keys.Create(ctx, customerA, "dms")
	if err != nil {
		t.Fatal(err)
	}
	keyB, _, err := s1.keys.Create(ctx, customerB, "dms")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	cursor := ""
	for len(got) < 400 {
		a := getFeed(t, ts1.URL, keyA, "limit=150&after="+cursor)
		for _, e := range a.Events {
			got = append(got, e.Event.ID)
		}
		cursor = a.Cursor
	}

	// Restart NATS and the portal; the cursor goes on.
	ts1.Close()
	n.stop()
	n.start()
	t.Cleanup(n.stop)
	_, ts2 := feedPortal(t, n.js)
	for {
		a := getFeed(t, ts2.URL, keyA, "limit=1000&after="+cursor)
		if len(a.Events) == 0 {
			if a.Cursor != cursor {
				t.Errorf("an empty answer moved the cursor from %s to %s", cursor, a.Cursor)
			}
			break
		}
		for _, e := range a.Events {
			if e.Event.Data.Customer != customerA {
				t.Fatalf("%s's key got an event of %s", customerA, e.Event.Data.Customer)
			}
			got = append(got, e.Event.ID)
		}
		cursor = a.Cursor
	}
	if len(got) != total {
		t.Fatalf("read %d events, want %d", len(got), total)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("event %d is %s, want %s (every event once, in order)", i, got[i], want[i])
		}
	}

	// The other customer's key: only its own.
	b := getFeed(t, ts2.URL, keyB, "limit=1000")
	if len(b.Events) != (total+2)/3 {
		t.Errorf("%s got %d events, want %d", customerB, len(b.Events), (total+2)/3)
	}
	for _, e := range b.Events {
		if e.Event.Data.Customer != customerB {
			t.Fatalf("%s's key got an event of %s", customerB, e.Event.Data.Customer)
		}
	}

	// A long poll gets the event published while it waits; an empty one
	// answers after its wait with the same cursor.
	done := make(chan feedAnswer, 1)
	go func() { done <- getFeed(t, ts2.URL, keyA, "wait=20s&after="+cursor) }()
	if err := publish(archive.NewPublisher(n.js, "mailgate"), customerA, total); err != nil {
		t.Fatal(err)
	}
	if a := <-done; len(a.Events) != 1 || a.Events[0].Event.ID != fmt.Sprintf("doc_%s_%04d", customerA, total) {
		t.Errorf("long poll: %+v", a)
	}
	last := getFeed(t, ts2.URL, keyB, "wait=10ms&after="+b.Cursor)
	if len(last.Events) != 0 || last.Cursor != b.Cursor {
		t.Errorf("%s's long poll after its last event: %+v", customerB, last)
	}
	if _, err := strconv.ParseUint(cursor, 10, 64); err != nil {
		t.Errorf("cursor %q is not the stream sequence", cursor)
	}
}

// streamOrder lists the ids of a customer's events in stream order, read
// with archivetest's own reader.
func streamOrder(ctx context.Context, js jetstream.JetStream, customer string) ([]string, error) {
	raw, err := archivetest.ReadStream(ctx, js, archive.StreamName, archive.Subject(customer, ">"))
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(raw))
	for _, e := range raw {
		var ce struct{ ID string }
		if err := json.Unmarshal(e.Data, &ce); err != nil {
			return nil, err
		}
		ids = append(ids, ce.ID)
	}
	return ids, nil
}
