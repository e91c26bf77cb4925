package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// phonePhoto is a photo of about size bytes as a phone takes it: a JPEG
// header of 4032×3024 pixels, then noise.
func phonePhoto(size int, seed uint64) []byte {
	head := []byte{
		0xFF, 0xD8, // SOI
		0xFF, 0xE0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0, // APP0
		0xFF, 0xC0, 0x00, 0x11, 8, 0x0B, 0xD0, 0x0F, 0xC0, 3, 1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1, // SOF0 3024×4032
	}
	b := make([]byte, size)
	copy(b, head)
	rng := rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8), 'p', 'h'})
	_, _ = rng.Read(b[len(head) : size-2])
	copy(b[size-2:], []byte{0xFF, 0xD9})
	return b
}

// photoOperator is `mailgate serve` with an app-only connection, polled
// and idle, its peak RSS counted from then on; idle is its RSS before.
type photoOperator struct {
	bin  string
	sim  *graphtest.Server
	p    *proc
	cli  []string
	idle int64
}

func startPhotoOperator(t *testing.T) *photoOperator {
	o := &photoOperator{bin: mailgateBinary(t), sim: graphtest.NewServer()}
	t.Cleanup(o.sim.Close)
	o.p, _, o.cli = startOperatorServe(t, o.bin, o.sim)
	addApp(t, o.bin, o.cli)
	eventually(t, 30*time.Second, "two polls of the new connection", func() bool {
		return o.sim.Counters().Total("messages.delta") >= 2
	})
	o.idle = procStatus(t, o.p, "VmRSS")
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", o.p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak (%v): VmHWM covers the whole run", err)
	}
	o.sim.ResetCounters()
	return o
}

// deliverPhotos delivers mail i with photos photos of size bytes.
func (o *photoOperator) deliverPhotos(t *testing.T, i, photos, size int) {
	m := graphtest.Mail{
		From: "monteur@firma.example", Subject: fmt.Sprintf("Belege Baustelle %d", i),
		Body:              "Gesendet von meinem iPhone",
		InternetMessageID: fmt.Sprintf("<belege-%d@firma.example>", i), ReceivedAt: time.Now().UTC(),
	}
	for k := range photos {
		m.Attachments = append(m.Attachments, graphtest.Attachment{
			Name: fmt.Sprintf("IMG_%04d.JPG", 100*i+k), ContentType: "image/jpeg",
			Content: phonePhoto(size, uint64(100*i+k)),
		})
	}
	if _, err := o.sim.Deliver(graphtest.DefaultMailbox, m); err != nil {
		t.Fatal(err)
	}
}

// imported waits for n photos of size bytes and checks that each came
// once, as an image; it returns the peak RSS above idle.
func (o *photoOperator) imported(t *testing.T, n, size int) (growth int64) {
	events := waitImported(t, o.bin, o.cli, n)
	peak := procStatus(t, o.p, "VmHWM")
	ids := map[string]bool{}
	for _, ev := range events {
		if d, ok := ev.Data.(*archive.Imported); ok {
			if ids[ev.ID] || d.Document.Kind != archive.KindImage || d.Document.Size != int64(size) {
				t.Errorf("%s: kind %s, %d bytes, seen before %v", d.Document.Name, d.Document.Kind, d.Document.Size, ids[ev.ID])
			}
			ids[ev.ID] = true
		}
	}
	if len(ids) != n {
		t.Errorf("%d photos imported, want %d", len(ids), n)
	}
	return peak - o.idle
}

const mb = 1 << 20

// TestOperatorPhotoMails: mails with the phone photos of a stack of
// receipts, 30 photos of 3 MB each, cost the built binary the memory of a
// document, not of a mail. Each photo is at most Graph's 3 MB that the
// client once fetched as JSON and kept for the whole mail (90 MB a mail);
// now the one attachment list streams every photo to the spool as it
// arrives. Two such mails arrive at once; the process stays within 64 MB
// of its idle size, and each photo is imported once.
func TestOperatorPhotoMails(t *testing.T) {
	o := startPhotoOperator(t)
	const mails, photos, size = 2, 30, 3_000_000
	for i := range mails {
		o.deliverPhotos(t, i, photos, size)
	}
	growth := o.imported(t, mails*photos, size)
	t.Logf("serve RSS: %.1f MB idle, %+.1f MB at the peak with %d mails of %d photos of %d bytes",
		float64(o.idle)/mb, float64(growth)/mb, mails, photos, size)
	if growth > 64*mb {
		t.Errorf("%d mails of %d photos took the process %.1f MB above its idle %.1f MB; the bound is 64 MB",
			mails, photos, float64(growth)/mb, float64(o.idle)/mb)
	}
	// One list with the bytes per mail: no photo fetched on its own.
	c := o.sim.Counters()
	if n := c.Total("attachment.get") + c.Total("attachment.value"); n != 0 {
		t.Errorf("%d photos fetched one by one, want 0", n)
	}
	if n := c.Total("attachments.list"); n != mails {
		t.Errorf("%d attachment lists for %d mails", n, mails)
	}
}

// TestOperatorPhotoMailListBroken: the list with the bytes of a mail of 30
// phone photos of 3 MB breaks off (the mail the fallback is meant for).
// The fallback keeps the memory bound of the streamed list: a document,
// not a mail (64 MB above idle, as TestOperatorPhotoMails), and each photo
// is imported once.
func TestOperatorPhotoMailListBroken(t *testing.T) {
	o := startPhotoOperator(t)
	const photos, size = 30, 3_000_000
	o.sim.Inject(graphtest.Fault{Method: "GET", PathContains: "/attachments", Truncate: true, Count: 1})
	o.deliverPhotos(t, 0, photos, size)
	growth := o.imported(t, photos, size)
	c := o.sim.Counters()
	t.Logf("serve RSS: %.1f MB idle, %+.1f MB at the peak; requests: %d lists, %d attachments as JSON, %d as $value",
		float64(o.idle)/mb, float64(growth)/mb, c.Total("attachments.list"), c.Total("attachment.get"), c.Total("attachment.value"))
	if c.Total("attachments.list") < 2 {
		t.Fatalf("%d lists: the list with the bytes did not break", c.Total("attachments.list"))
	}
	if growth > 64*mb {
		t.Errorf("the fallback for one mail of %d photos took the process %.1f MB above its idle %.1f MB; the bound is 64 MB",
			photos, float64(growth)/mb, float64(o.idle)/mb)
	}
}
