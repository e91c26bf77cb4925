package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"
)

// The operator's friction (issue 24): each test runs the built binary as an
// operator starts it, with environment variables only, and asserts the
// line a person reads.

// inheritedEnv is the test's environment without the MAILGATE_* variables
// that only tests read (MAILGATE_FAULTS_SERIAL, …), which the binary
// refuses as unknown.
func inheritedEnv() []string {
	known := knownVariables()
	var out []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "MAILGATE_") && !slices.Contains(known, name) {
			continue
		}
		out = append(out, kv)
	}
	return out
}

// runBare runs the binary in an empty temporary directory with exactly env
// (no inherited MAILGATE_* variables, no server anywhere) and returns its
// output and exit code.
func runBare(t *testing.T, bin string, env []string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir}, env...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case err == nil:
	case errors.As(err, &exit):
		code = exit.ExitCode()
	default:
		t.Fatalf("mailgate %s: %v", strings.Join(args, " "), err)
	}
	return o.String(), e.String(), code
}

// Item 10: every command's help works with no server and no environment,
// and a command group's help lists its subcommands.
func TestHelpOffline(t *testing.T) {
	bin := mailgateBinary(t)
	for name, subs := range commandGroups() {
		for _, args := range [][]string{{name, "--help"}, {name, "-h"}, {name, "help"}, {"help", name}} {
			out, errOut, code := runBare(t, bin, nil, args...)
			if code != 0 {
				t.Errorf("mailgate %s: exit %d, want 0\n%s", strings.Join(args, " "), code, errOut)
				continue
			}
			if !strings.HasPrefix(out, "Usage: mailgate "+name+" SUBCOMMAND [flags]\n") {
				t.Errorf("mailgate %s: first line %q", strings.Join(args, " "), strings.SplitN(out, "\n", 2)[0])
			}
			for _, s := range subs {
				if line := "  " + strings.TrimSpace(s.name+" "+s.args) + "\n"; !strings.Contains(out, line) {
					t.Errorf("mailgate %s does not list %q", strings.Join(args, " "), line)
				}
			}
		}
		for _, s := range subs {
			_, errOut, code := runBare(t, bin, nil, name, s.name, "--help")
			if code != 0 || !strings.Contains(errOut, "Usage of mailgate "+name+" "+s.name+":") {
				t.Errorf("mailgate %s %s --help: exit %d\n%s", name, s.name, code, errOut)
			}
		}
		// An unknown subcommand is refused without a server, and says so.
		_, errOut, code := runBare(t, bin, nil, name, "frob")
		if want := "mailgate " + name + `: unknown subcommand "frob"`; code != 2 || !strings.HasPrefix(errOut, want+"\n") {
			t.Errorf("mailgate %s frob: exit %d, want 2 and %q first:\n%s", name, code, want, errOut)
		}
	}
	for _, name := range []string{"serve", "demo", "sim", "bench", "healthcheck"} {
		_, errOut, code := runBare(t, bin, nil, name, "--help")
		if code != 0 || !strings.Contains(errOut, "Usage") {
			t.Errorf("mailgate %s --help: exit %d\n%s", name, code, errOut)
		}
	}
}

// Item 12: the give-up horizon defaults to three days.
func TestRetryForDefault(t *testing.T) {
	bin := mailgateBinary(t)
	_, errOut, code := runBare(t, bin, nil, "serve", "--help")
	if want := `(env MAILGATE_RETRY_FOR) (default "72h")`; code != 0 || !strings.Contains(errOut, want) {
		t.Errorf("serve --help: exit %d, want the line ending %q:\n%s", code, want, errOut)
	}
}

// operatorEnv is a complete configuration of `mailgate serve` on loopback
// with a fresh data directory, as an operator writes it.
func operatorEnv(t *testing.T) []string {
	t.Helper()
	return []string{
		"MAILGATE_DATA_DIR=" + t.TempDir(),
		"MAILGATE_SECRET_KEY=" + testKey,
		"MAILGATE_MS_CLIENT_ID=11111111-2222-3333-4444-555555555555",
		"MAILGATE_MS_CLIENT_SECRET=s3cr3t",
		"MAILGATE_HTTP_ADDR=127.0.0.1:0",
		"MAILGATE_NATS_LISTEN=127.0.0.1:0",
	}
}

// Item 8: mistakes that were silently accepted stop start-up (or warn)
// with one line that says what to fix.
func TestConfigMistakesSaid(t *testing.T) {
	bin := mailgateBinary(t)
	keyFile := t.TempDir() + "/key"
	if err := os.WriteFile(keyFile, []byte(testKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		env  []string
		line string
	}{
		{"misspelt", []string{"MAILGATE_S3_ENDPIONT=minio:9000"},
			"mailgate: config: unknown variable MAILGATE_S3_ENDPIONT; did you mean MAILGATE_S3_ENDPOINT?"},
		{"misspelt file", []string{"MAILGATE_SECRET_KEY_FIEL=" + keyFile},
			"mailgate: config: unknown variable MAILGATE_SECRET_KEY_FIEL; did you mean MAILGATE_SECRET_KEY_FILE?"},
		{"key and file", []string{"MAILGATE_SECRET_KEY_FILE=" + keyFile},
			"mailgate: config: MAILGATE_SECRET_KEY and MAILGATE_SECRET_KEY_FILE are both set: set one of them"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, errOut, code := runBare(t, bin, append(operatorEnv(t), tc.env...), "serve")
			if code != 2 || !slices.Contains(strings.Split(errOut, "\n"), tc.line) {
				t.Errorf("exit %d, want 2 and the line\n%s\ngot:\n%s%s", code, tc.line, out, errOut)
			}
		})
	}
	// The CLI refuses them too: a misspelt MAILGATE_NATS_URL would reach
	// another server.
	_, errOut, code := runBare(t, bin, []string{"MAILGATE_NATS_ULR=nats://nats:4222"}, "users", "list")
	if want := "mailgate: config: unknown variable MAILGATE_NATS_ULR; did you mean MAILGATE_NATS_URL?"; code != 2 || !strings.HasPrefix(errOut, want+"\n") {
		t.Errorf("users list: exit %d, want 2 and %q:\n%s", code, want, errOut)
	}

	// A public URL on this host with another port than the listener: a
	// warning, and mailgate starts.
	port := freePorts(t, 1)[0]
	env := append(operatorEnv(t), fmt.Sprintf("MAILGATE_HTTP_ADDR=127.0.0.1:%d", port), "MAILGATE_PUBLIC_URL=http://localhost:8081")
	p := startProc(t, bin, env, "serve")
	p.waitFor(t, serveNATSRE, time.Minute)
	want := fmt.Sprintf("mailgate: config: warning: MAILGATE_PUBLIC_URL=http://localhost:8081 names port 8081, but mailgate listens on 127.0.0.1:%d (MAILGATE_HTTP_ADDR): the portal's links and the OAuth redirect will not reach it; set the same port in both", port)
	if !slices.Contains(strings.Split(p.stderr(), "\n"), want) {
		t.Errorf("no warning line\n%s\nin:\n%s", want, p.stderr())
	}
}
