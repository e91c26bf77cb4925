package rules_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/importer/rules"
)

// TestMutantsAgreeWithTheOfficialRules is a differential test: real
// e-invoices with one value changed, an element removed or repeated, are
// judged by Saxon-HE and by mailgate, and must get the same verdict. The
// mutants are random but seeded, so a failure repeats;
// RULES_MUTANTS sets how many (default 300) and RULES_MUTANTS_SEED
// the seed.
func TestMutantsAgreeWithTheOfficialRules(t *testing.T) {
	needOracle(t)
	n, seed := 300, uint64(1)
	if s := os.Getenv("RULES_MUTANTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	if s := os.Getenv("RULES_MUTANTS_SEED"); s != "" {
		seed, _ = strconv.ParseUint(s, 10, 64)
	}
	rnd := rand.New(rand.NewPCG(seed, 42))
	bases, _ := filepath.Glob(filepath.Join(shared, "einvoices", "files", "*.xml"))
	kosit, _ := filepath.Glob(filepath.Join(shared, "einvoice-rules", "xrechnung", "test", "instances", "*", "*.xml"))
	bases = append(bases, kosit...)
	if len(bases) == 0 {
		t.Fatal("no e-invoices to mutate")
	}
	work := t.TempDir()
	var files []instance
	what := map[string]string{}
	for len(files) < n {
		base := bases[rnd.IntN(len(bases))]
		b, err := os.ReadFile(base)
		if err != nil {
			t.Fatal(err)
		}
		m, how, ok := mutate(rnd, b)
		if !ok || !wellFormed(m) {
			continue // the mutants are for the rules, not for the parser
		}
		in := place(t, work, filepath.Base(base)+": "+how, m)
		if in.syntax == "" {
			continue
		}
		files = append(files, in)
		what[in.path] = in.name
	}
	oracle := runSaxon(t, work, files)
	v, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	var same, invalid, errs int
	var diffs []string
	for _, f := range files {
		b, _ := os.ReadFile(f.path)
		r := v.Validate(context.Background(), b)
		ours := verdict{valid: r.Valid}
		for _, e := range r.Errors {
			ours.fatal = append(ours.fatal, e.Rule)
		}
		ours.fatal = set(ours.fatal)
		theirs := oracle[f.path]
		if theirs.valid == nil {
			errs++
		} else if !*theirs.valid {
			invalid++
		}
		switch {
		case r.Valid == nil && notEN16931(r.Guideline):
			same++
		case (ours.valid == nil) != (theirs.valid == nil),
			ours.valid != nil && (*ours.valid != *theirs.valid || !slices.Equal(ours.fatal, theirs.fatal)):
			diffs = append(diffs, fmt.Sprintf("%s (%s): official %s, mailgate %s %s", what[f.path], filepath.Base(f.path), theirs, ours, r.Reason))
		default:
			same++
		}
	}
	t.Logf("mutants: %d, agreeing %d (official: %d invalid, %d stopped by an error)", len(files), same, invalid, errs)
	if len(diffs) > 0 {
		if len(diffs) > 30 {
			diffs = append(diffs[:30], fmt.Sprintf("… and %d more", len(diffs)-30))
		}
		t.Errorf("%d mutants judged differently:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
}

var (
	textValue = regexp.MustCompile(`>([^<>]{1,80})</`)
	attrValue = regexp.MustCompile(`\s(unitCode|currencyID|schemeID|listID|mimeCode|format)="([^"]*)"`)
	element   = regexp.MustCompile(`(?s)<((?:cac|ram|cbc):[A-Za-z]+)\b[^>]*>.*?</(?:cac|ram|cbc):[A-Za-z]+>`)
)

var odd = []string{"", "abc", "1.005", "-0", "1e3", " 12 ", "12,50", "2024-13-45", "20241345", "NaN", "INF", "01", "DE", "true", "0", "-1.5", "999999999999999999999.999", "S", "VAT", "380", "EUR", strings.Repeat("9", 40)}

// mutate changes one thing of an e-invoice: a text value, an attribute
// value, or an element removed or repeated.
func mutate(rnd *rand.Rand, b []byte) ([]byte, string, bool) {
	switch rnd.IntN(4) {
	case 0:
		ms := textValue.FindAllSubmatchIndex(b, -1)
		if len(ms) == 0 {
			return nil, "", false
		}
		m := ms[rnd.IntN(len(ms))]
		val := odd[rnd.IntN(len(odd))]
		return splice(b, m[2], m[3], val), fmt.Sprintf("text %q → %q", b[m[2]:m[3]], val), true
	case 1:
		ms := attrValue.FindAllSubmatchIndex(b, -1)
		if len(ms) == 0 {
			return nil, "", false
		}
		m := ms[rnd.IntN(len(ms))]
		val := odd[rnd.IntN(len(odd))]
		return splice(b, m[4], m[5], val), fmt.Sprintf("@%s %q → %q", b[m[2]:m[3]], b[m[4]:m[5]], val), true
	default:
		ms := element.FindAllSubmatchIndex(b, -1)
		if len(ms) == 0 {
			return nil, "", false
		}
		m := ms[rnd.IntN(len(ms))]
		el := b[m[0]:m[1]]
		if bytes.Count(el, []byte("<"+string(b[m[2]:m[3]]))) != 1 {
			return nil, "", false // nested twins: the match is not the element
		}
		if rnd.IntN(2) == 0 {
			return splice(b, m[0], m[1], ""), fmt.Sprintf("without %s", b[m[2]:m[3]]), true
		}
		return splice(b, m[1], m[1], string(el)), fmt.Sprintf("%s twice", b[m[2]:m[3]]), true
	}
}

func splice(b []byte, from, to int, s string) []byte {
	out := make([]byte, 0, len(b)+len(s))
	out = append(out, b[:from]...)
	out = append(out, s...)
	return append(out, b[to:]...)
}

func wellFormed(b []byte) bool {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	for {
		_, err := d.Token()
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
	}
}
