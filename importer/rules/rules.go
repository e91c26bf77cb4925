// Package rules judges e-invoices by the official rule sets: the EN 16931
// validation artefacts of CEN/TC 434 (Schematron with code lists, for UBL
// and CII) and KoSIT's XRechnung CIUS rules. The Schematron files are data,
// evaluated as they are by the XPath 2.0 engine in package xpath; a new
// release of either rule set is a copy of its files into official/ (see
// the README there), never a rewrite.
package rules

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/mailgate/mailgate/importer/rules/xpath"
)

// Classes of an invalid e-invoice, after the three classes of the German
// finance ministry's letter of 15 Oct 2025 (content errors are for people).
const (
	// ClassFormat: not an e-invoice at all: not well-formed XML, or not
	// the syntax it claims (its root element is no UBL Invoice or
	// CreditNote and no CII CrossIndustryInvoice).
	ClassFormat = "format"
	// ClassBusinessRule: an assertion of a rule set flagged fatal fails.
	ClassBusinessRule = "business_rule"
)

// Rule ids of the format checks, which are mailgate's own (the rule sets
// presuppose well-formed XML of their syntax).
const (
	RuleWellFormed = "XML-WELL-FORMED"
	RuleSyntax     = "XML-SYNTAX"
)

// Report is the verdict of the rule sets on one e-invoice.
type Report struct {
	Syntax    string   // "UBL" or "CII"
	Guideline string   // BT-24 as written
	RuleSets  []string // the rule sets applied, e.g. "EN16931-CEN 1.3.16 (commit b6c9e06)"
	// Valid is nil when the invoice was not validated: Reason says why
	// (a profile that is no EN 16931 invoice, over a bound, an expression
	// the rules cannot evaluate on this file).
	Valid    *bool
	Class    string // ClassFormat or ClassBusinessRule when invalid, else ""
	Reason   string
	Errors   []Finding // failed assertions flagged fatal
	Warnings []Finding // failed assertions flagged warning or information
}

// Finding is one failed assertion, in the rule set's own words.
type Finding struct {
	Rule     string // the assertion's id, e.g. "BR-CO-15"
	Flag     string // "fatal", "warning" or "information"
	Message  string // the assertion's text as written
	Location string // where in the document, e.g. "/Invoice/cac:LegalMonetaryTotal"
}

// Limits bound one validation.
type Limits struct {
	Time  time.Duration // per document
	Bytes int           // the XML's size
	Nodes int           // elements, attributes and text nodes
	Depth int           // element nesting
}

// DefaultLimits hold every real e-invoice seen (the largest public ones
// carry attachments of a few MiB and under 100,000 nodes) with room.
var DefaultLimits = Limits{Time: 10 * time.Second, Bytes: 32 << 20, Nodes: 500_000, Depth: 200}

// Validator holds the compiled rule sets; it is safe for concurrent use.
type Validator struct {
	cenUBL, cenCII, xrUBL, xrCII *schema
	limits                       Limits
}

//go:embed official
var official embed.FS

var (
	defaultOnce sync.Once
	defaultV    *Validator
	defaultErr  error
)

// Default returns the Validator of the rule sets embedded in the binary
// (official/), compiled once.
func Default() (*Validator, error) {
	defaultOnce.Do(func() {
		sub, err := fs.Sub(official, "official")
		if err != nil {
			defaultErr = err
			return
		}
		defaultV, defaultErr = New(sub, DefaultLimits)
	})
	return defaultV, defaultErr
}

// Files of the rule sets, laid out as KoSIT and CEN publish them.
const (
	fileCENUBL = "cen/ubl/schematron/preprocessed/EN16931-UBL-validation-preprocessed.sch"
	fileCENCII = "cen/cii/schematron/preprocessed/EN16931-CII-validation-preprocessed.sch"
	fileXRUBL  = "xrechnung/src/validation/schematron/ubl/XRechnung-UBL-validation.sch"
	fileXRCII  = "xrechnung/src/validation/schematron/cii/XRechnung-CII-validation.sch"
	fileXRVars = "xrechnung/src/validation/schematron/common.sch"
)

var (
	cenVersion = regexp.MustCompile(`Schematron version ([0-9.]+)`)
	xrVersion  = regexp.MustCompile(`name="XR-MAJOR-MINOR-VERSION"\s+value="'([^']+)'"`)
)

// New compiles the rule sets in fsys, laid out as ../shared/einvoice-rules
// (cen/… and xrechnung/…, each with its VERSION file).
func New(fsys fs.FS, lim Limits) (*Validator, error) {
	cen, err := setName(fsys, "EN16931-CEN", "cen/VERSION", fileCENUBL, cenVersion)
	if err != nil {
		return nil, err
	}
	xr, err := setName(fsys, "XRechnung", "xrechnung/VERSION", fileXRVars, xrVersion)
	if err != nil {
		return nil, err
	}
	v := &Validator{limits: lim}
	for _, s := range []struct {
		dst        **schema
		file, name string
	}{{&v.cenUBL, fileCENUBL, cen}, {&v.cenCII, fileCENCII, cen}, {&v.xrUBL, fileXRUBL, xr}, {&v.xrCII, fileXRCII, xr}} {
		if *s.dst, err = loadSchema(fsys, s.file, s.name); err != nil {
			return nil, fmt.Errorf("rules: %w", err)
		}
	}
	return v, nil
}

// setName names a rule set by its release and commit, e.g.
// "EN16931-CEN 1.3.16 (commit b6c9e06)".
func setName(fsys fs.FS, title, versionFile, file string, version *regexp.Regexp) (string, error) {
	commit, err := fs.ReadFile(fsys, versionFile)
	if err != nil {
		return "", fmt.Errorf("rules: %w", err)
	}
	b, err := fs.ReadFile(fsys, file)
	if err != nil {
		return "", fmt.Errorf("rules: %w", err)
	}
	name := title
	if m := version.FindSubmatch(b); m != nil {
		name += " " + string(m[1])
	}
	if f := strings.Fields(string(commit)); len(f) > 0 && len(f[0]) >= 7 {
		name += " (commit " + f[0][:7] + ")"
	}
	return name, nil
}

// Root element names of the syntaxes.
const (
	nsUBLInvoice    = "urn:oasis:names:specification:ubl:schema:xsd:Invoice-2"
	nsUBLCreditNote = "urn:oasis:names:specification:ubl:schema:xsd:CreditNote-2"
	nsCII           = "urn:un:unece:uncefact:data:standard:CrossIndustryInvoice:100"
	nsZUGFeRD1      = "urn:ferd:CrossIndustryDocument:invoice:1p0"
	nsUBLBasic      = "urn:oasis:names:specification:ubl:schema:xsd:CommonBasicComponents-2"
	nsCIIRAM        = "urn:un:unece:uncefact:data:standard:ReusableAggregateBusinessInformationEntity:100"
	nsCIIRSM        = nsCII
)

// Validate judges one e-invoice XML. It never fails: what it cannot judge
// comes back with Valid nil and the reason. ctx bounds its time, as does
// the Validator's own time limit.
func (v *Validator) Validate(ctx context.Context, xml []byte) Report {
	var r Report
	if v.limits.Bytes > 0 && len(xml) > v.limits.Bytes {
		r.Reason = fmt.Sprintf("not validated: the XML is larger than %d MiB", v.limits.Bytes>>20)
		return r
	}
	if v.limits.Time > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, v.limits.Time)
		defer cancel()
	}
	doc, err := xpath.Parse(ctx, bytes.NewReader(xml), xpath.Limits{Nodes: v.limits.Nodes, Depth: v.limits.Depth})
	switch {
	case errors.Is(err, xpath.ErrLimit):
		r.Reason = "not validated: " + err.Error()
		return r
	case ctx.Err() != nil:
		r.Reason = fmt.Sprintf("not validated: over the time bound of %s", v.limits.Time)
		return r
	}
	if err != nil {
		return invalidFormat(r, RuleWellFormed, err.Error())
	}
	root := doc.Element()
	var sets []*schema
	switch {
	case root.Local == "Invoice" && root.Space == nsUBLInvoice, root.Local == "CreditNote" && root.Space == nsUBLCreditNote:
		r.Syntax, r.Guideline = "UBL", childText(root, nsUBLBasic, "CustomizationID")
		sets = []*schema{v.cenUBL, v.xrUBL}
	case root.Local == "CrossIndustryInvoice" && root.Space == nsCII:
		r.Syntax = "CII"
		if c := child(root, nsCIIRSM, "ExchangedDocumentContext"); c != nil {
			r.Guideline = childText(child(c, nsCIIRAM, "GuidelineSpecifiedDocumentContextParameter"), nsCIIRAM, "ID")
		}
		sets = []*schema{v.cenCII, v.xrCII}
	case root.Local == "CrossIndustryDocument" && root.Space == nsZUGFeRD1:
		r.Syntax = "CII"
		r.Reason = "not validated: ZUGFeRD 1.0 predates EN 16931; the official rule sets do not apply to it"
		return r
	default:
		return invalidFormat(r, RuleSyntax, fmt.Sprintf("the root element {%s}%s is no UBL Invoice or CreditNote and no CII CrossIndustryInvoice", root.Space, root.Local))
	}
	g := strings.ToLower(r.Guideline)
	switch {
	case strings.Contains(g, "minimum"), strings.Contains(g, "basicwl"):
		r.Reason = "not validated: the profile (MINIMUM or BASIC WL) carries no full EN 16931 invoice; the PDF is the invoice"
		return r
	case !strings.Contains(g, "xrechnung"):
		sets = sets[:1] // the XRechnung CIUS binds XRechnung invoices only
	}
	c := xpath.NewContext(ctx, doc)
	for _, s := range sets {
		r.RuleSets = append(r.RuleSets, s.name)
		found, err := s.run(c, doc)
		if err != nil {
			r.Errors, r.Warnings = nil, nil
			if ctx.Err() != nil {
				r.Reason = fmt.Sprintf("not validated: over the time bound of %s", v.limits.Time)
			} else {
				r.Reason = "not validated: the rules cannot be evaluated on this file: " + err.Error()
			}
			return r
		}
		for _, f := range found {
			if f.Flag == "fatal" {
				r.Errors = append(r.Errors, f)
			} else {
				r.Warnings = append(r.Warnings, f)
			}
		}
	}
	valid := len(r.Errors) == 0
	r.Valid = &valid
	if !valid {
		r.Class = ClassBusinessRule
	}
	return r
}

func invalidFormat(r Report, rule, msg string) Report {
	valid := false
	r.Valid, r.Class = &valid, ClassFormat
	r.Errors = []Finding{{Rule: rule, Flag: "fatal", Message: msg, Location: "/"}}
	return r
}

func child(n *xpath.Node, space, local string) *xpath.Node {
	if n == nil {
		return nil
	}
	for _, c := range n.Children {
		if c.Kind == xpath.ElementNode && c.Local == local && c.Space == space {
			return c
		}
	}
	return nil
}

func childText(n *xpath.Node, space, local string) string {
	if c := child(n, space, local); c != nil {
		return strings.TrimSpace(c.StringValue())
	}
	return ""
}
