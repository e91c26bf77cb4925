package importer

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector"
)

// TestContentDeadlineMakesAPlainDocument: an attachment whose content is
// not read within the document's deadline is imported on what was read,
// once, with the reason in the import history: a ZUGFeRD PDF becomes a
// plain PDF, an S/MIME container stays unopened. Nothing fails, nothing
// is parked or retried.
func TestContentDeadlineMakesAPlainDocument(t *testing.T) {
	zf, err := os.ReadFile(filepath.Join("policy", "testdata", "einvoice", "zf1-pdf13-afrelationship.pdf"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		timeout time.Duration
		kind    string
	}{{time.Nanosecond, archive.KindPDF}, {0, archive.KindZUGFeRD}} {
		e := newEnv(t, connector.PostNone)
		e.mb.deliver("inbox", connector.Message{InternetMessageID: "<zf@x>", Subject: "Rechnung", ReceivedAt: t0, HasAttachments: true},
			file("rechnung.pdf", "application/pdf", zf))
		im := e.importer(t, "r1", func(c *Config) { c.Policy.ContentTimeout = tc.timeout })
		res := e.sync(t, im)
		if res.Imported != 1 || res.Failed != 0 {
			t.Fatalf("timeout %v: pass %+v, want one import and no failure", tc.timeout, res)
		}
		for _, ev := range e.events.imported {
			if ev.Document.Kind != tc.kind {
				t.Errorf("timeout %v: kind %s, want %s", tc.timeout, ev.Document.Kind, tc.kind)
			}
		}
		st, err := im.Status(context.Background(), e.conn.ID)
		if err != nil {
			t.Fatal(err)
		}
		if st.Parked != 0 {
			t.Errorf("timeout %v: %d parked", tc.timeout, st.Parked)
		}
		if tc.timeout == time.Nanosecond && (len(st.Recent) != 1 || !strings.Contains(st.Recent[0].Detail, "time bound")) {
			t.Errorf("history %+v, want the reason", st.Recent)
		}
	}
}
