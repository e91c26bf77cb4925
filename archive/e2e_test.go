package archive_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
)

// TestStoreThenPublishThenFetch runs the importer's and the subscriber's side
// of one document against a directory store and embedded JetStream.
func TestStoreThenPublishThenFetch(t *testing.T) {
	ctx := context.Background()
	js, _ := archivetest.RunJetStream(t)
	if _, err := archive.EnsureStream(ctx, js, archive.StreamConfig{}); err != nil {
		t.Fatal(err)
	}
	st, err := archive.NewDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}

	// Importer: spool, store, publish — twice, as a replay after a crash would.
	body := []byte("%PDF-1.7\n…invoice…")
	pub := archive.NewPublisher(js, "mailgate")
	for range 2 {
		sp, err := archive.NewSpool(bytes.NewReader(body), 1<<20, "")
		if err != nil {
			t.Fatal(err)
		}
		key := archive.Key("acme", time.Now(), sp.SHA256(), "pdf")
		ref, err := st.Put(ctx, key, sp.Reader(), sp.Size(), sp.SHA256(), archive.Meta{ContentType: "application/pdf", Name: "RE 1.pdf", DocumentID: "doc-1"})
		if err != nil {
			t.Fatal(err)
		}
		d := sampleImported("acme")
		d.Document = archive.DocumentInfo{Name: "RE 1.pdf", Size: sp.Size(), SHA256: sp.SHA256(), ContentType: "application/pdf", Kind: archive.KindPDF}
		d.Object = ref
		if err := pub.Imported(ctx, "doc-1", d); err != nil {
			t.Fatal(err)
		}
		_ = sp.Close()
	}

	// Subscriber: one event, the exact bytes.
	got := make(chan []byte, 2)
	stop, _ := runSubscriber(t, js, archive.SubscribeConfig{Durable: "dms"}, func(ctx context.Context, d *archive.Delivery) error {
		rc, _, err := archive.Fetch(ctx, st, d.Event.Data.(*archive.Imported).Object)
		if err != nil {
			return err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		got <- b
		return err
	})
	select {
	case b := <-got:
		if !bytes.Equal(b, body) {
			t.Errorf("fetched %q, want %q", b, body)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	if err := stop(); err != nil {
		t.Fatal(err)
	}
	assertNoPending(t, js, "dms")
	if n := streamMsgs(t, js); n != 1 {
		t.Errorf("stream has %d events after a replayed import, want 1", n)
	}
	if _, _, err := archive.Fetch(ctx, st, archive.ObjectRef{Bucket: "elsewhere", Key: "x"}); err == nil {
		t.Error("Fetch from a ref of another bucket succeeded")
	}
}
