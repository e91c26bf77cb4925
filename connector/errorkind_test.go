package connector

import (
	"context"
	"encoding/json"
	"testing"
)

func TestParseKind(t *testing.T) {
	for k := Other; k <= Invalid; k++ {
		if got := ParseKind(k.String()); got != k {
			t.Errorf("ParseKind(%q) = %v, want %v", k.String(), got, k)
		}
	}
	for _, name := range []string{"", "infrastructure", "Throttled"} {
		if got := ParseKind(name); got != Other {
			t.Errorf("ParseKind(%q) = %v, want other", name, got)
		}
	}
}

// TestLegacyErrorKind: the texts stored before the kind was, as the
// importer and the token refresh wrote them, map to their kinds.
func TestLegacyErrorKind(t *testing.T) {
	tests := []struct {
		in   string
		want Kind
	}{
		{"graph: delta: needs_consent (AADSTS50173): grant revoked", NeedsConsent},
		{"token: AADSTS700082 expired", NeedsConsent},
		{"graph: messages: access_denied (ErrorAccessDenied)", AccessDenied},
		{"graph: delta: not_found (ErrorFolderNotFound)", NotFound},
		{"graph: delta: throttled (429)", Throttled},
		{"graph: delta: transient: EOF", Transient},
		{"something else", Other},
		{"", Other},
	}
	for _, tt := range tests {
		if got := legacyErrorKind(tt.in); got != tt.want {
			t.Errorf("legacyErrorKind(%q) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestStoreReadsLegacyErrorKind: a record written before LastErrorKind
// existed is read with the kind its text names; a record with a kind
// keeps it, whatever its text says.
func TestStoreReadsLegacyErrorKind(t *testing.T) {
	ctx := context.Background()
	s, _ := newTestStore(t)
	put := func(c Connection) string {
		t.Helper()
		c, err := s.Create(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		return c.ID
	}
	old := put(Connection{Customer: "acme", Mailbox: "a@acme.example", Mode: Delegated})
	// Rewrite it as an old version wrote it: text, no kind.
	var raw map[string]any
	e, err := s.kv.Get(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(e.Value(), &raw); err != nil {
		t.Fatal(err)
	}
	raw["state"], raw["lastError"] = "failing", "graph: messages: access_denied (ErrorAccessDenied)"
	delete(raw, "lastErrorKind")
	b, _ := json.Marshal(raw)
	if _, err := s.kv.Put(ctx, old, b); err != nil {
		t.Fatal(err)
	}
	c, err := s.Get(ctx, old)
	if err != nil {
		t.Fatal(err)
	}
	if c.ErrorKind() != AccessDenied || c.LastErrorKind != "access_denied" {
		t.Errorf("old record: kind %q, want access_denied", c.LastErrorKind)
	}

	withKind := Connection{Customer: "acme", Mailbox: "b@acme.example", Mode: Delegated}
	withKind.SetError("graph: messages: access_denied, says the text", Transient)
	id := put(withKind)
	all, err := s.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range all {
		if c.ID == id && c.ErrorKind() != Transient {
			t.Errorf("new record: kind %q, want transient", c.LastErrorKind)
		}
	}

	var clean Connection
	clean.SetError("x", Throttled)
	clean.SetError("", Throttled)
	if clean.LastError != "" || clean.LastErrorKind != "" || clean.ErrorKind() != Other {
		t.Errorf("SetError with no text left %q / %q", clean.LastError, clean.LastErrorKind)
	}
}
