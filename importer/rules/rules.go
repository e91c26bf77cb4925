// Package rules judges e-invoices by the official rule sets: the EN 16931
// validation artefacts of CEN/TC 434 (Schematron with code lists, for UBL
// and CII) and KoSIT's XRechnung CIUS rules. The Schematron files are data,
// loaded and evaluated as they are by an XPath 2.0 engine of this package;
// a new release of either rule set is a copy of its files.
package rules

import (
	"context"
	"errors"
)

// Classes of an invalid e-invoice, after the three classes of the German
// finance ministry's letter of 15 Oct 2025 (content errors are for people).
const (
	// ClassFormat: not an e-invoice at all: not well-formed XML, not the
	// syntax it claims, or the syntax's structure broken.
	ClassFormat = "format"
	// ClassBusinessRule: an assertion of a rule set flagged fatal fails.
	ClassBusinessRule = "business_rule"
)

// Report is the verdict of the rule sets on one e-invoice.
type Report struct {
	Syntax    string   // "UBL" or "CII"
	Guideline string   // BT-24 as written
	RuleSets  []string // the rule sets applied, e.g. "EN16931-CEN 1.3.15 (commit b6c9e06)"
	// Valid is nil when the invoice was not validated: Reason says why
	// (a profile that is no EN 16931 invoice, over a bound, an expression
	// the engine cannot evaluate).
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

// Validator holds the loaded rule sets; it is safe for concurrent use.
type Validator struct{}

// ErrNotImplemented is what the placeholder answers until the engine lands.
var ErrNotImplemented = errors.New("rules: validation not implemented yet")

// Default returns a Validator with the rule sets embedded in the binary.
func Default() (*Validator, error) { return &Validator{}, nil }

// Validate judges one e-invoice XML. It never fails: what it cannot judge
// comes back with Valid nil and the reason. ctx bounds its time.
func (v *Validator) Validate(ctx context.Context, xml []byte) Report {
	return Report{Reason: ErrNotImplemented.Error()}
}
