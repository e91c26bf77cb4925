package main

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// serveNATSRE finds the NATS URL `mailgate serve` announces.
var serveNATSRE = regexp.MustCompile(`^mailgate listening on \S+ \(role \S+, nats (\S+)\)`)

// TestOperatorImportsLargeAttachments runs `mailgate serve` as an operator
// starts it: the built binary, configured by environment only, with its
// embedded NATS and directory archive under a fresh data directory, an
// app-only connection added with `mailgate connections add-app`, and the
// Microsoft 365 simulator as Microsoft. Scanned invoices of 200 KB, 1.5 MB,
// 8 MB, 30 MB and 150 MB each arrive once in the archive directory and on
// the stream, none is given up, and importing the 150 MB one takes the
// process at most 64 MB above its resident size at idle before it.
//
// Every attachment above the spool's in-memory limit (1 MiB) passes through
// <data dir>/spool, which only `serve` sets up: a test with its own
// directories would not see it missing.
func TestOperatorImportsLargeAttachments(t *testing.T) {
	bin := mailgateBinary(t)
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	dataDir := t.TempDir()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*13 + 1)
	}
	p := startProc(t, bin, []string{
		"MAILGATE_DATA_DIR=" + dataDir,
		"MAILGATE_SECRET_KEY=" + base64.StdEncoding.EncodeToString(key),
		"MAILGATE_MS_CLIENT_ID=" + graphtest.DefaultClientID,
		"MAILGATE_MS_CLIENT_SECRET=" + graphtest.DefaultClientSecret,
		"MAILGATE_LOGIN_URL=" + sim.LoginURL(),
		"MAILGATE_GRAPH_URL=" + sim.GraphURL(),
		"MAILGATE_HTTP_ADDR=127.0.0.1:0",
		"MAILGATE_NATS_LISTEN=127.0.0.1:0",
		"MAILGATE_POLL_INTERVAL=5s",
	}, "serve")
	natsURL := p.waitFor(t, serveNATSRE, time.Minute)
	cli := []string{"MAILGATE_DATA_DIR=" + dataDir, "MAILGATE_NATS_URL=" + natsURL}

	// The customer's own app registration; the secret comes on stdin.
	add := exec.Command(bin, "connections", "add-app", "--customer", "firma", "--tenant", graphtest.DefaultTenantID,
		"--client-id", graphtest.DefaultClientID, "--client-secret-file", "-", "--mailbox", graphtest.DefaultMailbox)
	add.Env = append(os.Environ(), cli...)
	add.Stdin = strings.NewReader(graphtest.DefaultClientSecret + "\n")
	if out, err := add.CombinedOutput(); err != nil || !strings.Contains(string(out), " is active") {
		t.Fatalf("connections add-app: %v\n%s", err, out)
	}
	// Idle: the connection has been polled twice (its first pass and the
	// next poll) and nothing has arrived. The wait also keeps the mail
	// clear of the second the connection was made in: Graph's
	// receivedDateTime has whole seconds.
	eventually(t, 30*time.Second, "two polls of the new connection", func() bool {
		return sim.Counters().Total("messages.delta") >= 2
	})
	idle := procStatus(t, p, "VmRSS")

	// The connection imports new mail only: deliver after it was added.
	sizes := []int{200_000, 1_500_000, 8_000_000, 30_000_000}
	deliverScans(t, sim, sizes, 0)
	waitImported(t, bin, cli, len(sizes))
	before := procStatus(t, p, "VmRSS")
	peakSmall := procStatus(t, p, "VmHWM")
	// Count the peak from here: Linux resets VmHWM to the current RSS.
	reset := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", p.cmd.Process.Pid), []byte("5"), 0)
	if reset != nil {
		t.Logf("cannot reset the peak (%v): VmHWM covers the whole run", reset)
	}
	deliverScans(t, sim, []int{150_000_000}, len(sizes))
	sizes = append(sizes, 150_000_000)
	events := waitImported(t, bin, cli, len(sizes))
	peak := procStatus(t, p, "VmHWM")
	const MB = 1 << 20
	t.Logf("serve RSS: %.1f MB idle at start; %.1f MB peak for 200 KB…30 MB; %.1f MB idle before 150 MB, %.1f MB peak during it (%+.1f MB over the idle before it, %+.1f MB over the idle at start)",
		float64(idle)/MB, float64(peakSmall)/MB, float64(before)/MB, float64(peak)/MB, float64(peak-before)/MB, float64(peak-idle)/MB)
	// The baseline is the process at idle before any mail: the smaller
	// documents' heap growth counts against the bound too.
	if peak-idle > 64*MB {
		t.Errorf("importing 150 MB took the process to %.1f MB, %.1f MB above its idle %.1f MB at start; the bound is 64 MB",
			float64(peak)/MB, float64(peak-idle)/MB, float64(idle)/MB)
	}

	// Each document once: one event, its own id, one object of its size.
	ids := map[string]bool{}
	bySize := map[int64]int{}
	for _, ev := range events {
		switch d := ev.Data.(type) {
		case *archive.Imported:
			ids[ev.ID] = true
			bySize[d.Document.Size]++
			if d.Document.Kind != "pdf" {
				t.Errorf("%s imported as %s, want pdf", d.Document.Name, d.Document.Kind)
			}
			obj := filepath.Join(dataDir, "archive", filepath.FromSlash(d.Object.Key))
			if fi, err := os.Stat(obj); err != nil || fi.Size() != d.Document.Size {
				t.Errorf("archived object of %s: %v", d.Document.Name, err)
			}
		case *archive.Skipped:
			t.Errorf("%s (%d bytes) skipped: %s %s", d.Name, d.Size, d.Reason, d.Detail)
		}
	}
	if len(ids) != len(sizes) || len(bySize) != len(sizes) {
		t.Errorf("%d document events with %d distinct ids and %d distinct sizes, want %d of each", len(events), len(ids), len(bySize), len(sizes))
	}
	for size, n := range bySize {
		if n != 1 {
			t.Errorf("the %d-byte document was announced %d times", size, n)
		}
	}
	var objects []string
	_ = filepath.WalkDir(filepath.Join(dataDir, "archive"), func(path string, d fs.DirEntry, err error) error {
		// Beside each object the directory store keeps its metadata in
		// a dot file.
		if err == nil && d.Type().IsRegular() && !strings.HasPrefix(d.Name(), ".") {
			objects = append(objects, path)
		}
		return err
	})
	if len(objects) != len(sizes) {
		t.Errorf("%d files in the archive directory, want %d: %v", len(objects), len(sizes), objects)
	}
	if n := len(sim.Messages(graphtest.DefaultMailbox, "inbox")); n != 0 {
		t.Errorf("%d mails left in the inbox; all should have been moved", n)
	}
}

// deliverScans delivers one mail per size with a scanned invoice of that
// size, numbered from first.
func deliverScans(t *testing.T, sim *graphtest.Server, sizes []int, first int) {
	t.Helper()
	for i, size := range sizes {
		n := first + i
		number := fmt.Sprintf("RE-2026-%05d", n)
		_, err := sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
			From:              "scanner@lieferant.example",
			Subject:           "Rechnung " + number,
			Body:              "Anbei die gescannte Rechnung.",
			InternetMessageID: fmt.Sprintf("<%s@lieferant.example>", number),
			ReceivedAt:        time.Now().UTC(),
			Attachments: []graphtest.Attachment{{
				Name: number + ".pdf", ContentType: "application/pdf",
				Content: samples.ScanPDF(size, uint64(n+1), number),
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// waitImported reads the stream with `mailgate archive tail` until want
// documents are imported and returns its document events.
func waitImported(t *testing.T, bin string, env []string, want int) []archive.Event {
	t.Helper()
	var events []archive.Event
	eventually(t, time.Minute, fmt.Sprintf("%d imported documents", want), func() bool {
		events = events[:0]
		imported := 0
		out := runCLI(t, bin, env, "archive", "tail", "--since", "1h", "--timeout", "1s")
		sc := bufio.NewScanner(strings.NewReader(out))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			ev, err := archive.Decode(sc.Bytes())
			if err != nil {
				t.Fatalf("archive tail printed an undecodable event: %v\n%s", err, sc.Text())
			}
			switch ev.Type {
			case archive.TypeImported:
				imported++
			case archive.TypeSkipped:
			default:
				continue
			}
			events = append(events, ev)
		}
		return imported >= want
	})
	return events
}

// procStatus returns a size field of /proc/<pid>/status in bytes.
func procStatus(t *testing.T, p *proc, field string) int64 {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.cmd.Process.Pid))
	if err != nil {
		t.Fatalf("process status: %v", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				t.Fatalf("%s: %q", field, line)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/%d/status", field, p.cmd.Process.Pid)
	return 0
}
