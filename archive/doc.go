// Package archive stores documents and announces them to the archive system.
//
// The importer hands every accepted attachment to a [Store] and then
// publishes an event on NATS JetStream:
//
//  1. [NewSpool] copies the attachment once, hashing it (SHA-256) and keeping
//     small bodies in memory and large ones in a temporary file, so the
//     key and the real size are known before anything is written.
//  2. [Store.Put] writes the object under the content-addressed [Key]
//     (<customer>/<yyyy>/<mm>/<sha256>.<ext>). A repeated put of the same key
//     is a success that rewrites nothing; a body whose SHA-256 differs from
//     the one claimed is refused before anything becomes visible under the
//     key. [S3Store] does this against S3/MinIO, [DirStore] on a local disk.
//  3. [Publisher] sends a CloudEvents 1.0 event to the stream MAILGATE
//     (subject mailgate.<customer>.document.imported) with Nats-Msg-Id set to
//     the document id, and waits for the stream's acknowledgement, so a replay
//     after a crash yields no second event within the duplicate window.
//
// For an e-invoice (kinds xrechnung and zugferd) [Imported.Invoice] holds
// the invoice's own data read from its XML, named after the EN 16931
// business terms: number (BT-1), dates, currency, buyer reference (the
// Leitweg-ID), seller and buyer with their VAT ids, the totals as decimal
// strings exactly as written, the payment accounts, the guideline, the
// outcome of mailgate's checks (the Check* codes; no KoSIT validation)
// and, for an invoice that arrived before in another file,
// DuplicateInvoiceOf. From a realistic XRechnung:
//
//	"invoice": {
//	  "number": "RE-2026-04711", "typeCode": "380",
//	  "issueDate": "2026-11-02", "dueDate": "2026-12-02",
//	  "currency": "EUR", "buyerReference": "04011000-12345-67",
//	  "seller": {"name": "Müller Bürobedarf GmbH", "vatId": "DE123456789", "taxNumber": "214/5678/0123"},
//	  "buyer": {"name": "Stadtwerke Bonn GmbH", "vatId": "DE987654321"},
//	  "totals": {"net": "1250.00", "tax": "237.50", "gross": "1487.50", "payable": "987.50"},
//	  "iban": ["DE02120300000000202051"],
//	  "guideline": "urn:cen.eu:en16931:2017#compliant#urn:xeinkauf.de:kosit:xrechnung_3.0",
//	  "checks": ["mandatory_present", "totals_ok"]
//	}
//
// Archive systems read the stream with [Subscribe] (explicit acks, redelivery
// of whatever was not acknowledged) and the document bytes with [Fetch].
package archive
