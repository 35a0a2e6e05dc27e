// Package clerktest emulates one Clerk instance over real HTTP, for tests,
// benchmarks, the demo and local development.
//
// A Server listens twice on loopback: the Frontend API (the OAuth
// authorization server, whose URL is the token issuer) and the Backend API
// (authenticated with the secret key). Field names, status codes and error
// bodies follow Clerk's published OpenAPI specs (Backend and Frontend API,
// version 2026-05-12). The user who signs in consents automatically, so an
// OAuth client can run the whole authorization code flow headless.
//
// The instance has people: users with email addresses (verified or not),
// organizations with slugs, and memberships with a role and that role's
// permissions (WithOrganizationRoles; Clerk's org:admin and org:member by
// default). The Backend API creates, reads and deletes them as Clerk's
// does (POST/GET/DELETE /v1/users, POST /v1/email_addresses,
// POST /v1/organizations, GET/DELETE /v1/organizations/{organization_id},
// membership create, update and delete, and
// GET /v1/users/{user_id}/organization_memberships); tests can also use
// CreateUser, AddEmailAddress, DeleteUser, CreateOrganization,
// SetMembership and RemoveMembership. The default user (DefaultUserID,
// DefaultUserEmail, or WithUser's) exists with a verified address.
//
// Users can hold OAuth access tokens per provider (token, scopes, expiry),
// which GET /v1/users/{user_id}/oauth_access_tokens/{provider} returns as
// the spec says: an array, empty without the connection, 404 for an unknown
// user; with paginated=true, the {data, total_count} envelope clerk-sdk-go
// reads. Real Clerk gets them from a social sign-in, which the emulator
// lacks, so tests call SetOAuthToken, AddOAuthToken and RemoveOAuthToken,
// and other processes the emulator-only routes POST and DELETE
// <Backend API base>/emulator/users/{user_id}/oauth_access_tokens/{provider}
// (secret key; body {"token", "scopes", "expires_in_seconds"}), which are
// not Clerk's (IsEmulatorOnly). Tokens are returned as stored, expired
// ones too: no refresh is modelled.
//
// Tests reach past the HTTP surface to mint tokens directly, rotate keys,
// change instance settings, inject faults (latency, error statuses, 429 with
// Retry-After, dropped connections) and count calls per endpoint. A route
// with path parameters is named by its pattern, with the spec's parameter
// names ("GET /v1/users/{user_id}"), for every object, or by its concrete
// path ("GET /v1/users/user_123") for one.
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
//   - Whether Clerk holds a dynamically registered client to the scope it
//     registered with is unconfirmed, so it is an option
//     (WithClientScopeRule): ScopesOfRegistration (the default, RFC 7591's
//     meaning) refuses a wider request with invalid_scope ("scope not
//     allowed for this client"); ScopesOfInstance allows any scope the
//     instance knows. A client registered without a scope, and one made by
//     AddClient without Scopes, may request any known scope; AddClient's
//     Scopes always hold. A refresh never widens a grant under either rule.
//   - Client ID metadata document (CIMD) clients: while the
//     client_id_metadata_documents_advertised setting is on
//     (WithClientMetadataDocuments), a client_id that is a URL is fetched at
//     the authorization endpoint, validated as the MCP specification asks
//     (https with a path, no dot segments, fragment or user; the document's
//     client_id equal to the URL; client_name and redirect_uris present; the
//     redirect_uri listed; token_endpoint_auth_method none and no secret),
//     with no redirects followed, at most 5 KiB, within
//     WithClientMetadataTimeout, and cached per its Cache-Control
//     (max-age up to a day; no-store or no-cache: fetch each time) or five
//     minutes. Loopback URLs, over http too, need
//     WithLoopbackClientMetadata. Such a client is public, may request any
//     scope the instance knows (it has no registered scope), and its URL is
//     the client_id of its codes and tokens. Refusals are 401 invalid_client
//     answered directly (400 invalid_request for an unlisted redirect_uri);
//     with CIMD not advertised a URL client_id is an unknown client. The
//     other two settings apply: only_allow_pre_registered_clients refuses a
//     URL the instance has not seen or allowed
//     (AllowClientMetadataDocument); block_implicitly_allowed_clients
//     refuses one admitted on first use, at the token endpoint too.
//     DeleteClient makes a client unknown again.
//   - The authorization endpoint signs in the user named by login_hint (a
//     user ID, or an email address that is verified or reserved, in any
//     case), else the default user; that user is the subject of the tokens.
//     A hint naming nobody who could sign in (unknown, deleted, or an
//     unverified address) redirects back with error=access_denied, or
//     login_required with prompt=none, and an error_description.
//   - Email addresses show three states as Clerk does: verified by an
//     administrator (verification_admin), a sign-up code never entered
//     (CreateUser's UnverifiedEmails; verification_otp, status
//     "unverified"), and none at all (POST /v1/email_addresses with
//     verified false, or reserved; verification null).
//   - GET /v1/users/{user_id}/organization_memberships answers an unknown
//     user with an empty list (the spec documents no 404 there), newest
//     membership first. Only GET /v1/organizations/{organization_id}
//     accepts a slug, as the spec says; the Go API accepts either.
//   - Error codes: resource_not_found (404) for unknown users,
//     organizations and memberships; form_identifier_exists (422) for a
//     taken address or slug; already_a_member_in_organization (400);
//     organization_creator_not_found (400); form_param_value_invalid (422)
//     for a role the instance lacks.
//   - Not modelled: Clerk's rule that an organization keep one admin, the
//     membership limit (max_allowed_memberships is stored and shown),
//     uniqueness of usernames and external IDs, and deleting a user does
//     not revoke tokens already issued to them.
package clerktest
