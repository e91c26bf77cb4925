package graph

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"strings"
	"testing"
)

// oldReferenced is how the importer told a logo from a scan before
// BodyRefs: the cid: URL anywhere in the lower-cased body.
func oldReferenced(body, cid string) bool {
	return strings.Contains(strings.ToLower(body), "cid:"+strings.ToLower(cid))
}

// newReferenced is the same question asked of cidRefs (policy.referencedInline).
func newReferenced(body, cid string) bool {
	return strings.Contains(strings.ToLower(cidRefs(body)), "cid:"+strings.ToLower(cid))
}

// TestCidRefsCaseFolding: runes whose lower case has another length in
// UTF-8 (Turkish İ, the Kelvin and Ångström signs) before a reference
// must not shift it: the logo is still referenced, as it was when the
// importer searched the whole body.
func TestCidRefsCaseFolding(t *testing.T) {
	for _, body := range []string{
		`<p>İyi günler</p><img src="cid:logo@x">`,
		`<p>İİİİ</p><img src="cid:logo@x">`,
		`<p>5 K</p><img src="cid:logo@x">`,
		`<p>1 Å</p><img src="cid:logo@x">`,
		`<p>İ</p><img src="cid:other@x"><p>K</p><img src="CID:logo@x">`,
	} {
		if got := cidRefs(body); !newReferenced(body, "logo@x") {
			t.Errorf("cidRefs(%q) = %q: the logo is not referenced", body, got)
		}
	}
}

// TestCidRefsAgreesWithBody: for any content id without a character that
// ends a reference, cidRefs answers as the body did.
func TestCidRefsAgreesWithBody(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	parts := []string{"cid:", "CID:", "Cid:", "logo", "@x", "scan", `"`, "'", " ", "<", ">", "(", ")", "İ", "K", "Å", "ä", "é", "src=", "url(", "\n", "c", "id:", "&quot;"}
	cids := []string{"logo", "logo@x", "scan@x", "ä", "İ", "K", "c", "id:logo"}
	for range 20000 {
		var b strings.Builder
		for range r.IntN(12) {
			b.WriteString(parts[r.IntN(len(parts))])
		}
		body := b.String()
		for _, cid := range cids {
			if o, n := oldReferenced(body, cid), newReferenced(body, cid); o != n {
				t.Fatalf("body %q, cid %q: body says %v, cidRefs %q says %v", body, cid, o, cidRefs(body), n)
			}
		}
	}
}

// TestCidRefsLinear: a body full of references (any sender can write one)
// costs cidRefs memory in proportion to its size, not to its size times
// the number of references.
func TestCidRefsLinear(t *testing.T) {
	var b strings.Builder
	for i := range 5000 {
		fmt.Fprintf(&b, `<img src="cid:a%d">`, i)
	}
	b.WriteString("X") // one upper-case letter at the end
	body := b.String()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	refs := cidRefs(body)
	runtime.ReadMemStats(&after)
	if n := strings.Count(refs, " ") + 1; n != 5000 {
		t.Fatalf("%d references, want 5000", n)
	}
	if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 10*uint64(len(body)) {
		t.Errorf("cidRefs of a %d-byte body allocated %d bytes", len(body), alloc)
	}
}

func BenchmarkCidRefs1MB(b *testing.B) {
	var sb strings.Builder
	for i := 0; sb.Len() < 1<<20; i++ {
		fmt.Fprintf(&sb, `<img src="cid:a%d">`, i)
	}
	body := sb.String()
	b.SetBytes(int64(len(body)))
	for b.Loop() {
		cidRefs(body)
	}
}
