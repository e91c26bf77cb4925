package archive

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// S3 upload tuning: parts of 16 MiB, two in flight. With a body that is an
// io.ReaderAt (a spool), minio-go reads each part through a SectionReader
// and holds no part buffers, so memory stays far below parts × threads.
const (
	s3PartSize   = 16 << 20
	s3NumThreads = 2
	s3MaxRetries = 3
)

// User metadata keys (minio-go adds the x-amz-meta- prefix).
const (
	metaDocumentID = "Document-Id"
	metaName       = "Name" // percent-encoded (S3 metadata is ASCII only)
	metaSHA256     = "Sha256"

	maxNameMeta = 1024 // bytes of the encoded name; S3 allows ~2 KB of metadata in all
)

// S3Config locates an S3-compatible bucket.
type S3Config struct {
	Endpoint  string // host:port (a http:// or https:// prefix sets Secure)
	AccessKey string
	SecretKey string
	Bucket    string
	Region    string
	Secure    bool
}

// S3Store keeps documents in an S3 bucket through minio-go.
//
// Integrity: Put first makes sure the body has the declared SHA-256 (a
// [Spool]'s reader carries the checksum it computed while spooling and is
// trusted; other bodies are hashed or spooled), then has the server check it
// again. An object that fits one PUT (up to 16 MiB) is sent with the SHA-256
// precomputed in a signed x-amz-checksum-sha256 header and an unsigned
// payload, so the client makes no pass of its own over the bytes and the
// server rejects bytes that don't match the header (BadDigest, reported as
// [ErrChecksum]). Larger objects go as a multipart upload with minio-go's
// Checksum option set to SHA-256: each part carries x-amz-checksum-sha256 as
// a trailer that the server verifies. The SHA-256 is also stored as user
// metadata (Sha256) so an idempotent put can compare without reading.
type S3Store struct {
	client *minio.Client
	bucket string

	noPrecheck bool // tests: skip the stat before a multipart upload to reach the 412 path
}

// NewS3 connects to the bucket, creating it if missing. An unreachable
// endpoint or refused credentials are an error here, before anything could be
// reported as stored.
func NewS3(ctx context.Context, cfg S3Config) (*S3Store, error) {
	endpoint, secure := cfg.Endpoint, cfg.Secure
	if u, err := url.Parse(endpoint); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		endpoint, secure = u.Host, u.Scheme == "https"
	}
	if endpoint == "" || cfg.Bucket == "" {
		return nil, errors.New("archive: s3: endpoint and bucket are required")
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:           credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:          secure,
		Region:          cfg.Region,
		TrailingHeaders: true,
		MaxRetries:      s3MaxRetries,
	})
	if err != nil {
		return nil, fmt.Errorf("archive: s3 %s: %w", endpoint, err)
	}
	s := &S3Store{client: client, bucket: cfg.Bucket}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("archive: s3 %s: bucket %s: %w", endpoint, cfg.Bucket, err)
	}
	if !ok {
		err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if err != nil && minio.ToErrorResponse(err).Code != "BucketAlreadyOwnedByYou" {
			return nil, fmt.Errorf("archive: s3 %s: create bucket %s: %w", endpoint, cfg.Bucket, err)
		}
	}
	return s, nil
}

// Bucket returns the bucket name.
func (s *S3Store) Bucket() string { return s.bucket }

// Ping checks that the bucket is reachable.
func (s *S3Store) Ping(ctx context.Context) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("archive: s3 ping %s: %w", s.bucket, err)
	}
	if !ok {
		return fmt.Errorf("archive: s3 ping: bucket %s does not exist", s.bucket)
	}
	return nil
}

// Put implements [Store.Put]. A new key of up to 16 MiB costs one request:
// a PUT with If-None-Match: *, so a repeated or concurrent put of the key
// ends in 412 Precondition Failed, which counts as success once a stat shows
// the stored object's size and SHA-256 match. Larger objects are looked up
// first (a HEAD is cheap next to uploading them again for a replay) and then
// uploaded in parts with the same condition.
func (s *S3Store) Put(ctx context.Context, key string, body io.Reader, size int64, sha256hex string, meta Meta) (ObjectRef, error) {
	ref := ObjectRef{Bucket: s.bucket, Key: key}
	if err := checkPut(key, size, sha256hex); err != nil {
		return ObjectRef{}, fmt.Errorf("archive: s3 put: %w", err)
	}
	sum := strings.ToLower(sha256hex)
	multipart := size > s3PartSize
	if multipart && !s.noPrecheck {
		if ok, err := s.existing(ctx, key, size, sum); err != nil || ok {
			return ref, err
		}
	}
	r, cleanup, err := verifiedBody(body, size, sum)
	if err != nil {
		return ObjectRef{}, fmt.Errorf("archive: s3 put %s: %w", key, err)
	}
	defer cleanup()

	opts := minio.PutObjectOptions{
		ContentType: meta.ContentType,
		UserMetadata: map[string]string{
			metaSHA256:     sum,
			metaDocumentID: meta.DocumentID,
			metaName:       encodeName(meta.Name),
		},
		PartSize:   s3PartSize,
		NumThreads: s3NumThreads,
	}
	if multipart {
		opts.Checksum = minio.ChecksumSHA256
	} else {
		// minio-go sends a user metadata key starting with x-amz- as a
		// header of its own and then adds no checksum (nor trailer) itself.
		// The header is signed, so an unsigned payload loses no integrity:
		// the server hashes the body and refuses it unless it matches.
		opts.UserMetadata[amzChecksumSHA256] = b64(sum)
		opts.DisableContentSha256 = true
	}
	opts.SetMatchETagExcept("*")
	info, err := s.client.PutObject(ctx, s.bucket, key, r, size, opts)
	if err != nil {
		if isPreconditionFailed(err) {
			ok, err := s.existing(ctx, key, size, sum)
			if err != nil {
				return ObjectRef{}, err
			}
			if !ok {
				return ObjectRef{}, fmt.Errorf("archive: s3 put %s/%s: precondition failed, yet no object is stored", s.bucket, key)
			}
			return ref, nil
		}
		if isBadDigest(err) {
			return ObjectRef{}, fmt.Errorf("archive: s3 put %s/%s: %w: %w", s.bucket, key, ErrChecksum, err)
		}
		return ObjectRef{}, fmt.Errorf("archive: s3 put %s/%s: %w", s.bucket, key, err)
	}
	if info.Size != size {
		return ObjectRef{}, fmt.Errorf("archive: s3 put %s/%s: %w: server stored %d bytes, want %d", s.bucket, key, ErrChecksum, info.Size, size)
	}
	if c := info.ChecksumSHA256; c != "" && !strings.Contains(c, "-") && !multipart {
		if want := b64(sum); c != want {
			return ObjectRef{}, fmt.Errorf("archive: s3 put %s/%s: %w: server checksum %s, want %s", s.bucket, key, ErrChecksum, c, want)
		}
	}
	return ref, nil
}

// amzChecksumSHA256 is the header carrying an object's SHA-256 (base64).
const amzChecksumSHA256 = "x-amz-checksum-sha256"

// isBadDigest reports whether the server refused the body because it did not
// match the checksum sent with it.
func isBadDigest(err error) bool {
	switch minio.ToErrorResponse(err).Code {
	case "BadDigest", "XAmzContentChecksumMismatch", "XAmzContentSHA256Mismatch":
		return true
	}
	return false
}

func isPreconditionFailed(err error) bool {
	er := minio.ToErrorResponse(err)
	return er.StatusCode == http.StatusPreconditionFailed || er.Code == "PreconditionFailed"
}

// existing reports whether key holds an object of this size and SHA-256.
func (s *S3Store) existing(ctx context.Context, key string, size int64, sum string) (bool, error) {
	info, err := s.stat(ctx, key)
	if errors.Is(err, ErrNotFound) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("archive: s3 put %s/%s: %w", s.bucket, key, err)
	}
	if info.Size != size || info.SHA256 != sum {
		return false, fmt.Errorf("archive: s3 put %s/%s: %w: stored object has %d bytes, sha256 %q", s.bucket, key, ErrChecksum, info.Size, info.SHA256)
	}
	return true, nil
}

// Get implements [Store.Get].
func (s *S3Store) Get(ctx context.Context, key string) (io.ReadCloser, Info, error) {
	if err := checkKey(key); err != nil {
		return nil, Info{}, fmt.Errorf("archive: s3 get: %w", err)
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, Info{}, fmt.Errorf("archive: s3 get %s/%s: %w", s.bucket, key, s3NotFound(err))
	}
	oi, err := obj.Stat()
	if err != nil {
		_ = obj.Close()
		return nil, Info{}, fmt.Errorf("archive: s3 get %s/%s: %w", s.bucket, key, s3NotFound(err))
	}
	return obj, s3Info(key, oi), nil
}

// Stat implements [Store.Stat].
func (s *S3Store) Stat(ctx context.Context, key string) (Info, error) {
	if err := checkKey(key); err != nil {
		return Info{}, fmt.Errorf("archive: s3 stat: %w", err)
	}
	info, err := s.stat(ctx, key)
	if err != nil {
		return Info{}, fmt.Errorf("archive: s3 stat %s/%s: %w", s.bucket, key, err)
	}
	return info, nil
}

func (s *S3Store) stat(ctx context.Context, key string) (Info, error) {
	oi, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		return Info{}, s3NotFound(err)
	}
	return s3Info(key, oi), nil
}

func s3Info(key string, oi minio.ObjectInfo) Info {
	get := func(k string) string { return oi.Metadata.Get("X-Amz-Meta-" + k) }
	return Info{
		Key:         key,
		Size:        oi.Size,
		SHA256:      get(metaSHA256),
		ContentType: oi.ContentType,
		Name:        decodeName(get(metaName)),
		DocumentID:  get(metaDocumentID),
		Created:     oi.LastModified.UTC(),
	}
}

func s3NotFound(err error) error {
	switch minio.ToErrorResponse(err).Code {
	case "NoSuchKey", "NoSuchBucket":
		return fmt.Errorf("%w: %w", ErrNotFound, err)
	}
	return err
}

// encodeName percent-encodes a file name for S3 metadata, cutting it at a
// character boundary so the encoding stays within maxNameMeta bytes.
func encodeName(name string) string {
	for {
		enc := url.PathEscape(name)
		if len(enc) <= maxNameMeta {
			return enc
		}
		_, n := utf8.DecodeLastRuneInString(name)
		name = name[:len(name)-n]
	}
}

func decodeName(enc string) string {
	name, err := url.PathUnescape(enc)
	if err != nil {
		return enc
	}
	return name
}

func b64(sumHex string) string {
	b, _ := hex.DecodeString(sumHex)
	return base64.StdEncoding.EncodeToString(b)
}

// verifiedBody returns a reader of exactly size bytes of body whose SHA-256
// is sum, or an ErrChecksum error. A spool's reader carries its checksum; other
// io.ReaderAt+io.Seeker bodies are hashed in place; anything else is spooled.
func verifiedBody(body io.Reader, size int64, sum string) (io.Reader, func(), error) {
	noop := func() {}
	if sr, ok := body.(*spoolReader); ok {
		ra, off, n := sr.Outer()
		if sr.sum == sum && off == 0 && n == size {
			return io.NewSectionReader(ra, 0, size), noop, nil
		}
	}
	ra, isRA := body.(io.ReaderAt)
	sk, isSeeker := body.(io.Seeker)
	if isRA && isSeeker {
		off, err := sk.Seek(0, io.SeekCurrent)
		if err != nil {
			return nil, noop, err
		}
		h := sha256.New()
		n, err := io.Copy(h, io.NewSectionReader(ra, off, size+1))
		if err != nil {
			return nil, noop, err
		}
		if got := hex.EncodeToString(h.Sum(nil)); n != size || got != sum {
			return nil, noop, fmt.Errorf("%w: got %d bytes, sha256 %s; want %d bytes, %s", ErrChecksum, n, got, size, sum)
		}
		return io.NewSectionReader(ra, off, size), noop, nil
	}
	sp, err := NewSpool(io.LimitReader(body, size+1), 4<<20, "")
	if err != nil {
		return nil, noop, err
	}
	if sp.Size() != size || sp.SHA256() != sum {
		_ = sp.Close()
		return nil, noop, fmt.Errorf("%w: got %d bytes, sha256 %s; want %d bytes, %s", ErrChecksum, sp.Size(), sp.SHA256(), size, sum)
	}
	return sp.Reader(), func() { _ = sp.Close() }, nil
}
