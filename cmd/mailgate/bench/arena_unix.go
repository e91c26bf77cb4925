//go:build unix

package bench

import (
	"fmt"
	"syscall"
)

// arena holds the simulator's mail content outside the Go heap. The
// simulator runs in the benchmark's process; with its content on the heap,
// the garbage collector's heap goal (twice the live heap) would let
// mailgate's short-lived garbage grow with the size of the test mailbox, and
// the peak RSS would measure the simulator, not mailgate. Its pages are
// written before a scenario starts, so they are part of the scenario's
// baseline RSS and add nothing to the increase measured.
type arena struct {
	mem []byte
	off int
}

func newArena(size int) (*arena, error) {
	if size == 0 {
		return &arena{}, nil
	}
	mem, err := syscall.Mmap(-1, 0, size, syscall.PROT_READ|syscall.PROT_WRITE, syscall.MAP_ANON|syscall.MAP_PRIVATE)
	if err != nil {
		return nil, fmt.Errorf("bench: map %d bytes for mail content: %w", size, err)
	}
	return &arena{mem: mem}, nil
}

// alloc returns n bytes of the arena.
func (a *arena) alloc(n int) []byte {
	b := a.mem[a.off : a.off+n : a.off+n]
	a.off += n
	return b
}

// free unmaps the arena. Nothing may touch its slices afterwards: call it
// only after the simulator that serves them is closed.
func (a *arena) free() {
	if a.mem != nil {
		_ = syscall.Munmap(a.mem)
		a.mem = nil
	}
}
