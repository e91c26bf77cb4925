package archive

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
)

// headSize is how many leading bytes Head keeps for content sniffing.
const headSize = 3072

// Spool holds one copy of a body of unknown length: up to memLimit bytes in
// memory, beyond that in a temporary file. It knows the body's size and
// SHA-256, so the caller can build the key and put with the real size.
// A Spool is safe for concurrent readers; Close it when done.
type Spool struct {
	size int64
	sum  string
	head []byte
	mem  []byte   // body when it fit into memLimit
	file *os.File // body otherwise
}

// ErrDisk marks a spool error of the local disk (the spool directory is
// missing, not writable or full), as opposed to an error reading the body:
// the first is the operator's to fix, the second belongs to the body's
// source.
var ErrDisk = errors.New("local disk")

// NewSpool reads r to its end. Bodies up to memLimit bytes stay in memory;
// larger ones go to a temporary file in dir ("" = os.TempDir()). An error
// of the disk wraps [ErrDisk]; an error reading r wraps that error.
func NewSpool(r io.Reader, memLimit int64, dir string) (*Spool, error) {
	if memLimit < 0 {
		memLimit = 0
	}
	h := sha256.New()
	var buf bytes.Buffer
	n, err := io.Copy(&buf, io.TeeReader(io.LimitReader(r, memLimit+1), h))
	if err != nil {
		return nil, fmt.Errorf("archive: spool: %w", err)
	}
	s := &Spool{}
	if n <= memLimit {
		s.mem = buf.Bytes()
		if cap(s.mem)-len(s.mem) > len(s.mem)/8+512 {
			// The buffer grew by doubling: keep the body, not the slack.
			s.mem = append(make([]byte, 0, len(s.mem)), s.mem...)
		}
		s.size = n
	} else {
		f, err := os.CreateTemp(dir, "mailgate-spool-*")
		if err != nil {
			return nil, fmt.Errorf("archive: spool: %w: %w", ErrDisk, err)
		}
		s.file = f
		w := diskWriter{f}
		if _, err := w.Write(buf.Bytes()); err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("archive: spool: %w", err)
		}
		buf = bytes.Buffer{} // release the memory part
		rest, err := io.Copy(w, io.TeeReader(r, h))
		if err != nil {
			_ = s.Close()
			return nil, fmt.Errorf("archive: spool: %w", err)
		}
		s.size = n + rest
	}
	s.sum = hex.EncodeToString(h.Sum(nil))
	hn := min(s.size, headSize)
	s.head = make([]byte, hn)
	if _, err := s.ReaderAt().ReadAt(s.head, 0); err != nil && !errors.Is(err, io.EOF) {
		_ = s.Close()
		return nil, fmt.Errorf("archive: spool: %w: %w", ErrDisk, err)
	}
	return s, nil
}

// diskWriter marks the errors of writing the spool file as the disk's, so
// that io.Copy's error says which side failed.
type diskWriter struct{ f *os.File }

func (w diskWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrDisk, err)
	}
	return n, err
}

// CheckDir reports whether dir exists and a file can be created in it,
// by creating and removing one.
func CheckDir(dir string) error {
	f, err := os.CreateTemp(dir, ".probe-*")
	if err != nil {
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	name := f.Name()
	if err := errors.Join(f.Close(), os.Remove(name)); err != nil {
		return fmt.Errorf("%w: %w", ErrDisk, err)
	}
	return nil
}

// Size is the body's length in bytes.
func (s *Spool) Size() int64 { return s.size }

// SHA256 is the body's SHA-256 in lower-case hex.
func (s *Spool) SHA256() string { return s.sum }

// InMemory reports whether the body is kept in memory, not in a file.
func (s *Spool) InMemory() bool { return s.file == nil }

// Head returns the first ≤ 3072 bytes, for content sniffing. Don't modify it.
func (s *Spool) Head() []byte { return s.head }

// Reader returns a new reader positioned at the start of the body. It also
// implements io.ReaderAt and carries the spool's checksum, so
// [Store.Put] can skip hashing it a second time.
func (s *Spool) Reader() io.ReadSeeker {
	return &spoolReader{SectionReader: io.NewSectionReader(s.ReaderAt(), 0, s.size), sum: s.sum}
}

// ReaderAt gives random access to the body, for PDF libraries.
func (s *Spool) ReaderAt() io.ReaderAt {
	if s.file != nil {
		return s.file
	}
	return bytes.NewReader(s.mem)
}

// Close removes the temporary file, if any, and lets go of the memory.
func (s *Spool) Close() error {
	s.mem = nil
	if s.file == nil {
		return nil
	}
	f := s.file
	s.file = nil
	errClose := f.Close()
	errRemove := os.Remove(f.Name())
	if err := errors.Join(errClose, errRemove); err != nil {
		return fmt.Errorf("archive: spool close: %w", err)
	}
	return nil
}

// spoolReader is a SectionReader over a spool that knows the SHA-256 the
// spool computed while writing those very bytes.
type spoolReader struct {
	*io.SectionReader
	sum string
}
