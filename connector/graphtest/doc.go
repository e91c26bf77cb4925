// Package graphtest is an in-process Microsoft 365 simulator: the Microsoft
// identity platform v2.0 endpoints (authorize with a sign-in and consent page,
// token, admin consent, OIDC discovery and keys) and the Microsoft Graph mail
// subset mailgate uses (users, mailFolders, messages, delta, attachments,
// move, subscriptions with change and lifecycle notifications), with
// throttling and fault injection.
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
// # Subscriptions and change notifications
//
// POST /v1.0/subscriptions creates a subscription on a mailbox's or a
// folder's messages (resource "users/{id}/messages",
// "users/{id}/mailFolders('inbox')/messages", "me/...", child folder
// chains too), changeType created, updated, deleted or a comma list; GET
// /subscriptions (clientState null, as Graph lists), GET, PATCH (renews
// expirationDateTime and reauthorizes; a new notificationUrl is validated
// again; lifecycleNotificationUrl, resource, changeType and clientState
// cannot change) and DELETE /subscriptions/{id}, and POST
// /subscriptions/{id}/reauthorize (204) manage it; an app sees its own
// subscriptions only, a delegated caller those it created.
//
// Creation validates notificationUrl and lifecycleNotificationUrl the way
// Graph does: a POST with ?validationToken= (the URL's own query kept) to
// be answered within 10 s with 200, text/plain and the decoded token;
// otherwise 400 ValidationError "Subscription validation request failed.
// …" or 400 InvalidRequest "Subscription validation request timed out.",
// and nothing is stored. Other refusals, in the live service's shapes:
// clientState over 128 characters (400), expirationDateTime past the
// lifetime (400 ExtensionError "Subscription expiration can only be 10070
// minutes in the future." — the documentation says 4,230 minutes, the live
// text names the number a client should retry with), 1,000 subscriptions
// per mailbox across apps (403 ExtensionError "… Number of subscriptions
// on item has exceeded limit]"), 1,000 subscription writes per 20 s per
// app and tenant (429 with Retry-After), an unknown subscription (404
// ResourceNotFound). A delegated token on another user's or a shared
// mailbox (Mail.Read.Shared) is refused at creation with 403 ExtensionError
// "Operation: Create; Exception: [Status Code: Forbidden; Reason: Access
// is denied. …]": the documentation says those permissions don't support
// subscriptions, and a loud refusal lets a client keep polling at once;
// Notifications.AcceptSharedDelegated instead accepts it and never
// delivers, as the live service is reported to do.
//
// Each message created in, updated in or deleted from (moves included) a
// subscribed folder queues a change notification, a collection
// {"value":[{subscriptionId, subscriptionExpirationDateTime, changeType,
// resource, resourceData {@odata.type, @odata.id, @odata.etag, id},
// clientState, tenantId}]} POSTed as JSON to notificationUrl after
// Notifications.Delay by a goroutine the Server owns (started on first
// use, stopped by Close). Ids are immutable ids when the subscription was
// created with Prefer: IdType="ImmutableId". An answer other than 2xx
// within 3 s is retried after RetryDelay for up to 4 h; DropRate and
// DuplicateRate (seeded) lose or repeat notifications; an endpoint slower
// than 2.9 s on at least 10% of 100 notifications is delayed 10 min, on
// 15% its notifications are dropped and missed is sent. A subscription
// expires at expirationDateTime (the Server's clock, see SetNow) and then
// neither delivers nor is listed.
//
// Lifecycle notifications ({"value":[{subscriptionId,
// subscriptionExpirationDateTime, tenantId, clientState,
// lifecycleEvent}]}) go to lifecycleNotificationUrl, on demand:
// Lifecycle(id, event) and LifecycleMailbox(mailbox, event), or POST
// /_sim/subscriptions/{id}/lifecycle and /_sim/mailboxes/{address}/lifecycle
// with {"event":"reauthorizationRequired"|"subscriptionRemoved"|"missed"}.
// reauthorizationRequired pauses delivery until reauthorize or a PATCH,
// and changes meanwhile are lost (only delta is the record);
// subscriptionRemoved removes the subscription. SetNotifications (POST
// /_sim/notifications, durations in seconds) sets the knobs;
// NotificationStats (GET /_sim/notifications) counts what happened;
// Subscriptions (GET /_sim/subscriptions?mailbox=) lists them. Real Graph
// calls only https:// URLs; the simulator also calls http:// ones unless
// Notifications.RequireHTTPS is set, so tests can use loopback endpoints.
//
// Errors use the shapes the real services use: Graph's
// {"error":{"code","message","innerError"}} and the identity platform's
// {"error","error_description","error_codes","timestamp","trace_id",
// "correlation_id","error_uri"} with AADSTS codes (and "suberror" where the
// answer has one). The authorize endpoint refuses a request that combines
// login_hint with prompt=select_account: Microsoft's documentation says to
// send one or the other.
package graphtest
