package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
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
	p := startProc(t, bin, nil, "demo", "--data-dir", dataDir, "--http-addr", "127.0.0.1:0", "--public-url", "http://localhost:0",
		"--nats-listen", "127.0.0.1:0", "--sim-addr", "127.0.0.1:0", "--mail-every", "0")
	base := p.waitFor(t, portalRE, 60*time.Second)
	password := p.waitFor(t, demoRE, time.Second)
	apiKey := p.waitFor(t, apiKeyRE, time.Second)
	natsURL := p.waitFor(t, natsRE, time.Second)
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
