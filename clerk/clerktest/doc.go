// Package clerktest emulates one Clerk instance over real HTTP, for tests,
// benchmarks, the demo and local development.
//
// A Server listens twice on loopback: the Frontend API (the OAuth
// authorization server, whose URL is the token issuer) and the Backend API
// (authenticated with the secret key). Field names, status codes and error
// bodies follow Clerk's published OpenAPI specs (Backend and Frontend API,
// version 2026-05-12). The one user who signs in consents automatically, so
// an OAuth client can run the whole authorization code flow headless.
//
// Tests reach past the HTTP surface to mint tokens directly, rotate keys,
// change instance settings, inject faults (latency, error statuses, 429 with
// Retry-After, dropped connections) and count calls per endpoint.
//
// Where the spec leaves a choice, the emulator makes this one:
//   - Every token response carries a refresh token (the spec's examples
//     always do), offline_access or not; refresh tokens rotate on use.
//   - PKCE (S256 only) is required of public clients, optional for
//     confidential ones, and checked whenever a challenge was sent.
//   - Token endpoint errors use the spec's statuses: 401 for invalid_client,
//     unknown or used codes, a wrong code_verifier, a bad refresh token and
//     unsupported_grant_type; 400 for malformed requests, expired codes and
//     a redirect_uri mismatch.
//   - A client registered with a scope may request only those scopes; one
//     registered without may request any scope the instance knows.
//   - Client ID metadata documents are only advertised (the setting), not
//     fetched: a URL client_id is an unknown client.
package clerktest
