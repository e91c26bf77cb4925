// Package graph is the Microsoft Graph mailbox client of mailgate, built on
// msgraph-sdk-go. It is the only package that links the SDK, so that other
// packages' tests stay fast.
//
// One Client serves the process. Client.Mailbox binds a mailbox address to a
// TokenFunc; every request of that mailbox goes to /users/{address}/… with
// Prefer: IdType="ImmutableId", so message ids survive moves.
//
// Each request passes, in this order:
//
//	kiota request adapter  (URL templates, JSON, ODataError)
//	  → auth provider      (TokenFunc; the token only goes to BaseURL's host)
//	  → kiota middleware   (telemetry, parameter names, user agent; deliberately
//	                        NO retry, NO redirect and NO compression handler)
//	  → mailbox limiter    (≤ MaxInFlight in flight, Requests per Window, hold after Retry-After)
//	  → Config.HTTPClient's transport
//
// Retries belong to the importer, which owns backoff: this package sends each
// request once, classifies a failure into a *connector.Error (Throttled with
// RetryAfter, SyncReset, AccessDenied, …) and returns it. The SDK's retry
// handler is left out of the middleware on purpose: it would retry 429, 503
// and 504 up to three times behind the importer's back and hide throttling.
// The limiter remembers a 429's Retry-After, so no request of that mailbox is
// sent before it elapsed, whoever retries.
//
// When a wait for the limiter (a remembered Retry-After or the request
// budget) would outlast the request's deadline, the operation fails at once
// with Kind Throttled and the remaining wait as RetryAfter, without sending.
// The budget is a token bucket with a burst of a twentieth of Requests,
// refilled with the other nineteen twentieths over Window, so no sliding
// window of Window ever sees more than Requests.
//
// Content ($value of a message or an attachment) is streamed: the response
// body is handed to the caller, and the mailbox's in-flight slot is held until
// the caller closes it. A caller must therefore not keep MaxInFlight streams
// of one mailbox open while it waits for another request of that mailbox.
//
// Attachments with a Sink fetches every attachment with its bytes in one
// request: the listing without $select, where Graph sends each file
// attachment's contentBytes (base64) and contentId. The listing is parsed
// as a stream (not by the SDK's parser, which would hold it whole): a
// json.Decoder reads it all but each contentBytes, which is decoded on the
// fly, straight from the read buffer, and handed to the sink; every other
// value is bounded by 1 MiB, the metadata a listing keeps by 8 MiB, its
// pages by 100. Memory stays bounded per listing however large or many the
// attachments, and a mail costs one request instead of one plus one per
// attachment.
//
// Attachments without a Sink lists metadata only ($select without
// contentBytes; contentId cannot be selected on the collection).
// Attachment reads one attachment as JSON with its contentId, its
// contentBytes streamed into a sink the same way; OpenAttachment streams
// an attachment's raw bytes. The importer uses them only when a listing
// with the bytes broke off.
package graph
