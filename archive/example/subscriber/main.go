// Command subscriber is an example archive-system (DMS) integration: it
// follows mailgate's document.imported events on NATS JetStream with a
// durable consumer, copies each document out of mailgate's archive into a
// local inbox directory, verifies its SHA-256 and only then acknowledges the
// event. If it is killed midway, the event is delivered again and the copy is
// redone; the file name is the document's SHA-256, so a redelivery rewrites
// the same file.
//
//	go run ./archive/example/subscriber -nats nats://127.0.0.1:4222 \
//	    -s3-endpoint 127.0.0.1:9000 -s3-bucket mailgate -inbox ./inbox
//
// S3 credentials come from MAILGATE_S3_ACCESS_KEY and MAILGATE_S3_SECRET_KEY;
// without -s3-endpoint, -archive-dir names mailgate's directory archive.
//
// NATS requires authentication. Against the embedded server of a `mailgate
// serve` on the same host, use the DMS identity of your customer, which
// `mailgate dms-credentials firma` writes into the data directory (readable
// by the account mailgate runs as) and which may follow that customer's
// events with the consumer dms_firma and nothing else:
//
//	go run ./archive/example/subscriber -nats nats://127.0.0.1:4222 -customer firma -durable dms_firma \
//	    -creds ./mailgate-data/nats-auth/dms/firma.nk -archive-dir ./mailgate-data/archive
//
// Against an external NATS,
// -creds names the .creds file (user JWT and seed) or nkey seed file your
// NATS operator issued for the DMS, and -ca the CA that signed the server's
// TLS certificate.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/mailgate/mailgate/archive"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	if err := run(log); err != nil {
		log.Error("subscriber stopped", "err", err)
		os.Exit(1)
	}
}

func run(log *slog.Logger) error {
	var (
		natsURL    = flag.String("nats", nats.DefaultURL, "NATS server URL")
		durable    = flag.String("durable", "dms-inbox", "durable consumer name (keeps the position across restarts); a DMS identity's is dms_<customer>")
		customer   = flag.String("customer", "", "only this customer (default all)")
		inbox      = flag.String("inbox", "./inbox", "where documents are copied to")
		archiveDir = flag.String("archive-dir", "./mailgate-data/archive", "mailgate's directory archive (when -s3-endpoint is empty)")
		s3Endpoint = flag.String("s3-endpoint", "", "S3 endpoint host:port")
		s3Bucket   = flag.String("s3-bucket", "mailgate", "S3 bucket")
		s3Secure   = flag.Bool("s3-secure", false, "use HTTPS for S3")
		creds      = flag.String("creds", "", "NATS .creds file or nkey seed file (a DMS identity: MAILGATE_DATA_DIR/nats-auth/dms/<customer>.nk)")
		caFile     = flag.String("ca", "", "CA certificate file that verifies the NATS server's TLS certificate")
	)
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	var st archive.Store
	var err error
	if *s3Endpoint != "" {
		st, err = archive.NewS3(ctx, archive.S3Config{
			Endpoint:  *s3Endpoint,
			AccessKey: os.Getenv("MAILGATE_S3_ACCESS_KEY"),
			SecretKey: os.Getenv("MAILGATE_S3_SECRET_KEY"),
			Bucket:    *s3Bucket,
			Secure:    *s3Secure,
		})
	} else {
		st, err = archive.NewDir(*archiveDir)
	}
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*inbox, 0o750); err != nil {
		return err
	}

	// Replies come to an inbox of the subscriber's own: mailgate's NATS
	// lets customer C's DMS subscribe to _INBOX_dms.C.> only, never to the
	// replies of other clients under _INBOX.> or of another customer's DMS.
	prefix := "_INBOX_dms"
	if *customer != "" {
		prefix += "." + *customer
	}
	opts := []nats.Option{nats.Name("dms-subscriber"), nats.MaxReconnects(-1), nats.CustomInboxPrefix(prefix)}
	if auth, err := natsAuth(*creds); err != nil {
		return err
	} else if auth != nil {
		opts = append(opts, auth)
	}
	if *caFile != "" {
		opts = append(opts, nats.RootCAs(*caFile))
	}
	nc, err := nats.Connect(*natsURL, opts...)
	if err != nil {
		return fmt.Errorf("connect %s: %w", *natsURL, err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}

	log.Info("following archive events", "durable", *durable, "customer", *customer)
	return archive.Subscribe(ctx, js, archive.SubscribeConfig{
		Durable:  *durable,
		Customer: *customer,
		Types:    []string{archive.TypeImported},
		Logger:   log,
	}, func(ctx context.Context, d *archive.Delivery) error {
		doc, ok := d.Event.Data.(*archive.Imported)
		if !ok { // can't happen: Types limits deliveries to imported events
			return d.Term()
		}
		path, err := copyDocument(ctx, st, doc, *inbox)
		if err != nil {
			return err // nak: delivered again
		}
		log.Info("document copied", "event_id", d.Event.ID, "seq", d.Seq, "customer", doc.Customer,
			"name", doc.Document.Name, "kind", doc.Document.Kind, "path", path)
		return nil // ack
	})
}

// natsAuth reads a NATS credential: a .creds file (as nsc writes it) or an
// nkey seed file (as mailgate generates for its embedded server). A missing
// file means no credential.
func natsAuth(path string) (nats.Option, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer clear(b)
	if bytes.Contains(b, []byte("BEGIN NATS USER JWT")) {
		return nats.UserCredentials(path), nil
	}
	return nats.NkeyOptionFromSeed(path)
}

// copyDocument writes the document to <inbox>/<customer>/<sha256>.<ext>
// through a temporary file, verifying its SHA-256 before the rename.
func copyDocument(ctx context.Context, st archive.Store, doc *archive.Imported, inbox string) (string, error) {
	rc, _, err := archive.Fetch(ctx, st, doc.Object)
	if err != nil {
		return "", err
	}
	defer rc.Close()

	dir := filepath.Join(inbox, doc.Customer)
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, ".part-*")
	if err != nil {
		return "", err
	}
	defer os.Remove(tmp.Name())
	h := sha256.New()
	_, err = io.Copy(io.MultiWriter(tmp, h), rc)
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("copy %s: %w", doc.Object.Key, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != doc.Document.SHA256 {
		return "", errors.New("copy " + doc.Object.Key + ": sha256 mismatch " + got)
	}
	path := filepath.Join(dir, filepath.Base(doc.Object.Key))
	return path, os.Rename(tmp.Name(), path)
}
