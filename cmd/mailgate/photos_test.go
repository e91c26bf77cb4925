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

// TestOperatorPhotoMails: mails with the phone photos of a stack of
// receipts, 30 photos of 3 MB each, cost the built binary the memory of a
// document, not of a mail. Each photo is at most Graph's 3 MB that the
// client once fetched as JSON and kept for the whole mail (90 MB a mail);
// now the one attachment list streams every photo to the spool as it
// arrives. Two such mails arrive at once; the process stays within 64 MB
// of its idle size, and each photo is imported once.
func TestOperatorPhotoMails(t *testing.T) {
	bin := mailgateBinary(t)
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	p, _, cli := startOperatorServe(t, bin, sim)
	addApp(t, bin, cli)
	eventually(t, 30*time.Second, "two polls of the new connection", func() bool {
		return sim.Counters().Total("messages.delta") >= 2
	})
	idle := procStatus(t, p, "VmRSS")
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak (%v): VmHWM covers the whole run", err)
	}
	const mails, photos, size = 2, 30, 3_000_000
	sim.ResetCounters()
	for i := range mails {
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
		if _, err := sim.Deliver(graphtest.DefaultMailbox, m); err != nil {
			t.Fatal(err)
		}
	}
	events := waitImported(t, bin, cli, mails*photos)
	peak := procStatus(t, p, "VmHWM")
	const MB = 1 << 20
	t.Logf("serve RSS: %.1f MB idle, %.1f MB peak with %d mails of %d photos of %d bytes (%+.1f MB)",
		float64(idle)/MB, float64(peak)/MB, mails, photos, size, float64(peak-idle)/MB)
	if peak-idle > 64*MB {
		t.Errorf("%d mails of %d photos took the process %.1f MB above its idle %.1f MB; the bound is 64 MB",
			mails, photos, float64(peak-idle)/MB, float64(idle)/MB)
	}
	ids := map[string]bool{}
	for _, ev := range events {
		if d, ok := ev.Data.(*archive.Imported); ok {
			if ids[ev.ID] || d.Document.Kind != archive.KindImage || d.Document.Size != size {
				t.Errorf("%s: kind %s, %d bytes, seen before %v", d.Document.Name, d.Document.Kind, d.Document.Size, ids[ev.ID])
			}
			ids[ev.ID] = true
		}
	}
	if len(ids) != mails*photos {
		t.Errorf("%d photos imported, want %d", len(ids), mails*photos)
	}
	// One list with the bytes per mail: no photo fetched on its own.
	c := sim.Counters()
	if n := c.Total("attachment.get") + c.Total("attachment.value"); n != 0 {
		t.Errorf("%d photos fetched one by one, want 0", n)
	}
	if n := c.Total("attachments.list"); n != mails {
		t.Errorf("%d attachment lists for %d mails", n, mails)
	}
}
