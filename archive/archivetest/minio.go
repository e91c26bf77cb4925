package archivetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
)

// MinIO is a minio server process on a loopback port, for tests. Stop and
// Start let a test make S3 unreachable and bring it back with the same data
// directory and address.
type MinIO struct {
	t       testing.TB
	bin     string
	dir     string
	addr    string
	console string
	cfg     archive.S3Config
	cmd     *exec.Cmd
	done    chan struct{} // closed when cmd has exited
}

// RunMinIO starts MinIO (see StartMinIO) and returns its configuration.
func RunMinIO(t testing.TB) archive.S3Config {
	t.Helper()
	return StartMinIO(t).Config()
}

// StartMinIO starts the minio binary (from PATH or $GOPATH/bin) with a fresh
// data directory on free loopback ports and a random bucket name, waits until
// it is live and stops it when the test ends. Without the binary the test is
// skipped, unless the environment variable CI is set: then it fails.
func StartMinIO(t testing.TB) *MinIO {
	t.Helper()
	bin, err := findMinIO()
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("archivetest: %v (CI must run against real MinIO)", err)
		}
		t.Skipf("archivetest: %v; install it with go install github.com/minio/minio@latest", err)
	}
	m := &MinIO{
		t:       t,
		bin:     bin,
		dir:     t.TempDir(),
		addr:    freeAddr(t),
		console: freeAddr(t),
	}
	m.cfg = archive.S3Config{
		Endpoint:  m.addr,
		AccessKey: "mailgate-test",
		SecretKey: randomHex(t, 16),
		Bucket:    "mailgate-" + randomHex(t, 6),
		Region:    "us-east-1",
	}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Config is the S3 configuration of the server.
func (m *MinIO) Config() archive.S3Config { return m.cfg }

// Start (re)starts the server on its address and data directory and waits
// until it is live. It is a no-op while the server runs.
func (m *MinIO) Start() {
	m.t.Helper()
	if m.cmd != nil {
		return
	}
	cmd := exec.Command(m.bin, "server", m.dir, "--address", m.addr, "--console-address", m.console, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.cfg.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.cfg.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		m.t.Fatalf("archivetest: start minio: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	m.cmd, m.done = cmd, done

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := waitLive(ctx, "http://"+m.addr+"/minio/health/live", done); err != nil {
		m.Stop()
		m.t.Fatalf("archivetest: minio not ready: %v\n%s", err, out.String())
	}
}

// Stop kills the server and waits for it to exit. It is a no-op when stopped.
func (m *MinIO) Stop() {
	if m.cmd == nil {
		return
	}
	_ = m.cmd.Process.Kill()
	<-m.done
	m.cmd, m.done = nil, nil
}

func waitLive(ctx context.Context, url string, exited <-chan struct{}) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		if resp, err := http.DefaultClient.Do(req); err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-exited:
			return errors.New("minio exited")
		case <-tick.C:
		}
	}
}

func findMinIO() (string, error) {
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	for _, dir := range filepath.SplitList(gopath) {
		p := filepath.Join(dir, "bin", "minio")
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	return "", errors.New("minio binary not found in PATH or $GOPATH/bin")
}

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("archivetest: free port: %v", err)
	}
	addr := l.Addr().String()
	if err := l.Close(); err != nil {
		t.Fatalf("archivetest: free port: %v", err)
	}
	return addr
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(fmt.Errorf("archivetest: random: %w", err))
	}
	return hex.EncodeToString(b)
}
