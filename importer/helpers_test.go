package importer

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/mailgate/mailgate/archive"
	"github.com/mailgate/mailgate/archive/archivetest"
	"github.com/mailgate/mailgate/connector"
)

var t0 = time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC)

type env struct {
	js     jetstream.JetStream
	mb     *fakeMailbox
	mbs    fakeMailboxes
	conns  *fakeConnections
	store  *memStore
	events *recEvents
	clock  *fakeClock
	conn   connector.Connection
}

func testConnection(id string) connector.Connection {
	return connector.Connection{
		ID: id, Customer: "acme", Mailbox: "rechnungen@acme.example", Folder: "inbox",
		State: connector.StateActive, Backfill: connector.Backfill{Mode: connector.BackfillAll},
		PostProcess: connector.PostProcess{Action: connector.PostNone}, CreatedAt: t0.Add(-time.Hour),
	}
}

func newEnv(t testing.TB, post connector.PostAction) *env {
	t.Helper()
	js, _ := archivetest.RunJetStream(t)
	c := testConnection("con_test1")
	c.PostProcess.Action = post
	mb := newFakeMailbox()
	return &env{
		js: js, mb: mb, mbs: fakeMailboxes{c.ID: mb}, conns: newFakeConnections(c),
		store: newMemStore(), events: newRecEvents(), clock: &fakeClock{now: t0}, conn: c,
	}
}

func (e *env) importer(t testing.TB, replica string, edit func(*Config)) *Importer {
	t.Helper()
	cfg := Config{
		Replica: replica, Now: e.clock.Now, After: e.clock.After, SpoolDir: t.TempDir(),
		ScanInterval: 20 * time.Millisecond,
	}
	if edit != nil {
		edit(&cfg)
	}
	im, err := New(context.Background(), e.js, Deps{Connections: e.conns, Mailboxes: e.mbs, Store: e.store, Events: e.events}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return im
}

func (e *env) sync(t testing.TB, im *Importer) PassResult {
	t.Helper()
	res, err := im.SyncNow(context.Background(), e.conn.ID)
	if err != nil {
		t.Fatalf("SyncNow: %v", err)
	}
	return res
}

// Test content.

func pdfDoc(i int) []byte {
	return fmt.Appendf(nil, "%%PDF-1.4\n%% invoice %d\n1 0 obj <<>> endobj\ntrailer <<>>\n%%%%EOF\n", i)
}

func ublDoc(i int) []byte {
	return fmt.Appendf(nil, `<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"><cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID><cbc:ID>RE-%d</cbc:ID></Invoice>`, i)
}

func peDoc() []byte {
	b := make([]byte, 512)
	copy(b, "MZ")
	b[0x3c] = 0x80
	copy(b[0x80:], "PE\x00\x00")
	b[0x84], b[0x85] = 0x4c, 0x01
	return b
}

func noise(w, h int) image.Image {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	r := rand.New(rand.NewPCG(7, 7))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(r.IntN(256)), uint8(r.IntN(256)), uint8(r.IntN(256)), 255})
		}
	}
	return img
}

func logoPNG(t testing.TB) []byte {
	var b bytes.Buffer
	if err := png.Encode(&b, noise(8, 8)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func scanJPEG(t testing.TB) []byte {
	var b bytes.Buffer
	if err := jpeg.Encode(&b, noise(120, 120), &jpeg.Options{Quality: 90}); err != nil {
		t.Fatal(err)
	}
	if b.Len() < 10<<10 {
		t.Fatalf("scan only %d bytes", b.Len())
	}
	return b.Bytes()
}

func file(name, ct string, content []byte) connector.Attachment {
	return connector.Attachment{Type: connector.FileAttachment, Name: name, ContentType: ct, Content: content}
}

// mix describes the 10 kinds of mail deliverMix cycles through.
type mixCounts struct {
	imported int
	reasons  map[string]int
}

// deliverMix delivers n mails (n a multiple of 10) with mixed attachments
// into the inbox and returns what an import must produce.
func deliverMix(t testing.TB, mb *fakeMailbox, n int) mixCounts {
	logo, scan := logoPNG(t), scanJPEG(t)
	for i := range n {
		m := connector.Message{
			InternetMessageID: fmt.Sprintf("<mail-%d@sender.example>", i), Subject: fmt.Sprintf("Rechnung %d", i),
			From: "billing@sender.example", ReceivedAt: t0.Add(time.Duration(i) * time.Minute),
		}
		var atts []connector.Attachment
		switch i % 10 {
		case 0:
			atts = append(atts, file(fmt.Sprintf("RE-%d.pdf", i), "application/octet-stream", pdfDoc(i)))
		case 1:
			inline := file("image001.png", "image/png", logo)
			inline.ContentID = "image001.png@01DA"
			m.BodyRefs = "cid:image001.png@01DA"
			atts = append(atts, file(fmt.Sprintf("RE-%d.pdf", i), "application/pdf", pdfDoc(i)), inline)
		case 2:
			atts = append(atts, file("image002.png", "image/png", logo))
		case 3:
			atts = append(atts, file(fmt.Sprintf("xrechnung-%d.xml", i), "text/xml", ublDoc(i)))
		case 4:
			atts = append(atts, file("rechnung.pdf", "application/pdf", peDoc()))
		case 5:
			atts = append(atts, file(fmt.Sprintf("scan-%d.jpg", i), "image/jpeg", scan))
		case 6:
			atts = append(atts, connector.Attachment{Type: connector.ReferenceAttachment, Name: "Angebot.docx"})
		case 7:
			atts = append(atts, connector.Attachment{Type: connector.ItemAttachment, Name: "WG: Rechnung"})
		case 8:
			// no attachments
		case 9:
			atts = append(atts, file("notiz.txt", "text/plain", []byte("bitte zahlen\n")), file("leer.pdf", "application/pdf", nil))
		}
		mb.deliver("inbox", m, atts...)
	}
	k := n / 10
	return mixCounts{
		imported: 3*k + 1, // PDFs, PDFs next to a logo, XRechnungen, the first scan
		reasons: map[string]int{
			archive.ReasonInline: k, archive.ReasonSignatureLogo: k, archive.ReasonDisguised: k,
			archive.ReasonDuplicate: k - 1, archive.ReasonReference: k, archive.ReasonItemAttachment: k,
			archive.ReasonTypeNotAllowed: k, archive.ReasonEmpty: k,
		},
	}
}

func checkEvents(t testing.TB, e *env, want mixCounts) {
	t.Helper()
	imported, _ := e.events.counts()
	if imported != want.imported {
		t.Errorf("imported events = %d, want %d", imported, want.imported)
	}
	if n := e.store.len(); n != want.imported {
		t.Errorf("objects = %d, want %d", n, want.imported)
	}
	got := e.events.reasons()
	for r, n := range want.reasons {
		if got[r] != n {
			t.Errorf("skipped %s = %d, want %d", r, got[r], n)
		}
	}
	for r, n := range got {
		if _, ok := want.reasons[r]; !ok {
			t.Errorf("unexpected skip reason %s (%d)", r, n)
		}
	}
}
