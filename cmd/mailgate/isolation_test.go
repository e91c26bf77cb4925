package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
)

// Failure isolation as an operator meets it (issue 10): the built binary,
// `mailgate serve --role importer` configured by environment, against the
// simulator, NATS and MinIO.

const isolationPoll = 5 * time.Second // MAILGATE_POLL_INTERVAL of infra.env

// TestPoisonMail: one mail whose attachment list and downloads always
// answer 503. Every other mail, also mail that arrives later, is imported
// within two poll intervals; the poison mail is retried with backoff and,
// after a shortened horizon, announced as failed; after the fault is
// cleared, `mailgate connections retry` imports it exactly once.
func TestPoisonMail(t *testing.T) {
	t.Parallel()
	bin := mailgateBinary(t)
	srv := archivetest.RunServer(t)
	in := newStack(t, stack{natsURL: srv.ClientURL()})
	c := in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	now := time.Now().UTC()
	_, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
		From: "rechnung@kaputt.example", Subject: "Rechnung RE-POISON", InternetMessageID: "<poison@kaputt.example>",
		ReceivedAt: now.Add(-time.Hour),
		Attachments: []graphtest.Attachment{{Name: "RE-POISON.pdf", ContentType: "application/pdf",
			Content: samples.InvoicePDF("Kaputt GmbH", "RE-POISON", 99, now)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	poisonID := in.sim.Messages(graphtest.DefaultMailbox, "inbox")[0].ImmutableID // mailgate asks for immutable ids
	in.sim.Inject(graphtest.Fault{PathContains: poisonID + "/attachments", Status: http.StatusServiceUnavailable})
	in.deliverInvoices(t, graphtest.DefaultMailbox, 20)

	const horizon = 20 * time.Second
	env := append(in.env(), "MAILGATE_REPLICA=poison", "MAILGATE_RETRY_FOR="+horizon.String())
	p := startProc(t, bin, env, "serve", "--role", "importer")
	start := time.Now()
	in.waitDistinct(t, 20, time.Minute)
	t.Logf("20 mails beside the poison mail imported in %s", time.Since(start).Round(time.Millisecond))

	// Mail that arrives while the poison mail is parked.
	later := time.Now()
	for i := range 5 {
		number := fmt.Sprintf("RE-LATER-%d", i)
		if _, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
			From: "rechnung@lieferant.example", Subject: "Rechnung " + number, InternetMessageID: "<" + number + "@lieferant.example>",
			ReceivedAt: time.Now().UTC(),
			Attachments: []graphtest.Attachment{{Name: number + ".pdf", ContentType: "application/pdf",
				Content: samples.InvoicePDF("Lieferant GmbH", number, 10, now)}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	in.waitDistinct(t, 25, 2*isolationPoll+5*time.Second)
	t.Logf("5 later mails imported %s after delivery (poll interval %s)", time.Since(later).Round(time.Millisecond), isolationPoll)

	// Given up after the horizon, visibly.
	var failed archive.Event
	eventually(t, horizon+time.Minute, "the poison mail to be announced as failed", func() bool {
		for _, ev := range in.events(t) {
			if ev.Type == archive.TypeSkipped {
				failed = ev
				return true
			}
		}
		return false
	})
	sk, ok := failed.Data.(*archive.Skipped)
	// Its attachments could never be listed, so the event names the mail.
	if !ok || sk.Reason != archive.ReasonFailed || sk.Message.Subject != "Rechnung RE-POISON" ||
		!strings.Contains(sk.Detail, "could not be imported") || !strings.Contains(sk.Detail, "ServiceNotAvailable") {
		t.Errorf("failed event %+v", failed.Data)
	}
	// Only the poison mail's requests are answered 503.
	attempts := in.sim.Counters().Requests["attachments.list"][http.StatusServiceUnavailable]
	if attempts < 5 {
		t.Errorf("the poison mail was tried %d times, want at least 5 before it was given up", attempts)
	}
	show := runCLI(t, bin, in.env(), "connections", "show", c.ID)
	if !strings.Contains(show, `"givenUp": 1`) || !strings.Contains(show, "RE-POISON") {
		t.Errorf("connections show does not list the given-up mail:\n%s", show)
	}
	if st := connectionState(t, in, c.ID); st != connector.StateActive {
		t.Errorf("connection %s, want active: one mail's failure is not the mailbox's", st)
	}

	// The operator fixes the cause and retries.
	in.sim.ClearFaults()
	out := runCLI(t, bin, in.env(), "connections", "retry", c.ID)
	if !strings.Contains(out, "1 given-up mails") {
		t.Errorf("retry: %s", out)
	}
	eventually(t, time.Minute, "the poison mail to be imported after the retry", func() bool {
		_, distinct, _ := in.tally(t)
		return distinct >= 26 && len(in.sim.Messages(graphtest.DefaultMailbox, "inbox")) == 0
	})
	time.Sleep(2 * isolationPoll) // later polls must announce nothing more
	p.stop()
	imported, distinct, skipped := in.tally(t)
	if objects := in.objects(t); imported != 26 || distinct != 26 || objects != 26 || skipped != 1 {
		t.Errorf("%d imported events, %d distinct, %d objects, %d skipped; want 26, 26, 26 and the one failed event", imported, distinct, objects, skipped)
	}
}

// TestSpoolUnwritable: the spool directory is taken away while attachments
// above the in-memory limit arrive. No document is given up, the
// connection stays active, /readyz names the spool; after the repair every
// document arrives exactly once.
func TestSpoolUnwritable(t *testing.T) {
	t.Parallel()
	bin := mailgateBinary(t)
	srv := archivetest.RunServer(t)
	in := newStack(t, stack{natsURL: srv.ClientURL()})
	c := in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	env := append(in.env(), "MAILGATE_REPLICA=spool", "MAILGATE_RETRY_FOR=2s")
	p := startProc(t, bin, env, "serve", "--role", "importer")
	addr := p.waitFor(t, regexp.MustCompile(`listening on (\S+)`), time.Minute)
	spool := filepath.Join(in.dataDir, "spool")
	if fi, err := os.Stat(spool); err != nil || !fi.IsDir() {
		t.Fatalf("serve did not create the spool directory: %v", err)
	}
	// Break the disk: the spool becomes a file, which no process (root
	// included) can create files in.
	if err := os.RemoveAll(spool); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(spool, []byte("not a directory"), 0o600); err != nil {
		t.Fatal(err)
	}
	const docs = 8
	now := time.Now().UTC()
	for i := range docs {
		number := fmt.Sprintf("SCAN-%d", i)
		pdf := samples.InvoicePDF("Scanner GmbH", number, 1, now)
		pdf = append(pdf, make([]byte, 1536<<10)...) // 1.5 MB, above the in-memory limit
		if _, err := in.sim.Deliver(graphtest.DefaultMailbox, graphtest.Mail{
			From: "scanner@firma.example", Subject: "Scan " + number, InternetMessageID: "<" + number + "@firma.example>",
			ReceivedAt:  now.Add(time.Duration(i) * time.Second),
			Attachments: []graphtest.Attachment{{Name: number + ".pdf", ContentType: "application/pdf", Content: pdf}},
		}); err != nil {
			t.Fatal(err)
		}
	}
	var body string
	eventually(t, time.Minute, "/readyz to report the spool", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		body = string(b)
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(body, "spool")
	})
	t.Logf("/readyz while the spool is broken: %s", strings.TrimSpace(body))
	time.Sleep(3 * isolationPoll) // several passes, far beyond MAILGATE_RETRY_FOR: nothing may be given up
	if imported, _, skipped := in.tally(t); imported != 0 || skipped != 0 {
		t.Fatalf("while the spool was broken: %d imported, %d skipped; want nothing announced", imported, skipped)
	}
	if st := connectionState(t, in, c.ID); st != connector.StateActive {
		t.Errorf("connection %s, want active: a broken disk is the operator's", st)
	}
	if !strings.Contains(p.stderr(), "infrastructure fault") {
		t.Error("no log line names the fault")
	}

	if err := os.Remove(spool); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(spool, 0o700); err != nil {
		t.Fatal(err)
	}
	eventually(t, time.Minute, "/readyz to recover", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			in.tally(t) // keep polling
		}
		return resp.StatusCode == http.StatusOK
	})
	finishRun(t, in, p, docs)
}

func connectionState(t *testing.T, in *infra, id string) connector.State {
	t.Helper()
	store, err := connector.NewStore(t.Context(), in.js, connector.StoreOptions{Replicas: in.replicas})
	if err != nil {
		t.Fatal(err)
	}
	c, err := store.Get(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	return c.State
}
