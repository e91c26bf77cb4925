package xpath

import (
	"context"
	"errors"
	"strings"
	"testing"
)

const sample = `<a xmlns:p="urn:p"><b>1.0</b><c>abc</c><b> 2 </b><p:d x="7">t<e/>u</p:d></a>`

// The promotions and functions the rule sets depend on, as XPath 2.0
// defines them (and as Saxon computes them).
func TestSemantics(t *testing.T) {
	doc, err := Parse(context.Background(), strings.NewReader(sample), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Namespaces: map[string]string{"p": "urn:p", "xs": nsXS}}
	for _, tc := range []struct{ expr, want string }{
		{"/a/b = 1", "true"},                // untyped against a number: xs:double
		{"/a/b = '1'", "false"},             // untyped against a string: strings
		{"xs:decimal(/a/b[1]) = 1", "true"}, // exact decimal
		{"0.1 + 0.2 = 0.3", "true"},         // decimal arithmetic is exact
		{"0.1e0 + 0.2e0 = 0.3e0", "false"},  // double arithmetic is not
		{"round(2.5)", "3"},                 // half towards +infinity
		{"round(-2.5)", "-2"},
		{"round(1.005 * 100) div 100", "1.01"},
		{"sum(())", "0"},
		{"sum(/a/b)", "3"},
		{"count(//b)", "2"},
		{"10 div 4", "2.5"},
		{"10 idiv 4", "2"},
		{"-7 mod 3", "-1"},
		{"some $x in (1, 2) satisfies $x = 2", "true"},
		{"every $x in (1, 2) satisfies $x = 2", "false"},
		{"substring('12345', 2, 3)", "234"},
		{"string-join(for $i in (1, 2) return string($i), '-')", "1-2"},
		{"tokenize('a#b#c', '#')[last()]", "c"},
		{"replace('a b\tc', '\\s', '')", "abc"},
		{"xs:integer(string-join(('12', '34'), '')) mod 97", "70"},
		{"(1 to 3)[2]", "2"},
		{"normalize-space(' a  b ')", "a b"},
		{"upper-case('ä')", "Ä"},
		{"//b[2]/preceding-sibling::c", "abc"},
		{"count(//b[not(preceding::b = .)])", "2"},
		{"name(/a/p:d)", "p:d"},
		{"/a/p:d/@x + 1", "8"},
		{"string(/a/p:d)", "tu"},
		{"if (exists(/a/zz)) then 1 else 2", "2"},
		{"('S', 'Z') = 'Z'", "true"},
		{"/a/b[1] castable as xs:decimal", "true"},
		{"/a/c castable as xs:decimal", "false"},
		{"'true' cast as xs:boolean", "true"},
		{"xs:date('2024-02-29') > xs:date('2024-02-28')", "true"},
		{"matches('DE12', '^[A-Z]{2}[0-9]{2}$')", "true"},
		{"string-to-codepoints('AZ')", "65 90"},
		{"distinct-values(('a', 'b', 'a'))", "a b"},
		{"(//b except //b[1])", "2"},
		{"//p:d/text()", "t u"},
		{"/a/b[. = 2] is /a/b[2]", "true"},
		{"count(//@x)", "1"},      // the attribute index
		{"count(//p:d//@x)", "1"}, // descendant-or-self: its own too
		{"count(//p:d/e//@x)", "0"},
		{"count(//b[1])", "1"}, // positional: per parent, no index
		{"count(/a//*)", "5"},
	} {
		e, err := Compile(tc.expr, env)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		v, err := NewContext(context.Background(), doc).Eval(e, doc.Root, nil)
		if err != nil {
			t.Errorf("%s: %v", tc.expr, err)
			continue
		}
		got := strings.Join(strings.Fields(v.String()), " ")
		if got != tc.want {
			t.Errorf("%s = %q, want %q", tc.expr, got, tc.want)
		}
	}
}

// The errors Saxon raises, we raise: they end the run.
func TestDynamicErrors(t *testing.T) {
	doc, err := Parse(context.Background(), strings.NewReader(sample), Limits{})
	if err != nil {
		t.Fatal(err)
	}
	env := &Env{Namespaces: map[string]string{"xs": nsXS}}
	for _, src := range []string{
		"/a/c = 1",              // 'abc' is no double
		"xs:decimal(/a/c)",      // nor a decimal
		"normalize-space(/a/b)", // two items where one is allowed
		"/a/b eq '1.0'",         // a value comparison of two items
		"1 div 0",               // decimal division by zero
		"boolean((1, 2))",       // no effective boolean value
	} {
		e, err := Compile(src, env)
		if err != nil {
			t.Fatalf("%s: %v", src, err)
		}
		_, err = NewContext(context.Background(), doc).Eval(e, doc.Root, nil)
		var de *DynamicError
		if !errors.As(err, &de) {
			t.Errorf("%s: error %v, want a dynamic error", src, err)
		}
	}
	// In a pattern, a predicate that fails does not match.
	p, err := CompilePattern("b[xs:decimal(.) > 1] | c[. = 1]", env)
	if err != nil {
		t.Fatal(err)
	}
	ns, err := NewContext(context.Background(), doc).Match(p, nil)
	if err != nil || len(ns) != 1 || ns[0].StringValue() != " 2 " {
		t.Errorf("pattern matched %v, %v", ns, err)
	}
}

func TestParseBounds(t *testing.T) {
	for _, tc := range []struct {
		xml string
		lim Limits
	}{
		{strings.Repeat("<a>", 300) + strings.Repeat("</a>", 300), Limits{Depth: 200}},
		{"<a>" + strings.Repeat("<b/>", 2000) + "</a>", Limits{Nodes: 1000}},
	} {
		if _, err := Parse(context.Background(), strings.NewReader(tc.xml), tc.lim); !errors.Is(err, ErrLimit) {
			t.Errorf("%.20s…: %v, want ErrLimit", tc.xml, err)
		}
	}
	for _, bad := range []string{"<a><b></a></b>", "<a>", "<a/><b/>", "<p:a/>", "text"} {
		if _, err := Parse(context.Background(), strings.NewReader(bad), Limits{}); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
