// Package minioproc runs a MinIO server as a child process on loopback
// ports, for the tests (through archive/archivetest) and for
// `mailgate bench`, which measures against real S3. It knows MinIO, not
// mailgate: its callers turn an Endpoint into their own S3 configuration.
package minioproc

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
	"sync"
	"time"
)

// Server is a minio server process. Stop and Start let a caller make S3
// unreachable and bring it back with the same data directory and address.
type Server struct {
	bin, dir, addr, console string
	cfg                     Endpoint

	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
	out  *syncBuffer
}

// Find returns bin if set, else the minio binary in PATH or in
// $(go env GOPATH)/bin, where `go install github.com/minio/minio@…` puts it.
func Find(bin string) (string, error) {
	if bin != "" {
		return bin, nil
	}
	if p, err := exec.LookPath("minio"); err == nil {
		return p, nil
	}
	gopath := os.Getenv("GOPATH")
	if gopath == "" {
		if out, err := exec.Command("go", "env", "GOPATH").Output(); err == nil {
			gopath = strings.TrimSpace(string(out))
		}
	}
	if gopath == "" {
		if home, err := os.UserHomeDir(); err == nil {
			gopath = filepath.Join(home, "go")
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

// New prepares a server of binary bin with its data under dir, on free
// loopback ports, with a random secret key. The access key and bucket
// name are the caller's. It starts nothing; call Start.
func New(bin, dir, accessKey, bucket string) (*Server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	if _, err := rand.Read(secret); err != nil {
		return nil, fmt.Errorf("minio: secret: %w", err)
	}
	return &Server{
		bin: bin, dir: dir, addr: addr, console: console,
		cfg: Endpoint{
			Addr: addr, AccessKey: accessKey, SecretKey: hex.EncodeToString(secret),
			Bucket: bucket, Region: "us-east-1",
		},
	}, nil
}

// Endpoint is what reaches a server over S3: its loopback host:port (plain
// HTTP), the root credentials, the region, and the bucket name its caller
// chose (the server does not create it).
type Endpoint struct {
	Addr, AccessKey, SecretKey, Bucket, Region string
}

// Endpoint returns how to reach the server.
func (s *Server) Endpoint() Endpoint { return s.cfg }

// Start (re)starts the server on its address and data directory and waits
// until it is live. It is a no-op while the server runs.
func (s *Server) Start(ctx context.Context) error {
	if s.cmd != nil {
		return nil
	}
	cmd := exec.Command(s.bin, "server", s.dir, "--address", s.addr, "--console-address", s.console, "--quiet")
	cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+s.cfg.AccessKey,
		"MINIO_ROOT_PASSWORD="+s.cfg.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	out := new(syncBuffer)
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("minio: start: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.cmd, s.done, s.out = cmd, done, out

	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := waitLive(ctx, "http://"+s.addr+"/minio/health/live", done); err != nil {
		s.Stop()
		return fmt.Errorf("minio: not ready: %w: %s", err, strings.TrimSpace(out.String()))
	}
	return nil
}

// Stop kills the server and waits for it to exit. It is a no-op when
// stopped.
func (s *Server) Stop() {
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Kill()
	<-s.done
	s.cmd, s.done = nil, nil
}

// Version is the first line of `minio --version`, or "".
func Version(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
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

// freeAddr returns a loopback address with a port that was free just now.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("minio: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// syncBuffer collects the process's output, written by exec's copying
// goroutines and read on failure.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (w *syncBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *syncBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}
