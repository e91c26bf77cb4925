// Package portal is mailgate's HTTP face: login and sessions, the group-gated
// connect wizard, the one-time connection code, the connection pages, the DMS
// API and the health endpoints. It counts metrics but never serves them:
// cmd/mailgate serves /metrics on a listener of its own.
//
// The flow of a new connection:
//
//  1. A logged-in member of Config.ConnectGroup fills the wizard form
//     (mailbox, mode, post-processing, backfill).
//  2. Delegated mode: the form and a fresh AuthRequest (state, nonce, PKCE
//     verifier) are kept in the session and the browser goes to Microsoft.
//     The callback compares the state in constant time, uses it once,
//     exchanges the code and creates a pending connection whose refresh token
//     is sealed. App-only mode through the operator's app first proves the
//     tenant: a Global or Privileged Role Administrator signs in at the
//     tenant's endpoint (verified id_token; its tid and wids), the tenant
//     must not belong to another customer, the admin consent is for exactly
//     that tid (the callback's tenant is compared, never taken) and the
//     tenant is then bound to the customer. Or it takes the customer's own
//     app registration.
//  3. The connection is tested (can the account read and move mail in that
//     mailbox?); a failing pending connection is deleted again and the page
//     says what to do. A passing one gets a one-time code, shown once.
//  4. The DMS redeems the code through the API with its API key; the
//     connection is tested again and becomes active. The code page refreshes
//     itself and shows "connected".
//
// The wizard is a state machine (wizard.go): typed steps, one transition
// table, and one handler per step for Microsoft's return (steps.go). Every
// route that tests or activates a connection (the wizard, the DMS API in
// api.go, the CLI's control service in cmd/mailgate) goes through one
// Activation (activation.go). A failing connection's advice is chosen by
// the kind stored with its last error, never by its text.
//
// State lives in JetStream KV buckets: "users", "apikeys" and "sessions"
// (shared by several portal replicas). Connections, codes and audit events
// belong to other packages and are reached through the small interfaces in
// deps.go, which cmd/mailgate wires to the real implementations.
//
// Every route is authorized on the server: anonymous visitors go to /login
// (or get 401 JSON on the API), users outside the connect group get a 403
// page naming the group, and another customer's connection is a 404. One
// function, errorInfo, turns errors into HTTP answers; internals are only
// logged.
//
// Requests are bounded (forms 64 KiB and urlencoded, API bodies 64 KiB and
// JSON, 405 for a wrong method); a session's built-in user is looked up in
// the directory on every request; failure limits check and record in one
// step, and logins back off per account and client instead of locking the
// account.
package portal
