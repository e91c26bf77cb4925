package archive_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
)

// TestInvoiceRoundTrip: data.invoice survives encoding and Decode, with
// the wire names of DESIGN.md, and is absent for other documents.
func TestInvoiceRoundTrip(t *testing.T) {
	inv := &archive.Invoice{
		Number: "RE-2026-04711", TypeCode: "380", IssueDate: "2026-11-02", DueDate: "2026-12-02", Currency: "EUR",
		BuyerReference:     "04011000-12345-67",
		Seller:             archive.Party{Name: "Müller Bürobedarf GmbH", VATID: "DE123456789", TaxNumber: "214/5678/0123"},
		Buyer:              archive.Party{Name: "Stadtwerke Bonn GmbH"},
		Totals:             archive.Totals{Net: "1250.00", Tax: "237.50", Gross: "1487.50", Payable: "987.50"},
		IBAN:               []string{"DE02120300000000202051"},
		Guideline:          "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
		Checks:             []string{archive.CheckMandatoryPresent, archive.CheckTotalsOK},
		DuplicateInvoiceOf: "doc_earlier",
	}
	ev := archive.Event{SpecVersion: "1.0", ID: "doc_1", Source: "mailgate/acme/con_1", Type: archive.TypeImported,
		Time: time.Date(2026, 11, 2, 9, 0, 0, 0, time.UTC), DataContentType: "application/json",
		Data: &archive.Imported{Customer: "acme", Document: archive.DocumentInfo{Kind: archive.KindXRechnung}, Invoice: inv}}
	b, err := json.Marshal(ev)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"invoice":{"number":"RE-2026-04711"`, `"seller":{"name":"Müller Bürobedarf GmbH","vatId":"DE123456789","taxNumber":"214/5678/0123"}`,
		`"buyer":{"name":"Stadtwerke Bonn GmbH"}`, `"totals":{"net":"1250.00","tax":"237.50","gross":"1487.50","payable":"987.50"}`,
		`"duplicateInvoiceOf":"doc_earlier"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("event lacks %s:\n%s", want, b)
		}
	}
	got, err := archive.Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if d := got.Data.(*archive.Imported); !reflect.DeepEqual(d.Invoice, inv) {
		t.Errorf("decoded invoice %+v, want %+v", d.Invoice, inv)
	}

	// A plain PDF has no invoice, and an empty party or totals is omitted.
	ev.Data = &archive.Imported{Customer: "acme", Document: archive.DocumentInfo{Kind: archive.KindPDF}}
	b, _ = json.Marshal(ev)
	if strings.Contains(string(b), "invoice") {
		t.Errorf("plain pdf event: %s", b)
	}
	b, _ = json.Marshal(archive.Invoice{Number: "1"})
	if string(b) != `{"number":"1"}` {
		t.Errorf("sparse invoice: %s", b)
	}
}
