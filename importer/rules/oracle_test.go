package rules_test

import (
	"bytes"
	"context"
	"encoding/xml"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/mailgate/mailgate/importer/rules"
)

// The official verdict is Saxon-HE running the rule sets' own compiled
// XSLT (../shared/einvoice-rules, as its validate script does). These
// tests hold mailgate's validator to it: for every file, the same valid
// and the same set of fatal rule ids.

const (
	saxonJar = "/usr/share/java/Saxon-HE.jar"
	shared   = "../../../shared"
)

func needOracle(t *testing.T) {
	t.Helper()
	missing := ""
	if _, err := os.Stat(filepath.Join(shared, "einvoice-rules")); err != nil {
		missing = "../shared/einvoice-rules"
	} else if _, err := os.Stat(saxonJar); err != nil {
		missing = "Saxon-HE (apt-get install default-jre-headless libsaxonhe-java)"
	} else if _, err := exec.LookPath("java"); err != nil {
		missing = "java"
	}
	if missing == "" {
		return
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("the validation oracle needs %s", missing)
	}
	t.Skipf("the validation oracle needs %s", missing)
}

// instance is one file to judge.
type instance struct {
	name   string // for people: where it came from
	path   string // the XML, in the oracle's work folder
	syntax string // "ubl", "cii" or "" (no e-invoice root)
	xr     bool   // BT-24 names XRechnung
}

// verdict is what the oracle or mailgate says of one file.
type verdict struct {
	valid    *bool // nil: not judged (Saxon stopped with an error, or mailgate says why not)
	fatal    []string
	warnings []string
}

func (v verdict) String() string {
	if v.valid == nil {
		return "not judged"
	}
	return fmt.Sprintf("valid=%v fatal=%v", *v.valid, v.fatal)
}

func TestAgreesWithTheOfficialRules(t *testing.T) {
	needOracle(t)
	work := t.TempDir()
	var files []instance
	files = append(files, corpusFiles(t, work)...)
	files = append(files, cenUnitTests(t, work)...)
	files = append(files, kositInstances(t, work)...)
	oracle := runSaxon(t, work, files)

	v, err := rules.Default()
	if err != nil {
		t.Fatal(err)
	}
	var judged, sameValid, sameRules, sameWarnings, notJudged int
	var diffs, outOfScope []string
	for _, f := range files {
		if f.syntax == "" {
			continue
		}
		b, err := os.ReadFile(f.path)
		if err != nil {
			t.Fatal(err)
		}
		r := v.Validate(context.Background(), b)
		if r.Valid == nil && notEN16931(r.Guideline) {
			// MINIMUM and BASIC WL carry no full EN 16931 invoice:
			// mailgate does not validate them as such, by design.
			outOfScope = append(outOfScope, f.name)
			continue
		}
		ours := verdict{valid: r.Valid}
		for _, e := range r.Errors {
			ours.fatal = append(ours.fatal, e.Rule)
		}
		for _, w := range r.Warnings {
			ours.warnings = append(ours.warnings, w.Rule)
		}
		ours.fatal, ours.warnings = set(ours.fatal), set(ours.warnings)
		judged++
		theirs := oracle[f.path]
		if theirs.valid == nil {
			notJudged++
		}
		switch {
		case (ours.valid == nil) != (theirs.valid == nil) || (ours.valid != nil && *ours.valid != *theirs.valid):
			diffs = append(diffs, fmt.Sprintf("%s: official %s, mailgate %s %s", f.name, theirs, ours, r.Reason))
			continue
		}
		sameValid++
		if !slices.Equal(ours.fatal, theirs.fatal) {
			diffs = append(diffs, fmt.Sprintf("%s: official %s, mailgate %s", f.name, theirs, ours))
			continue
		}
		sameRules++
		if slices.Equal(ours.warnings, theirs.warnings) {
			sameWarnings++
		} else {
			t.Logf("warnings differ: %s: official %v, mailgate %v", f.name, theirs.warnings, ours.warnings)
		}
	}
	t.Logf("agreement with the official rules (Saxon-HE): %d files, %d verdicts equal, %d fatal rule sets equal, %d warning sets equal; %d files the official run could not judge",
		judged, sameValid, sameRules, sameWarnings, notJudged)
	t.Logf("not validated by design (MINIMUM, BASIC WL): %v", outOfScope)
	fmt.Printf("validation oracle: %d files, %d verdicts equal, %d fatal rule sets equal (%d warning sets equal)\n", judged, sameValid, sameRules, sameWarnings)
	if len(diffs) > 0 {
		if len(diffs) > 40 {
			diffs = append(diffs[:40], fmt.Sprintf("… and %d more", len(diffs)-40))
		}
		t.Errorf("%d files judged differently:\n%s", len(diffs), strings.Join(diffs, "\n"))
	}
	if judged < 1000 {
		t.Errorf("only %d files judged: the corpus or the rules' tests are missing", judged)
	}
}

func notEN16931(guideline string) bool {
	g := strings.ToLower(guideline)
	return strings.Contains(g, "minimum") || strings.Contains(g, "basicwl")
}

func set(s []string) []string {
	sort.Strings(s)
	return slices.Compact(s)
}

// corpusFiles are the XML e-invoices of ../shared/einvoices and the XML
// embedded in its PDFs.
func corpusFiles(t *testing.T, work string) []instance {
	dir := filepath.Join(shared, "einvoices", "files")
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []instance
	for _, e := range entries {
		p := filepath.Join(dir, e.Name())
		switch strings.ToLower(filepath.Ext(e.Name())) {
		case ".xml":
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, place(t, work, "corpus/"+e.Name(), b))
		case ".pdf":
			for i, b := range embeddedXML(t, p) {
				out = append(out, place(t, work, fmt.Sprintf("corpus/%s#%d", e.Name(), i), b))
			}
		}
	}
	return out
}

// embeddedXML extracts a PDF's embedded XML files with poppler's
// pdfdetach.
func embeddedXML(t *testing.T, pdf string) [][]byte {
	if _, err := exec.LookPath("pdfdetach"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("pdfdetach (poppler-utils) is needed for the XML in PDFs")
		}
		return nil
	}
	dir := t.TempDir()
	_ = exec.Command("pdfdetach", "-saveall", "-o", dir, pdf).Run() // a PDF without files saves none
	var out [][]byte
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.EqualFold(filepath.Ext(e.Name()), ".xml") {
			b, err := os.ReadFile(filepath.Join(dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
	}
	return out
}

// cenUnitTests splits the CEN per-rule tests (VEFA test sets, one
// instance per <test>) into files; whole example files come as they are.
func cenUnitTests(t *testing.T, work string) []instance {
	var out []instance
	root := filepath.Join(shared, "einvoice-rules", "cen", "test")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || !strings.HasSuffix(p, ".xml") {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		if !bytes.Contains(b, []byte("http://difi.no/xsd/vefa/validator/1.0")) {
			out = append(out, place(t, work, "cen-test/"+rel, b))
			return nil
		}
		for i, inst := range vefaInstances(t, b) {
			out = append(out, place(t, work, fmt.Sprintf("cen-test/%s#%d", rel, i+1), inst))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// vefaInstances returns the raw XML of each test's instance.
func vefaInstances(t *testing.T, b []byte) [][]byte {
	d := xml.NewDecoder(bytes.NewReader(b))
	var out [][]byte
	depth := 0
	inTest := false
	for {
		start := d.InputOffset()
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		switch e := tok.(type) {
		case xml.StartElement:
			depth++
			switch {
			case depth == 2 && e.Name.Local == "test":
				inTest = true
			case depth == 3 && inTest && e.Name.Local != "assert":
				if err := d.Skip(); err != nil {
					t.Fatal(err)
				}
				depth--
				out = append(out, append([]byte(`<?xml version="1.0" encoding="UTF-8"?>`+"\n"), b[start:d.InputOffset()]...))
			}
		case xml.EndElement:
			if depth == 2 {
				inTest = false
			}
			depth--
		}
	}
	return out
}

func kositInstances(t *testing.T, work string) []instance {
	var out []instance
	files, _ := filepath.Glob(filepath.Join(shared, "einvoice-rules", "xrechnung", "test", "instances", "*", "*.xml"))
	for _, p := range files {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, place(t, work, "kosit/"+filepath.Base(filepath.Dir(p))+"/"+filepath.Base(p), b))
	}
	return out
}

var fileSeq int

// place writes one instance into the oracle's folder for its syntax,
// named so that every file is its own.
func place(t *testing.T, work, name string, b []byte) instance {
	fileSeq++
	in := instance{name: name}
	in.syntax, in.xr = classify(b)
	dir := filepath.Join(work, "in", in.syntax+"-"+fmt.Sprint(in.xr))
	if in.syntax == "" {
		dir = filepath.Join(work, "other")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	in.path = filepath.Join(dir, fmt.Sprintf("%05d.xml", fileSeq))
	if err := os.WriteFile(in.path, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return in
}

// classify tells the syntax by the root element and whether BT-24 names
// XRechnung, as ../shared/einvoice-rules/validate does.
func classify(b []byte) (syntax string, xr bool) {
	d := xml.NewDecoder(bytes.NewReader(b))
	d.CharsetReader = func(_ string, r io.Reader) (io.Reader, error) { return r, nil }
	var guideline *string
	inGuideline := false
	var text strings.Builder
	for {
		tok, err := d.Token()
		if err != nil {
			break
		}
		switch e := tok.(type) {
		case xml.StartElement:
			if syntax == "" {
				switch {
				case e.Name.Local == "CrossIndustryInvoice" && e.Name.Space == "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100":
					syntax = "cii"
				case e.Name.Local == "Invoice" && e.Name.Space == "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2",
					e.Name.Local == "CreditNote" && e.Name.Space == "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2":
					syntax = "ubl"
				default:
					return "", false
				}
				continue
			}
			switch {
			case e.Name.Local == "CustomizationID" && guideline == nil:
				inGuideline = true
			case e.Name.Local == "GuidelineSpecifiedDocumentContextParameter" && guideline == nil:
				inGuideline = true
			}
		case xml.CharData:
			if inGuideline {
				text.Write(e)
			}
		case xml.EndElement:
			if inGuideline && (e.Name.Local == "CustomizationID" || e.Name.Local == "GuidelineSpecifiedDocumentContextParameter") {
				s := strings.TrimSpace(text.String())
				guideline = &s
				inGuideline = false
			}
		}
		if guideline != nil {
			break
		}
	}
	return syntax, guideline != nil && strings.Contains(strings.ToLower(*guideline), "xrechnung")
}

var (
	failedAssert = regexp.MustCompile(`<svrl:failed-assert\b([^>]*)>`)
	attrID       = regexp.MustCompile(`\bid="([^"]*)"`)
	attrFlag     = regexp.MustCompile(`\bflag="([^"]*)"`)
)

// runSaxon runs the official XSLT over each folder in one JVM per rule
// set and reads the SVRL reports.
func runSaxon(t *testing.T, work string, files []instance) map[string]verdict {
	rulesDir := filepath.Join(shared, "einvoice-rules")
	xslt := map[string]string{
		"ubl":    filepath.Join(rulesDir, "cen", "ubl", "xslt", "EN16931-UBL-validation.xslt"),
		"cii":    filepath.Join(rulesDir, "cen", "cii", "xslt", "EN16931-CII-validation.xslt"),
		"xr-ubl": filepath.Join(rulesDir, "xrechnung", "xslt", "XRechnung-UBL-validation.xsl"),
		"xr-cii": filepath.Join(rulesDir, "xrechnung", "xslt", "XRechnung-CII-validation.xsl"),
	}
	type job struct{ in, xsl, out string }
	var jobs []job
	for _, syn := range []string{"ubl", "cii"} {
		for _, xr := range []bool{false, true} {
			in := filepath.Join(work, "in", syn+"-"+fmt.Sprint(xr))
			if _, err := os.Stat(in); err != nil {
				continue
			}
			jobs = append(jobs, job{in, xslt[syn], filepath.Join(work, "out", "cen", syn+"-"+fmt.Sprint(xr))})
			if xr {
				jobs = append(jobs, job{in, xslt["xr-"+syn], filepath.Join(work, "out", "xr", syn+"-"+fmt.Sprint(xr))})
			}
		}
	}
	for _, j := range jobs {
		if err := os.MkdirAll(j.out, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("java", "-cp", saxonJar, "net.sf.saxon.Transform", "-s:"+j.in, "-xsl:"+j.xsl, "-o:"+j.out)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			// Saxon goes on with the other files after one fails; the
			// failed one has no report.
			t.Logf("saxon %s over %s: %v (%d bytes of messages)", filepath.Base(j.xsl), filepath.Base(j.in), err, stderr.Len())
		}
	}
	out := map[string]verdict{}
	for _, f := range files {
		if f.syntax == "" {
			continue
		}
		dirs := []string{filepath.Join(work, "out", "cen")}
		if f.xr {
			dirs = append(dirs, filepath.Join(work, "out", "xr"))
		}
		var v verdict
		ok := true
		for _, d := range dirs {
			report, err := os.ReadFile(filepath.Join(d, filepath.Base(filepath.Dir(f.path)), filepath.Base(f.path)))
			// A dynamic error ends Saxon's run and may leave a report
			// cut short: only a closed one is a verdict.
			if err != nil || !bytes.Contains(report, []byte("</svrl:schematron-output>")) {
				ok = false
				break
			}
			for _, m := range failedAssert.FindAllSubmatch(report, -1) {
				id, flag := "?", "fatal"
				if x := attrID.FindSubmatch(m[1]); x != nil {
					id = string(x[1])
				}
				if x := attrFlag.FindSubmatch(m[1]); x != nil {
					flag = string(x[1])
				}
				if flag == "fatal" {
					v.fatal = append(v.fatal, id)
				} else {
					v.warnings = append(v.warnings, id)
				}
			}
		}
		if ok {
			valid := len(v.fatal) == 0
			v.valid = &valid
			v.fatal, v.warnings = set(v.fatal), set(v.warnings)
		} else {
			v = verdict{}
		}
		out[f.path] = v
	}
	return out
}
