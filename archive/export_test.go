package archive

import (
	"bytes"
	"io"
)

// SkipPrecheck makes Put upload without looking for an existing object
// first, so tests reach the If-None-Match (412) path.
func SkipPrecheck(s *S3Store) { s.noPrecheck = true }

// SpoolReaderClaiming returns a reader of b that passes for a spool's reader
// whose spool computed the SHA-256 sum: a spool that got its hash wrong.
func SpoolReaderClaiming(b []byte, sum string) io.ReadSeeker {
	return &spoolReader{SectionReader: io.NewSectionReader(bytes.NewReader(b), 0, int64(len(b))), sum: sum}
}
