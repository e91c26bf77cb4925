package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// ErrNotFound is wrapped by the errors of Get and Stat when no object is
// stored under the key.
var ErrNotFound = errors.New("archive: object not found")

// ErrChecksum is wrapped by Put's error when the body's SHA-256 or size
// differs from the one the caller declared, and by an idempotent Put when the
// object already stored under the key has a different size or SHA-256.
var ErrChecksum = errors.New("checksum mismatch")

// Meta is the metadata stored with an object.
type Meta struct {
	ContentType string // sniffed type, not the declared one
	Name        string // original file name (any Unicode; percent-encoded in S3)
	DocumentID  string
}

// Info describes a stored object.
type Info struct {
	Key         string
	Size        int64
	SHA256      string
	ContentType string
	Name        string
	DocumentID  string
	Created     time.Time
}

// Store keeps documents. Both [S3Store] and [DirStore] implement it.
type Store interface {
	// Put stores exactly size bytes of body under key. An object that already
	// exists under key with the same size and SHA-256 is a success and is not
	// rewritten. Put verifies that what it wrote has SHA-256 sha256hex (lower
	// case hex); on a mismatch it fails with ErrChecksum and leaves nothing
	// under key.
	Put(ctx context.Context, key string, body io.Reader, size int64, sha256hex string, meta Meta) (ObjectRef, error)
	// Get opens the object; an unknown key yields an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) (io.ReadCloser, Info, error)
	// Stat describes the object; an unknown key yields an error wrapping ErrNotFound.
	Stat(ctx context.Context, key string) (Info, error)
	// Ping reports whether the store can be used (readiness).
	Ping(ctx context.Context) error
	// Bucket names the store in events' object.bucket.
	Bucket() string
}

// Key returns the content-addressed object key
// <customer>/<yyyy>/<mm>/<sha256>.<ext> where the date is received in UTC.
// An empty ext yields "bin"; a leading dot in ext is ignored.
func Key(customer string, received time.Time, sha256hex, ext string) string {
	ext = strings.TrimPrefix(ext, ".")
	if ext == "" {
		ext = "bin"
	}
	u := received.UTC()
	return fmt.Sprintf("%s/%04d/%02d/%s.%s", customer, u.Year(), int(u.Month()), strings.ToLower(sha256hex), strings.ToLower(ext))
}

// checkKey refuses keys that could escape a directory or collide with the
// directory store's own files: empty segments, segments starting with a dot,
// backslashes and control characters.
func checkKey(key string) error {
	if key == "" || len(key) > 900 {
		return fmt.Errorf("archive: invalid key %q", key)
	}
	for seg := range strings.SplitSeq(key, "/") {
		if seg == "" || seg[0] == '.' {
			return fmt.Errorf("archive: invalid key %q", key)
		}
	}
	for _, r := range key {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("archive: invalid key %q", key)
		}
	}
	return nil
}

// checkSHA256 requires 64 lower- or upper-case hex digits.
func checkSHA256(s string) error {
	if len(s) != 64 {
		return fmt.Errorf("archive: invalid sha256 %q", s)
	}
	for _, c := range s {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return fmt.Errorf("archive: invalid sha256 %q", s)
		}
	}
	return nil
}

// Fetch opens the document an event refers to. ref.Bucket must name st.
func Fetch(ctx context.Context, st Store, ref ObjectRef) (io.ReadCloser, Info, error) {
	if ref.Bucket != st.Bucket() {
		return nil, Info{}, fmt.Errorf("archive: fetch %s/%s: store holds bucket %q", ref.Bucket, ref.Key, st.Bucket())
	}
	rc, info, err := st.Get(ctx, ref.Key)
	if err != nil {
		return nil, Info{}, fmt.Errorf("archive: fetch: %w", err)
	}
	return rc, info, nil
}
