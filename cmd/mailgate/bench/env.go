package bench

import (
	"context"
	"fmt"
	"net/url"
	"path/filepath"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/importer"
)

// customer owns every benchmark connection.
const customer = "bench"

// env is one scenario's world: a fresh simulator and embedded NATS server,
// the connection store, a Graph client and an importer, wired as
// `mailgate serve` wires them (app-only tokens from the simulator).
type env struct {
	sim   *graphtest.Server
	ns    *server.Server
	nc    *nats.Conn
	js    jetstream.JetStream
	conns *connector.Store
	graph *graph.Client
	im    *importer.Importer
	token graph.TokenFunc
	time  timing
	// deps and icfg made im; a scenario may start more replicas with
	// them.
	deps importer.Deps
	icfg importer.Config
	// deltas counts the delta requests of all replicas.
	deltas atomic.Int64
}

// newEnv starts a scenario's world under dir. gcfg's BaseURL is filled in.
func (b *bencher) newEnv(ctx context.Context, name string, gcfg graph.Config, icfg importer.Config) (*env, error) {
	sim := graphtest.NewServer()
	return b.newEnvAt(ctx, name, gcfg, icfg, sim, sim.LoginURL(), sim.GraphURL())
}

// newEnvAt is newEnv with a simulator at loginURL and graphURL; sim is the
// in-process one there, or nil for one in another process.
func (b *bencher) newEnvAt(ctx context.Context, name string, gcfg graph.Config, icfg importer.Config, sim *graphtest.Server, loginURL, graphURL string) (_ *env, err error) {
	e := &env{sim: sim}
	defer func() {
		if err != nil {
			e.close()
		}
	}()
	dir := filepath.Join(b.dir, name)
	// The embedded server as `mailgate serve` runs it: file storage with
	// SyncAlways, so an acknowledged event survives a power cut.
	e.ns, err = server.NewServer(&server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: filepath.Join(dir, "nats"),
		SyncAlways: true, NoLog: true, NoSigs: true,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	go e.ns.Start()
	if !e.ns.ReadyForConnections(30 * time.Second) {
		return nil, fmt.Errorf("nats: embedded server not ready")
	}
	if e.nc, err = nats.Connect(e.ns.ClientURL()); err != nil {
		return nil, fmt.Errorf("nats: connect: %w", err)
	}
	if e.js, err = jetstream.New(e.nc); err != nil {
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	if _, err = archive.EnsureStream(ctx, e.js, archive.StreamConfig{}); err != nil {
		return nil, err
	}
	if e.conns, err = connector.NewStore(ctx, e.js, connector.StoreOptions{}); err != nil {
		return nil, err
	}

	u, err := url.Parse(graphURL)
	if err != nil {
		return nil, fmt.Errorf("simulator url: %w", err)
	}
	cc := clientcredentials.Config{
		ClientID:     graphtest.DefaultClientID,
		ClientSecret: graphtest.DefaultClientSecret,
		TokenURL:     loginURL + "/" + graphtest.DefaultTenantID + "/oauth2/v2.0/token",
		Scopes:       []string{u.Scheme + "://" + u.Host + "/.default"},
	}
	// The token source outlives the calls that use it; its context only
	// carries the HTTP client.
	ts := cc.TokenSource(context.WithoutCancel(ctx))
	e.token = func(context.Context) (string, error) {
		tok, err := ts.Token()
		if err != nil {
			return "", err
		}
		return tok.AccessToken, nil
	}
	gcfg.BaseURL = graphURL
	gcfg.Logger = b.opts.Logger
	if e.graph, err = graph.New(gcfg); err != nil {
		return nil, err
	}
	icfg.Logger = b.opts.Logger
	icfg.SpoolDir = filepath.Join(dir, "spool")
	if err := mkdir(icfg.SpoolDir); err != nil {
		return nil, err
	}
	e.deps = importer.Deps{
		Connections: e.conns,
		Mailboxes: importer.MailboxesFunc(func(_ context.Context, c connector.Connection) (importer.Mailbox, error) {
			return timedMailbox{Mailbox: e.graph.Mailbox(c.Mailbox, e.token), t: &e.time, deltas: &e.deltas}, nil
		}),
		Store:  timedStore{Store: b.store, t: &e.time},
		Events: timedEvents{Events: archive.NewPublisher(e.js, "mailgate"), t: &e.time},
	}
	e.icfg = icfg
	e.im, err = importer.New(ctx, e.js, e.deps, icfg)
	if err != nil {
		return nil, err
	}
	return e, nil
}

// connect adds an active app-only connection to mailbox that imports
// everything in the inbox.
func (b *bencher) connect(ctx context.Context, e *env, mailbox string) (connector.Connection, error) {
	return b.connectAs(ctx, e, customer, mailbox)
}

// connectAs is connect for another customer.
func (b *bencher) connectAs(ctx context.Context, e *env, cust, mailbox string) (connector.Connection, error) {
	return e.conns.Create(ctx, connector.Connection{
		Customer:    cust,
		TenantID:    graphtest.DefaultTenantID,
		Mailbox:     mailbox,
		Mode:        connector.AppOnly,
		State:       connector.StateActive,
		ClientID:    graphtest.DefaultClientID,
		PostProcess: connector.PostProcess{Action: b.opts.PostProcess},
		Backfill:    connector.Backfill{Mode: connector.BackfillAll},
		CreatedBy:   "bench",
	})
}

// close stops the simulator and NATS. The simulator is closed first and
// waits for its handlers, so the caller may free the mail content after.
func (e *env) close() {
	if e.sim != nil {
		e.sim.Close()
	}
	if e.nc != nil {
		e.nc.Close()
	}
	if e.ns != nil {
		e.ns.Shutdown()
		e.ns.WaitForShutdown()
	}
}

// graphRequests counts the Graph requests (not the identity platform's) the
// simulator answered, and the 429s among them.
func graphRequests(c graphtest.Counters) (total, throttled int) {
	for ep, byStatus := range c.Requests {
		if !isGraphEndpoint(ep) {
			continue
		}
		for status, n := range byStatus {
			total += n
			if status == 429 {
				throttled += n
			}
		}
	}
	return total, max(throttled, c.Throttled)
}

func isGraphEndpoint(ep string) bool {
	switch ep {
	case "user.get", "folders.list", "folders.create", "folder.get", "messages.list", "messages.delta",
		"message.get", "message.update", "message.delete", "message.value", "message.move",
		"attachments.list", "attachment.get", "attachment.value":
		return true
	}
	return false
}
