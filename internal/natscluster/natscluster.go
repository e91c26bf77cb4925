// Package natscluster runs a NATS JetStream cluster in-process on loopback,
// for tests that need replicated streams and buckets (R3) as a production
// cluster has them: compare-and-set answers, placement and leader
// elections differ from a single server's.
package natscluster

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Cluster is a running cluster; the test's cleanup shuts it down.
type Cluster struct {
	Servers []*server.Server
}

// URL is the client URL list of every node, comma-separated, as
// nats.Connect and MAILGATE_NATS_URL take it.
func (c *Cluster) URL() string {
	urls := make([]string, len(c.Servers))
	for i, s := range c.Servers {
		urls[i] = s.ClientURL()
	}
	return strings.Join(urls, ",")
}

// Start runs n JetStream nodes (n >= 1) on loopback and returns once the
// cluster can place a stream replicated n times. Every node routes to the
// first one's cluster port (the first one to itself, which the server
// ignores; clustered JetStream wants a route configured) and they find each
// other through it. Only that port is chosen ahead; every other listener
// takes a port the system gives it.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	if n < 1 {
		t.Fatalf("natscluster: %d nodes", n)
	}
	c := &Cluster{}
	seedPort := freePort(t)
	seed := []*url.URL{{Scheme: "nats", Host: net.JoinHostPort("127.0.0.1", strconv.Itoa(seedPort))}}
	for i := range n {
		clusterPort := -1
		if i == 0 {
			clusterPort = seedPort
		}
		opts := &server.Options{
			ServerName: fmt.Sprintf("nats-%d", i+1),
			Host:       "127.0.0.1",
			Port:       -1,
			JetStream:  true,
			StoreDir:   t.TempDir(),
			Cluster:    server.ClusterOpts{Name: "mailgate", Host: "127.0.0.1", Port: clusterPort},
			Routes:     seed,
			NoLog:      true,
			NoSigs:     true,
		}
		srv, err := server.NewServer(opts)
		if err != nil {
			t.Fatalf("natscluster: node %d: %v", i+1, err)
		}
		go srv.Start()
		t.Cleanup(srv.Shutdown)
		if !srv.ReadyForConnections(20 * time.Second) {
			t.Fatalf("natscluster: node %d not ready", i+1)
		}
		c.Servers = append(c.Servers, srv)
	}
	c.waitPlaceable(t, n)
	return c
}

// waitPlaceable waits until a stream with n replicas can be created: a meta
// leader alone is not enough while peers are still reported offline, and
// the cluster announces no "all peers joined".
func (c *Cluster) waitPlaceable(t testing.TB, n int) {
	t.Helper()
	nc, err := nats.Connect(c.URL())
	if err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	retry := time.NewTicker(200 * time.Millisecond)
	defer retry.Stop()
	for {
		attempt, done := context.WithTimeout(ctx, 5*time.Second)
		_, err := js.CreateStream(attempt, jetstream.StreamConfig{Name: "PROBE", Subjects: []string{"probe.>"}, Replicas: n})
		if err == nil {
			err = js.DeleteStream(attempt, "PROBE")
		}
		done()
		if err == nil {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("natscluster: the cluster cannot place a stream with %d replicas: %v", n, err)
		case <-retry.C:
		}
	}
}

// freePort asks the system for a free loopback port and releases it for
// the seed's cluster listener to take.
func freePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natscluster: %v", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
