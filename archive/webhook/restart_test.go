package webhook

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
)

// TestSurvivesNATSRestart: NATS goes away and comes back (the operator's
// infrastructure); delivery resumes by itself, for the endpoint that was
// running and for one registered after the restart.
func TestSurvivesNATSRestart(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	store := t.TempDir()
	var srv *server.Server
	start := func() {
		t.Helper()
		s, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: port, JetStream: true, StoreDir: store, NoLog: true, NoSigs: true})
		if err != nil {
			t.Fatal(err)
		}
		go s.Start()
		if !s.ReadyForConnections(10 * time.Second) {
			t.Fatal("nats not ready")
		}
		srv = s
	}
	stop := func() { srv.Shutdown(); srv.WaitForShutdown() }
	start()
	t.Cleanup(func() { stop() })

	nc, err := nats.Connect(srv.ClientURL(), nats.MaxReconnects(-1), nats.ReconnectWait(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, _ := jetstream.New(nc)
	ctx := t.Context()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	pub := archive.NewPublisher(js, "mailgate")
	svc, err := New(ctx, js, plainSealer{}, pub, Config{AllowPrivate: true, RetryMin: 100 * time.Millisecond, RetryMax: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(runCtx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	r1, srv1 := newReceiver(t)
	_, s1, err := svc.Create(ctx, "acme", Registration{URL: srv1.URL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	r1.secret = s1
	if err := pub.Imported(ctx, "before", imported("acme", "before")); err != nil {
		t.Fatal(err)
	}
	r1.wait(t, 1, 10*time.Second)

	stop()
	start()
	restarted := time.Now()
	// Publishing waits for the client to reconnect.
	publish := func(id string) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(200 * time.Millisecond) { // until NATS is back
			if err := pub.Imported(ctx, id, imported("acme", id)); err == nil {
				return
			} else if time.Now().After(deadline) {
				t.Fatalf("publish %s after the restart: %v", id, err)
			}
		}
	}
	publish("after")
	t.Logf("published %s after the restart", time.Since(restarted).Round(time.Millisecond))
	if got := r1.wait(t, 2, 20*time.Second); got["after"] == nil {
		t.Errorf("running endpoint after the restart got %v", keys(got))
	}
	t.Logf("running endpoint delivered %s after the restart", time.Since(restarted).Round(time.Millisecond))
	r2, srv2 := newReceiver(t)
	_, s2, err := svc.Create(ctx, "acme", Registration{URL: srv2.URL}, "test")
	if err != nil {
		t.Fatal(err)
	}
	r2.secret = s2
	publish("new")
	// The endpoint watch notices the restart only by missed heartbeats
	// (about 20 s here); running consumers recover at once.
	if got := r2.wait(t, 1, 60*time.Second); got["new"] == nil {
		t.Errorf("endpoint registered after the restart got %v", keys(got))
	}
	t.Logf("new endpoint delivered %s after the restart", time.Since(restarted).Round(time.Millisecond))
}
