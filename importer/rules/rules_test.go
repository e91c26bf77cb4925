package rules_test

import (
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/importer/rules"
)

func corpusFile(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(shared, "einvoices", "files", name))
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skipf("../shared/einvoices is missing: %v", err)
	}
	return b
}

func validator(t testing.TB) *rules.Validator {
	t.Helper()
	v, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// The repository's copy of the rule sets is the one in ../shared, byte
// for byte: a new release is a copy, never an edit.
func TestEmbeddedRulesAreTheOfficialFiles(t *testing.T) {
	src := filepath.Join(shared, "einvoice-rules")
	if _, err := os.Stat(src); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal(err)
		}
		t.Skip("../shared/einvoice-rules is missing")
	}
	n := 0
	err := filepath.WalkDir("official", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || filepath.Base(p) == "README.md" {
			return err
		}
		rel, _ := filepath.Rel("official", p)
		ours, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		theirs, err := os.ReadFile(filepath.Join(src, rel))
		if err != nil {
			return fmt.Errorf("%s is not in ../shared/einvoice-rules: %w", rel, err)
		}
		if !bytes.Equal(ours, theirs) {
			t.Errorf("%s differs from ../shared/einvoice-rules/%s", p, rel)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 9 {
		t.Errorf("only %d rule files embedded", n)
	}
}

func TestVerdicts(t *testing.T) {
	v := validator(t)
	valid := corpusFile(t, "kosit_01.01a-INVOICE_ubl.xml")
	// The same invoice with a gross total that is not net + VAT.
	broken := bytes.Replace(valid, []byte("<cbc:TaxInclusiveAmount currencyID=\"EUR\">"), []byte("<cbc:TaxInclusiveAmount currencyID=\"EUR\">1"), 1)
	if bytes.Equal(broken, valid) {
		t.Fatal("the sample has no TaxInclusiveAmount to break")
	}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		xml    []byte
		valid  string // "true", "false" or "null"
		class  string
		errors []string
		sets   int
	}{
		{"a valid XRechnung", valid, "true", "", nil, 2},
		{"BR-CO-15 broken", broken, "false", rules.ClassBusinessRule, []string{"BR-CO-15", "BR-CO-16"}, 2},
		{"not well-formed", valid[:len(valid)/2], "false", rules.ClassFormat, []string{rules.RuleWellFormed}, 0},
		{"not an invoice", []byte(`<?xml version="1.0"?><Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"/>`), "false", rules.ClassFormat, []string{rules.RuleSyntax}, 0},
		{"ZUGFeRD 1.0", []byte(`<rsm:CrossIndustryDocument xmlns:rsm="urn:ferd:CrossIndustryDocument:invoice:1p0"/>`), "null", "", nil, 0},
		{"MINIMUM", []byte(`<rsm:CrossIndustryInvoice xmlns:rsm="urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100" xmlns:ram="urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"><rsm:ExchangedDocumentContext><ram:GuidelineSpecifiedDocumentContextParameter><ram:ID>urn:factur-x.eu:1p0:minimum</ram:ID></ram:GuidelineSpecifiedDocumentContextParameter></rsm:ExchangedDocumentContext></rsm:CrossIndustryInvoice>`), "null", "", nil, 0},
		{"an entity from outside", []byte(`<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">&e;</Invoice>`), "false", rules.ClassFormat, []string{rules.RuleWellFormed}, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := v.Validate(ctx, tc.xml)
			got := "null"
			if r.Valid != nil {
				got = fmt.Sprint(*r.Valid)
			}
			if got != tc.valid || r.Class != tc.class || len(r.RuleSets) != tc.sets {
				t.Fatalf("valid %s class %q rule sets %v (reason %q), want %s %q and %d rule sets", got, r.Class, r.RuleSets, r.Reason, tc.valid, tc.class, tc.sets)
			}
			if got == "null" && r.Reason == "" {
				t.Error("not validated without a reason")
			}
			var ids []string
			for _, e := range r.Errors {
				ids = append(ids, e.Rule)
				if e.Message == "" || e.Location == "" {
					t.Errorf("%s without message or location: %+v", e.Rule, e)
				}
			}
			sort.Strings(ids)
			if strings.Join(ids, ",") != strings.Join(tc.errors, ",") {
				t.Errorf("errors %v, want %v", ids, tc.errors)
			}
		})
	}
	for _, e := range v.Validate(ctx, broken).Errors {
		if e.Rule == "BR-CO-15" && (!strings.HasPrefix(e.Message, "[BR-CO-15]") || e.Location != "/ubl:Invoice") {
			t.Errorf("BR-CO-15 reads %q at %q", e.Message, e.Location)
		}
	}
}

// What any mail sender can send stays within the bounds: a large file, a
// deep one, one with many nodes; each comes back fast, judged or with a
// reason, never stuck.
func TestHostileXMLStaysWithinBounds(t *testing.T) {
	v := validator(t)
	valid := corpusFile(t, "kosit_01.01a-INVOICE_ubl.xml")
	lines := bytes.Index(valid, []byte("<cac:InvoiceLine>"))
	end := bytes.LastIndex(valid, []byte("</cac:InvoiceLine>")) + len("</cac:InvoiceLine>")
	if lines < 0 || end < lines {
		t.Fatal("no invoice line in the sample")
	}
	var big bytes.Buffer
	big.Write(valid[:lines])
	for big.Len() < 20<<20 {
		big.Write(valid[lines:end])
	}
	big.Write(valid[end:])

	deep := []byte(`<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">` + strings.Repeat("<a>", 100_000) + strings.Repeat("</a>", 100_000) + `</Invoice>`)
	wide := []byte(`<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2">` + strings.Repeat(`<a b="1" c="2"/>`, 1_000_000) + `</Invoice>`)
	for _, tc := range []struct {
		name string
		xml  []byte
	}{{"20 MB of invoice lines", big.Bytes()}, {"100,000 levels deep", deep}, {"3 million nodes", wide}} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			r := v.Validate(context.Background(), tc.xml)
			took := time.Since(start)
			t.Logf("%d bytes: valid %v, %d errors, reason %q, %s", len(tc.xml), r.Valid, len(r.Errors), r.Reason, took.Round(time.Millisecond))
			if r.Valid == nil && r.Reason == "" {
				t.Error("not validated without a reason")
			}
			if took > rules.DefaultLimits.Time+5*time.Second {
				t.Errorf("took %s, bound %s", took, rules.DefaultLimits.Time)
			}
		})
	}
}

func TestValidateHonoursItsContext(t *testing.T) {
	v := validator(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	r := v.Validate(ctx, corpusFile(t, "kosit_01.01a-INVOICE_ubl.xml"))
	if r.Valid != nil || !strings.Contains(r.Reason, "time bound") {
		t.Errorf("a cancelled validation: valid %v, reason %q", r.Valid, r.Reason)
	}
}

// BenchmarkValidate measures a typical XRechnung (UBL, one line) and the
// largest XML of the corpus (CII, 241 KB), with the median and the 99th
// percentile of the single validations beside the mean.
func BenchmarkValidate(b *testing.B) {
	v := validator(b)
	for _, name := range []string{"kosit_01.01a-INVOICE_ubl.xml", "kosit_02.05a-INVOICE_uncefact.xml"} {
		x := corpusFile(b, name)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(x)))
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				if r := v.Validate(context.Background(), x); r.Valid == nil {
					b.Fatal(r.Reason)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Microseconds())/1000, "p50-ms")
			b.ReportMetric(float64(took[len(took)*99/100].Microseconds())/1000, "p99-ms")
		})
	}
}
