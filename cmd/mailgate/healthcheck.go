package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"
)

// cmdHealthcheck is the container healthcheck: the distroless image has no
// shell and no curl, so the binary asks itself. It GETs URL (default: the
// /readyz of MAILGATE_HTTP_ADDR on this host) and succeeds on 200 only, so
// a process whose NATS or storage is unreachable is reported unhealthy.
func cmdHealthcheck(ctx context.Context, e *env, args []string) error {
	fs := newFlagSet(e, "healthcheck")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the answer")
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "Usage: mailgate healthcheck [--timeout 5s] [URL]\n\nGETs URL, default http://<MAILGATE_HTTP_ADDR>/readyz on loopback; exits 0 on 200, else 1.")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 1 {
		fs.Usage()
		return errUsage
	}
	url := fs.Arg(0)
	if url == "" {
		addr := e.getenv("MAILGATE_HTTP_ADDR")
		if addr == "" {
			addr = "127.0.0.1:8080"
		}
		var err error
		if url, err = readyzURL(addr); err != nil {
			return err
		}
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s: %s: %s", url, resp.Status, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(e.stdout, "%s: %s\n", url, strings.TrimSpace(string(body)))
	return nil
}

// readyzURL is the /readyz of a process listening on addr, reached over
// loopback when it listens on all interfaces.
func readyzURL(addr string) (string, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return "", fmt.Errorf("MAILGATE_HTTP_ADDR=%q: want host:port: %w", addr, err)
	}
	if port == "0" {
		return "", fmt.Errorf("MAILGATE_HTTP_ADDR=%q: a random port; give the URL", addr)
	}
	switch host {
	case "", "0.0.0.0":
		host = "127.0.0.1"
	case "::":
		host = "::1"
	}
	return "http://" + net.JoinHostPort(host, port) + "/readyz", nil
}
