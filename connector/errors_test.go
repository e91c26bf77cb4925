package connector

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

// TestKindShowsThroughWrappers: a wrapper that does not classify, an
// *Error of Kind Other or fmt.Errorf's %w, leaves the inner kind visible
// (Upspin's rule), with the inner error's RetryAfter and code.
func TestKindShowsThroughWrappers(t *testing.T) {
	throttled := &Error{Op: "graph: delta", Kind: Throttled, RetryAfter: 7 * time.Second, Err: errors.New("status 429")}
	consent := &Error{Op: "connector: access token", Kind: NeedsConsent, Code: "AADSTS50173", oauthError: "invalid_grant", Err: errors.New("revoked")}
	for _, tc := range []struct {
		name  string
		err   error
		kind  Kind
		after time.Duration
	}{
		{"bare", throttled, Throttled, 7 * time.Second},
		{"fmt", fmt.Errorf("importer: delta: %w", throttled), Throttled, 7 * time.Second},
		{"other_over_throttled", E("connector: test connection", Other, fmt.Errorf("page 2: %w", throttled)), Throttled, 7 * time.Second},
		{"other_over_consent", fmt.Errorf("importer: open mailbox: %w", E("graph: token", Other, consent)), NeedsConsent, 0},
		{"outer_kind_wins", E("importer: kv", Transient, throttled), Transient, 0},
		{"only_other", E("x", Other, errors.New("y")), Other, 0},
		{"plain", errors.New("plain"), Other, 0},
		{"nil", nil, Other, 0},
	} {
		if got := KindOf(tc.err); got != tc.kind {
			t.Errorf("%s: KindOf = %s, want %s", tc.name, got, tc.kind)
		}
		if got := RetryAfter(tc.err); got != tc.after {
			t.Errorf("%s: RetryAfter = %s, want %s", tc.name, got, tc.after)
		}
	}
	wrapped := fmt.Errorf("importer: sync: %w", E("connector: refresh", Other, consent))
	if got := codeOf(wrapped); got != "AADSTS50173" {
		t.Errorf("codeOf through an Other wrapper = %q", got)
	}
	if got, want := Explain(wrapped), Explain(consent); got != want {
		t.Errorf("Explain through an Other wrapper = %q, want %q", got, want)
	}
}

// TestErrorWithoutOp: an *Error without op leaves the prefix to its
// wrapper, which then appears once.
func TestErrorWithoutOp(t *testing.T) {
	err := fmt.Errorf("importer: kv get k: %w", E("", Transient, errors.New("NATS did not answer")))
	if got, want := err.Error(), "importer: kv get k: transient: NATS did not answer"; got != want {
		t.Errorf("message %q, want %q", got, want)
	}
}
