package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// startNATS runs the embedded NATS server with JetStream on file storage
// under the data directory. SyncAlways makes an acknowledged publish survive
// a power cut, not only a process kill. It admits only the identities whose
// credentials it keeps in the data directory (see natsauth.go).
func startNATS(cfg *Config, logger *slog.Logger) (*server.Server, error) {
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return nil, err
	}
	if !isLoopbackHost(opts.Host) {
		logger.Warn("embedded nats listens beyond loopback; clients need the credentials in the data dir, and traffic is not encrypted",
			"listen", cfg.NATSListen)
	}
	if old := natsSeedFile(cfg.DataDir, "subscriber"); fileExists(old) {
		logger.Warn("the subscriber identity of earlier versions read every customer's events and is no longer admitted; give each customer's DMS its own with `mailgate dms-credentials CUSTOMER`",
			"file", old)
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("nats: embedded server: %w", err)
	}
	go srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("nats: embedded server on %s did not become ready (is the port in use by another mailgate?)", cfg.NATSListen)
	}
	logger.Info("embedded nats started", "url", srv.ClientURL(), "store_dir", opts.StoreDir, "credentials_dir", natsAuthDir(cfg.DataDir),
		"dms_identities", len(opts.Nkeys)-len(natsRoles))
	return srv, nil
}

// embeddedOptions are the embedded server's options, with the identities
// the data directory holds now.
func embeddedOptions(cfg *Config) (*server.Options, error) {
	host, portStr, err := net.SplitHostPort(cfg.NATSListen)
	if err != nil {
		return nil, fmt.Errorf("nats: listen %q: %w", cfg.NATSListen, err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return nil, fmt.Errorf("nats: listen port %q: %w", portStr, err)
	}
	if port == 0 {
		port = -1 // random, for tests
	} else {
		// The server would only time out below, hiding why: try the
		// address first and say it.
		ln, err := net.Listen("tcp", cfg.NATSListen)
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) {
				return nil, fmt.Errorf("nats: embedded server: MAILGATE_NATS_LISTEN=%s: address already in use (another mailgate or NATS listens there): stop it or set MAILGATE_NATS_LISTEN to a free address", cfg.NATSListen)
			}
			return nil, fmt.Errorf("nats: embedded server: MAILGATE_NATS_LISTEN=%s: %w", cfg.NATSListen, err)
		}
		ln.Close()
	}
	pubs, err := ensureNATSCredentials(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	dms, err := dmsPublicKeys(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	return &server.Options{
		ServerName: "mailgate",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   filepath.Join(cfg.DataDir, "nats"),
		SyncAlways: true,
		NoSigs:     true,
		NoLog:      true,
		Nkeys:      embeddedUsers(pubs, dms),
	}, nil
}

// reloadNATSIdentities makes the running embedded server admit the
// identities the data directory holds now (a DMS identity written by
// `mailgate dms-credentials` since the start, or one removed).
func reloadNATSIdentities(srv *server.Server, cfg *Config) error {
	opts, err := embeddedOptions(cfg)
	if err != nil {
		return err
	}
	// The port the server actually listens on, if it chose one.
	opts.Port = srv.Addr().(*net.TCPAddr).Port
	if err := srv.ReloadOptions(opts); err != nil {
		return fmt.Errorf("nats: reload identities: %w", err)
	}
	return nil
}

// connectNATS connects to url with the operator's credentials and TLS
// settings (or, with the embedded server, the service's own credentials
// from the data directory), retrying the first connect until ctx ends, so
// that replicas may start before the cluster.
func connectNATS(ctx context.Context, cfg *Config, url, name string, logger *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts := []nats.Option{
		nats.Name(name),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				logger.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) { logger.Info("nats reconnected", "url", nc.ConnectedUrlRedacted()) }),
	}
	creds := cfg.NATSCreds
	if cfg.NATSURL == "" {
		creds = natsSeedFile(cfg.DataDir, natsRoleService)
	}
	if creds != "" {
		auth, err := natsAuth(creds)
		if err != nil {
			return nil, nil, err
		}
		opts = append(opts, auth)
	}
	if cfg.NATSUser != "" {
		opts = append(opts, nats.UserInfo(cfg.NATSUser, cfg.NATSPassword))
	}
	if cfg.NATSCA != "" {
		opts = append(opts, nats.RootCAs(cfg.NATSCA))
	}
	url = strings.TrimSpace(url)
	var nc *nats.Conn
	var err error
	for attempt := 0; ; attempt++ {
		nc, err = nats.Connect(url, opts...)
		if err == nil {
			break
		}
		if attempt == 0 {
			logger.Warn("nats not reachable yet, retrying", "url", redactURL(url), "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, nil, fmt.Errorf("nats: connect %s: %w", redactURL(url), err)
		case <-time.After(time.Second):
		}
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	return nc, js, nil
}

// redactURL drops user information from NATS URLs before they are logged.
func redactURL(u string) string {
	parts := strings.Split(u, ",")
	for i, p := range parts {
		if at := strings.LastIndex(p, "@"); at >= 0 {
			if scheme := strings.Index(p, "://"); scheme >= 0 && scheme < at {
				parts[i] = p[:scheme+3] + "***" + p[at:]
			}
		}
	}
	return strings.Join(parts, ",")
}
