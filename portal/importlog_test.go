package portal

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// fakeHistory answers History from a fixed list per connection.
type fakeHistory struct {
	mu      sync.Mutex
	entries map[string][]HistoryEntry
}

func (f *fakeHistory) History(_ context.Context, id string) ([]HistoryEntry, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.entries[id], nil
}

func (f *fakeHistory) set(id string, h []HistoryEntry) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.entries == nil {
		f.entries = map[string][]HistoryEntry{}
	}
	f.entries[id] = h
}

// fakeDocuments is an archive of objects by key.
type fakeDocuments map[string]string

func (f fakeDocuments) Get(_ context.Context, key string) (io.ReadCloser, archive.Info, error) {
	b, ok := f[key]
	if !ok {
		return nil, archive.Info{}, fmt.Errorf("get %s: %w", key, archive.ErrNotFound)
	}
	return io.NopCloser(strings.NewReader(b)), archive.Info{Key: key, Size: int64(len(b)), ContentType: "application/pdf"}, nil
}

func german(b *browser, path string) resp {
	b.e.t.Helper()
	b.get("/lang?to=de&next=/connections")
	r := b.get(path)
	b.get("/lang?to=en&next=/connections")
	return r
}

var rowRE = regexp.MustCompile(`<tr class="row-(\w+)">\s*<td class="when">([^<]*)</td>`)

// TestGermanPageFormats: a German page writes amounts, counts and times
// the German way, in the viewers' zone, and its skip details in German
// (the reason codes stay); the English page keeps English formats.
func TestGermanPageFormats(t *testing.T) {
	received := time.Date(2026, 12, 1, 8, 30, 0, 0, time.UTC)
	h := &fakeHistory{}
	st := ConnectionStatus{LastSync: received.Add(time.Hour), Imported: 1234, Skipped: 2}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses, d.History = fakeStatuses{st: st}, h })
	c := e.connection(customerA, connector.StateActive)
	h.set(c.ID, []HistoryEntry{
		{Time: received.Add(time.Hour), ReceivedAt: received, DocumentID: "d1", Name: "re.xml", Kind: "xrechnung", Subject: "Rechnung",
			InvoiceNumber: "RE-1", Gross: "6938.45", Currency: "EUR"},
		{Time: received.Add(time.Hour), ReceivedAt: received, DocumentID: "d2", Name: "logo.png", Reason: "signature_logo", Subject: "Rechnung",
			Detail: "a small image (512 bytes) named like a signature logo"},
		{Time: received.Add(time.Hour), ReceivedAt: received, DocumentID: "d3", Name: "a.zip", Reason: "archive", Subject: "Rechnung",
			Detail: "the file is an archive (application/zip); archives are not unpacked"},
		{Time: received.Add(time.Hour), ReceivedAt: received, DocumentID: "d4", Name: "b.pdf", Reason: "failed", Subject: "Rechnung",
			Detail: "failed 5 times over 1h0m0s: download: status 503"},
	})
	b := e.loggedIn("alice")
	de := german(b, "/connections/"+c.ID).body
	for _, want := range []string{
		"6.938,45\u00a0€", "01.12.2026, 09:30 Uhr", "01.12.2026, 10:30 Uhr", ">1.234<",
		"Ein kleines Bild (512 Byte), benannt wie ein Signatur-Logo",
		"Die Datei ist ein Archiv (application/zip); Archive werden nicht entpackt",
		"5-mal fehlgeschlagen in 1h0m0s: download: status 503",
		`data-reason="signature_logo"`,
	} {
		if !strings.Contains(de, want) {
			t.Errorf("German page lacks %q", want)
		}
	}
	for _, not := range []string{"6938.45", "EUR", "UTC", "named like", "archives are not unpacked", "failed 5 times"} {
		if strings.Contains(de, not) {
			t.Errorf("German page shows %q", not)
		}
	}
	en := b.get("/connections/" + c.ID).body
	for _, want := range []string{"€6,938.45", "2026-12-01 08:30 UTC", ">1,234<", "a small image (512 bytes) named like a signature logo"} {
		if !strings.Contains(en, want) {
			t.Errorf("English page lacks %q", want)
		}
	}

	// The zone is configurable.
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		t.Skip(err)
	}
	e2 := newEnv(t, func(cfg *Config, d *Deps) { cfg.TimeZone, d.Statuses, d.History = ny, fakeStatuses{st: st}, h })
	c2 := e2.connection(customerA, connector.StateActive)
	h.set(c2.ID, h.entries[c.ID])
	if p := german(e2.loggedIn("alice"), "/connections/"+c2.ID).body; !strings.Contains(p, "01.12.2026, 03:30 Uhr") {
		t.Error("German page ignores the configured time zone")
	}
}

// TestImportLog: newest mail first by its arrival (not the import time),
// a page at a time, searchable and filtered by outcome, parked mails
// included.
func TestImportLog(t *testing.T) {
	h := &fakeHistory{}
	base := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	st := ConnectionStatus{ParkedMails: []ParkedMail{{Subject: "Stuck", From: "x@lieferant.example", ReceivedAt: base.Add(-time.Hour), Attempts: 3, NextRetry: base}}}
	e := newEnv(t, func(_ *Config, d *Deps) { d.Statuses, d.History = fakeStatuses{st: st}, h })
	c := e.connection(customerA, connector.StateActive)
	var entries []HistoryEntry
	for i := range 60 {
		en := HistoryEntry{
			// Imported in the reverse order of arrival, as a backfill does.
			Time: base.Add(time.Duration(100-i) * time.Hour), ReceivedAt: base.Add(time.Duration(i) * time.Hour),
			DocumentID: fmt.Sprintf("d%02d", i), Name: fmt.Sprintf("file-%02d.pdf", i), Kind: "pdf",
			Subject: fmt.Sprintf("Mail %02d", i), From: fmt.Sprintf("sender%02d@lieferant.example", i),
		}
		if i%10 == 3 {
			en.Reason, en.Kind = "too_small", ""
		}
		if i == 42 {
			en.InvoiceNumber = "RE-2026-0042"
		}
		entries = append(entries, en)
	}
	h.set(c.ID, entries)
	b := e.loggedIn("alice")
	page := func(q string) (rows [][]string, body string) {
		t.Helper()
		r := b.get("/connections/" + c.ID + q)
		if r.status != http.StatusOK {
			t.Fatalf("%s: %d", q, r.status)
		}
		return rowRE.FindAllStringSubmatch(r.body, -1), r.body
	}
	rows, body := page("")
	if len(rows) != logPageSize {
		t.Fatalf("%d rows on page 1, want %d", len(rows), logPageSize)
	}
	if !strings.Contains(body, "Mail 59") || strings.Index(body, "Mail 59") > strings.Index(body, "Mail 58") {
		t.Error("page 1 does not start with the newest mail")
	}
	if rows[0][2] != "2026-11-03 23:00 UTC" {
		t.Errorf("first row's time %q, want the mail's arrival 2026-11-03 23:00 UTC", rows[0][2])
	}
	if !strings.Contains(body, "sender59@lieferant.example") || !strings.Contains(body, `rel="next"`) || strings.Contains(body, `rel="prev"`) {
		t.Error("page 1 lacks the sender or the paging")
	}
	rows, body = page("?page=3")
	// 60 entries and one parked mail: 25, 25, 11; the parked mail arrived first.
	if len(rows) != 11 || rows[len(rows)-1][1] != outcomeParked || !strings.Contains(body, "Mail 00") || strings.Contains(body, `rel="next"`) {
		t.Errorf("page 3: %d rows, last %v", len(rows), rows[len(rows)-1])
	}
	rows, body = page("?q=re-2026-0042")
	if len(rows) != 1 || !strings.Contains(body, "Mail 42") {
		t.Errorf("search by invoice number: %d rows", len(rows))
	}
	for _, q := range []string{"?q=sender07%40", "?q=file-07.pdf", "?q=Mail+07"} {
		if rows, _ := page(q); len(rows) != 1 {
			t.Errorf("search %s: %d rows, want 1", q, len(rows))
		}
	}
	rows, _ = page("?outcome=skipped")
	if len(rows) != 6 {
		t.Errorf("filter skipped: %d rows, want 6", len(rows))
	}
	for _, r := range rows {
		if r[1] != outcomeSkipped {
			t.Errorf("filter skipped shows a %s row", r[1])
		}
	}
	if rows, _ := page("?outcome=parked"); len(rows) != 1 {
		t.Errorf("filter parked: %d rows, want 1", len(rows))
	}
	if _, body := page("?outcome=skipped&q=Mail+53&page=1"); !strings.Contains(body, "Mail 53") || !strings.Contains(body, "1 entries") {
		t.Error("search and filter together")
	}
}

// TestDownloadAuthorised: an imported document and its rendition download
// through the portal as attachments, for the document's customer's users
// only.
func TestDownloadAuthorised(t *testing.T) {
	h := &fakeHistory{}
	docs := fakeDocuments{
		customerA + "/2026/11/aaa.xml": "<Invoice/>",
		customerA + "/2026/11/aaa.pdf": "%PDF-1.7 rendition",
		customerB + "/2026/11/bbb.pdf": "%PDF-1.7 globex",
	}
	e := newEnv(t, func(_ *Config, d *Deps) { d.History, d.Documents = h, docs })
	c := e.connection(customerA, connector.StateActive)
	valid := false
	h.set(c.ID, []HistoryEntry{
		{DocumentID: "doc_1", Name: "RE 1 \"ä\".xml", Kind: "xrechnung", ObjectKey: customerA + "/2026/11/aaa.xml", RenditionKey: customerA + "/2026/11/aaa.pdf",
			Valid: &valid, ErrorCount: 2, Findings: []Finding{{Rule: "BR-CO-15", Message: "[BR-CO-15]-Invoice total amount with VAT (BT-112) = Invoice total amount without VAT (BT-109) + Invoice total VAT amount (BT-110)."}, {Rule: "BR-DE-2", Message: "The group SELLER CONTACT must be transmitted"}}},
		{DocumentID: "doc_2", Name: "evil.pdf", ObjectKey: customerB + "/2026/11/bbb.pdf"}, // never leads elsewhere
		{DocumentID: "doc_3", Name: "plain.xml", Kind: "xrechnung", ObjectKey: customerA + "/2026/11/aaa.xml"},
	})
	alice := e.loggedIn("alice")
	page := alice.get("/connections/" + c.ID).body
	for _, want := range []string{
		`href="/connections/` + c.ID + `/documents/doc_1"`, `href="/connections/` + c.ID + `/documents/doc_1?as=rendition"`,
		"invalid: 2 errors", "BR-CO-15", "Invoice total amount with VAT (BT-112)", "BR-DE-2", "not validated",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("connection page lacks %q", want)
		}
	}
	if de := german(alice, "/connections/"+c.ID).body; !strings.Contains(de, "ungültig: 2 Fehler") || !strings.Contains(de, "nicht geprüft") || !strings.Contains(de, "Verletzte Regeln") {
		t.Error("German validation marks missing")
	}
	r := alice.get("/connections/" + c.ID + "/documents/doc_1")
	if r.status != http.StatusOK || r.body != "<Invoice/>" {
		t.Fatalf("download: %d %q", r.status, r.body)
	}
	if cd := r.header.Get("Content-Disposition"); !strings.HasPrefix(cd, "attachment;") || !strings.Contains(cd, "filename") {
		t.Errorf("Content-Disposition %q", cd)
	}
	if r := alice.get("/connections/" + c.ID + "/documents/doc_1?as=rendition"); r.status != http.StatusOK || r.body != "%PDF-1.7 rendition" ||
		!strings.HasPrefix(r.header.Get("Content-Disposition"), "attachment;") || !strings.Contains(r.header.Get("Content-Disposition"), ".pdf") {
		t.Errorf("rendition: %d %q %q", r.status, r.body, r.header.Get("Content-Disposition"))
	}
	for _, path := range []string{"/documents/doc_2", "/documents/doc_3?as=rendition", "/documents/nope"} {
		if r := alice.get("/connections/" + c.ID + path); r.status != http.StatusNotFound {
			t.Errorf("%s: %d, want 404", path, r.status)
		}
	}
	// Another customer's user gets nothing, not even that it exists.
	if r := e.loggedIn("carol").get("/connections/" + c.ID + "/documents/doc_1"); r.status != http.StatusNotFound || strings.Contains(r.body, "Invoice") {
		t.Errorf("carol: %d", r.status)
	}
	// Logged out: to the login page.
	if r := e.browser().get("/connections/" + c.ID + "/documents/doc_1"); r.status == http.StatusOK {
		t.Errorf("anonymous download: %d", r.status)
	}
}
