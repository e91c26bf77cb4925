package portal

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestBrowserImportLog renders, for the screenshots, the demo's wizard
// start, the connection page's import log in English and German (with
// e-invoice marks and a filter), and the refusal of a second connection
// of a mailbox.
func TestBrowserImportLog(t *testing.T) {
	at := time.Now().Add(-time.Hour).Truncate(time.Minute)
	valid, invalid := true, false
	h := &fakeHistory{}
	st := ConnectionStatus{
		LastSync: at.Add(50 * time.Minute), NextSync: at.Add(61 * time.Minute), Imported: 6938, Skipped: 1204,
		SkippedByReason: map[string]int64{"inline_image": 1100, "signature_logo": 98, "archive": 6},
		ParkedMails: []ParkedMail{{Subject: "Rechnung 2026-1207 (groß)", From: "buchhaltung@grosshandel.example", ReceivedAt: at.Add(-20 * time.Minute),
			Attempts: 3, NextRetry: at.Add(75 * time.Minute), LastError: "graph: attachment: service unavailable (503)"}},
		Parked: 1,
	}
	e := newEnv(t, func(c *Config, d *Deps) {
		c.DemoRedeem, c.DemoMailbox = true, graphtest.DefaultMailbox
		d.Statuses, d.History, d.Documents = fakeStatuses{st: st}, h, fakeDocuments{}
	})
	c := e.connection(customerA, connector.StateActive)
	obj := func(n string) string { return customerA + "/2026/12/" + n }
	h.set(c.ID, []HistoryEntry{
		{Time: at, ReceivedAt: at.Add(-3 * time.Hour), DocumentID: "d1", Name: "RE-2026-1001.xml", Kind: "xrechnung", Profile: "XRECHNUNG 3.0",
			Subject: "XRechnung RE-2026-1001", From: "xrechnung@stadtwerke-musterstadt.example", InvoiceNumber: "RE-2026-1001", Seller: "Stadtwerke Musterstadt",
			Gross: "6938.45", Currency: "EUR", ObjectKey: obj("a.xml"), RenditionKey: obj("a.pdf"), Valid: &valid},
		{Time: at, ReceivedAt: at.Add(-2 * time.Hour), DocumentID: "d2", Name: "RE-2026-1002.pdf", Kind: "zugferd", Profile: "EN 16931",
			Subject: "ZUGFeRD-Rechnung RE-2026-1002", From: "office@elektro-schmidt.example", InvoiceNumber: "RE-2026-1002", Seller: "Elektro Schmidt KG",
			Gross: "1234.45", Currency: "EUR", ObjectKey: obj("b.pdf"), Valid: &invalid, ErrorCount: 2, Findings: []Finding{
				{Rule: "BR-CO-15", Message: "[BR-CO-15]-Invoice total amount with VAT (BT-112) = Invoice total amount without VAT (BT-109) + Invoice total VAT amount (BT-110)."},
				{Rule: "BR-S-08", Message: "[BR-S-08]-For each different value of VAT category rate (BT-119) where the VAT category code (BT-118) is \"Standard rated\", the VAT category taxable amount (BT-116) in a VAT breakdown (BG-23) shall equal the sum of Invoice line net amounts (BT-131)…"},
			}},
		{Time: at, ReceivedAt: at.Add(-2 * time.Hour), DocumentID: "d3", Name: "image001.png", Reason: "signature_logo", Subject: "ZUGFeRD-Rechnung RE-2026-1002",
			From: "office@elektro-schmidt.example", Detail: "a small image (2841 bytes) named like a signature logo"},
		{Time: at, ReceivedAt: at.Add(-time.Hour), DocumentID: "d4", Name: "RE-2026-1003.pdf", Kind: "pdf", Subject: "Ihre Rechnung RE-2026-1003",
			From: "rechnung@buerobedarf-mueller.example", ObjectKey: obj("c.pdf")},
		{Time: at, ReceivedAt: at.Add(-time.Hour), DocumentID: "d5", Name: "belege.zip", Reason: "archive", Subject: "Ihre Rechnung RE-2026-1003",
			From: "rechnung@buerobedarf-mueller.example", Detail: "the file is an archive (application/zip); archives are not unpacked"},
		{Time: at, ReceivedAt: at.Add(-30 * time.Minute), DocumentID: "d6", Name: "scan_0003.jpg", Kind: "image", Subject: "Scan vom Kopierer",
			From: "kopierer@firma.example", ObjectKey: obj("d.jpg")},
	})
	// The mailbox the duplicate refusal is about.
	if _, err := e.store.Update(t.Context(), c.ID, func(c *connector.Connection) error {
		c.Mailbox, c.UpdatedBy = graphtest.DefaultMailbox, "test"
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	ctx := chromium(t)
	dir := screenshotDir(t)
	err := chromedp.Do(ctx,
		chromedp.Navigate(e.ts.URL+"/login"),
		chromedp.WaitVisible(chromedp.ID("name")),
		chromedp.SendKeys(chromedp.ID("name"), graphtest.DefaultUser),
		chromedp.SendKeys(chromedp.ID("password"), pw),
		chromedp.Submit(chromedp.ID("password")),
		chromedp.WaitVisible(chromedp.CSS(`form[action="/logout"]`)),
		chromedp.Navigate(e.ts.URL+"/connect"),
		chromedp.WaitVisible(chromedp.ID("mailbox")),
		shot(t, dir, "03-connect-form"),
		// The wizard's own mailbox is connected already: refused.
		chromedp.Submit(chromedp.ID("mailbox")),
		chromedp.WaitVisible(chromedp.CSS(`form[action$="/reconnect"]`)),
		shot(t, dir, "20-duplicate-mailbox"),
		chromedp.Navigate(e.ts.URL+"/connections/"+c.ID),
		chromedp.WaitVisible(chromedp.ID("log")),
		chromedp.Click(chromedp.CSS("details.findings summary")),
		shot(t, dir, "21-import-log-en"),
		chromedp.Navigate(e.ts.URL+"/lang?to=de&next=/connections/"+c.ID),
		chromedp.WaitVisible(chromedp.ID("log")),
		chromedp.Click(chromedp.CSS("details.findings summary")),
		shot(t, dir, "22-import-log-de"),
		chromedp.Navigate(e.ts.URL+"/connections/"+c.ID+"?outcome=skipped"),
		chromedp.WaitVisible(chromedp.ID("log")),
		shot(t, dir, "23-import-log-skipped-de"),
	)
	if err != nil {
		t.Fatalf("pages: %v", err)
	}
	html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.ID("log")))
	if err != nil || !strings.Contains(html, "Übersprungen") || strings.Contains(html, "RE-2026-1003.pdf") {
		t.Errorf("filtered German log: %v", err)
	}
}
