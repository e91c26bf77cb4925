// Package connector is mailgate's side of Microsoft 365: the identity
// platform, the Connection model and its store, sealing of secrets at rest,
// one-time connection codes, and the classification of token and Graph
// errors. The Graph mailbox client built on msgraph-sdk-go lives in
// connector/graph, so that packages which only need connections do not link
// the SDK.
//
// # Connecting a mailbox
//
//  1. The portal starts an authorization with NewAuthRequest (state, nonce,
//     PKCE verifier, kept single use in the session) and sends the browser to
//     Identity.AuthCodeURL, or for app-only access to Identity.AdminConsentURL.
//  2. On the callback, Identity.Exchange redeems the code with the verifier and
//     verifies the id_token (signature, audience, issuer of the account's
//     tenant, nonce). The refresh token is sealed with a Sealer (AES-256-GCM,
//     key id inside the value so keys can rotate) and Store.Create saves a
//     pending Connection.
//  3. Codes.Issue makes a one-time code (115 random bits, Crockford base32 with
//     a check symbol) that the person pastes into the DMS. Only its SHA-256 is
//     stored, with a TTL.
//  4. The DMS redeems it (Codes.Redeem; exactly one of many concurrent
//     redeemers wins) and the connection is tested and moved to active.
//
// The access token of the code exchange is handed to Tokens.Prime, so the
// connection tests after connecting and reconnecting use it instead of
// redeeming the new refresh token straight away; Tokens.TestToken tests a
// reconnect's new credentials before they are stored.
//
// # Tokens
//
// Tokens.AccessToken hands out access tokens per connection, cached until
// shortly before expiry. A refresh runs once per connection at a time, and
// the refresh token Microsoft rotates on every use is stored with
// compare-and-set, so replicas never overwrite a newer token with an older
// one. Errors only a person can fix move the connection to needs_consent
// once, and later calls fail at once without asking Microsoft again. They
// are recognised by the OAuth error (invalid_grant on a refresh,
// interaction_required, consent_required, invalid_client, unauthorized_client),
// never by the AADSTS number, which only picks the explanation shown to the
// person (Explain); an unknown number gets a general sentence. Tokens.RefreshIdle keeps idle delegated grants from expiring after
// 90 days.
//
// # State
//
// Connections live in the JetStream KV bucket "connections", codes in
// "codes". Every write is a compare-and-set on the KV revision; state changes
// follow ValidTransition and are reported through StoreOptions.OnChange.
// The same bucket holds the tenant bindings ("tenant.<tid>"): which customer
// a Microsoft tenant belongs to, proven by an administrator's verified
// sign-in (Identity.SignInURL, Identity.VerifySignIn) before an app-only
// connection through the operator's app; Store.List skips them.
package connector
