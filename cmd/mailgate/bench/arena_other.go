//go:build !unix

package bench

// arena falls back to the Go heap where mmap is missing.
type arena struct {
	mem []byte
	off int
}

func newArena(size int) (*arena, error) { return &arena{mem: make([]byte, size)}, nil }

func (a *arena) alloc(n int) []byte {
	b := a.mem[a.off : a.off+n : a.off+n]
	a.off += n
	return b
}

func (a *arena) free() { a.mem = nil }
