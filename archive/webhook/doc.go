// Package webhook delivers archive events to a customer's HTTPS endpoints,
// a second kind of subscriber beside NATS clients.
//
// An endpoint is registered for one customer with the event types it wants
// and an optional subject filter; its secret (whsec_…) is shown once. Each
// endpoint has its own durable JetStream consumer on the MAILGATE stream,
// filtered to its customer's subjects, so only that customer's events reach
// it and an endpoint that is down loses nothing.
//
// Every event goes out as a CloudEvents HTTP request in structured mode
// (the stored event bytes as the body, Content-Type
// application/cloudevents+json) signed as Standard Webhooks describe:
// webhook-id is the event id (the receiver's idempotency key),
// webhook-timestamp the Unix time of the attempt, webhook-signature
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" keyed with the secret.
//
// Delivery is at least once: a 2xx answer acknowledges the event; anything
// else, a redirect included (none is followed), is retried with exponential
// backoff. An endpoint that has failed for GiveUpAfter (3 days) is disabled
// and announced with a mailgate.webhook.disabled event. Each attempt is
// kept in a delivery log per endpoint, from which an event can be
// delivered again by hand.
//
// Requests go only to public addresses: the dialer checks the address it
// actually connects to, after DNS resolution, so a name that resolves to a
// private or loopback address is refused too, unless the operator allows
// private addresses.
package webhook
