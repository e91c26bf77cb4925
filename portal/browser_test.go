package portal

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

const chromiumPath = "/usr/bin/chromium"

// chromium starts a headless Chromium for the test, or skips (fails on CI)
// when it is not installed.
func chromium(t *testing.T) context.Context {
	t.Helper()
	if _, err := os.Stat(chromiumPath); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("chromium missing on CI: %v", err)
		}
		t.Skipf("chromium not installed: %v", err)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 900),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(t.Context(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(cancel)
	// The first run starts the browser; it must not carry a timeout.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	t.Cleanup(cancelT)
	return ctx
}

func screenshotDir(t *testing.T) string {
	dir := os.Getenv("MAILGATE_SCREENSHOTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// shot writes a full-page PNG screenshot.
func shot(t *testing.T, dir, name string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		buf, err := chromedp.FullScreenshot(100)(ctx, tg)
		if err != nil {
			return err
		}
		p := filepath.Join(dir, name+".png")
		if err := os.WriteFile(p, buf, 0o644); err != nil {
			return err
		}
		t.Logf("screenshot %s", p)
		return nil
	})
}

func TestBrowserWizard(t *testing.T) {
	e := newEnv(t)
	ctx := chromium(t)
	dir := screenshotDir(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.ts.URL+"/connections"),
		chromedp.WaitVisible(chromedp.ID("name")),
		shot(t, dir, "01-login"),
		chromedp.SendKeys(chromedp.ID("name"), graphtest.DefaultUser),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS("section.empty, table.list")),
		shot(t, dir, "02-connections"),
		chromedp.Navigate(e.ts.URL+"/connect"),
		chromedp.WaitVisible(chromedp.ID("mailbox")),
		chromedp.SendKeys(chromedp.ID("mailbox"), graphtest.DefaultMailbox),
		shot(t, dir, "03-connect-form"),
		chromedp.Submit(chromedp.ID("mailbox")),
		// The simulator's sign-in and consent page.
		chromedp.WaitVisible(chromedp.CSS("input[name=passwd]")),
		chromedp.SetValue(chromedp.CSS("input[name=login]"), graphtest.DefaultUser),
		chromedp.SendKeys(chromedp.CSS("input[name=passwd]"), graphtest.DefaultPassword),
		shot(t, dir, "04-microsoft-consent"),
		chromedp.Click(chromedp.ID("accept")),
		chromedp.WaitVisible(chromedp.ID("code")),
		shot(t, dir, "05-code"),
	)
	if err != nil {
		t.Fatalf("wizard: %v", err)
	}
	attr, err := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.ID("code"), "data-code"))
	if err != nil || attr.Value == "" {
		t.Fatalf("no code on the page: %v", err)
	}
	code := attr.Value
	status, body, _ := e.api("POST", "/api/v1/connections/redeem", e.apiKey(customerA), map[string]string{"code": code})
	if status != 200 {
		t.Fatalf("redeem %q: %d %v", code, status, body)
	}
	// The page refreshes itself within 5 seconds and says connected.
	err = chromedp.Do(ctx,
		chromedp.WaitVisible(chromedp.ID("to-connection")),
		shot(t, dir, "06-connected"),
		chromedp.Click(chromedp.ID("to-connection")),
		chromedp.WaitVisible(chromedp.CSS(".badge.big")),
		shot(t, dir, "07-detail"),
	)
	if err != nil {
		t.Fatalf("after redeem: %v", err)
	}
	page, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("main")))
	if err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx,
		chromedp.Navigate(e.ts.URL+"/lang?to=de&next=/connections"),
		chromedp.WaitVisible(chromedp.CSS("table.list")),
		shot(t, dir, "08-list-de"),
	); err != nil {
		t.Fatalf("german list: %v", err)
	}
	if !strings.Contains(page, "Active") || !strings.Contains(page, graphtest.DefaultMailbox) {
		t.Errorf("detail page: %s", page)
	}
	cs, _ := e.store.List(t.Context())
	if len(cs) != 1 || cs[0].State != connector.StateActive {
		t.Errorf("connections %+v", cs)
	}
}

// TestBrowserPages renders the other pages a person meets, for the
// screenshots: a cancelled consent, a failing connection with history, the
// disconnect confirmation and explanation, the 403 page, a German code page.
func TestBrowserPages(t *testing.T) {
	now := time.Now()
	st := ConnectionStatus{
		LastSync: now.Add(-2 * time.Minute), NextSync: now.Add(time.Minute), LastError: "graph: delta: transient",
		Imported: 128, Skipped: 9, SkippedByReason: map[string]int64{"inline_image": 6, "duplicate_of": 2, "type_not_allowed": 1},
		Recent: []HistoryEntry{
			{Time: now.Add(-3 * time.Minute), DocumentID: "d1", Name: "RE-2026-0815.pdf", Subject: "Rechnung 2026-0815"},
			{Time: now.Add(-3 * time.Minute), Name: "image001.png", Reason: "inline_image", Subject: "Rechnung 2026-0815"},
			{Time: now.Add(-9 * time.Minute), DocumentID: "d2", Name: "xrechnung.xml", Subject: "XRechnung 4711"},
		},
	}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses = fakeStatuses{st: st} })
	if err := e.srv.users.Add(t.Context(), "bob@acme.example", customerA, pw, nil); err != nil {
		t.Fatal(err)
	}
	c := e.connection(customerA, connector.StateActive)
	if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
		c.State, c.LastError, c.UpdatedBy = connector.StateFailing, "graph: delta: transient (503)", "importer"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	pending, _ := e.issue(customerA)
	ctx := chromium(t)
	dir := screenshotDir(t)
	login := func(name string) chromedp.Action[chromedp.Void] {
		return chromedp.Steps(
			chromedp.Navigate(e.ts.URL+"/login"),
			chromedp.WaitVisible(chromedp.ID("name")),
			chromedp.SendKeys(chromedp.ID("name"), name),
			chromedp.SendKeys(chromedp.ID("password"), pw),
			chromedp.Submit(chromedp.ID("password")),
			// The login page has a main h1 too: wait for what only a
			// signed-in page has, or the next Navigate aborts the POST.
			chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)),
		)
	}
	err := chromedp.Do(ctx,
		login(graphtest.DefaultUser),
		chromedp.Navigate(e.ts.URL+"/connections/"+c.ID),
		chromedp.WaitVisible(chromedp.CSS(".badge.big")),
		shot(t, dir, "10-detail-failing"),
		chromedp.Navigate(e.ts.URL+"/connections/"+c.ID+"/disconnect"),
		chromedp.WaitVisible(chromedp.CSS("button.danger.solid")),
		shot(t, dir, "11-disconnect-confirm"),
		chromedp.Click(chromedp.CSS("button.danger.solid")),
		chromedp.WaitVisible(chromedp.CSS("ol.steps")),
		shot(t, dir, "12-disconnected"),
		chromedp.Navigate(e.ts.URL+"/connect"),
		chromedp.WaitVisible(chromedp.ID("mailbox")),
		chromedp.SendKeys(chromedp.ID("mailbox"), graphtest.DefaultMailbox),
		chromedp.Submit(chromedp.ID("mailbox")),
		chromedp.WaitVisible(chromedp.ID("cancel")),
		chromedp.Click(chromedp.ID("cancel")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)), // back on the portal
		shot(t, dir, "13-consent-cancelled"),
		chromedp.Navigate(e.ts.URL+"/connect"),
		chromedp.WaitVisible(chromedp.ID("mailbox")),
		chromedp.SendKeys(chromedp.ID("mailbox"), "rechnungen@acme.example"),
		chromedp.Clear(chromedp.ID("folder")),
		chromedp.Click(chromedp.CSS("button.primary[type=submit]")),
		chromedp.WaitVisible(chromedp.CSS(".alert.error")),
		shot(t, dir, "14-form-errors"),
		chromedp.Navigate(e.ts.URL+"/lang?to=de&next=/connections/"+pending.ID+"/code"),
		chromedp.WaitVisible(chromedp.CSS("main h1")),
		shot(t, dir, "15-code-gone-de"),
	)
	if err != nil {
		t.Fatalf("pages: %v", err)
	}
	// A user outside the connect group.
	ctx2 := chromium(t)
	if err := chromedp.Do(ctx2, login("bob@acme.example"), shot(t, dir, "16-forbidden")); err != nil {
		t.Fatalf("forbidden: %v", err)
	}
	html, err := chromedp.Run(ctx2, chromedp.OuterHTML(chromedp.CSS("main")))
	if err != nil || !strings.Contains(html, "mailbox-connect") {
		t.Errorf("403 page: %v %s", err, html)
	}
}
