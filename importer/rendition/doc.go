// Package rendition renders an XML-only e-invoice (XRechnung or other
// EN 16931 UBL Invoice, UBL CreditNote and CII CrossIndustryInvoice) as a
// PDF a person reads, in the manner of KoSIT's XRechnung visualisation.
//
// The flow is parse → build → render:
//
//   - parse reads the XML as an encoding/xml token stream into a small
//     tree of elements (names with the usual prefixes whatever the sender
//     wrote, texts, attributes). It keeps explicit stacks, never recursing
//     on the input's depth, and applies the bounds: MaxInput bytes,
//     MaxDepth levels, MaxLines invoice lines, MaxValues values and
//     MaxValueRunes per value. Base64 binary objects keep only their
//     decoded size.
//   - build maps the tree onto sections: invoice data, seller, seller tax
//     representative, buyer, payee, delivery, invoice lines (with their
//     sub-lines, allowances and charges), document level allowances and
//     charges, totals, VAT breakdown, payment instructions and terms, and
//     supporting documents. Labels are German with the standard's English
//     business term and its BT/BG id. Every shown value is marked; whatever
//     no business term placed (and every attribute) is listed under
//     "Weitere Angaben / Further information" with its element path, or
//     under its invoice line, so nothing in the XML is hidden.
//   - render lays the sections out with fpdf, breaking pages itself so label and value columns and table rows stay
//     aligned; tables repeat their header on every page. A document whose
//     every character is in Windows-1252 (German and the other Western
//     European languages) is set in Helvetica, built into every PDF reader,
//     any other in the embedded Go fonts (the Basic Multilingual Plane); the
//     pen picks one per document. HTML writes the same sections as one page
//     through html/template.
//
// Values are shown as written (amounts are never reformatted); dates are
// shown as DD.MM.YYYY. The output depends on the input only: the PDF's
// creation date is the invoice's issue date, so a retry yields the same
// bytes and the same content-addressed object.
package rendition
