package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
)

// rawPutter stores bytes the plainest way the store allows: the ceiling
// mailgate's archiving is compared with.
type rawPutter interface {
	put(ctx context.Context, key string, b []byte) error
}

// rawS3 is minio-go's PutObject with the size known, one object at a time.
type rawS3 struct {
	c      *minio.Client
	bucket string
}

func newRawS3(cfg archive.S3Config) (rawS3, error) {
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.Secure,
		Region: cfg.Region,
	})
	if err != nil {
		return rawS3{}, fmt.Errorf("bench: minio client: %w", err)
	}
	return rawS3{c: c, bucket: cfg.Bucket}, nil
}

func (r rawS3) put(ctx context.Context, key string, b []byte) error {
	_, err := r.c.PutObject(ctx, r.bucket, key, bytes.NewReader(b), int64(len(b)), minio.PutObjectOptions{ContentType: "application/pdf"})
	if err != nil {
		return fmt.Errorf("raw put %s: %w", key, err)
	}
	return nil
}

// rawDir writes and syncs a file, the ceiling of the directory archive.
type rawDir struct{ dir string }

func (r rawDir) put(_ context.Context, key string, b []byte) error {
	p := filepath.Join(r.dir, filepath.FromSlash(key))
	if err := os.MkdirAll(filepath.Dir(p), 0o700); err != nil {
		return fmt.Errorf("raw write: %w", err)
	}
	f, err := os.Create(p)
	if err != nil {
		return fmt.Errorf("raw write: %w", err)
	}
	_, err = f.Write(b)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("raw write %s: %w", key, err)
	}
	return nil
}

// rawPutRow puts every document once, sequentially, as the importer works
// the mails of one mailbox.
// run names the run in the object keys.
func (b *bencher) rawPutRow(ctx context.Context, scenario, run string, docs [][]byte) (Row, error) {
	row := Row{Scenario: scenario, What: whatRawPut, Docs: len(docs)}
	resetPeakRSS()
	base, cpu0, t0 := currentRSS(), cpuTime(), time.Now()
	for i, d := range docs {
		if err := b.raw.put(ctx, "raw/"+scenario+"/"+run+"/"+strconv.Itoa(i)+".pdf", d); err != nil {
			return Row{}, err
		}
		row.Bytes += int64(len(d))
	}
	row.Elapsed, row.CPU = time.Since(t0), cpuTime()-cpu0
	row.PeakRSS = peakRSS()
	row.RSSIncrease = row.PeakRSS - min(base, row.PeakRSS)
	return row, nil
}

// rawPublishRow publishes n events like mailgate's document.imported, each
// with its own Nats-Msg-Id and waiting for the acknowledgement, to a stream
// on the same server with the same storage.
func rawPublishRow(ctx context.Context, js jetstream.JetStream, scenario string, n int) (Row, error) {
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name: "BENCHRAW", Subjects: []string{"benchraw.>"}, Storage: jetstream.FileStorage,
		Duplicates: archive.DefaultDuplicateWindow,
	}); err != nil {
		return Row{}, fmt.Errorf("raw stream: %w", err)
	}
	now := time.Now().UTC()
	row := Row{Scenario: scenario, What: whatRawPublish, Docs: n}
	resetPeakRSS()
	base, cpu0, t0 := currentRSS(), cpuTime(), time.Now()
	for i := range n {
		id := fmt.Sprintf("doc_bench%021d", i)
		data, err := json.Marshal(archive.Event{
			SpecVersion: "1.0", ID: id, Source: "mailgate/bench/conn", Type: archive.TypeImported, Time: now,
			DataContentType: "application/json",
			Data: archive.Imported{
				Customer: customer, Connection: "conn", Mailbox: "rechnungen@firma.example",
				Message: archive.MessageInfo{InternetMessageID: "<" + id + "@lieferant.example>", From: "rechnung@lieferant.example",
					Subject: "Ihre Rechnung RE-2026-00001", ReceivedAt: now},
				Document: archive.DocumentInfo{Name: "RE-2026-00001.pdf", Size: docsSize, SHA256: fmt.Sprintf("%064d", i),
					ContentType: "application/pdf", DeclaredContentType: "application/pdf", Kind: archive.KindPDF},
				Object: archive.ObjectRef{Bucket: "mailgate-bench", Key: fmt.Sprintf("bench/2026/11/%064d.pdf", i)},
			},
		})
		if err != nil {
			return Row{}, fmt.Errorf("raw event: %w", err)
		}
		if _, err := js.Publish(ctx, "benchraw.document.imported", data, jetstream.WithMsgID(id)); err != nil {
			return Row{}, fmt.Errorf("raw publish: %w", err)
		}
		row.Bytes += int64(len(data))
	}
	row.Elapsed, row.CPU = time.Since(t0), cpuTime()-cpu0
	row.PeakRSS = peakRSS()
	row.RSSIncrease = row.PeakRSS - min(base, row.PeakRSS)
	return row, nil
}
