package rendition

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"unicode"
)

const shared = "../../../shared"

// need skips a test whose outside input is missing, and fails it in CI,
// where the input must be there.
func need(t testing.TB, what string, ok bool) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing, and CI is set", what)
	}
	t.Skipf("%s is missing; skipping (set CI to make this a failure)", what)
}

// corpus lists the XML files of ../shared/einvoices (manifest.tsv): the
// e-invoices, and those the manifest expects nothing of ("any": not
// invoices at all).
func corpus(t testing.TB) (invoices, others []string) {
	dir := filepath.Join(shared, "einvoices")
	mf, err := os.Open(filepath.Join(dir, "manifest.tsv"))
	need(t, "../shared/einvoices/manifest.tsv", err == nil)
	defer mf.Close()
	sc := bufio.NewScanner(mf)
	for sc.Scan() {
		cols := strings.Split(sc.Text(), "\t")
		if len(cols) < 3 || !strings.HasSuffix(strings.ToLower(cols[0]), ".xml") {
			continue
		}
		p := filepath.Join(dir, "files", cols[0])
		if cols[2] == "any" {
			others = append(others, p)
		} else {
			invoices = append(invoices, p)
		}
	}
	if len(invoices) == 0 {
		t.Fatal("manifest.tsv lists no XML e-invoice")
	}
	return invoices, others
}

func pdftotext(t testing.TB) string {
	p, err := exec.LookPath("pdftotext")
	need(t, "pdftotext (poppler-utils)", err == nil)
	return p
}

// expected is one value of the XML the rendition must show.
type expected struct {
	path, value string
	alts        []string // other accepted forms (a date as DD.MM.YYYY)
}

// xmlValues collects every element text and attribute value, written
// independently of the renderer's parser. Base64 content is replaced by
// its decoded size; a date's format="102" is consumed when the date is
// shown as DD.MM.YYYY.
func xmlValues(t testing.TB, data []byte) (vals []expected, consumed int) {
	t.Helper()
	d := xml.NewDecoder(bytes.NewReader(data))
	type el struct {
		name  string
		attrs []xml.Attr
		text  strings.Builder
	}
	var stack []*el
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("test's own parse: %v", err)
		}
		switch tok := tok.(type) {
		case xml.StartElement:
			stack = append(stack, &el{name: tok.Name.Local, attrs: tok.Attr})
		case xml.CharData:
			if len(stack) > 0 {
				stack[len(stack)-1].text.Write(tok)
			}
		case xml.EndElement:
			e := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			var names []string
			for _, s := range stack {
				names = append(names, s.name)
			}
			path := "/" + strings.Join(append(names, e.name), "/")
			text := strings.TrimSpace(e.text.String())
			binary := e.name == "EmbeddedDocumentBinaryObject" || e.name == "AttachmentBinaryObject"
			date102 := false
			for _, a := range e.attrs {
				if a.Name.Local == "format" && a.Value == "102" && len(text) == 8 && digits(text) {
					date102 = true
				}
			}
			switch {
			case binary:
				raw, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(text), ""))
				if err == nil {
					vals = append(vals, expected{path: path, value: strconv.Itoa(len(raw)) + " Bytes"})
				}
			case text == "":
			case date102:
				vals = append(vals, expected{path: path, value: text, alts: []string{text[6:] + "." + text[4:6] + "." + text[:4]}})
			case len(text) == 10 && text[4] == '-' && text[7] == '-' && digits(text[:4]+text[5:7]+text[8:]):
				vals = append(vals, expected{path: path, value: text, alts: []string{text[8:] + "." + text[5:7] + "." + text[:4]}})
			default:
				vals = append(vals, expected{path: path, value: text})
			}
			for _, a := range e.attrs {
				if a.Name.Space == "xmlns" || a.Name.Local == "xmlns" {
					continue
				}
				if date102 && a.Name.Local == "format" {
					consumed++
					continue
				}
				vals = append(vals, expected{path: path + "/@" + a.Name.Local, value: strings.TrimSpace(a.Value)})
			}
		}
	}
	return vals, consumed
}

// squeeze drops all whitespace, so values that wrap still match.
func squeeze(s string) string {
	return strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return -1
		}
		return r
	}, s)
}

// extract runs pdftotext in the given mode on pdf.
func extract(t testing.TB, bin string, pdf []byte, mode string) string {
	t.Helper()
	cmd := exec.Command(bin, mode, "-enc", "UTF-8", "-", "-")
	cmd.Stdin = bytes.NewReader(pdf)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("pdftotext %s: %v", mode, err)
	}
	return string(out)
}

type coverage struct {
	files, values, onlyRaw, consumed, misses, htmlMisses int
}

var tags = regexp.MustCompile(`<[^>]*>`)

// check renders one file and reports every value missing from its text.
func check(t *testing.T, bin, file string, c *coverage) {
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	pdf, err := PDF(context.Background(), data)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(file), err)
		c.misses++
		return
	}
	page, err := HTML(context.Background(), data)
	if err != nil {
		t.Errorf("%s: HTML: %v", filepath.Base(file), err)
		c.misses++
		return
	}
	htmlText := squeeze(html.UnescapeString(tags.ReplaceAllString(string(page), " ")))
	layout := squeeze(extract(t, bin, pdf, "-layout"))
	raw := ""
	vals, consumed := xmlValues(t, data)
	c.files++
	c.consumed += consumed
	for _, v := range vals {
		c.values++
		forms := append([]string{v.value}, v.alts...)
		inHTML := false
		for _, f := range forms {
			inHTML = inHTML || strings.Contains(htmlText, squeeze(f))
		}
		if !inHTML {
			c.htmlMisses++
			if c.htmlMisses <= 20 {
				t.Errorf("%s: %s = %q not in the HTML rendition", filepath.Base(file), v.path, v.value)
			}
		}
		found := false
		for _, f := range forms {
			if strings.Contains(layout, squeeze(f)) {
				found = true
				break
			}
		}
		if found {
			continue
		}
		// -layout interleaves the lines of two wrapped columns; the
		// content order of -raw keeps each cell's lines together.
		if raw == "" {
			raw = squeeze(extract(t, bin, pdf, "-raw"))
		}
		for _, f := range forms {
			if strings.Contains(raw, squeeze(f)) {
				found = true
				c.onlyRaw++
				break
			}
		}
		if !found {
			c.misses++
			if c.misses <= 50 {
				t.Errorf("%s: %s = %q not in the rendition's text", filepath.Base(file), v.path, v.value)
			}
		}
	}
}

func TestRenditionShowsEveryValue(t *testing.T) {
	bin := pdftotext(t)
	invoices, others := corpus(t)
	for _, f := range others {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := PDF(context.Background(), data); !errors.Is(err, ErrNotInvoice) && !errors.Is(err, ErrNotXML) {
			t.Errorf("%s (not an invoice): err = %v, want ErrNotInvoice or ErrNotXML", filepath.Base(f), err)
		}
	}
	sets := []struct {
		name  string
		files []string
	}{{"../shared/einvoices (XML e-invoices of manifest.tsv)", invoices}}
	inst, _ := filepath.Glob(filepath.Join(shared, "einvoice-rules/xrechnung/test/instances/*/*.xml"))
	if len(inst) == 0 && os.Getenv("CI") != "" {
		t.Fatal("XRechnung test instances are missing, and CI is set")
	}
	if len(inst) > 0 {
		sets = append(sets, struct {
			name  string
			files []string
		}{"XRechnung test instances", inst})
	}
	if testing.Short() {
		sets = sets[:1]
	}
	for _, s := range sets {
		var c coverage
		for _, f := range s.files {
			check(t, bin, f, &c)
		}
		t.Logf("%s: %d files, %d values checked (%d found only in pdftotext -raw), %d date formats consumed by DD.MM.YYYY, %d misses in the PDF, %d in the HTML",
			s.name, c.files, c.values, c.onlyRaw, c.consumed, c.misses, c.htmlMisses)
		if c.misses > 0 || c.htmlMisses > 0 {
			t.Errorf("%s: %d values missing from PDF renditions, %d from HTML ones", s.name, c.misses, c.htmlMisses)
		}
	}
}
