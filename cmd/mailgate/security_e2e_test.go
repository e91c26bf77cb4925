package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// runCLIInput runs a CLI command with input on standard input.
func runCLIInput(t *testing.T, bin string, env []string, input string, args ...string) string {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdin = strings.NewReader(input)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mailgate %s: %v\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String()
}

// startAdminConnect logs b in and posts the wizard in admin mode; it
// returns the identity platform URL the portal sends the browser to.
func startAdminConnect(t *testing.T, b *browser, user, password string) *url.URL {
	t.Helper()
	resp := b.form("/login", "/login", url.Values{"name": {user}, "password": {password}, "next": {"/"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login %s: %s", user, resp.Status)
	}
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp = b.form("/connect", "/connect", url.Values{
		"mailbox": {graphtest.DefaultMailbox}, "mode": {"admin"},
		"post": {"move"}, "folder": {"Archiviert"}, "backfill": {"new"},
	})
	resp.Body.Close()
	u, err := url.Parse(resp.Header.Get("Location"))
	if resp.StatusCode != http.StatusSeeOther || err != nil {
		t.Fatalf("connect: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	return u
}

// TestAdminConsentForgeryEndToEnd performs issue 11's attack against the
// built binary: a user of customer evil starts an admin connect for firma's
// mailbox, skips Microsoft and calls the callback with firma's tenant and
// their own state. Nothing is connected. Then firma's administrator
// connects the mailbox through the wizard with the sign-in, the tenant is
// bound to firma, and evil, even with a genuine sign-in of firma's
// administrator, cannot connect it again.
func TestAdminConsentForgeryEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	_, base, password, apiKey, natsURL := startDemo(t, bin, dataDir)
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}

	// The operator has a second customer, evil, with a connect user.
	runCLIInput(t, bin, env, "evil-password-123\n", "users", "add", "mallory", "--customer", "evil", "--group", "mailbox-connect", "--password-file", "-")

	// The attack: the callback with firma's tenant and evil's own state.
	evil := newBrowser(t, base)
	signIn := startAdminConnect(t, evil, "mallory", "evil-password-123")
	if !strings.Contains(signIn.Path, "/oauth2/v2.0/authorize") {
		t.Fatalf("admin connect went to %s, want the administrator's sign-in", signIn)
	}
	forged := base + "/connect/callback?" + url.Values{
		"admin_consent": {"True"}, "tenant": {graphtest.DefaultTenantID}, "state": {signIn.Query().Get("state")},
	}.Encode()
	resp, err := evil.c.Get(forged)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusSeeOther || bytes.Contains(body, []byte("data-code")) {
		t.Fatalf("forged admin consent: %s %q", resp.Status, resp.Header.Get("Location"))
	}
	if out := runCLI(t, bin, env, "connections", "list"); strings.Contains(out, "evil") || strings.Contains(out, graphtest.DefaultMailbox) {
		t.Fatalf("after the forgery:\n%s", out)
	}
	if out := runCLI(t, bin, env, "tenants", "list"); strings.Contains(out, graphtest.DefaultTenantID) {
		t.Fatalf("firma's tenant bound after the forgery:\n%s", out)
	}

	// firma's administrator connects the mailbox: sign-in, then approval.
	firma := newBrowser(t, base)
	signIn = startAdminConnect(t, firma, "demo", password)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	back, err := graphtest.Authorize(ctx, firma.c, signIn.String(), graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatalf("admin sign-in: %v", err)
	}
	resp, err = firma.c.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	consentURL := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.Contains(consentURL, "/"+graphtest.DefaultTenantID+"/v2.0/adminconsent") {
		t.Fatalf("after the sign-in: %s %q, want the tenant's admin consent", resp.Status, consentURL)
	}
	back, err = graphtest.Authorize(ctx, firma.c, consentURL, graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatalf("admin consent: %v", err)
	}
	firma.c.CheckRedirect = nil
	page := firma.get(back.String())
	m := codeRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no code after the admin's approval:\n%s", page)
	}
	res := redeem(t, base, apiKey, m[1])
	if conn, _ := res["connection"].(map[string]any); conn["state"] != "active" || conn["mode"] != "app_only" {
		t.Fatalf("redeemed: %v", res)
	}
	if out := runCLI(t, bin, env, "tenants", "list"); !strings.Contains(out, graphtest.DefaultTenantID) || !strings.Contains(out, "firma") {
		t.Errorf("tenants list after firma's connect:\n%s", out)
	}

	// evil again, now even with a genuine sign-in of firma's administrator:
	// the tenant belongs to firma.
	evil = newBrowser(t, base)
	signIn = startAdminConnect(t, evil, "mallory", "evil-password-123")
	back, err = graphtest.Authorize(ctx, evil.c, signIn.String(), graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatalf("sign-in: %v", err)
	}
	resp, err = evil.c.Get(back.String())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("evil with firma's bound tenant: %s %q, want 403", resp.Status, resp.Header.Get("Location"))
	}
	if out := runCLI(t, bin, env, "connections", "list"); strings.Contains(out, "evil") {
		t.Fatalf("evil has a connection:\n%s", out)
	}
}

// vmRSS is the resident memory of process pid in bytes (Linux).
func vmRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// zeros is a form body of n bytes: prefix, then one endless value.
type zeros struct {
	prefix  string
	n, sent int64
}

func (z *zeros) Read(p []byte) (int, error) {
	if z.sent >= z.n {
		return 0, io.EOF
	}
	p = p[:min(int64(len(p)), z.n-z.sent)]
	for i := range p {
		p[i] = 'a'
	}
	if z.sent == 0 {
		copy(p, z.prefix)
	}
	z.sent += int64(len(p))
	return len(p), nil
}

// TestLargeLoginEndToEnd: the 120 MB POST to /login grew the
// process by 200 MB. Against the built binary it is refused (413) and the
// process's resident memory barely moves.
func TestLargeLoginEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	p, base, _, _, _ := startDemo(t, bin, t.TempDir())
	pid := p.cmd.Process.Pid
	for _, tc := range []struct {
		ctype, prefix string
		want          int
	}{
		{"application/x-www-form-urlencoded", "name=", http.StatusRequestEntityTooLarge},
		{"multipart/form-data; boundary=xyz", "--xyz\r\nContent-Disposition: form-data; name=\"name\"\r\n\r\n", http.StatusUnsupportedMediaType},
	} {
		before := vmRSS(t, pid)
		body := &zeros{prefix: tc.prefix, n: 120 << 20}
		req, _ := http.NewRequest(http.MethodPost, base+"/login", body)
		req.Header.Set("Content-Type", tc.ctype)
		status := "connection closed while sending"
		if resp, err := http.DefaultClient.Do(req); err == nil {
			resp.Body.Close()
			status = resp.Status
			if resp.StatusCode != tc.want {
				t.Errorf("120 MB login as %s: %s, want %d", tc.ctype, resp.Status, tc.want)
			}
		}
		after := vmRSS(t, pid)
		t.Logf("120 MB POST /login as %s: %s; %d MB of it sent, resident memory %d → %d MB", tc.ctype, status, body.sent>>20, before>>20, after>>20)
		if after-before > 12<<20 {
			t.Errorf("%s: resident memory grew by %d MB", tc.ctype, (after-before)>>20)
		}
		if body.sent >= body.n {
			t.Errorf("%s: the server took all %d MB", tc.ctype, body.n>>20)
		}
	}
}

// TestRemovedUserLoggedOutEndToEnd: the operator removes a portal user with
// the CLI while the user is logged in; the user's next request goes to the
// login page.
func TestRemovedUserLoggedOutEndToEnd(t *testing.T) {
	bin := mailgateBinary(t)
	dataDir := t.TempDir()
	_, base, _, _, natsURL := startDemo(t, bin, dataDir)
	env := []string{"MAILGATE_NATS_URL=" + natsURL, "MAILGATE_DATA_DIR=" + dataDir}
	runCLIInput(t, bin, env, "leaving-soon-123\n", "users", "add", "lena", "--customer", "firma", "--group", "mailbox-connect", "--password-file", "-")

	b := newBrowser(t, base)
	resp := b.form("/login", "/login", url.Values{"name": {"lena"}, "password": {"leaving-soon-123"}, "next": {"/connect"}})
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Request.URL.Path != "/connect" {
		t.Fatalf("login: %s at %s", resp.Status, resp.Request.URL.Path)
	}
	runCLI(t, bin, env, "users", "remove", "lena")
	b.c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := b.c.Get(base + "/connect")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/login") {
		t.Fatalf("removed user's next request: %s %q, want the login page", resp.Status, resp.Header.Get("Location"))
	}
}
