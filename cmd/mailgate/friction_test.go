package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
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

// httpGet returns the status and body of url.
func httpGet(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

var metricsLogRE = regexp.MustCompile(`"msg":"metrics listening","addr":"([^"]+)"`)

// startServe starts `mailgate serve` with env and returns the process, its
// portal's base URL and its metrics' base URL.
func startServe(t *testing.T, env []string) (p *proc, base, metrics string) {
	t.Helper()
	p = startProc(t, mailgateBinary(t), append(env, "MAILGATE_METRICS_ADDR=127.0.0.1:0"), "serve")
	base = "http://" + p.waitFor(t, httpAddrRE, time.Minute)
	var m []string
	eventually(t, 10*time.Second, "the metrics address in the log", func() bool {
		m = metricsLogRE.FindStringSubmatch(p.stderr())
		return m != nil
	})
	return p, base, "http://" + m[1]
}

// metricValue is the value of the series (name and labels as exposed).
func metricValue(t *testing.T, metrics, series string) string {
	t.Helper()
	_, body := httpGet(t, metrics+"/metrics")
	for _, line := range strings.Split(body, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	t.Fatalf("no series %s in /metrics", series)
	return ""
}

// Item 9: /readyz names each problem on its own line, and
// mailgate_infrastructure_up agrees with it while no pass runs.
func TestReadyzLinePerProblem(t *testing.T) {
	env := operatorEnv(t)
	dataDir := strings.TrimPrefix(env[0], "MAILGATE_DATA_DIR=")
	_, base, metrics := startServe(t, env)
	if code, body := httpGet(t, base+"/readyz"); code != 200 {
		t.Fatalf("/readyz %d before the fault: %s", code, body)
	}
	if v := metricValue(t, metrics, `mailgate_infrastructure_up{component="storage"}`); v != "1" {
		t.Errorf("infrastructure_up storage %s before the fault, want 1", v)
	}
	// The archive and the spool directory vanish (a volume unmounted).
	for _, d := range []string{"archive", "spool"} {
		if err := os.RemoveAll(filepath.Join(dataDir, d)); err != nil {
			t.Fatal(err)
		}
	}
	code, body := httpGet(t, base+"/readyz")
	lines := strings.Split(strings.TrimSpace(body), "\n")
	if code != http.StatusServiceUnavailable || len(lines) != 3 || lines[0] != "not ready" ||
		!strings.HasPrefix(lines[1], "storage: directory "+filepath.Join(dataDir, "archive")+": ") ||
		!strings.HasPrefix(lines[2], "spool: ") || !strings.Contains(lines[2], "no such file or directory") {
		t.Errorf("/readyz %d, want 503 with a line per problem:\n%s", code, body)
	}
	for comp, want := range map[string]string{"storage": "0", "disk": "0", "nats": "1"} {
		if v := metricValue(t, metrics, `mailgate_infrastructure_up{component="`+comp+`"}`); v != want {
			t.Errorf("mailgate_infrastructure_up{component=%q} = %s while /readyz says %q, want %s", comp, v, body, want)
		}
	}
	if v := metricValue(t, metrics, "mailgate_ready"); v != "0" {
		t.Errorf("mailgate_ready %s, want 0", v)
	}
}

// fakeS3 answers what a store's start and readiness ask (the bucket's
// location and existence), as MinIO would for an existing bucket.
func fakeS3() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["location"]; ok {
			w.Header().Set("Content-Type", "application/xml")
			io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><LocationConstraint xmlns="http://s3.amazonaws.com/doc/2006-03-01/">us-east-1</LocationConstraint>`)
			return
		}
		w.WriteHeader(http.StatusOK)
	})
}

// Item 7: start-up problems are said in the operator's terms.
func TestStartupErrorsSaid(t *testing.T) {
	bin := mailgateBinary(t)

	t.Run("s3 unreachable", func(t *testing.T) {
		port := freePorts(t, 1)[0]
		endpoint := fmt.Sprintf("127.0.0.1:%d", port)
		p, base, metrics := startServe(t, append(operatorEnv(t), "MAILGATE_S3_ENDPOINT="+endpoint,
			"MAILGATE_S3_ACCESS_KEY=mailgate", "MAILGATE_S3_SECRET_KEY=mailgate-secret", "MAILGATE_S3_BUCKET=documents", "MAILGATE_S3_SECURE=false"))
		wantLog := `"msg":"storage: S3 at ` + endpoint + ` (MAILGATE_S3_ENDPOINT) is not reachable; not ready, retrying with backoff"`
		if !strings.Contains(p.stderr(), wantLog) {
			t.Errorf("no log line %s in:\n%s", wantLog, p.stderr())
		}
		code, body := httpGet(t, base+"/readyz")
		wantLine := "storage: S3 at " + endpoint + " (MAILGATE_S3_ENDPOINT): not reachable since start: "
		if code != http.StatusServiceUnavailable || !strings.Contains(body, "\n"+wantLine) || !strings.Contains(body, "connection refused") {
			t.Errorf("/readyz %d, want 503 with a line starting %q and the error:\n%s", code, wantLine, body)
		}
		if v := metricValue(t, metrics, `mailgate_infrastructure_up{component="storage"}`); v != "0" {
			t.Errorf("infrastructure_up storage %s while S3 is unreachable, want 0", v)
		}
		// S3 appears: mailgate becomes ready by itself.
		ln, err := net.Listen("tcp", endpoint)
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: fakeS3()}
		go srv.Serve(ln) //nolint:errcheck // closed below
		t.Cleanup(func() { srv.Close() })
		ready := `"msg":"storage: S3 at ` + endpoint + ` (MAILGATE_S3_ENDPOINT) is reachable, ready"`
		eventually(t, time.Minute, "the line "+ready, func() bool { return strings.Contains(p.stderr(), ready) })
		if code, body := httpGet(t, base+"/readyz"); code != 200 {
			t.Errorf("/readyz %d once S3 answers: %s", code, body)
		}
		if v := metricValue(t, metrics, `mailgate_infrastructure_up{component="storage"}`); v != "1" {
			t.Errorf("infrastructure_up storage %s once S3 answers, want 1", v)
		}
	})

	t.Run("nats port in use", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		addr := ln.Addr().String()
		start := time.Now()
		_, errOut, code := runBare(t, bin, append(operatorEnv(t), "MAILGATE_NATS_LISTEN="+addr), "serve")
		want := "mailgate serve: nats: embedded server: MAILGATE_NATS_LISTEN=" + addr + ": address already in use (another mailgate or NATS listens there): stop it or set MAILGATE_NATS_LISTEN to a free address"
		if code != 1 || !slices.Contains(strings.Split(errOut, "\n"), want) {
			t.Errorf("exit %d, want 1 and the line\n%s\ngot:\n%s", code, want, errOut)
		}
		if took := time.Since(start); took > 10*time.Second {
			t.Errorf("took %v to say so, want at once", took)
		}
	})

	t.Run("data dir not writable", func(t *testing.T) {
		// The binary and the parent of the data dir belong to this user;
		// mailgate runs as another (nobody) when the test runs as root.
		dir := t.TempDir()
		for _, d := range []string{filepath.Dir(dir), dir} { // t.TempDir's are 0700
			if err := os.Chmod(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		exe := filepath.Join(dir, "mailgate")
		b, err := os.ReadFile(bin)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(exe, b, 0o755); err != nil {
			t.Fatal(err)
		}
		locked := filepath.Join(dir, "locked")
		if err := os.Mkdir(locked, 0o500); err != nil {
			t.Fatal(err)
		}
		dataDir := filepath.Join(locked, "data")
		cmd := exec.Command(exe, "serve")
		cmd.Dir = dir
		env := operatorEnv(t)
		env[0] = "MAILGATE_DATA_DIR=" + dataDir
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
		uid := os.Getuid()
		if uid == 0 {
			uid = 65534
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		}
		name := fmt.Sprint(uid)
		if u, err := user.LookupId(name); err == nil {
			name = u.Username
		}
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("mailgate serve: data dir MAILGATE_DATA_DIR=%s is not writable by user %s (uid %d), which mailgate runs as: mkdir %s: permission denied", dataDir, name, uid, dataDir)
		if cmd.ProcessState.ExitCode() != 1 || !slices.Contains(strings.Split(string(out), "\n"), want) {
			t.Errorf("exit %d, want 1 and the line\n%s\ngot:\n%s", cmd.ProcessState.ExitCode(), want, out)
		}
	})
}
