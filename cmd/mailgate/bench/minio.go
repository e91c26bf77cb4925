package bench

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
	"time"

	"github.com/mailgate/mailgate/archive"
)

// minioServer is a MinIO child process on a loopback port.
type minioServer struct {
	cmd  *exec.Cmd
	done chan struct{}
	cfg  archive.S3Config
	out  strings.Builder
}

// findMinIO looks for the minio binary in PATH and in $(go env GOPATH)/bin.
func findMinIO(bin string) (string, error) {
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

// startMinIO runs bin with a data directory under dir on free loopback ports
// and waits until it is live. Stop it with stop.
func startMinIO(ctx context.Context, bin, dir string) (*minioServer, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	console, err := freeAddr()
	if err != nil {
		return nil, err
	}
	secret := make([]byte, 16)
	_, _ = rand.Read(secret)
	m := &minioServer{done: make(chan struct{}), cfg: archive.S3Config{
		Endpoint: addr, AccessKey: "mailgate-bench", SecretKey: hex.EncodeToString(secret),
		Bucket: "mailgate-bench", Region: "us-east-1",
	}}
	m.cmd = exec.Command(bin, "server", filepath.Join(dir, "minio"), "--address", addr, "--console-address", console, "--quiet")
	m.cmd.Env = append(os.Environ(),
		"MINIO_ROOT_USER="+m.cfg.AccessKey,
		"MINIO_ROOT_PASSWORD="+m.cfg.SecretKey,
		"MINIO_BROWSER=off",
		"MINIO_UPDATE=off",
	)
	m.cmd.Stdout, m.cmd.Stderr = &m.out, &m.out
	if err := m.cmd.Start(); err != nil {
		return nil, fmt.Errorf("bench: start minio: %w", err)
	}
	go func() { _ = m.cmd.Wait(); close(m.done) }()

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if err := waitLive(wctx, "http://"+addr+"/minio/health/live", m.done); err != nil {
		m.stop()
		return nil, fmt.Errorf("bench: minio not ready: %w: %s", err, strings.TrimSpace(m.out.String()))
	}
	return m, nil
}

// stop kills the process and waits for it.
func (m *minioServer) stop() {
	_ = m.cmd.Process.Kill()
	<-m.done
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

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("bench: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// minioVersion is the first line of `minio --version`.
func minioVersion(bin string) string {
	out, err := exec.Command(bin, "--version").Output()
	if err != nil {
		return ""
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
