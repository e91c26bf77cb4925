package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// The end-to-end tests build the real binary and drive it from outside, as
// a person, a DMS and an operator would.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func mailgateBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test builds the binary; skipped with -short")
	}
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "mailgate-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "mailgate")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

// proc is a running mailgate process whose standard output is read line by
// line.
type proc struct {
	cmd   *exec.Cmd
	mu    sync.Mutex
	lines []string
	more  chan struct{} // closed and replaced when a line arrives
	done  chan struct{}
	log   *bytes.Buffer
}

func startProc(t *testing.T, bin string, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{more: make(chan struct{}), done: make(chan struct{}), log: new(bytes.Buffer)}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(inheritedEnv(), env...)
	p.cmd.Stderr = &syncWriter{w: p.log}
	out, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(p.done)
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			p.mu.Lock()
			p.lines = append(p.lines, sc.Text())
			close(p.more)
			p.more = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.stop()
		if t.Failed() {
			t.Logf("mailgate %s stderr:\n%s", args[0], p.stderr())
		}
	})
	return p
}

func (p *proc) stop() {
	if p.cmd.ProcessState == nil {
		_ = p.cmd.Process.Signal(os.Interrupt)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			// Hung: SIGQUIT makes the Go runtime write every goroutine's
			// stack to stderr, which the failing test prints.
			_ = p.cmd.Process.Signal(syscall.SIGQUIT)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				_ = p.cmd.Process.Kill()
			}
		}
		_ = p.cmd.Wait()
	}
}

func (p *proc) stderr() string {
	w := p.cmd.Stderr.(*syncWriter)
	w.mu.Lock()
	defer w.mu.Unlock()
	return p.log.String()
}

// waitFor returns the first submatch of re in the output, waiting for it.
func (p *proc) waitFor(t *testing.T, re *regexp.Regexp, timeout time.Duration) string {
	t.Helper()
	deadline := time.After(timeout)
	for i := 0; ; {
		p.mu.Lock()
		for ; i < len(p.lines); i++ {
			if m := re.FindStringSubmatch(p.lines[i]); m != nil {
				p.mu.Unlock()
				return m[1]
			}
		}
		more := p.more
		p.mu.Unlock()
		select {
		case <-more:
		case <-p.done:
			t.Fatalf("mailgate exited before printing %s:\n%s", re, p.stderr())
		case <-deadline:
			t.Fatalf("mailgate did not print %s within %s:\n%s", re, timeout, p.stderr())
		}
	}
}

type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(b)
}

// browser is an HTTP client with cookies, as a person's browser would be.
type browser struct {
	t    *testing.T
	c    *http.Client
	base string
}

func newBrowser(t *testing.T, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 30 * time.Second}, base: base}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

// form loads page, takes its CSRF token and posts values to action.
func (b *browser) form(page, action string, values url.Values) *http.Response {
	b.t.Helper()
	body := b.get(page)
	m := csrfRE.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no csrf token on %s:\n%s", page, body)
	}
	values.Set("csrf", m[1])
	req, _ := http.NewRequest(http.MethodPost, b.base+action, strings.NewReader(values.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	return resp
}

func (b *browser) get(path string) string {
	b.t.Helper()
	u := path
	if strings.HasPrefix(path, "/") {
		u = b.base + path
	}
	resp, err := b.c.Get(u)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("GET %s: %s\n%s", path, resp.Status, body)
	}
	return string(body)
}

var (
	portalRE  = regexp.MustCompile(`Portal:\s+(\S+)`)
	demoRE    = regexp.MustCompile(`Log in as:\s+demo / (\S+)`)
	apiKeyRE  = regexp.MustCompile(`DMS API key:\s+(\S+)`)
	natsRE    = regexp.MustCompile(`Watch events:.*--nats-url (\S+)`)
	metricsRE = regexp.MustCompile(`Metrics:\s+http://(\S+)/metrics`)
	codeRE    = regexp.MustCompile(`data-code="([^"]+)"`)
)

// connectMailbox logs in as the demo user, runs the connect wizard through
// the simulated Microsoft consent page and returns the one-time code.
func connectMailbox(t *testing.T, base, password string) string {
	t.Helper()
	return connectMailboxAs(t, newBrowser(t, base), password)
}

// connectMailboxAs is connectMailbox in the browser b.
func connectMailboxAs(t *testing.T, b *browser, password string) string {
	t.Helper()
	resp := b.form("/login", "/login", url.Values{"name": {"demo"}, "password": {password}, "next": {"/"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s", resp.Status)
	}
	// The wizard's POST redirects the browser to Microsoft; stop there and
	// let graphtest.Authorize play the person on the consent page.
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp = b.form("/connect", "/connect", url.Values{
		"mailbox": {graphtest.DefaultMailbox}, "mode": {"delegated"},
		"post": {"move"}, "folder": {"Archiviert"}, "backfill": {"all"},
	})
	resp.Body.Close()
	authURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound || authURL == "" {
		t.Fatalf("connect: %s, want a redirect to Microsoft", resp.Status)
	}
	b.c.CheckRedirect = nil
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	back, err := graphtest.Authorize(ctx, b.c, authURL, graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatalf("consent: %v", err)
	}
	page := b.get(back.String())
	m := codeRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no connection code on the page after consent:\n%s", page)
	}
	return m[1]
}

// redeem calls the DMS API as a DMS would.
func redeem(t *testing.T, base, apiKey, code string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/connections/redeem", strings.NewReader(`{"code":"`+code+`"}`))
	req.Header.Set("Authorization", "Bearer "+apiKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatalf("redeem answer: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("redeem: %s %v", resp.Status, out)
	}
	return out
}

// collect reads events of the stream until want says enough or time runs out.
// It connects as the CLI would, with the credentials in dataDir.
func collect(t *testing.T, natsURL, dataDir string, timeout time.Duration, enough func([]archive.Event) bool) []archive.Event {
	t.Helper()
	nc := cliConnect(t, natsURL, dataDir)
	defer nc.Close()
	js, _ := jetstream.New(nc)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var mu sync.Mutex
	var events []archive.Event
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = archive.Subscribe(ctx, js, archive.SubscribeConfig{}, func(_ context.Context, d *archive.Delivery) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, d.Event)
			if enough(events) {
				cancel()
			}
			return nil
		})
	}()
	<-done
	mu.Lock()
	defer mu.Unlock()
	return append([]archive.Event(nil), events...)
}

// startDemo runs `mailgate demo` on random ports, with env added to the
// environment, and returns the process, the portal's base URL, the demo
// user's password, the DMS API key and the NATS URL from its banner.
func startDemo(t *testing.T, bin, dataDir string, env ...string) (p *proc, base, password, apiKey, natsURL string) {
	t.Helper()
	p = startProc(t, bin, env, "demo", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--public-url", "http://localhost:0",
		"--nats-listen", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--mail-every", "0")
	base = p.waitFor(t, portalRE, 60*time.Second)
	password = p.waitFor(t, demoRE, time.Second)
	apiKey = p.waitFor(t, apiKeyRE, time.Second)
	natsURL = p.waitFor(t, natsRE, time.Second)
	return p, base, password, apiKey, natsURL
}

// demoSamples is what the demo's samples 0..5, delivered before the
// connection, must produce once it is redeemed (backfill "all"): the
// expectation by attachment name, and how many documents and skips.
func demoSamples() (expect map[string]samples.Expect, docs, skips int) {
	expect = map[string]samples.Expect{}
	for i := range 6 {
		for _, e := range samples.Sample(i, time.Now()).Expect {
			expect[e.Name] = e
			if e.Kind != "" {
				docs++
			} else {
				skips++
			}
		}
	}
	return expect, docs, skips
}

// waitForSamples collects the stream's events until the demo samples'
// documents and skips are all there.
func waitForSamples(t *testing.T, natsURL, dataDir string, timeout time.Duration) []archive.Event {
	t.Helper()
	_, wantDocs, wantSkips := demoSamples()
	return collect(t, natsURL, dataDir, timeout, func(evs []archive.Event) bool {
		var docs, skips int
		for _, e := range evs {
			switch e.Type {
			case archive.TypeImported:
				docs++
			case archive.TypeSkipped:
				skips++
			}
		}
		return docs >= wantDocs && skips >= wantSkips
	})
}

func TestDemoEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	p, base, password, apiKey, natsURL := startDemo(t, bin, dataDir)
	metricsBase := "http://" + p.waitFor(t, metricsRE, time.Second)

	code := connectMailbox(t, base, password)
	res := redeem(t, base, apiKey, code)
	conn, _ := res["connection"].(map[string]any)
	if conn["state"] != "active" {
		t.Fatalf("after redeem the connection is %v: %v", conn["state"], res)
	}

	// The demo delivered samples 0..5 before the connection; backfill "all"
	// imports them.
	expect, wantDocs, wantSkips := demoSamples()
	events := waitForSamples(t, natsURL, dataDir, 60*time.Second)
	var docs, skips int
	seen := map[string]bool{}
	for _, e := range events {
		if seen[e.ID] && e.Type != archive.TypeConnectionChanged {
			t.Errorf("event %s published twice", e.ID)
		}
		seen[e.ID] = true
		switch d := e.Data.(type) {
		case *archive.Imported:
			docs++
			want, ok := expect[d.Document.Name]
			if !ok || want.Kind != d.Document.Kind {
				t.Errorf("imported %s as %s, want %+v", d.Document.Name, d.Document.Kind, want)
			}
			obj := filepath.Join(dataDir, "archive", filepath.FromSlash(d.Object.Key))
			if fi, err := os.Stat(obj); err != nil || fi.Size() != d.Document.Size {
				t.Errorf("archived object %s: %v", obj, err)
			}
		case *archive.Skipped:
			skips++
			want, ok := expect[d.Name]
			if !ok || want.Reason != d.Reason {
				t.Errorf("skipped %s for %s, want %+v", d.Name, d.Reason, want)
			}
		}
	}
	if docs != wantDocs || skips != wantSkips {
		t.Fatalf("got %d documents and %d skips, want %d and %d", docs, skips, wantDocs, wantSkips)
	}

	// An operator's view: the metrics the README names, and the CLI.
	checkReadmeMetrics(t, metricsBase)
	if resp, err := http.Get(base + "/metrics"); err != nil {
		t.Error(err)
	} else {
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("/metrics on the portal's listener: %s, want 404", resp.Status)
		}
	}
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}
	out := runCLI(t, bin, env, "connections", "list")
	if !strings.Contains(out, graphtest.DefaultMailbox) || !strings.Contains(out, "active") {
		t.Errorf("connections list:\n%s", out)
	}
	var doc *archive.Imported
	var docID string
	for _, e := range events {
		if d, ok := e.Data.(*archive.Imported); ok {
			doc, docID = d, e.ID
			break
		}
	}
	file := filepath.Join(t.TempDir(), "doc")
	runCLI(t, bin, env, "archive", "get", docID, "-o", file)
	if b, err := os.ReadFile(file); err != nil || int64(len(b)) != doc.Document.Size || sha256hex(b) != doc.Document.SHA256 {
		t.Errorf("archive get %s: %d bytes, err %v; want %d bytes with sha %s", docID, len(b), err, doc.Document.Size, doc.Document.SHA256)
	}
	tail := runCLI(t, bin, env, "archive", "tail", "--since", "1h", "--timeout", "3s")
	if n := strings.Count(tail, `"type":"mailgate.document.`); n != wantDocs+wantSkips {
		t.Errorf("archive tail printed %d document events, want %d", n, wantDocs+wantSkips)
	}
	show := runCLI(t, bin, env, "connections", "show", conn["id"].(string))
	var shown struct {
		Connection map[string]any `json:"connection"`
		Import     struct {
			Imported        int64            `json:"imported"`
			SkippedByReason map[string]int64 `json:"skippedByReason"`
		} `json:"import"`
	}
	if err := json.Unmarshal([]byte(show), &shown); err != nil || shown.Import.Imported != int64(wantDocs) ||
		shown.Import.SkippedByReason["inline_image"] != 2 || strings.Contains(show, "refreshToken") {
		t.Errorf("connections show (err %v):\n%s", err, show)
	}
	out = runCLI(t, bin, env, "connections", "test", conn["id"].(string))
	if !strings.Contains(out, "read true, write true") {
		t.Errorf("connections test:\n%s", out)
	}
	// The CLI redeems through the portal's rules: a used code is refused.
	redo := exec.Command(bin, "connections", "redeem", code, "--customer", "firma")
	redo.Env = append(os.Environ(), env...)
	if out, err := redo.CombinedOutput(); err == nil || !strings.Contains(string(out), "invalid, expired or used") {
		t.Errorf("connections redeem of a used code: err %v, want the invalid-code answer:\n%s", err, out)
	}

	// Later passes (the demo polls every 5 s) find nothing new: no second
	// event for any document.
	again := collect(t, natsURL, dataDir, 12*time.Second, func([]archive.Event) bool { return false })
	var docEvents int
	for _, e := range again {
		if e.Type != archive.TypeConnectionChanged {
			docEvents++
		}
	}
	if docEvents != wantDocs+wantSkips {
		t.Errorf("after more passes the stream has %d document events, want %d", docEvents, wantDocs+wantSkips)
	}
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// runCLI runs a mailgate CLI command and returns its standard output.
func runCLI(t *testing.T, bin string, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(inheritedEnv(), env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mailgate %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

var readmeMetricRE = regexp.MustCompile("^\\| `(mailgate_[a-z_]+)")

// checkReadmeMetrics asserts that every metric the README's table names is
// served, except those documented to exist only for app-only connections.
func checkReadmeMetrics(t *testing.T, base string) {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	n := 0
	for _, line := range strings.Split(string(readme), "\n") {
		m := readmeMetricRE.FindStringSubmatch(line)
		if m == nil || strings.Contains(line, "only for app-only") || strings.Contains(line, "only once a webhook") {
			continue
		}
		n++
		if !regexp.MustCompile(`(?m)^` + m[1] + `(_bucket|_sum|_count)?[{ ]`).Match(body) {
			t.Errorf("README names metric %s, /metrics does not serve it", m[1])
		}
	}
	if n < 10 {
		t.Errorf("found only %d metrics in the README's table", n)
	}
}
