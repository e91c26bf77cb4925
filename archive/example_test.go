package archive_test

import (
	"context"
	"fmt"
	"io"
	"log"
	"os"
	"strings"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func ExampleKey() {
	received := time.Date(2026, 3, 31, 23, 30, 0, 0, time.FixedZone("CEST", -2*3600))
	fmt.Println(archive.Key("acme", received, "9F86D081884C7D659A2FEAA0C55AD015A3BF4F1B2B0B822CD15D6C15B0F00A08", "pdf"))
	// Output: acme/2026/04/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08.pdf
}

func ExampleSubject() {
	fmt.Println(archive.Subject("acme", archive.TypeImported))
	fmt.Println(archive.Subject("acme", archive.TypeConnectionChanged))
	// Output:
	// mailgate.acme.document.imported
	// mailgate.acme.connection.changed
}

// The importer's side: spool an attachment, derive its key, store it.
func ExampleDirStore() {
	dir, err := os.MkdirTemp("", "archive-example")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	st, err := archive.NewDir(dir)
	if err != nil {
		log.Fatal(err)
	}

	ctx := context.Background()
	sp, err := archive.NewSpool(strings.NewReader("%PDF-1.7 …"), 1<<20, "")
	if err != nil {
		log.Fatal(err)
	}
	defer sp.Close()
	key := archive.Key("acme", time.Date(2026, 3, 9, 8, 0, 0, 0, time.UTC), sp.SHA256(), "pdf")
	ref, err := st.Put(ctx, key, sp.Reader(), sp.Size(), sp.SHA256(), archive.Meta{ContentType: "application/pdf", Name: "Rechnung März.pdf", DocumentID: "doc-1"})
	if err != nil {
		log.Fatal(err)
	}

	rc, info, err := archive.Fetch(ctx, st, ref)
	if err != nil {
		log.Fatal(err)
	}
	defer rc.Close()
	body, _ := io.ReadAll(rc)
	fmt.Println(info.Name, info.ContentType, info.Size, string(body))
	// Output: Rechnung März.pdf application/pdf 12 %PDF-1.7 …
}

// An archive system (DMS) follows imported documents with a durable
// consumer. Returning nil acknowledges an event; returning an error, or
// crashing before returning, gets it delivered again — so the handler must be
// idempotent (the document's SHA-256 or the event id make good keys).
// A complete program is in archive/example/subscriber.
func ExampleSubscribe() {
	nc, err := nats.Connect("nats://127.0.0.1:4222")
	if err != nil {
		log.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		log.Fatal(err)
	}
	st, err := archive.NewS3(context.Background(), archive.S3Config{
		Endpoint: "127.0.0.1:9000", Bucket: "mailgate",
		AccessKey: os.Getenv("MAILGATE_S3_ACCESS_KEY"), SecretKey: os.Getenv("MAILGATE_S3_SECRET_KEY"),
	})
	if err != nil {
		log.Fatal(err)
	}

	ctx, stop := context.WithCancel(context.Background()) // signal.NotifyContext in a real program
	defer stop()
	err = archive.Subscribe(ctx, js, archive.SubscribeConfig{
		Durable:  "dms",
		Customer: "acme",
		Types:    []string{archive.TypeImported},
	}, func(ctx context.Context, d *archive.Delivery) error {
		doc := d.Event.Data.(*archive.Imported)
		rc, _, err := archive.Fetch(ctx, st, doc.Object)
		if err != nil {
			return err
		}
		defer rc.Close()
		// … hand rc to the DMS under doc.Document.Name, keyed by d.Event.ID …
		_, err = io.Copy(io.Discard, rc)
		return err
	})
	if err != nil {
		log.Fatal(err)
	}
}
