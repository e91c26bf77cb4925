package main

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/mailgate/mailgate/connector/graphtest"
)

// TestOperatorPhotoMailListBroken: the list with the bytes of a mail of 30
// phone photos of 3 MB breaks off (the mail the fallback is meant for).
// The fallback must keep the memory bound of the streamed list: a
// document, not a mail (64 MB above idle, as TestOperatorPhotoMails).
func TestOperatorPhotoMailListBroken(t *testing.T) {
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
	const photos, size = 30, 3_000_000
	sim.ResetCounters()
	sim.Inject(graphtest.Fault{Method: "GET", PathContains: "/attachments", Truncate: true, Count: 1})
	m := graphtest.Mail{
		From: "monteur@firma.example", Subject: "Belege Baustelle", Body: "Gesendet von meinem iPhone",
		InternetMessageID: "<belege@firma.example>", ReceivedAt: time.Now().UTC(),
	}
	for k := range photos {
		m.Attachments = append(m.Attachments, graphtest.Attachment{
			Name: fmt.Sprintf("IMG_%04d.JPG", k), ContentType: "image/jpeg", Content: phonePhoto(size, uint64(k)),
		})
	}
	if _, err := sim.Deliver(graphtest.DefaultMailbox, m); err != nil {
		t.Fatal(err)
	}
	waitImported(t, bin, cli, photos)
	peak := procStatus(t, p, "VmHWM")
	const MB = 1 << 20
	c := sim.Counters()
	t.Logf("serve RSS: %.1f MB idle, %.1f MB peak (%+.1f MB); requests: %d lists, %d attachments as JSON, %d as $value",
		float64(idle)/MB, float64(peak)/MB, float64(peak-idle)/MB,
		c.Total("attachments.list"), c.Total("attachment.get"), c.Total("attachment.value"))
	if c.Total("attachments.list") < 2 {
		t.Fatalf("%d lists: the list with the bytes did not break", c.Total("attachments.list"))
	}
	if peak-idle > 64*MB {
		t.Errorf("the fallback for one mail of %d photos took the process %.1f MB above its idle %.1f MB; the bound is 64 MB",
			photos, float64(peak-idle)/MB, float64(idle)/MB)
	}
}
