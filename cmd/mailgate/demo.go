package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// demoCustomer is the customer the demo's portal users and API key belong to.
const demoCustomer = "firma"

func cmdDemo(ctx context.Context, e *env, args []string) error {
	fset := newFlagSet(e, "demo")
	mailEvery := fset.Duration("mail-every", 20*time.Second, "how often a new sample mail arrives in the simulated mailbox (0 = only the first batch)")
	simAddr := fset.String("sim-addr", "127.0.0.1:0", "where the Microsoft 365 simulator listens")
	getenv := func(k string) string {
		// A demo polls briskly unless told otherwise.
		if v := e.getenv(k); v != "" || k != "MAILGATE_POLL_INTERVAL" {
			return v
		}
		return "5s"
	}
	cfg, _, err := loadConfig(fset, args, getenv, e.environ)
	if err != nil {
		return configError(e, err)
	}
	cfg.Demo = true
	if cfg.MetricsAddr == "" {
		cfg.MetricsAddr = "127.0.0.1:0" // its own listener, shown in the banner
	}

	sim := graphtest.NewUnstartedServer()
	simLn, err := net.Listen("tcp", *simAddr)
	if err != nil {
		return fmt.Errorf("simulator: listen %s: %w", *simAddr, err)
	}
	simURL := "http://" + simLn.Addr().String()
	simSrv := &http.Server{Handler: sim.Handler(), ReadHeaderTimeout: 10 * time.Second}
	go simSrv.Serve(simLn) //nolint:errcheck // stopped below; Serve's ErrServerClosed is expected
	defer simSrv.Close()

	cfg.LoginURL = simURL
	cfg.GraphURL = simURL + "/v1.0"
	cfg.MSClientID = graphtest.DefaultClientID
	cfg.MSClientSecret = graphtest.DefaultClientSecret
	if cfg.SecretKey == nil {
		if cfg.SecretKey, err = demoKey(cfg.DataDir); err != nil {
			return err
		}
	}
	if err := cfg.Validate(); err != nil {
		return configError(e, err)
	}

	logger := newLogger(e.stderr, cfg.LogLevel)
	m := &Main{Config: cfg, Logger: logger}
	// The seed reads Main's configuration: Run settles the public URL of a
	// random port.
	seed := &demoSeed{sim: sim, cfg: &m.Config}
	m.BeforeServe = seed.seed
	m.Ready = func(_, natsURL string) { seed.banner(e, simURL, natsURL, m.MetricsAddr()) }
	errc := make(chan error, 1)
	go func() { errc <- deliverSamples(ctx, sim, *mailEvery, logger) }()
	err = m.Run(ctx)
	if derr := <-errc; err == nil && derr != nil && !errors.Is(derr, context.Canceled) {
		err = derr
	}
	return err
}

// demoKey reads the sealing key of a previous demo run, or makes one, so a
// restarted demo can still open its connections' tokens.
func demoKey(dataDir string) ([]byte, error) {
	path := filepath.Join(dataDir, "demo-secret.key")
	if b, err := os.ReadFile(path); err == nil {
		return parseKey(strings.TrimSpace(string(b)))
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("demo key: %w", err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, fmt.Errorf("demo key: %w", err)
	}
	if err := os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600); err != nil {
		return nil, fmt.Errorf("demo key: %w", err)
	}
	return key, nil
}

// demoSeed creates the demo's portal users and DMS API key.
type demoSeed struct {
	sim *graphtest.Server
	cfg *Config

	password, guestPassword, apiKey string
}

func (d *demoSeed) seed(ctx context.Context, w *Wiring) error {
	users, err := portalUsers(ctx, w.JS)
	if err != nil {
		return err
	}
	d.password = randomWord()
	d.guestPassword = randomWord()
	for _, u := range []struct {
		name, password string
		groups         []string
	}{
		{"demo", d.password, []string{d.cfg.ConnectGroup}},
		{"gast", d.guestPassword, nil},
	} {
		_ = users.Remove(ctx, u.name) // a previous demo run's user
		if err := users.Add(ctx, u.name, demoCustomer, u.password, u.groups); err != nil {
			return fmt.Errorf("demo user %s: %w", u.name, err)
		}
	}
	keys, err := portalAPIKeys(ctx, w.JS)
	if err != nil {
		return err
	}
	d.apiKey, _, err = keys.Create(ctx, demoCustomer, "demo DMS")
	if err != nil {
		return fmt.Errorf("demo api key: %w", err)
	}
	return nil
}

func (d *demoSeed) banner(e *env, simURL, natsURL, metricsAddr string) {
	tw := tabwriter.NewWriter(e.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "\nmailgate demo is running. Open the portal and connect the sample invoice mailbox.\n\n")
	fmt.Fprintf(tw, "  Portal:\t%s\n", d.cfg.PublicURL)
	fmt.Fprintf(tw, "  Log in as:\tdemo / %s   (member of %q: may connect mailboxes)\n", d.password, d.cfg.ConnectGroup)
	fmt.Fprintf(tw, "  \tgast / %s   (not a member: sees \"access not allowed\")\n", d.guestPassword)
	fmt.Fprintf(tw, "  Microsoft 365:\tsimulated at %s\n", simURL)
	fmt.Fprintf(tw, "  \tsign in there as %s / %s\n", graphtest.DefaultUser, graphtest.DefaultPassword)
	fmt.Fprintf(tw, "  Mailbox:\t%s   (new sample mails keep arriving)\n", graphtest.DefaultMailbox)
	fmt.Fprintf(tw, "  DMS API key:\t%s   (shown once)\n", d.apiKey)
	fmt.Fprintf(tw, "  Redeem the code:\twith the button on the code page, or as a DMS would:\n")
	fmt.Fprintf(tw, "  \tcurl -H 'Authorization: Bearer %s' -H 'Content-Type: application/json' -d '{\"code\":\"CODE\"}' %s/api/v1/connections/redeem\n", d.apiKey, d.cfg.PublicURL)
	fmt.Fprintf(tw, "  Watch events:\tmailgate archive tail --since 1h --data-dir %s --nats-url %s\n", d.cfg.DataDir, natsURL)
	fmt.Fprintf(tw, "  NATS credentials:\t%s   (the CLI finds them through --data-dir)\n", natsAuthDir(d.cfg.DataDir))
	if metricsAddr != "" {
		fmt.Fprintf(tw, "  Metrics:\thttp://%s/metrics   (not on the portal's listener)\n", metricsAddr)
	}
	fmt.Fprintf(tw, "  Archive:\t%s\n\n", filepath.Join(d.cfg.DataDir, "archive"))
	tw.Flush()
}

// deliverSamples puts a first batch of sample mails into the simulated
// mailbox, then one more every interval.
func deliverSamples(ctx context.Context, sim *graphtest.Server, every time.Duration, log *slog.Logger) error {
	deliver := func(i int) error {
		m := samples.Sample(i, time.Now().UTC())
		if _, err := sim.Deliver(graphtest.DefaultMailbox, m.Mail); err != nil {
			return fmt.Errorf("demo: deliver sample mail: %w", err)
		}
		log.Debug("sample mail delivered", "subject", m.Subject)
		return nil
	}
	i := 0
	for ; i < 6; i++ {
		if err := deliver(i); err != nil {
			return err
		}
	}
	if every <= 0 {
		return nil
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			if err := deliver(i); err != nil {
				return err
			}
			i++
		}
	}
}

// randomWord is a password that is easy to type from a terminal.
func randomWord() string {
	const alphabet = "abcdefghijkmnpqrstuvwxyz23456789"
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	for i := range b {
		b[i] = alphabet[int(b[i])%len(alphabet)]
	}
	return string(b[:4]) + "-" + string(b[4:8]) + "-" + string(b[8:])
}

// demoMailbox is the mailbox the connect wizard starts with: the
// simulated tenant's invoice mailbox in the demo, none otherwise.
func demoMailbox(cfg *Config) string {
	if cfg.Demo {
		return graphtest.DefaultMailbox
	}
	return ""
}
