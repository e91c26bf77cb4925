// Package policy decides which attachments of a mail become archived
// documents and why the others are skipped.
//
// The declared content type and the file name are hints only: the decision
// rests on the sniffed type (github.com/gabriel-vasile/mimetype), on the
// root element of XML files (UBL and CII e-invoices and ZUGFeRD 1.0's
// CrossIndustryDocument, read with encoding/xml tokens because mimetype
// calls XML without a prolog text/plain; any prefix, BOM, UTF-16 or
// declared charset) and, for PDFs that may be ZUGFeRD/Factur-X invoices,
// on the embedded files (a byte scan for the well-known file names is only
// the hint that makes the reading worth its cost).
//
// Embedded files are read with pdfcpu without validation, since real
// ZUGFeRD PDFs declare %PDF-1.3 yet carry PDF/A-3 entries, in a reader
// slot bounded in number, size and time; a PDF past a bound is a plain
// PDF. When pdfcpu cannot read a file, a lenient scan of its objects
// (pdfscan.go) finds the embedded files. For an e-invoice, the walker of
// invoicedata.go reads the invoice's data (archive.Invoice) and runs the
// documented checks, exact in decimal arithmetic; parsing never fails a
// decision.
//
// Images are documents (a scanned receipt, an iPhone's HEIC photo) unless
// they are part of the mail body (inline, cid: referenced), small enough
// to be a signature logo, or named like a signature image and shaped like
// a logo or banner. Executables are refused whatever their name says;
// archives (ZIP, RAR, …) are skipped with their own reason. UnpackSMIME
// opens S/MIME containers (smime.p7m) for the importer, whose files are
// then decided one by one.
package policy
