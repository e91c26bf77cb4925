// Package graphtest is an in-process Microsoft 365 simulator: the Microsoft
// identity platform v2.0 endpoints (authorize with a sign-in and consent page,
// token, admin consent, OIDC discovery and keys) and the Microsoft Graph mail
// subset mailgate uses (users, mailFolders, messages, delta, attachments,
// move), with throttling and fault injection.
//
// NewServer starts it on a loopback port, ready with a default tenant, app
// registration, admin user, a shared invoice mailbox and a group, like
// net/http/httptest. Point the login base at LoginURL and the Graph base at
// GraphURL.
//
// A Graph request flows through: raw-path routing (path parameters may be
// percent-encoded) → bearer token validation (RS256 JWT signed by the
// simulator: audience, expiry, scp or roles) → mailbox resolution and access
// check (own mailbox, full access, application access policy) → per app and
// mailbox throttling (concurrency and request budget) → injected faults →
// the handler. The model (directory, mailboxes, grants, tokens) sits under
// one lock; a Graph handler runs with it held and returns a result, which
// respond writes once the lock is released (a body built from stored bytes
// is written by the result's write function from a snapshot). The files
// follow the resources: routes.go (routing and this pipeline), access.go,
// directory.go, folders.go, messages.go, attachments.go, delta.go,
// query.go (OData query options), respond.go; faults.go and throttle.go sit
// beside the model they break. Every request is counted by endpoint and status, and each
// mailbox keeps a log of request times, so tests can prove a client honoured
// Retry-After.
//
// The attachment listing without $select carries every file attachment's
// contentBytes, as Graph's does; it is written as a stream (one
// attachment's metadata, then its content through a base64 encoder, chunked
// without Content-Length), so a large attachment costs the simulator no
// more memory than its stored bytes.
//
// Delta state is kept per folder as a change sequence: each delivery, update
// or move stamps the message with the next sequence number and each removal
// leaves a tombstone in the folder it left. A delta or next link names a
// stored sync state (folder, since, until, query options, mailbox epoch);
// ResetDelta bumps the epoch so every outstanding link answers 410 Gone
// SyncStateNotFound.
//
// The sign-in and consent page (authorize and admin consent) is one HTML
// form: inputs named login (id i0116) and passwd (id i0118), buttons
// #accept and #cancel. Authorize drives it without a browser.
//
// The JSON control API under /_sim/ (for `mailgate sim` and integrators):
// GET mailboxes, GET users, GET|DELETE counters, POST|DELETE faults,
// POST throttle, POST mailboxes/{address}/messages (deliver; attachment
// content base64), GET mailboxes/{address}/messages,
// POST mailboxes/{address}/messages/{id}/move, POST
// mailboxes/{address}/reset-delta, POST users/{upn}/revoke. A fault with
// "aadsts" (and optionally "suberror", "description", "code", "grant")
// makes the token endpoint refuse with any AADSTS code, for example
// {"pathContains":"/oauth2/v2.0/token","grant":"refresh_token","aadsts":70043,"suberror":"token_expired"}.
//
// Errors use the shapes the real services use: Graph's
// {"error":{"code","message","innerError"}} and the identity platform's
// {"error","error_description","error_codes","timestamp","trace_id",
// "correlation_id","error_uri"} with AADSTS codes (and "suberror" where the
// answer has one). The authorize endpoint refuses a request that combines
// login_hint with prompt=select_account: Microsoft's documentation says to
// send one or the other.
package graphtest
