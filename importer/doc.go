// Package importer is the ingestion loop: it leases connections, pulls each
// connected mailbox's changes with Graph delta queries and turns every
// attachment worth keeping into exactly one archived document and one
// document.imported event.
//
// One pass over a connection, holding its lease:
//
//	cursor (KV cursors) ─▶ delta page ─▶ mail record? ─▶ attachments with
//	  their bytes, spooled as they stream in (size, SHA-256) ─▶ policy
//	  ─▶ document id ─▶ ledger lookup (KV imports)
//	  ─▶ content index (same SHA-256 archived before: skip duplicate_of)
//	  ─▶ Store.Put (content-addressed key) ─▶ Events.Imported (Nats-Msg-Id = id)
//	  ─▶ ledger record + content claim ─▶ … all documents of the mail
//	  ─▶ post-process the mail ─▶ mail record ─▶ … all mails of the page
//	  ─▶ commit the next/delta link (compare-and-set)
//
// A mail costs Graph one request for all its attachments and their bytes
// (the list with contentBytes, parsed as a stream) and one for its
// post-processing; attachments whose bytes the list leaves out are
// streamed with $value. What streams in is spooled right away: the mail
// keeps at most SpoolMemory bytes in memory, all its attachments
// together, and the rest in the spool directory, so memory grows with the
// documents in flight, not with the size of the mails.
//
// The ledger's reads wait behind its fsynced writes, so what does not
// depend on each other is asked at once: the mail records of a whole page,
// the ledger lookup with the content index, and the ledger record with the
// content claim.
//
// The mails of a page are worked MailWorkers (8) at once, and the
// documents of a pass together are bounded to the same number: twice
// Graph's 4 requests in flight per mailbox (which the Graph client keeps
// to), since a document spends about half its time after its download,
// storing, announcing and recording. The order per document (store,
// event, ledger) and per mail (all documents, then post-processing) holds
// within each mail; the cursor is committed only after every mail of the
// page is done, and an error anywhere leaves it before the page, which is
// then replayed. Documents with the same content are checked against the
// content index one at a time (a lock per customer and SHA-256), so two
// mails worked at once never both import the same file.
//
// The ledger, not the mailbox, is the record: a document id is derived from
// the customer, the connection, the mail's internetMessageId and the
// attachment's SHA-256 and name, never from Graph item ids, so a delta
// reset, a mail moved by a person or a replay after a crash finds the
// document already done and skips it silently. The cursor moves only after
// the page it covers is durable (Perkeep: take the change token before
// enumerating, persist it after success). An idle poll writes nothing: a
// round from the last round's delta link that lists nothing new (or only
// removals) keeps that link, which Graph answers the same way again plus
// whatever came since, and the status is written only when something its
// readers see changed, not for LastSync and NextSync alone (Run keeps the
// next check in memory). Run polls a quiet connection (active, no error,
// nothing parked, its last round done) without its lease first (peek.go):
// an empty answer ends the poll with no write at all; anything else is a
// pass under the lease, which works the page peek fetched. peek remembers
// the delta link it started from, and Run hands it the connection it
// watched, so an idle poll of a connection this process saw quiet asks
// KV nothing.
//
// Failures stay with their owner (fault.go, ownerOf). A mail that fails
// on its own, at any step (listing, download, classification,
// post-processing), is parked in the connection's backlog (KV cursors,
// backlog.<connection>) and retried by its immutable id on its own
// schedule, while the cursor and every other mail move on; after
// Policy.MaxAttempts over at least Policy.RetryFor it is given up as
// document.skipped "failed" and waits for an operator's Retry (parked.go).
// Faults of the operator's infrastructure (the spool disk, the store,
// NATS) are infraError: they end the pass, count against nobody, and show
// in Importer.Fault (/readyz), a metric and one log line. Of the mailbox's
// own failures, Throttled ends the pass and moves the next check by
// Retry-After; Transient is retried with jittered backoff from the last
// committed cursor; NeedsConsent stops the connection without retries;
// SyncReset drops the cursor and starts a new round. A pass reads its
// connection again before every page, so pause and delete stop it within
// one page, and yields after MaxPassPages or MaxPassTime. A pass that died
// while announcing leaves backlog.Working set; the next pass, when that is
// older than half the stream's duplicate window, asks the stream what it
// announced instead of announcing again.
//
// Run keeps every connection's next check in memory
// (watching the connections bucket for new, changed and removed
// connections, or listing it each ScanInterval where the store cannot be
// watched; reading a status only when its connection is due) and hands due connections to Workers workers as
// they free up. It shares connections between replicas with a lease
// per connection in KV "leases" (Create to take, Update with revision to
// renew, Delete with revision to release); a dead replica's leases expire
// after LeaseTTL.
//
// Replicas share the scheduled polls too (replicas.go): each writes a
// heartbeat (replica.<name> in KV "leases", every LeaseTTL/3, not per
// poll) and watches the others'; a connection's scheduled polls are made
// only by its owner, chosen by rendezvous hashing of the connection id
// over the live replicas, so an idle mailbox costs one Graph request per
// interval however many replicas run. The others keep it scheduled and
// park it when it falls due. A replica that stops deletes its heartbeat
// and the others poll its connections at once; one that dies is dropped
// LeaseTTL after its last heartbeat. A replica always counts itself, so
// one that sees nobody else (alone, or cut off) polls everything.
// Triggers and connections created or resumed are worked wherever they
// land, under the lease.
package importer
