package main

import (
	"bufio"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// serveNATSRE finds the NATS URL `mailgate serve` announces.
var serveNATSRE = regexp.MustCompile(`^mailgate listening on \S+ \(role \S+, nats (\S+)\)`)

// startOperatorServe starts `mailgate serve` (all roles) as an operator
// would: configured by environment only, the embedded NATS and the
// directory archive in a fresh data directory, sim as Microsoft. It returns
// the process, the data directory and the environment of CLI commands
// against it.
func startOperatorServe(t *testing.T, bin string, sim *graphtest.Server) (p *proc, dataDir string, cli []string) {
	t.Helper()
	dataDir = t.TempDir()
	key := make([]byte, 32)
	for i := range key {
		key[i] = byte(i*13 + 1)
	}
	p = startProc(t, bin, []string{
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
	return p, dataDir, []string{"MAILGATE_DATA_DIR=" + dataDir, "MAILGATE_NATS_URL=" + natsURL}
}

var addAppRE = regexp.MustCompile(`(?m)^connection (\S+) \(.*\) is active$`)

// addApp adds an app-only connection to the simulator's default mailbox
// with `mailgate connections add-app`, the customer's own app registration
// and its secret on stdin, and returns the connection's id.
func addApp(t *testing.T, bin string, cli []string, args ...string) string {
	t.Helper()
	out, err := addAppCmd(bin, cli, args...).CombinedOutput()
	m := addAppRE.FindSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("connections add-app %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(m[1])
}

// TestOperatorImportsLargeAttachments runs `mailgate serve` as an operator
// starts it: the built binary, configured by environment only, with its
// embedded NATS and directory archive under a fresh data directory, an
// app-only connection added with `mailgate connections add-app`, and the
// Microsoft 365 simulator as Microsoft. Scanned invoices of 200 KB, 1.5 MB,
// 8 MB, 30 MB and 150 MB each arrive once in the archive directory and on
// the stream, none is given up, and importing the 150 MB one takes the
// process at most 64 MB above its resident size at idle before any mail.
//
// Every attachment above the spool's in-memory limit (1 MiB) passes through
// <data dir>/spool, which only `serve` sets up: a test with its own
// directories would not see it missing.
func TestOperatorImportsLargeAttachments(t *testing.T) {
	bin := mailgateBinary(t)
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	p, dataDir, cli := startOperatorServe(t, bin, sim)
	addApp(t, bin, cli)
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

// addAppCmd is the command of addApp, with args added.
func addAppCmd(bin string, cli []string, args ...string) *exec.Cmd {
	cmd := exec.Command(bin, append([]string{"connections", "add-app", "--customer", "firma", "--tenant", graphtest.DefaultTenantID,
		"--client-id", graphtest.DefaultClientID, "--client-secret-file", "-", "--mailbox", graphtest.DefaultMailbox}, args...)...)
	cmd.Env = append(os.Environ(), cli...)
	cmd.Stdin = strings.NewReader(graphtest.DefaultClientSecret + "\n")
	return cmd
}

// TestOperatorAddAppChoices: `connections add-app` offers what the connect
// wizard offers, in its words. Bad choices are refused with the reason and
// create nothing; good ones reach the connection (`connections show`), and
// the importer follows them: with --backfill since it imports the mail
// already there from that date on, not before, and with --post category
// it leaves the mail in the inbox and adds the category.
func TestOperatorAddAppChoices(t *testing.T) {
	bin := mailgateBinary(t)
	sim := graphtest.NewServer()
	t.Cleanup(sim.Close)
	now := time.Now().UTC()
	since := now.AddDate(0, -1, 0).Format(time.DateOnly)
	mail := func(number string, received time.Time) {
		_, err := sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
			From: "rechnung@lieferant.example", Subject: "Rechnung " + number,
			InternetMessageID: "<" + number + "@lieferant.example>", ReceivedAt: received,
			Attachments: []graphtest.Attachment{{Name: number + ".pdf", ContentType: "application/pdf",
				Content: samples.InvoicePDF("Lieferant GmbH", number, 119, received)}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	mail("RE-OLD", now.AddDate(0, -2, 0))
	mail("RE-RECENT", now.AddDate(0, 0, -7))
	_, _, cli := startOperatorServe(t, bin, sim)

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--backfill", "some"}, `--backfill "some": want new, since or all`},
		{[]string{"--backfill", "since"}, "--backfill since needs --since YYYY-MM-DD"},
		{[]string{"--since", "2026-13-01"}, `--since "2026-13-01": want a date YYYY-MM-DD`},
		{[]string{"--since", now.AddDate(0, 0, 2).Format(time.DateOnly)}, "lies in the future"},
		{[]string{"--backfill", "all", "--since", since}, "--since goes with --backfill since"},
		{[]string{"--post", "delete"}, `--post "delete": want move, mark_read, category or none`},
		{[]string{"--post", "category"}, "--post category needs --category NAME"},
		{[]string{"--post", "none", "--folder", "Erledigt"}, "--post none takes no --folder"},
	} {
		cmd := addAppCmd(bin, cli, bad.args...)
		out, err := cmd.CombinedOutput()
		if cmd.ProcessState == nil || cmd.ProcessState.ExitCode() != 2 || !strings.Contains(string(out), bad.want) {
			t.Errorf("add-app %s: %v, want exit status 2 and %q:\n%s", strings.Join(bad.args, " "), err, bad.want, out)
		}
	}
	if out := runCLI(t, bin, cli, "connections", "list", "--json"); strings.Contains(out, graphtest.DefaultMailbox) {
		t.Fatalf("a refused add-app created a connection:\n%s", out)
	}

	id := addApp(t, bin, cli, "--backfill", "since", "--since", since, "--post", "category", "--category", "Rechnungen")
	var shown struct {
		Connection struct {
			Backfill    connector.Backfill    `json:"backfill"`
			PostProcess connector.PostProcess `json:"postProcess"`
		} `json:"connection"`
	}
	show := runCLI(t, bin, cli, "connections", "show", id)
	if err := json.Unmarshal([]byte(show), &shown); err != nil {
		t.Fatalf("connections show: %v\n%s", err, show)
	}
	c := shown.Connection
	if c.Backfill.Mode != connector.BackfillSince || c.Backfill.Since.Format(time.DateOnly) != since ||
		c.PostProcess != (connector.PostProcess{Action: connector.PostCategory, Category: "Rechnungen"}) {
		t.Errorf("connections show: backfill %+v, post-processing %+v; want since %s and category Rechnungen", c.Backfill, c.PostProcess, since)
	}

	var inbox []graphtest.MessageState
	eventually(t, time.Minute, "the recent mail to be imported and categorised", func() bool {
		inbox = sim.Messages(graphtest.DefaultMailbox, "inbox")
		for _, m := range inbox {
			if m.Subject == "Rechnung RE-RECENT" && slices.Contains(m.Categories, "Rechnungen") {
				return true
			}
		}
		return false
	})
	for _, m := range inbox {
		if m.Subject == "Rechnung RE-OLD" && len(m.Categories) != 0 {
			t.Errorf("the mail from before --since was processed: categories %v", m.Categories)
		}
	}
	if len(inbox) != 2 {
		t.Errorf("%d mails in the inbox, want both left there", len(inbox))
	}
	var names []string
	for _, ev := range waitImported(t, bin, cli, 1) {
		if d, ok := ev.Data.(*archive.Imported); ok {
			names = append(names, d.Document.Name)
		} else {
			t.Errorf("unexpected event %s", ev.Type)
		}
	}
	if !slices.Equal(names, []string{"RE-RECENT.pdf"}) {
		t.Errorf("imported %v, want only RE-RECENT.pdf", names)
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
