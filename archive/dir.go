package archive

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// DirStore keeps documents as files under a directory: the object for key
// k is the file <dir>/k and its metadata the JSON file .<name>.meta beside
// it (keys never have segments starting with a dot, so the two can't clash).
//
// A put writes a temporary file in the target directory, verifies size and
// SHA-256, fsyncs it and hard-links it to its final name, then fsyncs the
// directory: a document under its key is always complete and durable, and
// the link fails rather than replacing an existing document.
//
// A put cut short by a crash leaves its temporary file behind; the first
// put into a directory in each process removes those older than an hour.
type DirStore struct {
	dir   string
	swept sync.Map // directories swept of stale temporary files
}

// staleTemp is the age after which a temporary file is a crash's leftover:
// far beyond any put in progress.
const staleTemp = time.Hour

// dirMeta is the sidecar file of a DirStore object.
type dirMeta struct {
	Size        int64     `json:"size"`
	SHA256      string    `json:"sha256"`
	ContentType string    `json:"contentType,omitempty"`
	Name        string    `json:"name,omitempty"`
	DocumentID  string    `json:"documentId,omitempty"`
	Created     time.Time `json:"created"`
}

// NewDir returns a store under dir, creating the directory if needed.
func NewDir(dir string) (*DirStore, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("archive: dir store %s: %w", dir, err)
	}
	if err := os.MkdirAll(abs, 0o750); err != nil {
		return nil, fmt.Errorf("archive: dir store: %w", err)
	}
	return &DirStore{dir: abs}, nil
}

// Bucket returns "dir:<absolute path>".
func (d *DirStore) Bucket() string { return "dir:" + d.dir }

// Ping checks that the directory exists and is writable.
func (d *DirStore) Ping(ctx context.Context) error {
	if err := CheckDir(d.dir); err != nil {
		return fmt.Errorf("archive: dir store ping: %w", err)
	}
	return nil
}

func (d *DirStore) paths(key string) (data, meta string) {
	data = filepath.Join(d.dir, filepath.FromSlash(key))
	return data, filepath.Join(filepath.Dir(data), "."+filepath.Base(data)+".meta")
}

// Put implements [Store.Put].
func (d *DirStore) Put(ctx context.Context, key string, body io.Reader, size int64, sha256hex string, meta Meta) (ObjectRef, error) {
	ref := ObjectRef{Bucket: d.Bucket(), Key: key}
	if err := checkPut(key, size, sha256hex); err != nil {
		return ObjectRef{}, fmt.Errorf("archive: dir put: %w", err)
	}
	sum := strings.ToLower(sha256hex)
	dataPath, metaPath := d.paths(key)
	if ok, err := d.existing(ctx, key, size, sum); err != nil || ok {
		return ref, err
	}
	dir := filepath.Dir(dataPath)
	if err := d.ensureDir(dir); err != nil {
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
	}
	if _, done := d.swept.LoadOrStore(dir, true); !done {
		d.sweep(dir, time.Now().Add(-staleTemp))
	}

	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
	}
	defer func() { _ = os.Remove(tmp.Name()) }() // the final name is a hard link
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), io.LimitReader(ctxReader(ctx, body), size+1))
	if err == nil && (n != size || hex.EncodeToString(h.Sum(nil)) != sum) {
		err = fmt.Errorf("%w: got %d bytes, sha256 %s; want %d bytes, %s", ErrChecksum, n, hex.EncodeToString(h.Sum(nil)), size, sum)
	}
	if err != nil {
		_ = tmp.Close()
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
	}

	// Metadata first: a document visible under its key always has its
	// sidecar. A sidecar left by an earlier attempt describes the same
	// content (the key is content-addressed) and is kept. The sidecar is
	// written and synced while the data file syncs: concurrent fsyncs share
	// a journal commit on most file systems, so a put waits for two commits
	// (files, then directory) instead of three.
	mb, err := json.Marshal(dirMeta{Size: size, SHA256: sum, ContentType: meta.ContentType, Name: meta.Name, DocumentID: meta.DocumentID, Created: time.Now().UTC()})
	if err != nil {
		_ = tmp.Close()
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
	}
	var errMeta error
	var wg sync.WaitGroup
	wg.Go(func() { errMeta = writeNew(metaPath, mb) })
	err = tmp.Sync()
	if errClose := tmp.Close(); err == nil {
		err = errClose
	}
	wg.Wait()
	if err != nil {
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
	}
	if errMeta != nil {
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: meta: %w", key, errMeta)
	}
	if err := os.Link(tmp.Name(), dataPath); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
		}
		// A concurrent put won; it must hold the same bytes.
		if _, err := d.existing(ctx, key, size, sum); err != nil {
			return ObjectRef{}, err
		}
		return ref, nil
	}
	if err := syncDir(dir); err != nil {
		return ObjectRef{}, fmt.Errorf("archive: dir put %s: %w", key, err)
	}
	return ref, nil
}

// existing reports whether key already holds an object of the given size and
// SHA-256; an object that differs is an ErrChecksum error.
func (d *DirStore) existing(ctx context.Context, key string, size int64, sum string) (bool, error) {
	info, err := d.Stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if info.Size != size || (info.SHA256 != "" && info.SHA256 != sum) {
		return false, fmt.Errorf("archive: dir put %s: %w: stored object has %d bytes, sha256 %s", key, ErrChecksum, info.Size, info.SHA256)
	}
	return true, nil
}

// writeNew writes b durably to path unless path exists.
func writeNew(path string, b []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer func() { _ = os.Remove(tmp.Name()) }()
	_, err = tmp.Write(b)
	if err == nil {
		err = tmp.Sync()
	}
	if errClose := tmp.Close(); err == nil {
		err = errClose
	}
	if err != nil {
		return err
	}
	if err := os.Link(tmp.Name(), path); err != nil && !errors.Is(err, fs.ErrExist) {
		return err
	}
	return nil
}

// ensureDir creates dir and its missing parents below the store's root,
// fsyncing each parent that got a new entry so the path survives a power cut.
func (d *DirStore) ensureDir(dir string) error {
	if fi, err := os.Stat(dir); err == nil && fi.IsDir() {
		return nil
	}
	parent := filepath.Dir(dir)
	if parent != d.dir {
		if err := d.ensureDir(parent); err != nil {
			return err
		}
	}
	if err := os.Mkdir(dir, 0o750); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return nil // a concurrent put made it
		}
		return err
	}
	return syncDir(parent)
}

// sweep removes the temporary files in dir older than before. It is best
// effort: a leftover costs disk space, never correctness.
func (d *DirStore) sweep(dir string, before time.Time) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return
	}
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), ".tmp-") {
			continue
		}
		if fi, err := e.Info(); err == nil && fi.ModTime().Before(before) {
			_ = os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	return errors.Join(f.Sync(), f.Close())
}

// Get implements [Store.Get].
func (d *DirStore) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	info, err := d.Stat(ctx, key)
	if err != nil {
		return nil, Info{}, err
	}
	dataPath, _ := d.paths(key)
	f, err := os.Open(dataPath)
	if err != nil {
		return nil, Info{}, fmt.Errorf("archive: dir get %s: %w", key, notFound(err))
	}
	return f, info, nil
}

// Stat implements [Store.Stat].
func (d *DirStore) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, fmt.Errorf("archive: dir stat: %w", err)
	}
	dataPath, metaPath := d.paths(key)
	fi, err := os.Stat(dataPath)
	if err != nil {
		return Info{}, fmt.Errorf("archive: dir stat %s: %w", key, notFound(err))
	}
	if !fi.Mode().IsRegular() {
		return Info{}, fmt.Errorf("archive: dir stat %s: %w", key, ErrNotFound)
	}
	info := Info{Key: key, Size: fi.Size(), Created: fi.ModTime().UTC()}
	mb, err := os.ReadFile(metaPath)
	if err != nil {
		return Info{}, fmt.Errorf("archive: dir stat %s: meta: %w", key, err)
	}
	var m dirMeta
	if err := json.Unmarshal(mb, &m); err != nil {
		return Info{}, fmt.Errorf("archive: dir stat %s: meta: %w", key, err)
	}
	info.SHA256, info.ContentType, info.Name, info.DocumentID = m.SHA256, m.ContentType, m.Name, m.DocumentID
	if !m.Created.IsZero() {
		info.Created = m.Created
	}
	return info, nil
}

func notFound(err error) error {
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// checkPut validates Put's arguments.
func checkPut(key string, size int64, sha256hex string) error {
	if err := checkKey(key); err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("archive: size %d: the exact size is required", size)
	}
	return checkSHA256(sha256hex)
}

// ctxReader stops a copy when ctx ends.
func ctxReader(ctx context.Context, r io.Reader) io.Reader {
	return readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			return 0, err
		}
		return r.Read(p)
	})
}

type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }
