package archivetest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/internal/minioproc"
)

// MinIO is a minio server process on a loopback port, for tests. Stop and
// Start let a test make S3 unreachable and bring it back with the same data
// directory and address.
type MinIO struct {
	t   testing.TB
	srv *minioproc.Server
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
	bin, err := minioproc.Find("")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("archivetest: %v (CI must run against real MinIO)", err)
		}
		t.Skipf("archivetest: %v; install it with go install github.com/minio/minio@latest", err)
	}
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("archivetest: random: %v", err)
	}
	srv, err := minioproc.New(bin, t.TempDir(), "mailgate-test", "mailgate-"+hex.EncodeToString(b))
	if err != nil {
		t.Fatalf("archivetest: %v", err)
	}
	m := &MinIO{t: t, srv: srv}
	m.Start()
	t.Cleanup(m.Stop)
	return m
}

// Config is the S3 configuration of the server.
func (m *MinIO) Config() archive.S3Config { return S3Config(m.srv.Endpoint()) }

// S3Config is the archive's configuration for a MinIO endpoint.
func S3Config(e minioproc.Endpoint) archive.S3Config {
	return archive.S3Config{Endpoint: e.Addr, AccessKey: e.AccessKey, SecretKey: e.SecretKey, Bucket: e.Bucket, Region: e.Region}
}

// Start (re)starts the server on its address and data directory and waits
// until it is live. It is a no-op while the server runs.
func (m *MinIO) Start() {
	m.t.Helper()
	if err := m.srv.Start(context.Background()); err != nil {
		m.t.Fatalf("archivetest: %v", err)
	}
}

// Stop kills the server and waits for it to exit. It is a no-op when stopped.
func (m *MinIO) Stop() { m.srv.Stop() }
