package policy

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// corpusDir holds the public sample e-invoices shared by the project
// (see its README.md): ../shared/einvoices from the repository's root.
const corpusDir = "../../../shared/einvoices"

// TestCorpus classifies every file of the shared corpus and checks the
// manifest's expected outcome, kind and invoice number (BT-1). It logs
// how many of the data fields it read, so a change that loses fields
// shows in the numbers.
func TestCorpus(t *testing.T) {
	f, err := os.Open(filepath.Join(corpusDir, "manifest.tsv"))
	if os.IsNotExist(err) {
		t.Skipf("the shared e-invoice corpus is missing at %s", corpusDir)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	p := New(Config{})
	var files, recognised, invoices int
	fields := map[string]int{}
	checks := map[string]int{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		col := strings.Split(line, "\t")
		for len(col) < 4 {
			col = append(col, "")
		}
		name, outcome, kind, number := col[0], col[1], col[2], col[3]
		files++
		t.Run(name, func(t *testing.T) {
			b, err := os.ReadFile(filepath.Join(corpusDir, "files", name))
			if err != nil {
				t.Fatal(err)
			}
			a := connector.Attachment{Type: connector.FileAttachment, Name: name, ContentType: "application/octet-stream"}
			d, err := p.Classify(context.Background(), a, "", int64(len(b)), bytes.NewReader(b))
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if outcome == "import" && !d.Import {
				t.Fatalf("skipped (%s: %s), want import", d.Reason, d.Detail)
			}
			if kind != "any" && d.Kind != kind {
				t.Errorf("kind = %q, want %q", d.Kind, kind)
			} else if kind != "any" {
				recognised++
			}
			isInvoice := d.Kind == archive.KindXRechnung || d.Kind == archive.KindZUGFeRD
			if isInvoice && d.Invoice == nil {
				t.Fatalf("kind %s without invoice data", d.Kind)
			}
			if d.Invoice == nil {
				return
			}
			inv := d.Invoice
			invoices++
			if number != "" && inv.Number != number {
				t.Errorf("number = %q, want %q", inv.Number, number)
			}
			if len(inv.Checks) == 0 {
				t.Error("no checks")
			}
			for _, c := range inv.Checks {
				checks[c]++
			}
			for k, v := range map[string]string{
				"number": inv.Number, "typeCode": inv.TypeCode, "issueDate": inv.IssueDate, "dueDate": inv.DueDate,
				"currency": inv.Currency, "buyerReference": inv.BuyerReference, "seller.name": inv.Seller.Name,
				"seller.vatId": inv.Seller.VATID, "seller.taxNumber": inv.Seller.TaxNumber, "buyer.name": inv.Buyer.Name,
				"buyer.vatId": inv.Buyer.VATID, "totals.net": inv.Totals.Net, "totals.tax": inv.Totals.Tax,
				"totals.gross": inv.Totals.Gross, "totals.payable": inv.Totals.Payable, "guideline": inv.Guideline,
			} {
				if v != "" {
					fields[k]++
				}
			}
			if len(inv.IBAN) > 0 {
				fields["iban"]++
			}
			for _, dt := range []string{inv.IssueDate, inv.DueDate} {
				if dt != "" && isoDate(dt) != dt {
					t.Errorf("date %q is not YYYY-MM-DD", dt)
				}
			}
		})
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if files < 100 {
		t.Errorf("only %d files in the manifest", files)
	}
	t.Logf("corpus: %d files, %d with the expected kind, %d with invoice data", files, recognised, invoices)
	t.Logf("fields read: %s", counts(fields))
	t.Logf("checks: %s", counts(checks))
}

func counts(m map[string]int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(k + "=" + strconv.Itoa(m[k]) + " ")
	}
	return b.String()
}
