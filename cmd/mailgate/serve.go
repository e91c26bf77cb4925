package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"os/user"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/sync/errgroup"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/webhook"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graph"
	"github.com/mailgate/mailgate/importer"
	"github.com/mailgate/mailgate/importer/rendition"
	"github.com/mailgate/mailgate/importer/rules"
	"github.com/mailgate/mailgate/portal"
)

func cmdServe(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "serve")
	cfg, _, err := loadConfig(fs, args, e.getenv, e.environ)
	if err != nil {
		return configError(e, err)
	}
	if err := cfg.Validate(); err != nil {
		return configError(e, err)
	}
	for _, w := range cfg.Warnings() {
		fmt.Fprintln(e.stderr, "mailgate: config: warning:", w)
	}
	m := &Main{Config: cfg, Logger: newLogger(e.stderr, cfg.LogLevel)}
	m.Ready = func(addr, natsURL string) {
		fmt.Fprintf(e.stdout, "mailgate listening on %s (role %s, nats %s)\n", addr, cfg.Role, redactURL(natsURL))
	}
	return m.Run(ctx)
}

// checkDataDir makes the data directory and proves it writable, naming
// the variable and the user when it is not: the usual cause is a volume
// owned by another user than the one mailgate runs as.
func checkDataDir(dir string) error {
	err := os.MkdirAll(dir, 0o700)
	if err == nil {
		var f *os.File
		if f, err = os.CreateTemp(dir, ".probe-*"); err == nil {
			err = errors.Join(f.Close(), os.Remove(f.Name()))
		}
	}
	if err == nil {
		return nil
	}
	who := fmt.Sprintf("uid %d", os.Getuid())
	if u, uerr := user.Current(); uerr == nil {
		who = fmt.Sprintf("user %s (uid %s)", u.Username, u.Uid)
	}
	return fmt.Errorf("data dir MAILGATE_DATA_DIR=%s is not writable by %s, which mailgate runs as: %w", dir, who, err)
}

// configError prints each configuration problem on its own line.
func configError(e *env, err error) error {
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	for _, line := range strings.Split(err.Error(), "\n") {
		fmt.Fprintln(e.stderr, "mailgate: config:", line)
	}
	return errUsage
}

// Main is one mailgate process: it owns the embedded NATS server (if any),
// the connections to NATS and storage, and the roles it runs.
type Main struct {
	Config Config
	Logger *slog.Logger

	// Ready, if set, is called once everything listens, with the portal's
	// address and the URL of the NATS server in use.
	Ready func(httpAddr, natsURL string)
	// BeforeServe, if set, runs after state is reachable and before the
	// roles start; `mailgate demo` seeds its sample user there.
	BeforeServe func(ctx context.Context, w *Wiring) error

	metricsAddr string // where /metrics listens, once it does
}

// MetricsAddr is the address /metrics listens on ("" when not served);
// valid once Ready is called.
func (m *Main) MetricsAddr() string { return m.metricsAddr }

// Wiring is what Run builds: the packages joined together.
type Wiring struct {
	NC          *nats.Conn
	JS          jetstream.JetStream
	Sealer      *connector.Sealer
	Connections *connector.Store
	Codes       *connector.Codes
	Identity    *connector.Identity
	Tokens      *connector.Tokens
	Graph       *graph.Client
	Store       archive.Store
	Publisher   *archive.Publisher
	Importer    *importer.Importer
	Portal      *portal.Server
	Registry    *prometheus.Registry
	SpoolDir    string // importer role only
	Webhooks    *webhook.Service
	// StoreName says which store readiness lines are about, with the
	// variable that sets it.
	StoreName string

	storeStart *startingStore // S3 that did not answer at start; nil: connected
}

// Run starts everything and blocks until ctx ends, then shuts down: the HTTP
// server stops taking requests, the importer finishes the document in flight,
// and the embedded NATS server flushes its store.
func (m *Main) Run(ctx context.Context) error {
	cfg := &m.Config
	log := m.Logger
	if err := checkDataDir(cfg.DataDir); err != nil {
		return err
	}

	natsURL := cfg.NATSURL
	if natsURL == "" {
		srv, err := startNATS(cfg, log)
		if err != nil {
			return err
		}
		defer func() {
			srv.Shutdown()
			srv.WaitForShutdown()
		}()
		natsURL = srv.ClientURL()
		// SIGHUP admits the DMS identities written since the start.
		hup := make(chan os.Signal, 1)
		signal.Notify(hup, syscall.SIGHUP)
		reloaded := make(chan struct{})
		hctx, hcancel := context.WithCancel(ctx)
		go func() {
			defer close(reloaded)
			for {
				select {
				case <-hctx.Done():
					return
				case <-hup:
					if err := reloadNATSIdentities(srv, cfg); err != nil {
						log.Error("nats identities not reloaded", "err", err)
					} else {
						log.Info("nats identities reloaded")
					}
				}
			}
		}()
		defer func() {
			signal.Stop(hup)
			hcancel()
			<-reloaded
		}()
	}
	nc, js, err := connectNATS(ctx, cfg, natsURL, "mailgate-"+cfg.Role, log)
	if err != nil {
		return err
	}
	defer nc.Close()

	// Listen before wiring: the public URL of `demo` on a random port
	// depends on the address.
	ln, err := net.Listen("tcp", cfg.HTTPAddr)
	if err != nil {
		return fmt.Errorf("http: listen %s: %w", cfg.HTTPAddr, err)
	}
	defer ln.Close()
	if strings.HasSuffix(cfg.PublicURL, ":0") {
		cfg.PublicURL = fmt.Sprintf("http://localhost:%d", ln.Addr().(*net.TCPAddr).Port)
	}

	w, err := m.wireWithRetry(ctx, nc, js)
	if err != nil {
		return err
	}
	if m.BeforeServe != nil {
		if err := m.BeforeServe(ctx, w); err != nil {
			return err
		}
	}

	g, gctx := errgroup.WithContext(ctx)
	if w.storeStart != nil {
		g.Go(func() error {
			w.storeStart.connect(gctx, func(ctx context.Context) (archive.Store, error) { return openStore(ctx, cfg) }, w.StoreName, log)
			return nil
		})
	}
	if w.Importer != nil {
		g.Go(func() error { return w.Webhooks.Run(gctx) })
		g.Go(func() error { return w.Importer.Run(gctx) })
		g.Go(func() error { return keepTokensAlive(gctx, w.Tokens, log) })
	}
	if w.Portal != nil {
		ctl, err := startControl(gctx, nc, w, cfg.SecretKey, cfg.NATSReplicas, log)
		if err != nil {
			return err
		}
		defer ctl.Stop()
	}

	{
		handler := opsHandler(w)
		if w.Portal != nil {
			handler = w.Portal.Handler()
		}
		serveHTTP(gctx, g, ln, newHTTPServer(handler, defaultHTTPTimeouts, log), "http")
		log.Info("http listening", "addr", ln.Addr().String(), "public_url", cfg.PublicURL, "role", cfg.Role)
	}
	if cfg.MetricsAddr != "" {
		mln, err := net.Listen("tcp", cfg.MetricsAddr)
		if err != nil {
			return fmt.Errorf("metrics: listen %s: %w", cfg.MetricsAddr, err)
		}
		defer mln.Close()
		m.metricsAddr = mln.Addr().String()
		serveHTTP(gctx, g, mln, newHTTPServer(metricsHandler(w.Registry), defaultHTTPTimeouts, log), "metrics")
		log.Info("metrics listening", "addr", m.metricsAddr)
	}
	if m.Ready != nil {
		m.Ready(ln.Addr().String(), natsURL)
	}
	err = g.Wait()
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	log.Info("mailgate stopped")
	return err
}

// wireWithRetry retries wire while JetStream is not ready: in a cluster
// that is starting, requests time out, or are refused while the cluster
// has no leader or too few peers for the replicas asked for; when replicas
// create the same streams and buckets at once, the first requests can time
// out. Creating them is idempotent, so a retry is safe.
func (m *Main) wireWithRetry(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*Wiring, error) {
	deadline := time.Now().Add(2 * time.Minute)
	for attempt := 1; ; attempt++ {
		w, err := m.wire(ctx, nc, js)
		if err == nil || !notReady(err) || time.Now().After(deadline) {
			return w, err
		}
		m.Logger.Warn("jetstream not answering yet, retrying", "attempt", attempt, "err", err)
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(time.Duration(attempt) * time.Second):
		}
	}
}

// notReady reports whether err is JetStream not ready yet rather than
// refusing for good.
func notReady(err error) bool {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) || errors.Is(err, jetstream.ErrNoStreamResponse) {
		return true
	}
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10005, // no suitable peers for placement: peers not joined yet
		10008, // JetStream system temporarily unavailable
		10009, // cluster cannot handle the request: no meta leader
		jetstream.JSErrCodeJetStreamNotEnabled:
		return true
	}
	return false
}

// wire builds the packages in dependency order. Only cmd knows them all.
func (m *Main) wire(ctx context.Context, nc *nats.Conn, js jetstream.JetStream) (*Wiring, error) {
	cfg := &m.Config
	log := m.Logger
	w := &Wiring{NC: nc, JS: js, Registry: prometheus.NewRegistry()}
	w.Registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	var err error
	if _, err = archive.EnsureStream(ctx, js, archive.StreamConfig{Replicas: cfg.NATSReplicas}); err != nil {
		return nil, err
	}
	w.Publisher = archive.NewPublisher(js, "mailgate")
	if w.Sealer, err = connector.NewSealer(cfg.SecretKey); err != nil {
		return nil, err
	}
	w.Connections, err = connector.NewStore(ctx, js, connector.StoreOptions{
		Replicas: cfg.NATSReplicas,
		OnChange: func(ctx context.Context, before, after connector.Connection) {
			publishChange(ctx, w.Publisher, before, after, log)
		},
	})
	if err != nil {
		return nil, err
	}
	if w.Codes, err = connector.NewCodes(ctx, js, connector.CodesOptions{Replicas: cfg.NATSReplicas}); err != nil {
		return nil, err
	}
	w.Identity, err = connector.NewIdentity(connector.IdentityConfig{
		ClientID:     cfg.MSClientID,
		ClientSecret: cfg.MSClientSecret,
		Tenant:       cfg.MSTenant,
		LoginURL:     cfg.LoginURL,
		GraphURL:     cfg.GraphURL,
		RedirectURL:  strings.TrimRight(cfg.PublicURL, "/") + "/connect/callback",
	})
	if err != nil {
		return nil, err
	}
	w.Registry.MustRegister(newConnectionCollector(w.Connections))
	if w.Webhooks, err = webhook.New(ctx, js, w.Sealer, w.Publisher, webhook.Config{
		AllowPrivate: cfg.WebhookAllowPrivate, Replicas: cfg.NATSReplicas, Logger: log, Registerer: w.Registry,
	}); err != nil {
		return nil, err
	}
	w.Tokens = connector.NewTokens(w.Identity, w.Connections, w.Sealer, log)
	// Secrets sealed before they were bound to their connection are bound
	// now, so none stays movable to another connection.
	if n, err := w.Tokens.BindSealed(ctx); err != nil {
		log.Warn("binding sealed secrets to their connections", "err", err)
	} else if n > 0 {
		log.Info("sealed secrets bound to their connections", "connections", n)
	}
	w.Graph, err = graph.New(graph.Config{BaseURL: cfg.GraphURL, Logger: log, Registerer: w.Registry})
	if err != nil {
		return nil, err
	}
	w.StoreName = "directory " + filepath.Join(cfg.DataDir, "archive")
	if cfg.S3Endpoint != "" {
		w.StoreName = "S3 at " + cfg.S3Endpoint + " (MAILGATE_S3_ENDPOINT)"
	}
	octx, cancel := context.WithTimeout(ctx, 10*time.Second)
	w.Store, err = openStore(octx, cfg)
	cancel()
	if err != nil && cfg.S3Endpoint != "" && ctx.Err() == nil {
		// Start as S3 lost later is handled: not ready, saying why, and
		// ready by itself once S3 answers.
		log.Error("storage: "+w.StoreName+" is not reachable; not ready, retrying with backoff", "store", w.StoreName, "err", err)
		w.storeStart = &startingStore{bucket: cfg.S3Bucket, err: err}
		w.Store, err = w.storeStart, nil
	}
	if err != nil {
		return nil, fmt.Errorf("storage: %s: %w", w.StoreName, err)
	}
	w.Registry.MustRegister(newReadinessCollector(w.ready, cfg.PollInterval))
	mailboxes := graphMailboxes{graph: w.Graph, tokens: w.Tokens}

	if cfg.Role != "portal" {
		// Attachments above the in-memory limit are spooled here: a
		// directory that cannot be written would fail every large one.
		w.SpoolDir = filepath.Join(cfg.DataDir, "spool")
		if err := os.MkdirAll(w.SpoolDir, 0o700); err != nil {
			return nil, fmt.Errorf("spool dir: %w", err)
		}
		if err := archive.CheckDir(w.SpoolDir); err != nil {
			return nil, fmt.Errorf("spool dir %s: %w", w.SpoolDir, err)
		}
		// One validator for the process: the rule sets are loaded once.
		validator, err := rules.Default()
		if err != nil {
			return nil, fmt.Errorf("e-invoice rules: %w", err)
		}
		w.Importer, err = importer.New(ctx, js, importer.Deps{
			Connections: w.Connections,
			Mailboxes:   mailboxes,
			Store:       w.Store,
			Events:      w.Publisher,
		}, importer.Config{
			Replica:      cfg.Replica,
			Replicas:     cfg.NATSReplicas,
			PollInterval: cfg.PollInterval,
			Workers:      cfg.Workers,
			Policy:       importer.PolicyConfig{RetryFor: cfg.RetryFor},
			SpoolDir:     w.SpoolDir,
			Logger:       log,
			Registerer:   w.Registry,
			Validator:    validator,
			Render:       rendition.PDF,
			Step:         crashStep(),
			Probe:        w.probe,
		})
		if err != nil {
			return nil, err
		}
	}
	if cfg.Role != "importer" {
		statuses, err := importer.NewStatusReader(ctx, js, cfg.NATSReplicas)
		if err != nil {
			return nil, err
		}
		var oidc *portal.OIDCConfig
		if cfg.OIDCIssuer != "" {
			oidc = &portal.OIDCConfig{
				IssuerURL:    cfg.OIDCIssuer,
				ClientID:     cfg.OIDCClientID,
				ClientSecret: cfg.OIDCClientSecret,
				Customer:     cfg.OIDCCustomer,
				GroupsURL:    cfg.OIDCGroupsURL,
			}
		}
		var trigger portal.Trigger
		if w.Importer != nil {
			trigger = w.Importer
		}
		w.Portal, err = portal.New(ctx, js, portal.Deps{
			Identity:    w.Identity,
			Connections: w.Connections,
			Tenants:     w.Connections,
			Codes:       w.Codes,
			Sealer:      w.Sealer,
			Tester:      tester{mailboxes: mailboxes},
			Statuses:    statusAdapter{statuses},
			Audit:       w.Publisher,
			Trigger:     trigger,
			Webhooks:    w.Webhooks,
			History:     statusAdapter{statuses},
			Documents:   w.Store,
			Events:      archive.NewFeed(js),
		}, portal.Config{
			PublicURL:      cfg.PublicURL,
			ConnectGroup:   cfg.ConnectGroup,
			IdentityOrigin: cfg.LoginURL,
			OIDC:           oidc,
			DemoRedeem:     cfg.Demo,
			DemoMailbox:    demoMailbox(cfg),
			TimeZone:       cfg.TimeZone,
			TrustedProxies: cfg.TrustedProxies,
			Logger:         log,
			Registerer:     w.Registry,
			Ready:          func(ctx context.Context) error { return w.ready(ctx) },
		})
		if err != nil {
			return nil, err
		}
	}
	return w, nil
}

// opsHandler serves health and metrics for processes without the portal.
func opsHandler(w *Wiring) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(rw http.ResponseWriter, _ *http.Request) { fmt.Fprintln(rw, "ok") })
	mux.HandleFunc("GET /readyz", func(rw http.ResponseWriter, r *http.Request) {
		if err := w.ready(r.Context()); err != nil {
			http.Error(rw, "not ready\n"+err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(rw, "ready")
	})
	return mux
}

// metricsHandler serves /metrics alone, for MAILGATE_METRICS_ADDR.
func metricsHandler(g prometheus.Gatherer) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(g, promhttp.HandlerOpts{}))
	return mux
}

// httpTimeouts bound how long a client may hold a connection: a body that
// never finishes is cut off after Read, an idle keep-alive after Idle.
type httpTimeouts struct {
	ReadHeader, Read, Write, Idle time.Duration
}

// defaultHTTPTimeouts: Write covers the slowest answer, a connection test
// against Microsoft at redeem.
var defaultHTTPTimeouts = httpTimeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 90 * time.Second, Idle: 2 * time.Minute}

func newHTTPServer(h http.Handler, t httpTimeouts, log *slog.Logger) *http.Server {
	return &http.Server{
		Handler:           h,
		ReadHeaderTimeout: t.ReadHeader,
		ReadTimeout:       t.Read,
		WriteTimeout:      t.Write,
		IdleTimeout:       t.Idle,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
}

// serveHTTP serves hs on ln in g and shuts it down when ctx ends.
func serveHTTP(ctx context.Context, g *errgroup.Group, ln net.Listener, hs *http.Server, name string) {
	g.Go(func() error {
		if err := hs.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			return fmt.Errorf("%s: %w", name, err)
		}
		return nil
	})
	g.Go(func() error {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
		defer cancel()
		return hs.Shutdown(sctx)
	})
}

func openStore(ctx context.Context, cfg *Config) (archive.Store, error) {
	if cfg.S3Endpoint == "" {
		return archive.NewDir(filepath.Join(cfg.DataDir, "archive"))
	}
	return archive.NewS3(ctx, archive.S3Config{
		Endpoint:  cfg.S3Endpoint,
		AccessKey: cfg.S3AccessKey,
		SecretKey: cfg.S3SecretKey,
		Bucket:    cfg.S3Bucket,
		Secure:    cfg.S3Secure,
	})
}

// probe checks NATS, the document store and the spool, by importer
// component: what the operator must fix, one error each.
func (w *Wiring) probe(ctx context.Context) map[string]error {
	out := make(map[string]error)
	if s := w.NC.Status(); s != nats.CONNECTED {
		out[importer.ComponentNATS] = fmt.Errorf("nats: %s", s)
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	if err := w.Store.Ping(ctx); err != nil {
		out[importer.ComponentStorage] = fmt.Errorf("storage: %s: %w", w.StoreName, err)
	}
	if w.SpoolDir != "" {
		if err := archive.CheckDir(w.SpoolDir); err != nil {
			out[importer.ComponentDisk] = fmt.Errorf("spool: %w", err)
		}
	}
	return out
}

// ready reports whether NATS, the document store and the spool can be
// used and the importer meets no infrastructure fault, each problem on its
// own line (/readyz, mailgate_ready).
func (w *Wiring) ready(ctx context.Context) error {
	var errs []error
	p := w.probe(ctx)
	for _, c := range []string{importer.ComponentNATS, importer.ComponentStorage, importer.ComponentDisk} {
		if p[c] != nil {
			errs = append(errs, p[c])
		}
	}
	if w.Importer != nil {
		if err := w.Importer.Fault(); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keepTokensAlive refreshes idle delegated tokens twice a day: Microsoft
// expires a refresh token after 90 days without use (AADSTS700082).
func keepTokensAlive(ctx context.Context, tokens *connector.Tokens, log *slog.Logger) error {
	t := time.NewTicker(12 * time.Hour)
	defer t.Stop()
	for {
		n, err := tokens.RefreshIdle(ctx, 7*24*time.Hour)
		if err != nil && ctx.Err() == nil {
			log.Warn("refreshing idle tokens", "err", err)
		} else if n > 0 {
			log.Info("refreshed idle tokens", "connections", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// publishChange turns a committed state change into a connection.changed
// event. A failed publish is logged: the state itself is already durable.
func publishChange(ctx context.Context, p *archive.Publisher, before, after connector.Connection, log *slog.Logger) {
	ev := archive.ConnectionChanged{
		Customer:   after.Customer,
		Connection: after.ID,
		Mailbox:    after.Mailbox,
		From:       string(before.State),
		To:         string(after.State),
		Action:     changeAction(before.State, after.State),
		Actor:      after.UpdatedBy,
		Error:      after.LastError,
	}
	if err := p.ConnectionChanged(ctx, ev); err != nil {
		log.Error("publish connection.changed", "connection_id", after.ID, "err", err)
	}
}

func changeAction(from, to connector.State) string {
	switch {
	case from == "":
		return "connect"
	case to == connector.StateDeleted:
		return "disconnect"
	case from == connector.StatePending && to == connector.StateActive:
		return "redeem"
	case to == connector.StatePaused:
		return "pause"
	case from == connector.StatePaused && to == connector.StateActive:
		return "resume"
	case to == connector.StateNeedsConsent:
		return "needs_consent"
	case to == connector.StateFailing:
		return "failing"
	case from == connector.StateFailing && to == connector.StateActive:
		return "recovered"
	case from == connector.StateNeedsConsent:
		return "reconnect"
	}
	return string(to)
}
