package openapicheck

import (
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
)

// The payloads below are written by hand from bapi-2026-05-12.yml, not from
// any emulator, so that they test the checker against the spec itself.

const (
	base       = "http://127.0.0.1:4321/v1"
	secretKey  = "sk_test_0123456789abcdefSECRETvalue"
	jsonCT     = "application/json"
	verifyPath = "/oauth_applications/access_tokens/verify"
	settings   = "/instance/oauth_application_settings"

	// rsaKey is a JWKS.rsa.PublicKey (kid, alg, use, kty, n, e required).
	rsaKey = `{"kid":"ins_2abc","alg":"RS256","use":"sig","kty":"RSA",` +
		`"n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw",` +
		`"e":"AQAB"}`
	// ecKey is a JWKS.ecdsa.PublicKey (kid, alg, use, kty, crv, x, y required).
	ecKey = `{"kid":"ec1","alg":"ES256","use":"sig","kty":"EC","crv":"P-256",` +
		`"x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0"}`

	// verifiedToken is the first anyOf alternative of verify's 200 response:
	// every property is required and additionalProperties is false.
	verifiedToken = `{"object":"clerk_idp_oauth_access_token",` +
		`"id":"oat_0ef5a7a33d87ed87ee7954c845d80450",` +
		`"client_id":"client_2xhFjEI5X2qWRvtV13BzSj8H6Dk",` +
		`"subject":"user_2xhFjEI5X2qWRvtV13BzSj8H6Dk",` +
		`"scopes":["read","write"],` +
		`"revoked":false,"revocation_reason":null,` +
		`"expired":false,"expiration":1716883200,` +
		`"created_at":1716879600,"updated_at":1716879600}`

	// oauthSettings is the OAuthApplicationSettings schema with every
	// required property.
	oauthSettings = `{"object":"oauth_application_settings",` +
		`"dynamic_oauth_client_registration":true,` +
		`"default_scopes":["openid","profile","email"],` +
		`"oauth_jwt_access_tokens":false,` +
		`"client_id_metadata_documents_advertised":false,` +
		`"client_id_metadata_documents_only_allow_pre_registered_clients":false,` +
		`"client_id_metadata_documents_block_implicitly_allowed_clients":false}`

	// clerkErrors is the ClerkErrors schema (errors[] of ClerkError with
	// message, long_message and code required).
	clerkErrors = `{"errors":[{"message":"Invalid request parameters",` +
		`"long_message":"default_scopes is invalid","code":"form_param_format_invalid",` +
		`"meta":{"param_name":"default_scopes"}}],"meta":{},"clerk_trace_id":"trace_1"}`
)

// replaceField rewrites one JSON fragment of a payload; it panics when the
// fragment is absent so that a typo cannot turn a negative case positive.
func replaceField(payload, old, new string) string {
	if !strings.Contains(payload, old) {
		panic("payload does not contain " + old)
	}
	return strings.Replace(payload, old, new, 1)
}

func newRequest(t testing.TB, method, url string) *http.Request {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secretKey)
	return req
}

// want is a problem a test expects: In and Field must match exactly.
type want struct{ in, field string }

// checkProblems asserts that err is nil when wants is empty, and otherwise an
// *Error naming operation and holding exactly the wanted problems (in any
// order, duplicates ignored).
func checkProblems(t *testing.T, err error, operation string, wants []want) {
	t.Helper()
	if len(wants) == 0 {
		if err != nil {
			t.Fatalf("unexpected error: %v", err)
		}
		return
	}
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error = %v (%T), want an *openapicheck.Error", err, err)
	}
	if e.Operation != operation {
		t.Errorf("Operation = %q, want %q", e.Operation, operation)
	}
	msg := err.Error()
	if operation != "" && !strings.Contains(msg, operation) {
		t.Errorf("message does not name the operation %q:\n%s", operation, msg)
	}
	if strings.Contains(msg, secretKey) {
		t.Errorf("message leaks the Authorization header:\n%s", msg)
	}
	var got []want
	for _, p := range e.Problems {
		if p.Message == "" {
			t.Errorf("problem %+v has no message", p)
		}
		// The summary line of a failed anyOf/oneOf names the parent; the
		// wanted problems are the leaves.
		if strings.Contains(p.Message, "alternatives fails as follows") {
			continue
		}
		if w := (want{p.In, p.Field}); !slices.Contains(got, w) {
			got = append(got, w)
		}
	}
	slices.SortFunc(got, cmpWant)
	wants = slices.Clone(wants)
	slices.SortFunc(wants, cmpWant)
	if !slices.Equal(got, wants) {
		t.Errorf("problems = %v, want %v; error:\n%s", got, wants, msg)
	}
	t.Logf("%s", msg)
}

func cmpWant(a, b want) int {
	return strings.Compare(a.in+" "+a.field, b.in+" "+b.field)
}

func TestValidateRequest(t *testing.T) {
	c := Load(t)
	tests := []struct {
		name   string
		method string
		url    string
		header map[string]string // "" deletes the header
		body   string
		op     string // operationId expected in the error ("" for routing errors)
		want   []want
	}{
		// GET /v1/jwks
		{name: "jwks", method: "GET", url: base + "/jwks"},
		{name: "jwks on the real host", method: "GET", url: "https://api.clerk.com/v1/jwks"},
		{name: "jwks under a longer base path", method: "GET", url: "http://127.0.0.1:4321/clerk/v1/jwks"},
		{name: "jwks bearer scheme in lower case", method: "GET", url: base + "/jwks", header: map[string]string{"Authorization": "bearer sk_live_x"}},
		{name: "jwks undeclared query parameter", method: "GET", url: base + "/jwks?limit=10", op: "GetJWKS",
			want: []want{{"query", "limit"}}},
		{name: "jwks with a body", method: "GET", url: base + "/jwks", header: map[string]string{"Content-Type": jsonCT}, body: `{}`, op: "GetJWKS",
			want: []want{{"body", ""}}},
		{name: "jwks without Authorization", method: "GET", url: base + "/jwks", header: map[string]string{"Authorization": ""}, op: "GetJWKS",
			want: []want{{"header", "Authorization"}}},
		{name: "jwks with Basic auth", method: "GET", url: base + "/jwks", header: map[string]string{"Authorization": "Basic " + secretKey}, op: "GetJWKS",
			want: []want{{"header", "Authorization"}}},
		{name: "jwks with an empty bearer token", method: "GET", url: base + "/jwks", header: map[string]string{"Authorization": "Bearer "}, op: "GetJWKS",
			want: []want{{"header", "Authorization"}}},
		{name: "jwks with POST", method: "POST", url: base + "/jwks",
			want: []want{{"route", ""}}},

		// POST /v1/oauth_applications/access_tokens/verify
		{name: "verify", method: "POST", url: base + verifyPath, body: `{"access_token":"oat_0ef5a7a33d87ed87ee7954c845d80450"}`},
		{name: "verify with charset", method: "POST", url: base + verifyPath, header: map[string]string{"Content-Type": "application/json; charset=utf-8"},
			body: `{"access_token":"oat_x"}`},
		{name: "verify with deprecated secret", method: "POST", url: base + verifyPath, body: `{"secret":"oat_x"}`},
		// The spec lists no required properties and does not set
		// additionalProperties: false for this body, so these are accepted.
		{name: "verify without access_token (not required by the spec)", method: "POST", url: base + verifyPath, body: `{}`},
		{name: "verify with an unknown field (allowed by the spec)", method: "POST", url: base + verifyPath, body: `{"access_token":"oat_x","token_type_hint":"access_token"}`},
		{name: "verify with a mistyped access_token", method: "POST", url: base + verifyPath, body: `{"access_token":12345}`, op: "verifyOAuthAccessToken",
			want: []want{{"body", "/access_token"}}},
		{name: "verify with a null access_token", method: "POST", url: base + verifyPath, body: `{"access_token":null}`, op: "verifyOAuthAccessToken",
			want: []want{{"body", "/access_token"}}},
		{name: "verify with a mistyped secret", method: "POST", url: base + verifyPath, body: `{"access_token":"oat_x","secret":true}`, op: "verifyOAuthAccessToken",
			want: []want{{"body", "/secret"}}},
		{name: "verify body not an object", method: "POST", url: base + verifyPath, body: `["oat_x"]`, op: "verifyOAuthAccessToken",
			want: []want{{"body", ""}}},
		{name: "verify without a body (required)", method: "POST", url: base + verifyPath, op: "verifyOAuthAccessToken",
			want: []want{{"body", ""}}},
		{name: "verify with invalid JSON", method: "POST", url: base + verifyPath, body: `{"access_token":`, op: "verifyOAuthAccessToken",
			want: []want{{"body", ""}}},
		{name: "verify form-encoded", method: "POST", url: base + verifyPath, header: map[string]string{"Content-Type": "application/x-www-form-urlencoded"},
			body: `access_token=oat_x`, op: "verifyOAuthAccessToken",
			want: []want{{"header", "Content-Type"}}},
		{name: "verify without Content-Type", method: "POST", url: base + verifyPath, header: map[string]string{"Content-Type": ""},
			body: `{"access_token":"oat_x"}`, op: "verifyOAuthAccessToken",
			want: []want{{"header", "Content-Type"}}},
		{name: "verify with GET", method: "GET", url: base + verifyPath,
			want: []want{{"route", ""}}},
		{name: "verify reports every problem", method: "POST", url: base + verifyPath + "?x=1", header: map[string]string{"Authorization": ""},
			body: `{"access_token":1}`, op: "verifyOAuthAccessToken",
			want: []want{{"header", "Authorization"}, {"body", "/access_token"}, {"query", "x"}}},

		// GET and PATCH /v1/instance/oauth_application_settings
		{name: "settings GET", method: "GET", url: base + settings},
		{name: "settings PATCH", method: "PATCH", url: base + settings,
			body: `{"dynamic_oauth_client_registration":true,"oauth_jwt_access_tokens":false,"client_id_metadata_documents_advertised":true}`},
		{name: "settings PATCH all fields and nulls", method: "PATCH", url: base + settings,
			body: `{"dynamic_oauth_client_registration":null,"default_scopes":null,"oauth_jwt_access_tokens":null,` +
				`"client_id_metadata_documents_advertised":null,"client_id_metadata_documents_only_allow_pre_registered_clients":false,` +
				`"client_id_metadata_documents_block_implicitly_allowed_clients":true}`},
		{name: "settings PATCH default_scopes", method: "PATCH", url: base + settings, body: `{"default_scopes":["openid","email"]}`},
		{name: "settings PATCH empty object", method: "PATCH", url: base + settings, body: `{}`},
		{name: "settings PATCH unknown field", method: "PATCH", url: base + settings,
			body: `{"dynamic_oauth_client_registration":true,"dynamic_client_registration":true}`, op: "UpdateInstanceOAuthApplicationSettings",
			want: []want{{"body", "/dynamic_client_registration"}}},
		{name: "settings PATCH object is not writable", method: "PATCH", url: base + settings,
			body: `{"object":"oauth_application_settings"}`, op: "UpdateInstanceOAuthApplicationSettings",
			want: []want{{"body", "/object"}}},
		{name: "settings PATCH mistyped field", method: "PATCH", url: base + settings,
			body: `{"oauth_jwt_access_tokens":"true"}`, op: "UpdateInstanceOAuthApplicationSettings",
			want: []want{{"body", "/oauth_jwt_access_tokens"}}},
		{name: "settings PATCH mistyped scope", method: "PATCH", url: base + settings,
			body: `{"default_scopes":["openid",7]}`, op: "UpdateInstanceOAuthApplicationSettings",
			want: []want{{"body", "/default_scopes/1"}}},
		{name: "settings DELETE", method: "DELETE", url: base + settings,
			want: []want{{"route", ""}}},

		// Other operations: parameters are checked too.
		{name: "users list with parameters", method: "GET", url: base + "/users?limit=10&offset=0&email_address=a@example.com&email_address=b@example.com"},
		{name: "users list with a bad limit", method: "GET", url: base + "/users?limit=ten&offset=-1", op: "GetUserList",
			want: []want{{"query", "limit"}, {"query", "offset"}}},

		// Routing.
		{name: "unknown path", method: "GET", url: base + "/no_such_endpoint", want: []want{{"route", ""}}},
		{name: "path outside /v1", method: "GET", url: "http://127.0.0.1:4321/jwks", want: []want{{"route", ""}}},
		{name: "wrong version", method: "GET", url: "http://127.0.0.1:4321/v2/jwks", want: []want{{"route", ""}}},
		{name: "trailing slash", method: "GET", url: base + "/jwks/", want: []want{{"route", ""}}},
		{name: "base path only", method: "GET", url: base, want: []want{{"route", ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest(t, tc.method, tc.url)
			if tc.body != "" {
				req.Header.Set("Content-Type", jsonCT)
			}
			for k, v := range tc.header {
				if v == "" {
					req.Header.Del(k)
				} else {
					req.Header.Set(k, v)
				}
			}
			checkProblems(t, c.ValidateRequest(req, []byte(tc.body)), tc.op, tc.want)
		})
	}
}

func TestValidateResponse(t *testing.T) {
	c := Load(t)
	tests := []struct {
		name   string
		method string
		path   string
		status int
		ctype  string // Content-Type; "-" for none
		body   string
		op     string
		want   []want
	}{
		// GET /v1/jwks: 200 is WellKnown.JWKS -> schema JWKS
		// (additionalProperties: false; keys[] oneOf seven key schemas).
		{name: "jwks", method: "GET", path: "/jwks", status: 200, body: `{"keys":[` + rsaKey + `,` + ecKey + `]}`},
		{name: "jwks empty", method: "GET", path: "/jwks", status: 200, body: `{"keys":[]}`},
		{name: "jwks with charset", method: "GET", path: "/jwks", status: 200, ctype: "application/json; charset=utf-8", body: `{"keys":[` + rsaKey + `]}`},
		{name: "jwks key without n", method: "GET", path: "/jwks", status: 200, op: "GetJWKS",
			body: `{"keys":[` + replaceField(rsaKey, `"n":`, `"m":`) + `]}`,
			want: []want{{"body", "/keys/0/n"}}},
		{name: "jwks key without kid", method: "GET", path: "/jwks", status: 200, op: "GetJWKS",
			body: `{"keys":[` + ecKey + `,` + replaceField(rsaKey, `"kid":"ins_2abc",`, ``) + `]}`,
			want: []want{{"body", "/keys/1/kid"}}},
		{name: "jwks key with mistyped e", method: "GET", path: "/jwks", status: 200, op: "GetJWKS",
			body: `{"keys":[` + replaceField(rsaKey, `"e":"AQAB"`, `"e":65537`) + `]}`,
			want: []want{{"body", "/keys/0/e"}}},
		{name: "jwks unknown top-level field", method: "GET", path: "/jwks", status: 200, op: "GetJWKS",
			body: `{"keys":[],"next":null}`,
			want: []want{{"body", "/next"}}},
		{name: "jwks keys not an array", method: "GET", path: "/jwks", status: 200, op: "GetJWKS",
			body: `{"keys":{}}`,
			want: []want{{"body", "/keys"}}},
		{name: "jwks text/plain", method: "GET", path: "/jwks", status: 200, ctype: "text/plain", body: `{"keys":[]}`, op: "GetJWKS",
			want: []want{{"header", "Content-Type"}}},
		{name: "jwks without Content-Type", method: "GET", path: "/jwks", status: 200, ctype: "-", body: `{"keys":[]}`, op: "GetJWKS",
			want: []want{{"header", "Content-Type"}}},
		{name: "jwks invalid JSON", method: "GET", path: "/jwks", status: 200, body: `{"keys":[`, op: "GetJWKS",
			want: []want{{"body", ""}}},
		{name: "jwks empty body", method: "GET", path: "/jwks", status: 200, body: ``, op: "GetJWKS",
			want: []want{{"body", ""}}},
		{name: "jwks 500 is undocumented", method: "GET", path: "/jwks", status: 500, body: clerkErrors, op: "GetJWKS",
			want: []want{{"status", "500"}}},

		// POST /v1/oauth_applications/access_tokens/verify: 200 is
		// anyOf[token object, {"active": false}]; 400 and 404 are inline
		// {errors: [{message, long_message, code}]} schemas.
		{name: "verify 200 token", method: "POST", path: verifyPath, status: 200, body: verifiedToken},
		{name: "verify 200 revoked token", method: "POST", path: verifyPath, status: 200,
			body: replaceField(replaceField(replaceField(verifiedToken, `"revoked":false`, `"revoked":true`),
				`"revocation_reason":null`, `"revocation_reason":"Revoked by user"`), `"expiration":1716883200`, `"expiration":null`)},
		{name: "verify 200 no scopes", method: "POST", path: verifyPath, status: 200,
			body: replaceField(verifiedToken, `["read","write"]`, `[]`)},
		{name: "verify 200 inactive JWT", method: "POST", path: verifyPath, status: 200, body: `{"active":false}`},
		{name: "verify 200 missing expiration", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"expiration":1716883200,`, ``),
			want: []want{{"body", "/expiration"}}},
		{name: "verify 200 missing object", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"object":"clerk_idp_oauth_access_token",`, ``),
			want: []want{{"body", "/object"}}},
		{name: "verify 200 missing revocation_reason (required though nullable)", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"revocation_reason":null,`, ``),
			want: []want{{"body", "/revocation_reason"}}},
		{name: "verify 200 unknown field", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"expired":false,`, `"expired":false,"active":true,`),
			want: []want{{"body", "/active"}}},
		{name: "verify 200 wrong object", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"clerk_idp_oauth_access_token"`, `"oauth_access_token"`),
			want: []want{{"body", "/object"}}},
		{name: "verify 200 id not matching ^oat_[0-9A-Fa-f]{32}$", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `oat_0ef5a7a33d87ed87ee7954c845d80450`, `oat_123`),
			want: []want{{"body", "/id"}}},
		{name: "verify 200 subject not matching ^user_\\w{27}$", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"subject":"user_2xhFjEI5X2qWRvtV13BzSj8H6Dk"`, `"subject":"machine_1"`),
			want: []want{{"body", "/subject"}}},
		{name: "verify 200 expiration as a string", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: replaceField(verifiedToken, `"expiration":1716883200`, `"expiration":"2024-05-28T08:00:00Z"`),
			want: []want{{"body", "/expiration"}}},
		{name: "verify 200 active true", method: "POST", path: verifyPath, status: 200, op: "verifyOAuthAccessToken",
			body: `{"active":true}`,
			want: []want{{"body", "/active"}}},
		{name: "verify 400 Clerk errors", method: "POST", path: verifyPath, status: 400,
			body: `{"errors":[{"message":"Bad Request","long_message":"access_token is missing","code":"bad_request"}],"clerk_trace_id":"t"}`},
		{name: "verify 404 Clerk errors", method: "POST", path: verifyPath, status: 404,
			body: `{"errors":[{"message":"not found","long_message":"Resource not found","code":"resource_not_found"}]}`},
		{name: "verify 404 without long_message", method: "POST", path: verifyPath, status: 404, op: "verifyOAuthAccessToken",
			body: `{"errors":[{"message":"not found","code":"resource_not_found"}]}`,
			want: []want{{"body", "/errors/0/long_message"}}},
		{name: "verify 404 without errors", method: "POST", path: verifyPath, status: 404, op: "verifyOAuthAccessToken",
			body: `{"error":"not found"}`,
			want: []want{{"body", "/errors"}}},
		{name: "verify 401 is undocumented", method: "POST", path: verifyPath, status: 401, body: clerkErrors, op: "verifyOAuthAccessToken",
			want: []want{{"status", "401"}}},
		{name: "verify 422 is undocumented", method: "POST", path: verifyPath, status: 422, body: clerkErrors, op: "verifyOAuthAccessToken",
			want: []want{{"status", "422"}}},

		// GET and PATCH /v1/instance/oauth_application_settings: 200 is
		// InstanceOAuthApplicationSettings -> OAuthApplicationSettings;
		// PATCH also documents 422 UnprocessableEntity -> ClerkErrors.
		{name: "settings GET 200", method: "GET", path: settings, status: 200, body: oauthSettings},
		{name: "settings GET 200 null default_scopes", method: "GET", path: settings, status: 200,
			body: replaceField(oauthSettings, `["openid","profile","email"]`, `null`)},
		// OAuthApplicationSettings does not set additionalProperties: false.
		{name: "settings GET 200 extra field (allowed by the spec)", method: "GET", path: settings, status: 200,
			body: replaceField(oauthSettings, `{`, `{"id":"x",`)},
		{name: "settings GET 200 missing object", method: "GET", path: settings, status: 200, op: "GetInstanceOAuthApplicationSettings",
			body: replaceField(oauthSettings, `"object":"oauth_application_settings",`, ``),
			want: []want{{"body", "/object"}}},
		{name: "settings GET 200 wrong object", method: "GET", path: settings, status: 200, op: "GetInstanceOAuthApplicationSettings",
			body: replaceField(oauthSettings, `"object":"oauth_application_settings"`, `"object":"instance_settings"`),
			want: []want{{"body", "/object"}}},
		{name: "settings GET 200 missing a flag", method: "GET", path: settings, status: 200, op: "GetInstanceOAuthApplicationSettings",
			body: replaceField(oauthSettings, `"oauth_jwt_access_tokens":false,`, ``),
			want: []want{{"body", "/oauth_jwt_access_tokens"}}},
		{name: "settings GET 200 null flag", method: "GET", path: settings, status: 200, op: "GetInstanceOAuthApplicationSettings",
			body: replaceField(oauthSettings, `"dynamic_oauth_client_registration":true`, `"dynamic_oauth_client_registration":null`),
			want: []want{{"body", "/dynamic_oauth_client_registration"}}},
		{name: "settings GET 200 duplicate scopes", method: "GET", path: settings, status: 200, op: "GetInstanceOAuthApplicationSettings",
			body: replaceField(oauthSettings, `["openid","profile","email"]`, `["openid","openid"]`),
			want: []want{{"body", "/default_scopes"}}},
		{name: "settings GET 422 is undocumented", method: "GET", path: settings, status: 422, body: clerkErrors, op: "GetInstanceOAuthApplicationSettings",
			want: []want{{"status", "422"}}},
		{name: "settings PATCH 200", method: "PATCH", path: settings, status: 200, body: oauthSettings},
		{name: "settings PATCH 422 Clerk errors", method: "PATCH", path: settings, status: 422, body: clerkErrors},
		{name: "settings PATCH 422 minimal Clerk errors", method: "PATCH", path: settings, status: 422, body: `{"errors":[]}`},
		{name: "settings PATCH 422 error without code", method: "PATCH", path: settings, status: 422, op: "UpdateInstanceOAuthApplicationSettings",
			body: replaceField(clerkErrors, `"code":"form_param_format_invalid",`, ``),
			want: []want{{"body", "/errors/0/code"}}},
		{name: "settings PATCH 422 mistyped meta", method: "PATCH", path: settings, status: 422, op: "UpdateInstanceOAuthApplicationSettings",
			body: replaceField(clerkErrors, `"meta":{"param_name":"default_scopes"}`, `"meta":"default_scopes"`),
			want: []want{{"body", "/errors/0/meta"}}},
		{name: "settings PATCH 200 missing object", method: "PATCH", path: settings, status: 200, op: "UpdateInstanceOAuthApplicationSettings",
			body: replaceField(oauthSettings, `"object":"oauth_application_settings",`, ``),
			want: []want{{"body", "/object"}}},

		// Routing.
		{name: "unknown path", method: "GET", path: "/oauth_applications/access_tokens/list", status: 200, body: `{}`,
			want: []want{{"route", ""}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			req := newRequest(t, tc.method, base+tc.path)
			header := http.Header{}
			switch tc.ctype {
			case "":
				header.Set("Content-Type", jsonCT)
			case "-":
			default:
				header.Set("Content-Type", tc.ctype)
			}
			checkProblems(t, c.ValidateResponse(req, tc.status, header, []byte(tc.body)), tc.op, tc.want)
		})
	}
}

// TestErrorMessages checks that messages name the operation, the field and
// the problem, and never carry the Authorization header value.
func TestErrorMessages(t *testing.T) {
	c := Load(t)
	tests := []struct {
		name     string
		validate func() error
		contains []string
	}{
		{
			name: "request body field",
			validate: func() error {
				req := newRequest(t, "PATCH", base+settings)
				req.Header.Set("Content-Type", jsonCT)
				return c.ValidateRequest(req, []byte(`{"bogus":1}`))
			},
			contains: []string{"UpdateInstanceOAuthApplicationSettings", "PATCH /instance/oauth_application_settings", `"/bogus"`, "additionalProperties: false"},
		},
		{
			name: "request with the secret in a Basic header",
			validate: func() error {
				req := newRequest(t, "POST", base+verifyPath)
				req.Header.Set("Authorization", "Basic "+secretKey)
				req.Header.Set("Content-Type", jsonCT)
				// The secret also appears in the body: it must still be redacted.
				return c.ValidateRequest(req, []byte(`{"access_token":"oat","secret":["`+secretKey+`"]}`))
			},
			contains: []string{"verifyOAuthAccessToken", "Authorization", "Bearer scheme", `"/secret"`, "value must be a string"},
		},
		{
			name: "response missing required field",
			validate: func() error {
				req := newRequest(t, "POST", base+verifyPath)
				return c.ValidateResponse(req, 200, http.Header{"Content-Type": {jsonCT}},
					[]byte(replaceField(verifiedToken, `"scopes":["read","write"],`, ``)))
			},
			contains: []string{"response 200", "verifyOAuthAccessToken", `"/scopes"`, "required property is missing", "anyOf alternative 1 of 2"},
		},
		{
			name: "undocumented status",
			validate: func() error {
				return c.ValidateResponse(newRequest(t, "GET", base+settings), 404, http.Header{"Content-Type": {jsonCT}}, []byte(clerkErrors))
			},
			contains: []string{"response 404", "GetInstanceOAuthApplicationSettings", "status 404", "not documented", "documented: 200"},
		},
		{
			name: "undocumented method on a templated path",
			validate: func() error {
				return c.ValidateRequest(newRequest(t, "PUT", base+"/users/user_2xhFjEI5X2qWRvtV13BzSj8H6Dk"), nil)
			},
			contains: []string{"PUT /users/user_2xhFjEI5X2qWRvtV13BzSj8H6Dk", "method PUT is not documented", "documented: GET, PATCH, DELETE"},
		},
		{
			name: "unknown path",
			validate: func() error {
				return c.ValidateRequest(newRequest(t, "GET", base+"/nope"), nil)
			},
			contains: []string{"GET /nope", "no operation is documented"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.validate()
			if err == nil {
				t.Fatal("no error")
			}
			msg := err.Error()
			for _, s := range tc.contains {
				if !strings.Contains(msg, s) {
					t.Errorf("message lacks %q:\n%s", s, msg)
				}
			}
			if strings.Contains(msg, secretKey) {
				t.Errorf("message leaks the secret key:\n%s", msg)
			}
			t.Logf("%s", msg)
		})
	}
}

// TestRequestUntouched checks that validation neither reads req.Body nor
// changes req.
func TestRequestUntouched(t *testing.T) {
	c := Load(t)
	const body = `{"access_token":"oat_x"}`
	req, err := http.NewRequest("POST", base+verifyPath+"?", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+secretKey)
	req.Header.Set("Content-Type", jsonCT)
	url := req.URL.String()
	if err := c.ValidateRequest(req, []byte(body)); err != nil {
		t.Fatal(err)
	}
	if err := c.ValidateResponse(req, 200, http.Header{"Content-Type": {jsonCT}}, []byte(`{"active":false}`)); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(req.Body)
	if err != nil || string(got) != body {
		t.Errorf("req.Body = %q, %v; want %q", got, err, body)
	}
	if req.URL.String() != url {
		t.Errorf("req.URL = %s, want %s", req.URL, url)
	}
}

// TestConcurrentUse exercises one Checker from many goroutines (run with -race).
func TestConcurrentUse(t *testing.T) {
	c := Load(t)
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 16 {
		wg.Go(func() {
			req := newRequest(t, "POST", base+verifyPath)
			req.Header.Set("Content-Type", jsonCT)
			if err := c.ValidateRequest(req, []byte(`{"access_token":"oat_x"}`)); err != nil {
				errs <- err
			}
			if err := c.ValidateResponse(req, 200, http.Header{"Content-Type": {jsonCT}}, []byte(verifiedToken)); err != nil {
				errs <- err
			}
			bad := replaceField(verifiedToken, `"expired":false,`, ``)
			if err := c.ValidateResponse(req, 200, http.Header{"Content-Type": {jsonCT}}, []byte(bad)); err == nil {
				errs <- errors.New("missing expired accepted")
			}
			if i%2 == 0 {
				if err := c.ValidateResponse(newRequest(t, "GET", base+"/jwks"), 200, http.Header{"Content-Type": {jsonCT}}, []byte(`{"keys":[`+rsaKey+`]}`)); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}
