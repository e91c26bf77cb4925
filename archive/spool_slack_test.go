package archive

import (
	"bytes"
	"testing"
)

// TestSpoolInMemoryKeepsItsSize: a body kept in memory holds about its own
// size, not the capacity its buffer grew to (up to twice as much): the
// importer counts Size against a mail's SpoolMemory.
func TestSpoolInMemoryKeepsItsSize(t *testing.T) {
	for _, n := range []int{1000, 33000, 65537, 300000, 600000, 1 << 20} {
		s, err := NewSpool(bytes.NewReader(make([]byte, n)), 1<<20, t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		if !s.InMemory() || s.Size() != int64(n) {
			t.Fatalf("%d bytes: in memory %v, size %d", n, s.InMemory(), s.Size())
		}
		if c := cap(s.mem); c > n+n/8+512 {
			t.Errorf("%d bytes in memory hold %d", n, c)
		}
		s.Close()
	}
}
