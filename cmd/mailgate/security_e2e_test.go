package main

import (
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// cliConnect connects to a mailgate's embedded NATS as the CLI does, with
// the CLI credentials in its data directory.
func cliConnect(t *testing.T, natsURL, dataDir string) *nats.Conn {
	t.Helper()
	auth, err := nats.NkeyOptionFromSeed(filepath.Join(dataDir, "nats-auth", "cli.nk"))
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(natsURL, auth)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	return nc
}

// startDemo runs `mailgate demo` on random ports and returns the process,
// the portal's base URL, the demo user's password, the DMS API key and
// the NATS URL from its banner.
func startDemo(t *testing.T, bin, dataDir string) (p *proc, base, password, apiKey, natsURL string) {
	t.Helper()
	p = startProc(t, bin, nil, "demo", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--public-url", "http://localhost:0",
		"--nats-listen", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--mail-every", "0")
	base = p.waitFor(t, portalRE, 60*time.Second)
	password = p.waitFor(t, demoRE, time.Second)
	apiKey = p.waitFor(t, apiKeyRE, time.Second)
	natsURL = p.waitFor(t, natsRE, time.Second)
	return p, base, password, apiKey, natsURL
}

// TestNATSAuthEndToEnd attacks a running mailgate's embedded NATS as a
// local process without credentials would, and checks that the operator's
// CLI still works with the credentials it finds in the data directory.
func TestNATSAuthEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	_, _, _, _, natsURL := startDemo(t, bin, dataDir)
	if !strings.HasPrefix(natsURL, "nats://127.0.0.1:") {
		t.Errorf("embedded NATS listens at %s, want loopback", natsURL)
	}

	t.Run("credentials are private", func(t *testing.T) {
		dir := filepath.Join(dataDir, "nats-auth")
		fi, err := os.Stat(dir)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o700 {
			t.Errorf("%s has mode %v, want 0700", dir, fi.Mode().Perm())
		}
		n := 0
		err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			n++
			info, err := d.Info()
			if err != nil {
				return err
			}
			if info.Mode().Perm()&0o077 != 0 {
				t.Errorf("%s has mode %v: readable beyond its owner", path, info.Mode().Perm())
			}
			return nil
		})
		if err != nil || n != 2 {
			t.Errorf("walk %s: %v, %d credential files, want 2", dir, err, n)
		}
	})

	t.Run("anonymous client refused", func(t *testing.T) {
		nc, err := nats.Connect(natsURL, nats.Timeout(5*time.Second))
		if err == nil {
			defer nc.Close()
			// Had it connected: could it read state or events?
			_, kvErr := nc.Request("$JS.API.STREAM.MSG.GET.KV_connections", []byte(`{"last_by_subj":"$KV.connections.>"}`), 2*time.Second)
			t.Fatalf("anonymous connect accepted (KV read: %v)", kvErr)
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("anonymous connect: %v, want an authorization violation", err)
		}
	})

	t.Run("unknown nkey refused", func(t *testing.T) {
		kp, _ := nkeys.CreateUser()
		seed, _ := kp.Seed()
		f := filepath.Join(t.TempDir(), "stranger.nk")
		if err := os.WriteFile(f, seed, 0o600); err != nil {
			t.Fatal(err)
		}
		auth, err := nats.NkeyOptionFromSeed(f)
		if err != nil {
			t.Fatal(err)
		}
		nc, err := nats.Connect(natsURL, auth, nats.Timeout(5*time.Second))
		if err == nil {
			nc.Close()
			t.Fatal("a client with an nkey of its own making was admitted")
		}
		if !errors.Is(err, nats.ErrAuthorization) {
			t.Errorf("stranger's connect: %v, want an authorization violation", err)
		}
	})

	t.Run("CLI finds its credentials", func(t *testing.T) {
		env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}
		out := runCLI(t, bin, env, "users", "list")
		if !strings.Contains(out, "demo") {
			t.Errorf("users list:\n%s", out)
		}
		out = runCLI(t, bin, env, "archive", "tail", "--since", "1h", "--timeout", "2s")
		_ = out // no connection yet, so no events: reading the stream without an error is the point
		// Without the data dir, the CLI is refused and says where to look.
		cmd := exec.Command(bin, "connections", "list")
		cmd.Env = append(os.Environ(), "MAILGATE_NATS_URL="+natsURL, "MAILGATE_DATA_DIR="+t.TempDir())
		b, err := cmd.CombinedOutput()
		if err == nil || !strings.Contains(string(b), "wants credentials") {
			t.Errorf("CLI without credentials: err %v\n%s", err, b)
		}
	})
	_ = graphtest.DefaultMailbox
}
