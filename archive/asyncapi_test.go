package archive_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

func contract(t *testing.T) *archivetest.Contract {
	t.Helper()
	c, err := archivetest.NewContract(archive.AsyncAPI())
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// publishEverything publishes one event of every type and shape the
// Publisher can send and returns them as stored in the stream.
func publishEverything(t *testing.T) []archivetest.RawEvent {
	t.Helper()
	js, _ := archivetest.RunJetStream(t)
	ctx := context.Background()
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	p := archive.NewPublisher(js, "mailgate")
	imp := sampleImported("acme")
	imp.Object.Key = archive.Key("acme", imp.Message.ReceivedAt, imp.Document.SHA256, "pdf")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(p.Imported(ctx, "doc-1", imp))
	imp.Document.Kind, imp.Document.Profile, imp.Document.Syntax = archive.KindXRechnung, "XRECHNUNG", "UBL"
	valid := false
	imp.Invoice = &archive.Invoice{Number: "RE-1", Validation: &archive.Validation{
		Rules: []string{"EN16931-CEN 1.3.15"}, Valid: &valid, Class: archive.ValidationBusinessRule,
		Errors:     []archive.Finding{{Rule: "BR-CO-15", Flag: "fatal", Message: "[BR-CO-15]-Invoice total amount with VAT (BT-112) = Invoice total amount without VAT (BT-109) + Invoice total VAT amount (BT-110).", Location: "/Invoice"}},
		ErrorCount: 1, Warnings: []archive.Finding{},
	}}
	imp.Rendition = &archive.Rendition{Key: archive.RenditionKey(archive.Key("acme", imp.Message.ReceivedAt, imp.Document.SHA256, "xml")),
		SHA256: imp.Document.SHA256, ContentType: "application/pdf", Size: 4242}
	must(p.Imported(ctx, "doc-2", imp))
	imp.Invoice, imp.Rendition = nil, nil
	msg := imp.Message
	must(p.Skipped(ctx, "doc-3", archive.Skipped{Customer: "acme", Connection: "conn-1", Mailbox: "rechnungen@firma.de", Message: msg,
		Name: "logo.png", Size: 812, SHA256: imp.Document.SHA256, ContentType: "image/png", Reason: archive.ReasonSignatureLogo, Detail: "small image"}))
	must(p.Skipped(ctx, "doc-4", archive.Skipped{Customer: "acme", Connection: "conn-1", Mailbox: "rechnungen@firma.de", Message: msg,
		Name: "copy.pdf", Size: 12345, SHA256: imp.Document.SHA256, ContentType: "application/pdf", Reason: archive.ReasonDuplicate, DuplicateOf: "doc-1", Detail: "same content"}))
	must(p.Skipped(ctx, "doc-5", archive.Skipped{Customer: "acme", Connection: "conn-1", Mailbox: "rechnungen@firma.de", Message: msg,
		Name: "broken.pdf", Size: 5, Reason: archive.ReasonFailed, Detail: "download: 503 for 3 days"}))
	must(p.ConnectionChanged(ctx, archive.ConnectionChanged{Customer: "acme", Connection: "conn-1", Mailbox: "rechnungen@firma.de", To: "pending", Action: "connect", Actor: "portal:alice"}))
	must(p.ConnectionChanged(ctx, archive.ConnectionChanged{Customer: "globex", Connection: "conn-2", Mailbox: "ap@globex.example", From: "active", To: "needs_consent", Action: "needs_consent", Actor: "importer", Error: "AADSTS50173"}))
	events, err := archivetest.ReadStream(ctx, js, archive.StreamName, "mailgate.>")
	if err != nil {
		t.Fatal(err)
	}
	if len(events) != 7 {
		t.Fatalf("%d events in the stream, want 7", len(events))
	}
	return events
}

// TestEventsFitAsyncAPI validates events as the Publisher stores them
// (subject, headers, body) against asyncapi.yaml.
func TestEventsFitAsyncAPI(t *testing.T) {
	c := contract(t)
	seen := map[string]int{}
	for _, ev := range publishEverything(t) {
		name, err := c.Validate(ev.Subject, ev.Header, ev.Data)
		if err != nil {
			t.Errorf("%v\n%s", err, ev.Data)
		}
		seen[name]++
	}
	for _, want := range []string{"documentImported", "documentSkipped", "connectionChanged"} {
		if seen[want] == 0 {
			t.Errorf("no %s event validated: %v", want, seen)
		}
	}
}

// TestAsyncAPICatchesDrift changes real events the way a code change
// could and requires the document to refuse each, so the contract tests
// can fail. It also checks that an imported event with the e-invoice data
// DESIGN.md describes (data.invoice) fits.
func TestAsyncAPICatchesDrift(t *testing.T) {
	c := contract(t)
	events := publishEverything(t)
	imported, skipped, changed := events[1], events[3], events[6]
	mutate := func(ev archivetest.RawEvent, fn func(m map[string]any)) archivetest.RawEvent {
		var m map[string]any
		if err := json.Unmarshal(ev.Data, &m); err != nil {
			t.Fatal(err)
		}
		fn(m)
		ev.Data, _ = json.Marshal(m)
		return ev
	}
	data := func(m map[string]any) map[string]any { return m["data"].(map[string]any) }
	invoice := map[string]any{
		"number": "RE-2026-001", "typeCode": "380", "issueDate": "2026-03-09", "dueDate": "2026-03-23", "currency": "EUR",
		"buyerReference": "04011000-12345-34", "seller": map[string]any{"name": "Lieferant GmbH", "vatId": "DE123456789", "taxNumber": "201/113/40209"},
		"buyer": map[string]any{"name": "Firma GmbH", "vatId": "DE987654321"}, "totals": map[string]any{"net": "100.00", "tax": "19.00", "gross": "119.00", "payable": "119.00"},
		"iban": []any{"DE02120300000000202051"}, "guideline": "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
		"checks": []any{"due_before_issue"}, "duplicateInvoiceOf": "doc-0",
	}
	invoice["validation"] = map[string]any{"rules": []any{}, "valid": nil, "reason": "ZUGFeRD 1.0 is out of scope", "errors": []any{}, "warnings": []any{},
		"errorCount": 0, "warningCount": 0}
	if _, err := c.Validate(imported.Subject, imported.Header, mutate(imported, func(m map[string]any) { data(m)["invoice"] = invoice; data(m)["relatedTo"] = "doc-0" }).Data); err != nil {
		t.Errorf("imported event with data.invoice as DESIGN.md has it: %v", err)
	}
	bad := map[string]archivetest.RawEvent{
		"field added to data":            mutate(imported, func(m map[string]any) { data(m)["folder"] = "inbox" }),
		"field added to document":        mutate(imported, func(m map[string]any) { data(m)["document"].(map[string]any)["pages"] = 2 }),
		"envelope extension attribute":   mutate(imported, func(m map[string]any) { m["subject"] = "x" }),
		"required field dropped":         mutate(imported, func(m map[string]any) { delete(data(m), "object") }),
		"unknown kind":                   mutate(imported, func(m map[string]any) { data(m)["document"].(map[string]any)["kind"] = "word" }),
		"time not a date-time":           mutate(imported, func(m map[string]any) { m["time"] = "yesterday" }),
		"wrong specversion":              mutate(imported, func(m map[string]any) { m["specversion"] = "0.3" }),
		"type of another channel":        mutate(imported, func(m map[string]any) { m["type"] = archive.TypeSkipped }),
		"invoice field not in DESIGN.md": mutate(imported, func(m map[string]any) { data(m)["invoice"] = map[string]any{"number": "1", "vendor": "x"} }),
		"invoice total as a number":      mutate(imported, func(m map[string]any) { data(m)["invoice"] = map[string]any{"totals": map[string]any{"gross": 119.0}} }),
		"validation without valid": mutate(imported, func(m map[string]any) {
			delete(data(m)["invoice"].(map[string]any)["validation"].(map[string]any), "valid")
		}),
		"validation class unknown": mutate(imported, func(m map[string]any) {
			data(m)["invoice"].(map[string]any)["validation"].(map[string]any)["class"] = "content"
		}),
		"finding without rule": mutate(imported, func(m map[string]any) {
			delete(data(m)["invoice"].(map[string]any)["validation"].(map[string]any)["errors"].([]any)[0].(map[string]any), "rule")
		}),
		"rendition key not beside":      mutate(imported, func(m map[string]any) { data(m)["rendition"].(map[string]any)["key"] = "acme/rendition.pdf" }),
		"rendition without sha256":      mutate(imported, func(m map[string]any) { delete(data(m)["rendition"].(map[string]any), "sha256") }),
		"relatedTo a number":            mutate(imported, func(m map[string]any) { data(m)["relatedTo"] = 7 }),
		"unknown skip reason":           mutate(skipped, func(m map[string]any) { data(m)["reason"] = "too_ugly" }),
		"duplicate without duplicateOf": mutate(skipped, func(m map[string]any) { delete(data(m), "duplicateOf") }),
		"unknown connection state":      mutate(changed, func(m map[string]any) { data(m)["to"] = "sleeping" }),
		"another customer in the data":  mutate(changed, func(m map[string]any) { data(m)["customer"] = "acme" }),
	}
	noMsgID := imported
	noMsgID.Header = map[string][]string{"Content-Type": {"application/cloudevents+json"}}
	bad["no Nats-Msg-Id header"] = noMsgID
	unknownSubject := imported
	unknownSubject.Subject = strings.Replace(imported.Subject, "document.imported", "document.archived", 1)
	bad["subject of no channel"] = unknownSubject
	for name, ev := range bad {
		_, err := c.Validate(ev.Subject, ev.Header, ev.Data)
		if err == nil {
			t.Errorf("%s: the event still validates:\n%s", name, ev.Data)
			continue
		}
		t.Logf("%s: %s", name, strings.Join(strings.Fields(err.Error()), " "))
	}
}
