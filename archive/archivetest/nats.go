// Package archivetest starts the real backing services of the archive for
// tests: an embedded NATS server with JetStream and, where installed, MinIO
// on a loopback port.
package archivetest

import (
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// RunServer starts an embedded NATS server with JetStream on a random
// loopback port, storing under a fresh temporary directory. It is shut down
// when the test ends.
func RunServer(t testing.TB) *server.Server {
	t.Helper()
	opts := &server.Options{
		Host:      "127.0.0.1",
		Port:      -1,
		JetStream: true,
		StoreDir:  t.TempDir(),
		NoLog:     true,
		NoSigs:    true,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		t.Fatalf("archivetest: nats server: %v", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("archivetest: nats server not ready")
	}
	t.Cleanup(func() {
		srv.Shutdown()
		srv.WaitForShutdown()
	})
	return srv
}

// RunJetStream starts an embedded server (see RunServer) and returns a
// JetStream context on a connection to it. Both end with the test.
func RunJetStream(t testing.TB) (jetstream.JetStream, *nats.Conn) {
	t.Helper()
	srv := RunServer(t)
	nc, err := nats.Connect(srv.ClientURL())
	if err != nil {
		t.Fatalf("archivetest: connect: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("archivetest: jetstream: %v", err)
	}
	return js, nc
}
