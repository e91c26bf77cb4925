package portal

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestSessionsFollowTheDirectory: removing a user, or one of their groups,
// takes effect on their next request, not when the session expires.
func TestSessionsFollowTheDirectory(t *testing.T) {
	e := newEnv(t)
	ctx := t.Context()
	for _, name := range []string{"dora", "erik"} {
		if err := e.srv.users.Add(ctx, name, customerA, pw, []string{"mailbox-connect"}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("user removed", func(t *testing.T) {
		b := e.loggedIn("dora")
		if r := b.get("/connect"); r.status != http.StatusOK {
			t.Fatalf("before: %d", r.status)
		}
		if err := e.srv.users.Remove(ctx, "dora"); err != nil {
			t.Fatal(err)
		}
		if r := b.get("/connect"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
			t.Fatalf("removed user's next request: %d %q, want the login page", r.status, r.location())
		}
		// Added again, the old session stays ended.
		if err := e.srv.users.Add(ctx, "dora", customerA, pw, []string{"mailbox-connect"}); err != nil {
			t.Fatal(err)
		}
		if r := b.get("/connect"); r.status != http.StatusSeeOther {
			t.Errorf("old session after the user was added again: %d, want 303", r.status)
		}
	})

	t.Run("group removed", func(t *testing.T) {
		b := e.loggedIn("erik")
		if r := b.get("/connect"); r.status != http.StatusOK {
			t.Fatalf("before: %d", r.status)
		}
		// The directory has no "edit": the operator removes and re-adds.
		if err := e.srv.users.Remove(ctx, "erik"); err != nil {
			t.Fatal(err)
		}
		if err := e.srv.users.Add(ctx, "erik", customerA, pw, []string{"accounting"}); err != nil {
			t.Fatal(err)
		}
		b = e.loggedIn("erik")
		if r := b.get("/connect"); r.status != http.StatusForbidden {
			t.Fatalf("without the group: %d, want 403", r.status)
		}
		// And the other way: a session whose user loses the group mid-way.
		if err := e.srv.users.Remove(ctx, "erik"); err != nil {
			t.Fatal(err)
		}
		if err := e.srv.users.Add(ctx, "erik", customerA, pw, []string{"mailbox-connect"}); err != nil {
			t.Fatal(err)
		}
		b = e.loggedIn("erik")
		if r := b.get("/connect"); r.status != http.StatusOK {
			t.Fatalf("with the group: %d", r.status)
		}
		if _, err := e.srv.users.kv.Put(ctx, userKey("erik"), mustUserJSON(t, e, "erik", []string{"accounting"})); err != nil {
			t.Fatal(err)
		}
		if r := b.get("/connect"); r.status != http.StatusForbidden {
			t.Fatalf("after the group was taken away: %d, want 403", r.status)
		}
		form := url.Values{"csrf": {b.token("/connections")}}
		if r := b.post("/connect", form); r.status != http.StatusForbidden {
			t.Errorf("POST /connect after the group was taken away: %d, want 403", r.status)
		}
	})
}

// mustUserJSON is the stored record of name with groups, its password
// hash kept: the group change an operator's edit would make.
func mustUserJSON(t *testing.T, e *env, name string, groups []string) []byte {
	t.Helper()
	rec, err := e.srv.users.get(t.Context(), name)
	if err != nil {
		t.Fatal(err)
	}
	rec.Groups = groups
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestSSOSessionEndsWithItsToken: an SSO session's groups come from the
// id_token; when the token expires the session ends and a fresh sign-in
// brings the current groups.
func TestSSOSessionEndsWithItsToken(t *testing.T) {
	e := newSSOEnv(t, false)
	b := e.browser()
	r := b.get("/login/sso?next=/connect")
	back, err := graphtest.Authorize(t.Context(), &http.Client{}, r.location(), graphtest.DefaultUser, graphtest.DefaultPassword, true)
	if err != nil {
		t.Fatal(err)
	}
	if r := b.get(back.String()); r.status != http.StatusSeeOther {
		t.Fatalf("sso callback: %d", r.status)
	}
	if r := b.get("/connect"); r.status != http.StatusOK {
		t.Fatalf("/connect after SSO: %d", r.status)
	}
	e.srv.now = func() time.Time { return time.Now().Add(3 * time.Hour) }
	if r := b.get("/connect"); r.status != http.StatusSeeOther || !strings.HasPrefix(r.location(), "/login") {
		t.Fatalf("after the id_token expired: %d %q, want the login page", r.status, r.location())
	}
}
