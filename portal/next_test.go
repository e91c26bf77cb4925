package portal

import (
	"net/url"
	"testing"
)

// redirectCases are next values a browser would take off this site (or
// onto a path that collapses to another host), after the WHATWG URL
// parser's normalisation: tabs and newlines removed, leading controls and
// spaces trimmed, backslashes read as slashes.
var redirectCases = []string{
	"/\t/evil.example",
	"/\n/evil.example",
	"/\r/evil.example",
	"/%09/evil.example",
	"/%0a/evil.example",
	"/%0d/evil.example",
	"/\\evil.example",
	"/\\\\evil.example",
	"\\/evil.example",
	"/%5cevil.example",
	"/%5C%5Cevil.example",
	"/%2f%2fevil.example",
	"/%2F/evil.example",
	"\n//evil.example",
	"\t//evil.example",
	" //evil.example",
	"\x00//evil.example",
	"\x1f//evil.example",
	"/.//evil.example",
	"/./%2fevil.example",
	"/%2e//evil.example",
	"/../evil.example",
	"https:evil.example",
	"https://evil.example/",
	"javascript:alert(1)",
	"//evil.example",
	"///evil.example",
	"/\x00",
	"/x\x7f",
	"/connections\x00",
	"//user@evil.example",
	"evil.example",
	"",
}

// localCases stay on the site and are kept as given.
var localCases = []string{
	"/connections",
	"/connections/abc/code",
	"/connections?state=active&q=a%20b",
	"/login",
	"/",
	"/webhooks#new",
}

func TestSafeNextWHATWG(t *testing.T) {
	for _, next := range redirectCases {
		if got := safeNext(next); got != defaultNext {
			t.Errorf("safeNext(%q) = %q, want %q", next, got, defaultNext)
		}
	}
	for _, next := range localCases {
		if got := safeNext(next); got != next {
			t.Errorf("safeNext(%q) = %q, want it kept", next, got)
		}
	}
}

// TestOpenRedirectWHATWGThroughHandlers sends every case through the real
// handlers that redirect to next: /lang (no login needed) and the login
// form, and asserts the Location header.
func TestOpenRedirectWHATWGThroughHandlers(t *testing.T) {
	e := newEnv(t)
	for _, next := range redirectCases {
		b := e.browser()
		if r := b.get("/lang?to=de&next=" + url.QueryEscape(next)); r.location() != defaultNext {
			t.Errorf("/lang next=%q: Location %q, want %q", next, r.location(), defaultNext)
		}
		if r := b.post("/login", url.Values{"name": {"alice"}, "password": {pw}, "next": {next}}); r.location() != defaultNext {
			t.Errorf("login next=%q: Location %q, want %q", next, r.location(), defaultNext)
		}
	}
	for _, next := range localCases {
		b := e.browser()
		if r := b.get("/lang?to=de&next=" + url.QueryEscape(next)); r.location() != next {
			t.Errorf("/lang next=%q: Location %q, want it kept", next, r.location())
		}
		if r := b.post("/login", url.Values{"name": {"alice"}, "password": {pw}, "next": {next}}); r.location() != next {
			t.Errorf("login next=%q: Location %q, want it kept", next, r.location())
		}
	}
}
