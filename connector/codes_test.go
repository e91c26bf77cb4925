package connector

import (
	"context"
	"errors"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive/archivetest"
)

func newTestCodes(t testing.TB, now func() time.Time) *Codes {
	t.Helper()
	js, _ := archivetest.RunJetStream(t)
	c, err := NewCodes(context.Background(), js, CodesOptions{TTL: time.Minute, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestCodesIssueRedeem(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	codes := newTestCodes(t, clk.Now)

	code, exp, err := codes.Issue(ctx, "acme", "con_1")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`^([0-9A-HJKMNP-TV-Z]{4}-){5}[0-9A-HJKMNP-TV-Z]{4}$`).MatchString(code) {
		t.Fatalf("code %q is not 6 groups of 4 unambiguous symbols", code)
	}
	if d := exp.Sub(clk.Now()); d <= 0 || d > time.Minute {
		t.Fatalf("expiresAt %v is not within the TTL", exp)
	}
	// Typed sloppily: lower case, spaces instead of dashes.
	typed := strings.ToLower(strings.ReplaceAll(code, "-", " "))
	id, err := codes.Redeem(ctx, "acme", "  "+typed+" ")
	if err != nil || id != "con_1" {
		t.Fatalf("Redeem = %q, %v", id, err)
	}
	if _, err := codes.Redeem(ctx, "acme", code); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("second Redeem: err = %v, want ErrInvalidCode", err)
	}
	if _, _, err := codes.Issue(ctx, "Not A Customer", "con_1"); KindOf(err) != Invalid {
		t.Fatalf("Issue with bad customer: %v", err)
	}
}

func TestCodesRedeemRefusals(t *testing.T) {
	ctx := context.Background()
	clk := newClock()
	codes := newTestCodes(t, clk.Now)

	expired, _, err := codes.Issue(ctx, "acme", "con_exp")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := codes.Issue(ctx, "acme", "con_other")
	if err != nil {
		t.Fatal(err)
	}

	// Another customer's attempt is refused and does not burn the code.
	if _, err := codes.Redeem(ctx, "evil", other); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("other customer: err = %v, want ErrInvalidCode", err)
	}
	if id, err := codes.Redeem(ctx, "acme", other); err != nil || id != "con_other" {
		t.Fatalf("owner after other customer's attempt: %q, %v", id, err)
	}

	// Malformed and unknown codes.
	unknown := groupCode(newCode())
	for _, bad := range []string{"", "nonsense", unknown} {
		if _, err := codes.Redeem(ctx, "acme", bad); !errors.Is(err, ErrInvalidCode) {
			t.Fatalf("Redeem(%q): err = %v, want ErrInvalidCode", bad, err)
		}
	}

	// Expired (by the value's expiry; the bucket TTL also removes it later).
	clk.Advance(time.Minute)
	if _, err := codes.Redeem(ctx, "acme", expired); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("expired: err = %v, want ErrInvalidCode", err)
	}
	if KindOf(ErrInvalidCode) != Invalid {
		t.Fatalf("ErrInvalidCode kind = %v", KindOf(ErrInvalidCode))
	}
}

func TestCodesRedeemOnce(t *testing.T) {
	ctx := context.Background()
	codes := newTestCodes(t, nil)
	code, _, err := codes.Issue(ctx, "acme", "con_1")
	if err != nil {
		t.Fatal(err)
	}
	const n = 50
	var wins, invalid atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			id, err := codes.Redeem(ctx, "acme", code)
			switch {
			case err == nil && id == "con_1":
				wins.Add(1)
			case errors.Is(err, ErrInvalidCode):
				invalid.Add(1)
			default:
				t.Errorf("Redeem = %q, %v", id, err)
			}
		})
	}
	close(start)
	wg.Wait()
	if wins.Load() != 1 || invalid.Load() != n-1 {
		t.Fatalf("%d redeemers: %d won, %d got ErrInvalidCode; want 1 and %d", n, wins.Load(), invalid.Load(), n-1)
	}
}

func TestCodeProperties(t *testing.T) {
	seen := map[string]bool{}
	for range 2000 {
		c := newCode()
		if len(c) != codeSymbols || seen[c] {
			t.Fatalf("code %q: wrong length or repeated", c)
		}
		seen[c] = true
		if strings.ContainsAny(c, "ILOU*~$=") {
			t.Fatalf("code %q has an ambiguous or extra symbol", c)
		}
		if got, err := ParseCode(groupCode(c)); err != nil || got != c {
			t.Fatalf("ParseCode(groupCode(%q)) = %q, %v", c, got, err)
		}
	}
}

func TestParseCode(t *testing.T) {
	const valid = "K7QM2XH9A4TR8BNCW3DEQY6F"
	// Make the table's base code valid by computing its check symbol.
	base := valid[:codeData] + string(crockford[checkValue([]byte(valid[:codeData]))])
	grouped := groupCode(base)
	swapped := []byte(base)
	swapped[3], swapped[4] = swapped[4], swapped[3]
	subst := []byte(base)
	subst[10] = '5'
	if subst[10] == base[10] {
		subst[10] = '6'
	}
	// A code whose data contains 0 and 1 can be typed with O, I and L.
	ambig := "0011" + base[4:codeData]
	ambig += string(crockford[checkValue([]byte(ambig))])

	tests := []struct {
		name, in, want string
	}{
		{"plain", base, base},
		{"grouped", grouped, base},
		{"lower case", strings.ToLower(grouped), base},
		{"spaces and padding", "  " + strings.ReplaceAll(grouped, "-", " ") + "\t", base},
		{"mixed separators", strings.ReplaceAll(grouped, "-", " - "), base},
		{"O I L read as 0 1 1", "OoIl" + ambig[4:], ambig},
		{"wrong check symbol", base[:codeData] + string(crockford[(checkValue([]byte(base[:codeData]))+1)%37]), ""},
		{"adjacent transposition", string(swapped), ""},
		{"one symbol substituted", string(subst), ""},
		{"too short", base[:codeSymbols-1], ""},
		{"too long", base + "0", ""},
		{"U is not a data symbol", "U" + base[1:], ""},
		{"punctuation", base[:10] + "." + base[10:], ""},
		{"non-ASCII", base[:10] + "Ä" + base[11:], ""},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseCode(tt.in)
			if tt.want == "" {
				if err == nil {
					t.Fatalf("ParseCode(%q) = %q, want an error", tt.in, got)
				}
				if KindOf(err) != Invalid {
					t.Fatalf("error kind = %v, want Invalid", KindOf(err))
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("ParseCode(%q) = %q, %v; want %q", tt.in, got, err, tt.want)
			}
		})
	}
}

// The check symbol catches every single substitution and every adjacent
// transposition of a code.
func TestCodeCheckCatchesTypos(t *testing.T) {
	c := newCode()
	for i := range codeData {
		for _, s := range []byte(crockford[:32]) {
			if s == c[i] {
				continue
			}
			b := []byte(c)
			b[i] = s
			if _, err := ParseCode(string(b)); err == nil {
				t.Fatalf("substitution at %d (%c→%c) accepted", i, c[i], s)
			}
		}
		if i+1 < codeData && c[i] != c[i+1] {
			b := []byte(c)
			b[i], b[i+1] = b[i+1], b[i]
			if _, err := ParseCode(string(b)); err == nil {
				t.Fatalf("transposition at %d accepted", i)
			}
		}
	}
}

func FuzzParseCode(f *testing.F) {
	f.Add("K7QM-2XH9-A4TR-8BNC-W3DE-QY6F")
	f.Add(groupCode(newCode()))
	f.Add("oooo iiii llll")
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		norm, err := ParseCode(s)
		if err != nil {
			if KindOf(err) != Invalid {
				t.Fatalf("error kind %v", KindOf(err))
			}
			if s != "" && len(s) > 3 && strings.Contains(err.Error(), s) {
				t.Fatalf("error echoes the input: %v", err)
			}
			return
		}
		if len(norm) != codeSymbols {
			t.Fatalf("normalised %q has length %d", norm, len(norm))
		}
		for i := range len(norm) {
			limit := 32
			if i == codeData {
				limit = 37
			}
			if strings.IndexByte(crockford[:limit], norm[i]) < 0 {
				t.Fatalf("normalised %q has symbol %q at %d", norm, norm[i], i)
			}
		}
		// Normalising is idempotent, also through display grouping.
		for _, again := range []string{norm, groupCode(norm), strings.ToLower(groupCode(norm))} {
			if n2, err := ParseCode(again); err != nil || n2 != norm {
				t.Fatalf("ParseCode(%q) = %q, %v; want %q", again, n2, err, norm)
			}
		}
	})
}

// TestReissueRevokesEarlierCodes: a leaked code is revoked by issuing a new
// one for its connection; other connections' codes stay valid.
func TestReissueRevokesEarlierCodes(t *testing.T) {
	ctx := context.Background()
	codes := newTestCodes(t, time.Now)
	leaked, _, err := codes.Issue(ctx, "acme", "con_1")
	if err != nil {
		t.Fatal(err)
	}
	other, _, err := codes.Issue(ctx, "acme", "con_2")
	if err != nil {
		t.Fatal(err)
	}
	fresh, _, err := codes.Issue(ctx, "acme", "con_1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := codes.Redeem(ctx, "acme", leaked); !errors.Is(err, ErrInvalidCode) {
		t.Fatalf("the earlier code after reissue: %v, want ErrInvalidCode", err)
	}
	if id, err := codes.Redeem(ctx, "acme", fresh); err != nil || id != "con_1" {
		t.Fatalf("the new code: %q %v", id, err)
	}
	if id, err := codes.Redeem(ctx, "acme", other); err != nil || id != "con_2" {
		t.Fatalf("another connection's code: %q %v", id, err)
	}

	// Issued concurrently, exactly one of the codes stays valid.
	const n = 8
	issued := make([]string, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			c, _, err := codes.Issue(ctx, "acme", "con_3")
			if err != nil {
				t.Error(err)
			}
			issued[i] = c
		})
	}
	wg.Wait()
	valid := 0
	for _, c := range issued {
		if _, err := codes.Redeem(ctx, "acme", c); err == nil {
			valid++
		}
	}
	if valid != 1 {
		t.Fatalf("%d of %d concurrently issued codes redeemed, want 1", valid, n)
	}
}
