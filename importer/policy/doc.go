// Package policy decides which attachments of a mail become archived
// documents and why the others are skipped.
//
// The declared content type and the file name are hints only: the decision
// rests on the sniffed type (github.com/gabriel-vasile/mimetype), on the
// root element of XML files (UBL and CII e-invoices, read with encoding/xml
// tokens because mimetype calls XML without a prolog text/plain) and, for
// PDFs that may be ZUGFeRD/Factur-X invoices, on the embedded files that
// pdfcpu lists (a byte scan for the well-known file names is only the hint
// that makes the listing worth its cost).
//
// Images are documents (a scanned receipt) unless they are part of the mail
// body (inline, cid: referenced) or small enough to be a signature logo.
// Executables and archives are refused whatever their name says.
package policy
