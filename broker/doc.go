// Package broker holds the Clerk secret keys so that gateways do not. It runs
// in the operator's namespace; a gateway asks it what it used to ask Clerk's
// Backend API with the key in its own namespace: is this access token valid,
// who is its user, what are the user's memberships, what is the user's token
// at an OAuth provider.
//
// # Protocol
//
// Four endpoints, each a JSON POST over TLS (HTTP/1.1 or HTTP/2): PathVerify,
// PathUser, PathMemberships and PathOAuthToken. Every request carries the
// gateway's projected ServiceAccount token as "Authorization: Bearer", issued
// for Audience, and a Request body holding the access token an MCP client
// presented (and, for PathOAuthToken, the provider). The broker then:
//
//  1. authenticates the caller with a TokenReview for Audience
//     (TokenReviewAuthenticator): 401 CodeUnauthenticated otherwise;
//  2. resolves the caller's ServiceAccount to the one Clerk instance it may
//     use (Resolver; the McpServer whose gateway runs as it): 403
//     CodeForbidden when there is none;
//  3. verifies the access token for that instance itself (clerk.Verifier:
//     its issuer, its secret key): 422 CodeInvalidToken with the verifier's
//     reason otherwise, so a token of another instance is refused;
//  4. answers: the token's identity, or the user, memberships or provider
//     token of the token's subject (clerk.Directory), and nothing about
//     anyone else. No endpoint takes a user ID.
//
// The caller serves Server over TLS (ServingCertificate reads a mounted TLS
// Secret and follows its renewals); Server refuses plain HTTP, since every
// request carries a credential. Client trusts a mounted CA bundle and follows
// its rotations the same way, and reads the kubelet-rotated token file on
// each call.
//
// Answers that are facts ("no such user" 404 CodeUserNotFound, "not
// connected" 404 CodeNotConnected, 422 CodeTooManyMemberships) and failures
// (503 CodeUnavailable with Retry-After, when Clerk cannot be asked or rate
// limits the instance, or the API server cannot review the caller) each have
// a code, which Client turns back into the clerk package's error values; a
// broker that cannot be reached, or answers what the client cannot read, is
// a *clerk.UnavailableError too. Caching stays in the gateway, so warm
// requests never reach the broker; the broker's own per-instance caches
// serve every replica of a gateway. Error messages are fixed phrases: no
// answer or log line holds a token, a key or a provider token.
//
// # Threat model
//
// A compromised gateway holds its own ServiceAccount token and whatever
// access tokens its clients send it. Through the broker it can verify those
// tokens and learn the user, memberships and connected-account tokens of
// their subjects, for its own Clerk instance only: what it could already
// learn while those users call it. It cannot list users, look up a user by ID,
// fetch a provider token of anyone who has not sent it a valid access token,
// use another McpServer's instance, or read any secret key. Another
// namespace's ServiceAccount, even of the same name, resolves to no instance
// of this one (the namespace is part of the identity the resolver maps). A
// stolen gateway token is a bearer credential, but bounded: its audience is
// Audience only (useless against the Kubernetes API, and the API server's
// tokens are useless here), it is bound to its pod and expires within the
// hour the kubelet projects it for, and tokens of deleted ServiceAccounts or
// pods stop working within the review cache's TTL (DefaultReviewTTL).
//
// What it can still do: keep using an access token it was sent until the
// token expires (JWT access tokens cannot be revoked; opaque ones are checked
// again after the verifier's cache TTL), and present a token whose aud names
// another resource of the same instance unless the resolver pins the
// instance's audiences (Instance.Audiences). The broker itself holds every
// key: it runs with its own ServiceAccount, which needs only "create
// tokenreviews" and read access to the key Secrets, and its TLS key.
package broker
