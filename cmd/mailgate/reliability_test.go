package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/cmd/mailgate/samples"
	"github.com/mailgate/mailgate/connector"
	"github.com/mailgate/mailgate/connector/graphtest"
	"github.com/mailgate/mailgate/internal/natscluster"
)

// infra is what an importer process runs against in the reliability tests:
// the Microsoft 365 simulator, a NATS server and MinIO, all on loopback.
type infra struct {
	sim     *graphtest.Server
	natsURL string
	js      jetstream.JetStream
	s3      archive.S3Config
	key     []byte
	// replicas of the buckets the test creates itself, as the processes
	// will (MAILGATE_NATS_REPLICAS).
	replicas int
	dataDir  string // the processes' spool
	// minio is the MinIO of a stoppableMinIOArchive stack.
	minio *archivetest.MinIO
}

// stack says what newStack starts around the processes under test.
type stack struct {
	// natsURL is the NATS server to use; empty starts an embedded one of the
	// test's own.
	natsURL string
	// archive is where the processes store documents.
	archive archiveKind
}

type archiveKind int

const (
	minioArchive          archiveKind = iota // MinIO on loopback
	stoppableMinIOArchive                    // MinIO the test can stop and start (infra.minio)
	dirArchive                               // a directory: all a test about sign-in needs
)

// newStack is the one builder of the infra the binary tests run against.
func newStack(t *testing.T, s stack) *infra {
	t.Helper()
	if s.natsURL == "" {
		s.natsURL = archivetest.RunServer(t).ClientURL()
	}
	in := &infra{natsURL: s.natsURL, dataDir: t.TempDir(), key: make([]byte, 32)}
	switch s.archive {
	case minioArchive:
		in.s3 = archivetest.RunMinIO(t)
	case stoppableMinIOArchive:
		in.minio = archivetest.StartMinIO(t)
		in.s3 = in.minio.Config()
	}
	// Reconnect for ever: some tests stop and start the NATS server.
	nc, err := nats.Connect(s.natsURL, nats.MaxReconnects(-1), nats.ReconnectWait(500*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if in.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	in.sim = graphtest.NewServer()
	t.Cleanup(in.sim.Close)
	for i := range in.key {
		in.key[i] = byte(i * 7)
	}
	return in
}

// env is the configuration of a `mailgate serve` against the infra.
func (in *infra) env() []string {
	return []string{
		"MAILGATE_DATA_DIR=" + in.dataDir,
		"MAILGATE_NATS_URL=" + in.natsURL,
		"MAILGATE_S3_ENDPOINT=" + in.s3.Endpoint,
		"MAILGATE_S3_ACCESS_KEY=" + in.s3.AccessKey,
		"MAILGATE_S3_SECRET_KEY=" + in.s3.SecretKey,
		"MAILGATE_S3_BUCKET=" + in.s3.Bucket,
		"MAILGATE_S3_SECURE=false",
		"MAILGATE_LOGIN_URL=" + in.sim.LoginURL(),
		"MAILGATE_GRAPH_URL=" + in.sim.GraphURL(),
		"MAILGATE_MS_CLIENT_ID=" + graphtest.DefaultClientID,
		"MAILGATE_MS_CLIENT_SECRET=" + graphtest.DefaultClientSecret,
		"MAILGATE_SECRET_KEY=" + base64.StdEncoding.EncodeToString(in.key),
		"MAILGATE_HTTP_ADDR=127.0.0.1:0",
		"MAILGATE_POLL_INTERVAL=5s",
	}
}

// addAppConnection creates an active app-only connection to mailbox with the
// simulator's default app, as `mailgate connections add-app` would.
func (in *infra) addAppConnection(t *testing.T, customer, mailbox string) connector.Connection {
	t.Helper()
	return in.createConnection(t, nil, connector.Connection{
		Customer:     customer,
		Mailbox:      mailbox,
		Mode:         connector.AppOnly,
		ClientID:     graphtest.DefaultClientID,
		ClientSecret: in.seal(t, graphtest.DefaultClientSecret),
	})
}

// createConnection stores c as an active connection of the default tenant
// that imports everything and, unless c says otherwise, moves processed
// mail to "Archiviert". store
// may be nil for a store of the infra's own.
func (in *infra) createConnection(t *testing.T, store *connector.Store, c connector.Connection) connector.Connection {
	t.Helper()
	ctx := context.Background()
	if store == nil {
		var err error
		if store, err = connector.NewStore(ctx, in.js, connector.StoreOptions{Replicas: in.replicas}); err != nil {
			t.Fatal(err)
		}
	}
	c.TenantID = graphtest.DefaultTenantID
	c.Folder = "inbox"
	c.State = connector.StateActive
	if c.PostProcess.Action == "" {
		c.PostProcess = connector.PostProcess{Action: connector.PostMove, Folder: "Archiviert"}
	}
	c.Backfill = connector.Backfill{Mode: connector.BackfillAll}
	c.CreatedBy, c.UpdatedBy = "test", "test"
	c, err := store.Create(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// seal seals a secret with the infra's key, as the processes will open it.
func (in *infra) seal(t *testing.T, secret string) []byte {
	t.Helper()
	sealer, err := connector.NewSealer(in.key)
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := sealer.Seal([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return sealed
}

// deliverInvoices puts n mails with one distinct invoice PDF each.
func (in *infra) deliverInvoices(t *testing.T, mailbox string, n int) {
	t.Helper()
	now := time.Now().UTC()
	for i := 0; i < n; i++ {
		number := fmt.Sprintf("RE-%s-%05d", strings.Split(mailbox, "@")[0], i)
		_, err := in.sim.Deliver(mailbox, graphtest.Mail{
			From:              "rechnung@lieferant.example",
			Subject:           "Rechnung " + number,
			Body:              "Anbei die Rechnung.",
			InternetMessageID: fmt.Sprintf("<%s@lieferant.example>", number),
			ReceivedAt:        now.Add(-time.Duration(n-i) * time.Second),
			Attachments: []graphtest.Attachment{{
				Name: number + ".pdf", ContentType: "application/pdf",
				Content: samples.InvoicePDF("Lieferant GmbH", number, float64(100+i), now),
			}},
		})
		if err != nil {
			t.Fatal(err)
		}
	}
}

// events returns the stream's document events in order.
func (in *infra) events(t *testing.T) []archive.Event {
	t.Helper()
	return streamEvents(t, in.js, "mailgate.*.document.>")
}

// streamEvents returns the events of the MAILGATE stream on subjects
// matching filter, decoded, in order; none before a process created the
// stream.
func streamEvents(t *testing.T, js jetstream.JetStream, filter string) []archive.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	raw, err := archivetest.ReadStream(ctx, js, archive.StreamName, filter)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	events := make([]archive.Event, 0, len(raw))
	for _, r := range raw {
		ev, err := archive.Decode(r.Data)
		if err != nil {
			t.Fatalf("undecodable event on %s: %v", r.Subject, err)
		}
		events = append(events, ev)
	}
	return events
}

// tally counts the stream's document events: imported ones, their distinct
// ids, and skipped ones.
func (in *infra) tally(t *testing.T) (imported, distinct, skipped int) {
	t.Helper()
	ids := map[string]bool{}
	for _, ev := range in.events(t) {
		switch ev.Type {
		case archive.TypeImported:
			imported++
			ids[ev.ID] = true
		case archive.TypeSkipped:
			skipped++
		}
	}
	return imported, len(ids), skipped
}

func (in *infra) objects(t *testing.T) int {
	t.Helper()
	cl, err := minio.New(in.s3.Endpoint, &minio.Options{Creds: credentials.NewStaticV4(in.s3.AccessKey, in.s3.SecretKey, "")})
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for obj := range cl.ListObjects(context.Background(), in.s3.Bucket, minio.ListObjectsOptions{Recursive: true}) {
		if obj.Err != nil {
			t.Fatal(obj.Err)
		}
		n++
	}
	return n
}

// waitDistinct waits until want distinct documents are on the stream.
func (in *infra) waitDistinct(t *testing.T, want int, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		_, distinct, _ := in.tally(t)
		if distinct >= want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d of %d documents imported within %s", distinct, want, timeout)
		}
		time.Sleep(500 * time.Millisecond) // polling an external process' progress; no event to wait on
	}
}

// TestImporterSurvivesSIGKILL kills the importer process at random points
// while it imports and restarts it each time. In the end every document is
// stored once and announced once.
func TestImporterSurvivesSIGKILL(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{})
	const docs = 1000
	in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	in.deliverInvoices(t, graphtest.DefaultMailbox, docs)

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	env := append(in.env(), "MAILGATE_REPLICA=killtest")
	kills := 0
	for round := 0; ; round++ {
		p := startProc(t, bin, env, "serve", "--role", "importer")
		_, distinct, _ := in.tally(t)
		if distinct >= docs || round >= 8 {
			// Let the last one finish the job undisturbed.
			in.waitDistinct(t, docs, 3*time.Minute)
			p.stop()
			break
		}
		time.Sleep(time.Duration(500+rng.IntN(2500)) * time.Millisecond) // a random point in the run
		_ = p.cmd.Process.Kill()                                         // SIGKILL: no shutdown, no flush
		_ = p.cmd.Wait()
		kills++
	}
	imported, distinct, _ := in.tally(t)
	objects := in.objects(t)
	t.Logf("%d kills; %d imported events, %d distinct, %d objects", kills, imported, distinct, objects)
	if imported != docs || distinct != docs || objects != docs {
		t.Fatalf("after %d kills: %d events, %d distinct documents, %d objects; want %d of each", kills, imported, distinct, objects, docs)
	}
	if kills == 0 {
		t.Fatal("the importer was never killed")
	}
	if remaining := len(in.sim.Messages(graphtest.DefaultMailbox, "inbox")); remaining != 0 {
		t.Errorf("%d mails left in the inbox; all should have been moved to Archiviert", remaining)
	}
}

func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var lns []net.Listener
	for i := 0; i < n; i++ {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		lns = append(lns, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	for _, ln := range lns {
		ln.Close()
	}
	return ports
}

// TestClusterTopology runs the docker-compose.yml topology as processes: a
// 3-node NATS cluster with replicated state, MinIO, a portal and two importer
// replicas working the same connections. Together the replicas import every
// document exactly once, and the portal serves the DMS API meanwhile.
func TestClusterTopology(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{natsURL: natscluster.Start(t, 3).URL()})
	in.replicas = 3
	const perMailbox = 150
	mailboxes := []string{graphtest.DefaultMailbox}
	for i := 1; i <= 3; i++ {
		addr := "eingang" + strconv.Itoa(i) + "@firma.example"
		in.sim.AddMailbox(graphtest.Mailbox{Address: addr, DisplayName: "Eingang " + strconv.Itoa(i), Shared: true})
		mailboxes = append(mailboxes, addr)
	}
	for _, mb := range mailboxes {
		in.addAppConnection(t, "firma", mb)
		in.deliverInvoices(t, mb, perMailbox)
	}
	want := perMailbox * len(mailboxes)
	env := append(in.env(), "MAILGATE_NATS_REPLICAS=3")
	portal := startProc(t, bin, env, "serve", "--role", "portal")
	a := startProc(t, bin, append(env, "MAILGATE_REPLICA=replica-a"), "serve", "--role", "importer")
	b := startProc(t, bin, append(env, "MAILGATE_REPLICA=replica-b"), "serve", "--role", "importer")
	in.waitDistinct(t, want, 3*time.Minute)

	// The portal answers the DMS over the same replicated state.
	base := "http://" + portal.waitFor(t, httpAddrRE, 30*time.Second)
	resp, err := http.Get(base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("portal /readyz: %s", resp.Status)
	}
	stream, err := in.js.Stream(context.Background(), "MAILGATE")
	if err != nil {
		t.Fatal(err)
	}
	if info, _ := stream.Info(context.Background()); info == nil || info.Config.Replicas != 3 {
		t.Errorf("stream MAILGATE not replicated 3 times: %+v", info)
	}
	a.stop()
	b.stop()
	imported, distinct, _ := in.tally(t)
	objects := in.objects(t)
	if imported != want || distinct != want || objects != want {
		t.Fatalf("two replicas: %d events, %d distinct, %d objects; want %d", imported, distinct, objects, want)
	}
	for _, mb := range mailboxes {
		if n := len(in.sim.Messages(mb, "inbox")); n != 0 {
			t.Errorf("%s: %d mails left in the inbox", mb, n)
		}
	}
}

// httpAddrRE finds the address `mailgate serve` announces on standard output.
var httpAddrRE = regexp.MustCompile(`^mailgate listening on (\S+)`)

// TestImportMixedMails imports 500 realistic mails (PDF, XRechnung, ZUGFeRD,
// logos, inline images, scans, newsletters, an executable renamed .pdf and
// attached mails) with the real binary, simulator, MinIO and NATS, and gets
// exactly the expected documents and skip reasons.
func TestImportMixedMails(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{})
	in.addAppConnection(t, "firma", graphtest.DefaultMailbox)
	const mails = 500
	wantKinds, wantReasons := map[string]int{}, map[string]int{}
	now := time.Now().UTC()
	for i := 0; i < mails; i++ {
		m := samples.Sample(i, now.Add(-time.Duration(mails-i)*time.Minute))
		if _, err := in.sim.Deliver(graphtest.DefaultMailbox, m.Mail); err != nil {
			t.Fatal(err)
		}
		for _, e := range m.Expect {
			if e.Kind != "" {
				wantKinds[e.Kind]++
			} else {
				wantReasons[e.Reason]++
			}
		}
	}
	var wantDocs, wantSkips int
	for _, n := range wantKinds {
		wantDocs += n
	}
	for _, n := range wantReasons {
		wantSkips += n
	}
	p := startProc(t, bin, in.env(), "serve", "--role", "importer")
	in.waitDistinct(t, wantDocs, 3*time.Minute)
	deadline := time.Now().Add(time.Minute)
	for {
		if _, _, skipped := in.tally(t); skipped >= wantSkips || time.Now().After(deadline) {
			break
		}
		time.Sleep(200 * time.Millisecond) // polling an external process' progress
	}
	p.stop()

	kinds, reasons := map[string]int{}, map[string]int{}
	for _, ev := range in.events(t) {
		switch d := ev.Data.(type) {
		case *archive.Imported:
			kinds[d.Document.Kind]++
		case *archive.Skipped:
			reasons[d.Reason]++
			if d.Detail == "" {
				t.Errorf("skip of %s (%s) has no explanation", d.Name, d.Reason)
			}
		}
	}
	if fmt.Sprint(kinds) != fmt.Sprint(wantKinds) || fmt.Sprint(reasons) != fmt.Sprint(wantReasons) {
		t.Errorf("documents %v, want %v\nskips %v, want %v", kinds, wantKinds, reasons, wantReasons)
	}
	// Each XML e-invoice is stored with its readable rendition beside it.
	if objects, want := in.objects(t), wantDocs+wantKinds[archive.KindXRechnung]; objects != want {
		t.Errorf("%d objects, want %d (%d documents and %d renditions)", objects, want, wantDocs, wantKinds[archive.KindXRechnung])
	}
	t.Logf("%d mails: documents %v, skips %v", mails, kinds, reasons)
}

// TestMovedMailNotImportedTwice: a person moves already imported mails out
// of the inbox and back (each move gives them a new Graph id, and the delta
// query reports them as new). The ledger, not the mailbox, is the record:
// nothing is imported again.
func TestMovedMailNotImportedTwice(t *testing.T) {
	bin := mailgateBinary(t)
	in := newStack(t, stack{})
	in.createConnection(t, nil, connector.Connection{
		Customer:     "firma",
		Mailbox:      graphtest.DefaultMailbox,
		Mode:         connector.AppOnly,
		ClientID:     graphtest.DefaultClientID,
		ClientSecret: in.seal(t, graphtest.DefaultClientSecret),
		PostProcess:  connector.PostProcess{Action: connector.PostNone},
	})
	const docs = 20
	in.deliverInvoices(t, graphtest.DefaultMailbox, docs)
	p := startProc(t, bin, in.env(), "serve", "--role", "importer")
	in.waitDistinct(t, docs, time.Minute)

	moved := 0
	for i, m := range in.sim.Messages(graphtest.DefaultMailbox, "inbox") {
		if i%2 == 1 {
			continue
		}
		id, err := in.sim.MoveMessage(graphtest.DefaultMailbox, m.ID, "archive")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := in.sim.MoveMessage(graphtest.DefaultMailbox, id, "inbox"); err != nil {
			t.Fatal(err)
		}
		moved++
	}
	// Wait until the importer has polled the inbox twice more after the
	// moves, so it has seen them.
	delta := func() int { return in.sim.Counters().Total("messages.delta") }
	attachmentReads := func() int {
		c := in.sim.Counters()
		return c.Total("attachments.list") + c.Total("attachment.get") + c.Total("attachment.value")
	}
	before, readsBefore := delta(), attachmentReads()
	deadline := time.Now().Add(time.Minute)
	for delta() < before+2 {
		if time.Now().After(deadline) {
			t.Fatal("the importer did not poll again")
		}
		time.Sleep(200 * time.Millisecond) // polling an external process' progress
	}
	p.stop()
	// The stream's de-duplication would hide a second publish; that the
	// moved mails' attachments were not even read again shows the ledger
	// recognised them.
	if n := attachmentReads() - readsBefore; n != 0 {
		t.Errorf("%d attachment requests after the moves; the moved mails were processed again", n)
	}
	imported, distinct, skipped := in.tally(t)
	if imported != docs || distinct != docs || skipped != 0 || in.objects(t) != docs {
		t.Fatalf("after %d mails were moved out and back: %d events, %d distinct, %d skipped; want %d, %d, 0", moved, imported, distinct, skipped, docs, docs)
	}
	t.Logf("%d mails moved out of the inbox and back; still %d documents, %d events", moved, docs, imported)
}
