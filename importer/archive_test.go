package importer

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestWithRealArchive runs crashes against the real directory store and
// the real publisher on the MAILGATE stream: after the replays, the stream
// holds one imported event per document and the directory one file.
func TestWithRealArchive(t *testing.T) {
	for _, step := range []string{"stored", "published", "recorded", "postprocessed", "committed"} {
		t.Run(step, func(t *testing.T) {
			e := newEnv(t, connector.PostMove)
			ctx := context.Background()
			stream, err := archive.EnsureStream(ctx, e.js, archive.StreamConfig{})
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			store, err := archive.NewDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			e.mb.pageSize = 4
			want := deliverMix(t, e.mb, 20)
			deps := Deps{Connections: e.conns, Mailboxes: e.mbs, Store: store, Events: archive.NewPublisher(e.js, "mailgate")}
			newImporter := func(replica string) *Importer {
				im, err := New(ctx, e.js, deps, Config{Replica: replica, Now: e.clock.Now, After: e.clock.After})
				if err != nil {
					t.Fatal(err)
				}
				return im
			}
			im := newImporter("r1")
			var n atomic.Int32
			im.hook = func(s string) error {
				if s == step && n.Add(1) == 3 {
					return errors.New("crash")
				}
				return nil
			}
			if _, err := im.SyncNow(ctx, e.conn.ID); err == nil {
				t.Fatal("no crash")
			}
			if _, err := newImporter("r2").SyncNow(ctx, e.conn.ID); err != nil {
				t.Fatal(err)
			}
			imported, err := stream.Info(ctx, jetstream.WithSubjectFilter("mailgate.acme.>"))
			if err != nil {
				t.Fatal(err)
			}
			subj := imported.State.Subjects
			if got := subj[archive.Subject("acme", archive.TypeImported)]; got != uint64(want.imported) {
				t.Errorf("stream holds %d imported events, want %d", got, want.imported)
			}
			skips := 0
			for _, n := range want.reasons {
				skips += n
			}
			if got := subj[archive.Subject("acme", archive.TypeSkipped)]; got != uint64(skips) {
				t.Errorf("stream holds %d skipped events, want %d", got, skips)
			}
			files := 0
			err = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
				if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
					files++
				}
				return err
			})
			if err != nil {
				t.Fatal(err)
			}
			if files != want.imported {
				t.Errorf("directory holds %d files, want %d", files, want.imported)
			}
		})
	}
}
