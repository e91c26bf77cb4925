package importer

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector"
)

// spoolFiles counts the files left in a spool directory.
func spoolFiles(t *testing.T, dir string) int {
	t.Helper()
	left, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	return len(left)
}

// TestSpoolDirEmptyAfterEveryPath: whatever becomes of a mail's spooled
// attachments — imported, skipped, the same file twice, a container's
// parts, a mail that fails, a pass cancelled between documents — no
// spool file is left behind.
func TestSpoolDirEmptyAfterEveryPath(t *testing.T) {
	p7m, err := os.ReadFile(filepath.Join("policy", "testdata", "smime", "opaque-ber.p7m"))
	if err != nil {
		t.Fatal(err)
	}
	mixed := func(i int) []connector.Attachment {
		pdf := append(pdfDoc(i), make([]byte, 4096)...)
		return []connector.Attachment{
			file(fmt.Sprintf("RE-%d.pdf", i), "application/pdf", pdf),
			file(fmt.Sprintf("RE-%d copy.pdf", i), "application/pdf", pdf), // the same file twice
			file("setup.pdf", "application/pdf", peDoc()),                  // skipped: disguised
			file("smime.p7m", "application/pkcs7-mime; smime-type=signed-data", p7m),
			{Type: connector.ReferenceAttachment, Name: "link", ID: "ref"},
			{Type: connector.ItemAttachment, Name: "Fwd", ID: "item", Content: []byte("Subject: x\r\n\r\nhi")},
		}
	}
	for _, tc := range []struct {
		name  string
		setup func(e *env, c *Config)
		ctx   func(im *Importer) context.Context
	}{
		{name: "imported and skipped"},
		{name: "mail fails", setup: func(e *env, c *Config) {
			c.Policy.SaveEML = true
			e.mb.fault = func(op, _ string) error {
				if op == "message" {
					return connector.E("fake: message", connector.Invalid, errors.New("broken"))
				}
				return nil
			}
		}},
		{name: "cancelled between documents", setup: func(e *env, c *Config) { c.AttachmentWorkers = 1 },
			ctx: func(im *Importer) context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				var n atomic.Int32
				im.hook = func(step string) error {
					if step == "recorded" && n.Add(1) == 1 {
						cancel()
					}
					return nil
				}
				return ctx
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, connector.PostNone)
			for i := range 3 {
				e.mb.deliver("inbox", connector.Message{InternetMessageID: fmt.Sprintf("<m%d@x>", i), Subject: "s", ReceivedAt: t0.Add(time.Duration(i) * time.Minute)}, mixed(i)...)
			}
			spool := t.TempDir()
			im := e.importer(t, "r1", func(c *Config) {
				c.SpoolDir, c.SpoolMemory = spool, 1 // every attachment on disk
				if tc.setup != nil {
					tc.setup(e, c)
				}
			})
			ctx := context.Background()
			if tc.ctx != nil {
				ctx = tc.ctx(im)
			}
			res, err := im.SyncNow(ctx, e.conn.ID)
			t.Logf("pass %+v, %v", res, err)
			if n := spoolFiles(t, spool); n != 0 {
				t.Errorf("%d spool files left (pass %+v, %v)", n, res, err)
			}
			if tc.ctx == nil && tc.setup == nil && (err != nil || res.Imported == 0 || res.Skipped == 0) {
				t.Errorf("pass %+v, %v: want imports and skips", res, err)
			}
		})
	}
}
