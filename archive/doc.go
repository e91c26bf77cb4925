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
// Archive systems read the stream with [Subscribe] (explicit acks, redelivery
// of whatever was not acknowledged) and the document bytes with [Fetch].
package archive
