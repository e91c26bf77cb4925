package importer

import (
	"crypto/sha256"
	"encoding/base32"
	"strconv"
	"strings"
)

var idEncoding = base32.StdEncoding.WithPadding(base32.NoPadding)

// hashID returns 26 lower-case base32 characters (130 bits) of the SHA-256
// of the length-prefixed parts, so that no two part lists collide by
// concatenation.
func hashID(parts ...string) string {
	h := sha256.New()
	for _, p := range parts {
		h.Write([]byte(strconv.Itoa(len(p))))
		h.Write([]byte{':'})
		h.Write([]byte(p))
	}
	return strings.ToLower(idEncoding.EncodeToString(h.Sum(nil)))[:26]
}

// DocumentID is the stable identity of one attachment of one mail:
// "doc_" and 26 base32 characters of a SHA-256 over the customer, the
// connection, the mail's internetMessageId, the attachment's SHA-256 and its
// name. Graph item ids never enter it: they change when a mail moves.
func DocumentID(customer, connectionID, internetMessageID, sha256hex, name string) string {
	return "doc_" + hashID(customer, connectionID, internetMessageID, strings.ToLower(sha256hex), name)
}

// skipID is the event id of a document.skipped event for the document (or
// attachment) id: stable, so a replay is de-duplicated like an import.
func skipID(docID string) string {
	return "skip_" + strings.TrimPrefix(docID, "doc_")
}

// mailIdentity is what identifies a mail: its internetMessageId, or, for
// the rare mail without one (drafts), its Graph id.
func mailIdentity(internetMessageID, graphID string) string {
	if internetMessageID != "" {
		return internetMessageID
	}
	return "graph-id:" + graphID
}

// kvToken makes s usable as one token of a KV key ([-_A-Za-z0-9]+), keeping
// readable ids as they are.
func kvToken(s string) string {
	ok := s != ""
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			ok = false
			break
		}
	}
	if ok {
		return s
	}
	return "h_" + hashID(s)
}
