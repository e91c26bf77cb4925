package rendition

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"runtime/metrics"
	"strings"
	"syscall"
	"testing"
	"time"
)

const ublHead = `<?xml version="1.0" encoding="UTF-8"?>
<Invoice xmlns="urn:oasis:names:specification:ubl:schema:xsd:Invoice-2" xmlns:cac="urn:oasis:names:specification:ubl:schema:xsd:CommonAggregateComponents-2" xmlns:cbc="urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2">
<cbc:CustomizationID>urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0</cbc:CustomizationID>
<cbc:ID>HOSTILE-1</cbc:ID><cbc:IssueDate>2024-01-31</cbc:IssueDate><cbc:InvoiceTypeCode>380</cbc:InvoiceTypeCode>
<cbc:DocumentCurrencyCode>EUR</cbc:DocumentCurrencyCode>
`

// cpu is the process's user+system CPU time: a bound that does not
// depend on how busy the shared machine's wall clock is.
func cpu(t testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// heapPeak samples the heap's live objects until the returned func is
// called, and that func returns the highest sample.
func heapPeak() func() uint64 {
	done, res := make(chan struct{}), make(chan uint64)
	go func() {
		s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		var max uint64
		for {
			metrics.Read(s)
			max = maxU(max, s[0].Value.Uint64())
			select {
			case <-done:
				res <- max
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 { close(done); return <-res }
}

func maxU(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// bounded runs PDF on in and fails when it takes more CPU than limit.
func bounded(t *testing.T, in []byte, limit time.Duration) ([]byte, error) {
	t.Helper()
	var m0, m1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&m0)
	peak := heapPeak()
	before := cpu(t)
	out, err := PDF(context.Background(), in)
	used := cpu(t) - before
	live := peak()
	runtime.ReadMemStats(&m1)
	alloc := m1.TotalAlloc - m0.TotalAlloc
	t.Logf("%d bytes in: %v CPU, %d MB allocated, peak heap %d MB, %d bytes out, err=%v",
		len(in), used.Round(time.Millisecond), alloc>>20, live>>20, len(out), err)
	if used > limit {
		t.Errorf("took %v CPU, bound %v", used, limit)
	}
	// The heap in use stays in proportion to the input (which holds it too).
	if live > 12*uint64(len(in))+256<<20 {
		t.Errorf("peak heap %d MB for %d MB of input", live>>20, len(in)>>20)
	}
	return out, err
}

// text is the PDF's text by pdftotext, or "" when pdftotext is missing
// outside CI.
func text(t *testing.T, pdf []byte) string {
	t.Helper()
	bin, err := exec.LookPath("pdftotext")
	if err != nil {
		need(t, "pdftotext (poppler-utils)", false)
	}
	return extract(t, bin, pdf, "-raw")
}

func manyLines(n int) []byte {
	var b bytes.Buffer
	b.WriteString(ublHead)
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `<cac:InvoiceLine><cbc:ID>%d</cbc:ID><cbc:LineExtensionAmount currencyID="EUR">1.00</cbc:LineExtensionAmount></cac:InvoiceLine>`+"\n", i)
	}
	b.WriteString(`</Invoice>`)
	return b.Bytes()
}

func TestHostileManyLines(t *testing.T) {
	in := manyLines(200000)
	if len(in) < 20<<20 {
		t.Fatalf("input is %d bytes, want at least 20 MiB", len(in))
	}
	out, err := bounded(t, in, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := text(t, out)
	want := fmt.Sprintf("… %d weitere Positionen nicht dargestellt", 200000-MaxLines)
	if !strings.Contains(s, want) {
		t.Errorf("text lacks %q", want)
	}
	if !strings.Contains(s, fmt.Sprint(MaxLines)) || strings.Contains(s, fmt.Sprintf("\n%d ", MaxLines+1)) {
		t.Errorf("want lines up to %d and none beyond", MaxLines)
	}
}

// TestHostileManyValues: lines rich in values reach the value bound
// before the line bound; the lines left out are still counted as lines.
func TestHostileManyValues(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(ublHead)
	const n = 20000
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, `<cac:InvoiceLine><cbc:ID>%d</cbc:ID><cbc:Note>a</cbc:Note><cbc:Note>b</cbc:Note><cbc:Note>c</cbc:Note><cbc:Note>d</cbc:Note></cac:InvoiceLine>`, i)
	}
	b.WriteString(`<cbc:Note>nach den Positionen</cbc:Note></Invoice>`)
	out, err := bounded(t, b.Bytes(), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := text(t, out)
	const head, per = 5, 5                     // values of ublHead, of one line
	kept := (MaxValues - head + per - 1) / per // a line starts while fewer than MaxValues are kept
	if !strings.Contains(s, fmt.Sprintf("… %d weitere Positionen nicht dargestellt", n-kept)) {
		t.Errorf("text lacks the note on the %d lines left out", n-kept)
	}
	if !strings.Contains(s, "1 weitere Werte nicht dargestellt") {
		t.Error("text lacks the note on the value left out after the lines")
	}
}

// TestHostileLongName: a line's name longer than a page does not make its
// row taller than a page; the cell points to the rest, shown below it.
func TestHostileLongName(t *testing.T) {
	name := strings.Repeat("Schraube ", 1000) + "ENDE" // under MaxValueRunes, over 300 lines in its cell
	in := []byte(ublHead + `<cac:InvoiceLine><cbc:ID>1</cbc:ID><cac:Item><cbc:Name>` + name + `</cbc:Name></cac:Item></cac:InvoiceLine></Invoice>`)
	out, err := bounded(t, in, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := squeeze(text(t, out))
	if !strings.Contains(s, "(Fortsetzungunten)") || !strings.Contains(s, "SchraubeENDE") {
		t.Error("the cut cell should point below, and the whole name should show there")
	}
}

func TestHostileDeepNesting(t *testing.T) {
	var b bytes.Buffer
	b.WriteString(ublHead)
	b.WriteString(strings.Repeat("<cbc:Note>", 100000))
	b.WriteString(strings.Repeat("</cbc:Note>", 100000))
	b.WriteString("</Invoice>")
	_, err := bounded(t, b.Bytes(), 5*time.Second)
	if !errors.Is(err, ErrTooDeep) {
		t.Fatalf("err = %v, want ErrTooDeep", err)
	}
}

func TestHostileHugeAttribute(t *testing.T) {
	huge := strings.Repeat("A", 16<<20)
	in := []byte(ublHead + `<cbc:Note languageID="` + huge + `">Hallo</cbc:Note><cbc:Note>` + strings.Repeat("Bä ", 3<<20) + `</cbc:Note></Invoice>`)
	out, err := bounded(t, in, 20*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > 2<<20 {
		t.Errorf("rendition of one huge value is %d bytes", len(out))
	}
	s := text(t, out)
	if !strings.Contains(s, "Hallo") || !strings.Contains(squeeze(s), strings.Repeat("A", 500)) {
		t.Error("the note and the start of its attribute should show")
	}
	if !strings.Contains(s, fmt.Sprintf("%d weitere Zeichen nicht dargestellt", 16<<20-MaxValueRunes)) {
		t.Error("the cut of the huge attribute should be said")
	}
	if !strings.Contains(s, fmt.Sprintf("%d weitere Zeichen nicht dargestellt", 3*(3<<20)-1-MaxValueRunes)) {
		t.Error("the cut of the huge text should be said")
	}
}

func TestRejects(t *testing.T) {
	for _, c := range []struct {
		name string
		in   []byte
		want error
	}{
		{"not XML", []byte("%PDF-1.7 this is no XML"), ErrNotXML},
		{"empty", nil, ErrNotXML},
		{"truncated", []byte(ublHead + "<cbc:Note>"), ErrNotXML},
		{"non-invoice XML", []byte(`<?xml version="1.0"?><Order xmlns="urn:oasis:names:specification:ubl:schema:xsd:Order-2"><ID>1</ID></Order>`), ErrNotInvoice},
		{"invoice name in no namespace", []byte(`<Invoice><ID>1</ID></Invoice>`), ErrNotInvoice},
		{"HTML", []byte(`<html><body>Rechnung</body></html>`), ErrNotInvoice},
		{"undefined entity", []byte(ublHead + "<cbc:Note>&xxe;</cbc:Note></Invoice>"), ErrNotXML},
		{"too large", bytes.Repeat([]byte(" "), MaxInput+1), ErrTooLarge},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := bounded(t, c.in, 5*time.Second)
			if !errors.Is(err, c.want) || out != nil {
				t.Fatalf("err = %v, out %d bytes; want %v", err, len(out), c.want)
			}
		})
	}
}

// cancelAfter is a context whose Err turns Canceled after n calls: it
// shows that the work checks ctx as it goes, without any clock.
type cancelAfter struct {
	context.Context
	n int
}

func (c *cancelAfter) Err() error {
	c.n--
	if c.n < 0 {
		return context.Canceled
	}
	return nil
}

func TestContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := PDF(ctx, manyLines(10)); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: err = %v", err)
	}
	in := manyLines(20000)
	for _, n := range []int{1, 10, 100} {
		if _, err := PDF(&cancelAfter{Context: context.Background(), n: n}, in); !errors.Is(err, context.Canceled) {
			t.Errorf("cancelled after %d checks: err = %v", n, err)
		}
	}
}

// TestHostileManyAttributes: one element's attributes count against the
// value bound too.
func TestHostileManyAttributes(t *testing.T) {
	var b strings.Builder
	b.WriteString(ublHead + "<" + strings.Repeat("N", 100000) + ">long name</" + strings.Repeat("N", 100000) + ">")
	b.WriteString("<cbc:Note")
	for i := 0; i < 200000; i++ {
		fmt.Fprintf(&b, " a%d=\"%d\"", i, i)
	}
	b.WriteString(">x</cbc:Note></Invoice>")
	out, err := bounded(t, []byte(b.String()), 30*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	s := text(t, out)
	if !strings.Contains(s, "weitere Werte nicht dargestellt") {
		t.Error("the attributes left out should be counted on the page")
	}
	if !strings.Contains(s, "long name") {
		t.Error("the element with the long name should show")
	}
}
