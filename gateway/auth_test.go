package gateway_test

import (
	"crypto"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/gateway/identity"
)

// meta stands for the gateway's resource metadata URL in expected challenges.
const meta = "<metadata>"

// TestRefusedRequests sends requests the gateway must refuse and checks the
// status, the exact challenge, and that the upstream saw nothing at all.
func TestRefusedRequests(t *testing.T) {
	t.Parallel()
	const scope = "profile email"
	valid := func(t *testing.T, e *gwEnv) string { return e.token(t, clerktest.TokenRequest{Scopes: allScopes}) }
	// withToken builds a tools/call of an unscoped tool carrying token.
	withToken := func(token func(*testing.T, *gwEnv) string) func(*testing.T, *gwEnv) *http.Request {
		return func(t *testing.T, e *gwEnv) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.Header.Set("Authorization", "Bearer "+token(t, e))
			return req
		}
	}
	forged := func(header, claims map[string]any) func(*testing.T, *gwEnv) string {
		return func(t *testing.T, e *gwEnv) string { return forge(t, e.cfg.Clerk.Issuer, header, claims, nil) }
	}
	// withBody builds a POST of body with a token carrying scopes.
	withBody := func(body string, scopes []string) func(*testing.T, *gwEnv) *http.Request {
		return func(t *testing.T, e *gwEnv) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), body)
			req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: scopes}))
			return req
		}
	}
	invalidToken := func(description string) map[string]string {
		return map[string]string{"resource_metadata": meta, "scope": scope, "error": "invalid_token", "error_description": description}
	}
	insufficient := func(scope string) map[string]string {
		return map[string]string{"error": "insufficient_scope", "scope": scope, "resource_metadata": meta}
	}
	// faulty is an emulator of the case's own with one fault injected.
	faulty := func(endpoint string, f clerktest.Fault) func(*testing.T) []envOption {
		return func(t *testing.T) []envOption {
			c := clerktest.NewServer()
			t.Cleanup(c.Close)
			c.SetFault(endpoint, f)
			return []envOption{withClerk(c)}
		}
	}

	tests := []struct {
		name string
		// env returns options for the case's gateway, nil for the defaults.
		env func(*testing.T) []envOption
		// req builds the request.
		req func(*testing.T, *gwEnv) *http.Request
		// status is the expected status.
		status int
		// challenge is the expected WWW-Authenticate, parsed; nil: none.
		challenge map[string]string
		// retryAfter is the expected Retry-After; "" means absent.
		retryAfter string
		// body is a substring of the expected body.
		body string
	}{{
		name: "no token",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			return newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
		},
		status:    http.StatusUnauthorized,
		challenge: map[string]string{"resource_metadata": meta, "scope": scope},
	}, {
		name: "basic scheme",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.SetBasicAuth("user", "password")
			return req
		},
		status:    http.StatusUnauthorized,
		challenge: map[string]string{"resource_metadata": meta, "scope": scope},
	}, {
		name:      "bearer without a token",
		req:       withToken(func(*testing.T, *gwEnv) string { return "" }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("malformed bearer token"),
	}, {
		name:      "token with a space inside",
		req:       withToken(func(*testing.T, *gwEnv) string { return "abc def" }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("malformed bearer token"),
	}, {
		name:      "token with characters outside token68",
		req:       withToken(func(*testing.T, *gwEnv) string { return `ab"c!` }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("malformed bearer token"),
	}, {
		name: "two Authorization headers",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.Header.Add("Authorization", "Bearer "+valid(t, e))
			req.Header.Add("Authorization", "Bearer "+valid(t, e))
			return req
		},
		status: http.StatusUnauthorized,
		challenge: map[string]string{"resource_metadata": meta, "scope": scope, "error": "invalid_request",
			"error_description": "more than one Authorization header"},
	}, {
		name: "token in the query string and the header",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			tok := valid(t, e)
			req := newRequest(t, http.MethodPost, e.mcpURL()+"?access_token="+tok, toolCall("search"))
			req.Header.Set("Authorization", "Bearer "+tok)
			return req
		},
		status: http.StatusUnauthorized,
		challenge: map[string]string{"resource_metadata": meta, "scope": scope, "error": "invalid_request",
			"error_description": "access tokens are accepted only in the Authorization header"},
	}, {
		name: "token in the query string only",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			return newRequest(t, http.MethodGet, e.mcpURL()+"?x=1&access_token="+valid(t, e), "")
		},
		status: http.StatusUnauthorized,
		challenge: map[string]string{"resource_metadata": meta, "scope": scope, "error": "invalid_request",
			"error_description": "access tokens are accepted only in the Authorization header"},
	}, {
		name:      "garbage token",
		req:       withToken(func(*testing.T, *gwEnv) string { return "hello" }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unrecognized token format"),
	}, {
		name: "alg none",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			signed := forge(t, e.cfg.Clerk.Issuer, map[string]any{"alg": "none"}, nil, nil)
			return signed[:strings.LastIndexByte(signed, '.')+1]
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unsupported algorithm"),
	}, {
		name: "alg None",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			signed := forge(t, e.cfg.Clerk.Issuer, map[string]any{"alg": "None"}, nil, nil)
			return signed[:strings.LastIndexByte(signed, '.')+1]
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unsupported algorithm"),
	}, {
		name:      "alg NONE, signature kept",
		req:       withToken(forged(map[string]any{"alg": "NONE"}, nil)),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unsupported algorithm"),
	}, {
		name:      "ES256 where the key is RS256",
		req:       withToken(forged(map[string]any{"alg": "ES256"}, nil)),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unsupported algorithm"),
	}, {
		name:      "unknown crit header",
		req:       withToken(forged(map[string]any{"crit": []string{"urn:example:must-understand"}, "urn:example:must-understand": true}, nil)),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unsupported critical header"),
	}, {
		name:      "kid with path characters",
		req:       withToken(forged(map[string]any{"kid": "../../../v1/jwks?x=" + forgerKid}, nil)),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unknown signing key"),
	}, {
		// Each of these headers names a key of the attacker's; honouring any
		// would let anyone sign tokens. The known kid makes the verifier
		// use Clerk's key, so the attacker's signature fails.
		name: "jwk header embedding the signer's own key",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			pub := strangerKey().PublicKey
			jwk := map[string]any{"kty": "RSA", "kid": forgerKid, "alg": "RS256", "use": "sig",
				"n": base64.RawURLEncoding.EncodeToString(pub.N.Bytes()), "e": "AQAB"}
			return forge(t, e.cfg.Clerk.Issuer, map[string]any{"jwk": jwk}, nil, strangerKey())
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("bad signature"),
	}, {
		name: "jku header pointing at the signer's key set",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return forge(t, e.cfg.Clerk.Issuer, map[string]any{"jku": "https://attacker.example/jwks.json"}, nil, strangerKey())
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("bad signature"),
	}, {
		name: "x5u header pointing at the signer's certificate",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return forge(t, e.cfg.Clerk.Issuer, map[string]any{"x5u": "https://attacker.example/cert.pem"}, nil, strangerKey())
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("bad signature"),
	}, {
		name: "issuer in another case",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return forge(t, e.cfg.Clerk.Issuer, nil, map[string]any{"iss": strings.ToUpper(e.cfg.Clerk.Issuer)}, nil)
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("wrong issuer"),
	}, {
		name:      "segments that are not base64url",
		req:       withToken(func(*testing.T, *gwEnv) string { return "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0+.c2ln/" }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("malformed token"),
	}, {
		name: "payload that is not JSON, validly signed",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			input := b64json(t, map[string]any{"alg": "RS256", "kid": forgerKid, "typ": "at+jwt"}) + "." +
				base64.RawURLEncoding.EncodeToString([]byte(`{"sub":"user_x",`))
			digest := sha256.Sum256([]byte(input))
			sig, err := rsa.SignPKCS1v15(rand.Reader, forgerKey(), crypto.SHA256, digest[:])
			if err != nil {
				t.Fatal(err)
			}
			return input + "." + base64.RawURLEncoding.EncodeToString(sig)
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("malformed claims"),
	}, {
		name: "expired opaque token",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque, TTL: -time.Minute})
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("token expired"),
	}, {
		// Paths around the endpoint and the public metadata routes. The
		// gateway routes exact, cleaned paths only: anything else is 404,
		// never a redirect and never the upstream.
		name:   "traversal from the metadata route to the endpoint",
		req:    rawPath(http.MethodPost, "/.well-known/oauth-protected-resource/../mcp", "valid"),
		status: http.StatusNotFound,
	}, {
		name:   "encoded traversal from the metadata route",
		req:    rawPath(http.MethodPost, "/.well-known/oauth-protected-resource/%2e%2e/mcp", "valid"),
		status: http.StatusNotFound,
	}, {
		name:   "traversal out of the endpoint to the metadata route",
		req:    rawPath(http.MethodGet, "/mcp/../.well-known/oauth-protected-resource/mcp", "valid"),
		status: http.StatusNotFound,
	}, {
		name:   "doubled slash before the endpoint",
		req:    rawPath(http.MethodPost, "//mcp", "valid"),
		status: http.StatusNotFound,
	}, {
		name:   "endpoint path in another case",
		req:    rawPath(http.MethodPost, "/MCP", "valid"),
		status: http.StatusNotFound,
	}, {
		// %2F decodes to the metadata route of /mcp, which is public and
		// read-only.
		name:   "encoded slash after the metadata route",
		req:    rawPath(http.MethodPost, "/.well-known/oauth-protected-resource%2Fmcp", "valid"),
		status: http.StatusMethodNotAllowed,
	}, {
		name: "HS256 signed with the public key",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			der, err := x509.MarshalPKIXPublicKey(&forgerKey().PublicKey)
			if err != nil {
				t.Fatal(err)
			}
			secret := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			signed := forge(t, e.cfg.Clerk.Issuer, map[string]any{"alg": "HS256"}, nil, nil)
			input := signed[:strings.LastIndexByte(signed, '.')]
			mac := hmac.New(sha256.New, secret)
			mac.Write([]byte(input))
			return input + "." + base64.RawURLEncoding.EncodeToString(mac.Sum(nil))
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unsupported algorithm"),
	}, {
		name: "expired",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, TTL: -time.Hour})
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("token expired"),
	}, {
		name:      "nbf in the future",
		req:       withToken(forged(nil, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()})),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("token not yet valid"),
	}, {
		name:      "iat in the future",
		req:       withToken(forged(nil, map[string]any{"iat": time.Now().Add(time.Hour).Unix()})),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("token issued in the future"),
	}, {
		name:      "wrong issuer",
		req:       withToken(forged(nil, map[string]any{"iss": "https://evil.example.com"})),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("wrong issuer"),
	}, {
		name: "issuer with a trailing slash",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return forge(t, e.cfg.Clerk.Issuer, nil, map[string]any{"iss": e.cfg.Clerk.Issuer + "/"}, nil)
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("wrong issuer"),
	}, {
		name: "session token",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			tok, err := e.clerk.MintSessionToken("")
			if err != nil {
				t.Fatal(err)
			}
			return tok
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("not an access token"),
	}, {
		name:      "missing client_id",
		req:       withToken(forged(nil, map[string]any{"client_id": nil})),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("missing client_id"),
	}, {
		name:      "missing subject",
		req:       withToken(forged(nil, map[string]any{"sub": nil})),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("missing subject"),
	}, {
		name: "audience of another resource",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, Audience: []string{"https://other.example.com/mcp"}})
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("wrong audience"),
	}, {
		name: "audience of this gateway under another host name",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			other := strings.Replace(e.mcpURL(), "127.0.0.1", "localhost", 1)
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, Audience: []string{other}})
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("wrong audience"),
	}, {
		name: "signed by an unknown key",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return forge(t, e.cfg.Clerk.Issuer, map[string]any{"kid": "ins_stranger"}, nil, strangerKey())
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unknown signing key"),
	}, {
		name: "known key id, other key",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return forge(t, e.cfg.Clerk.Issuer, nil, nil, strangerKey())
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("bad signature"),
	}, {
		name: "payload changed after signing",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			parts := strings.Split(e.token(t, clerktest.TokenRequest{Scopes: []string{"profile", "email"}}), ".")
			parts[1] = b64json(t, map[string]any{"iss": e.cfg.Clerk.Issuer, "sub": "user_admin", "client_id": "c",
				"scope": strings.Join(allScopes, " "), "exp": time.Now().Add(time.Hour).Unix()})
			return strings.Join(parts, ".")
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("bad signature"),
	}, {
		name:      "20 KB token",
		req:       withToken(func(*testing.T, *gwEnv) string { return strings.Repeat("a", 20<<10) }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("token too long"),
	}, {
		name: "revoked opaque token",
		req: withToken(func(t *testing.T, e *gwEnv) string {
			tok := e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque})
			if err := e.clerk.RevokeAccessToken(tok); err != nil {
				t.Fatal(err)
			}
			return tok
		}),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("token revoked"),
	}, {
		name:      "unknown opaque token",
		req:       withToken(func(*testing.T, *gwEnv) string { return "oat_0123456789abcdef0123456789abcdef" }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("unknown token"),
	}, {
		name:      "opaque prefix only",
		req:       withToken(func(*testing.T, *gwEnv) string { return "oat_" }),
		status:    http.StatusUnauthorized,
		challenge: invalidToken("malformed token"),
	}, {
		name:      "valid token without the scopes every request needs",
		req:       withBody(toolCall("search"), []string{"profile"}),
		status:    http.StatusForbidden,
		challenge: insufficient(scope),
	}, {
		name:      "scoped tool with neither its scope nor the ones every request needs",
		req:       withBody(toolCall("delete_repo"), []string{"email"}),
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin"),
	}, {
		name:      "scoped tool without its scope",
		req:       withBody(toolCall("delete_repo"), baseScopes),
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin"),
		body:      `{"jsonrpc":"2.0","id":1,"error":{"code":-32004,"message":"Insufficient scope: calling the tool \"delete_repo\" needs`,
	}, {
		name:      "scoped tool inside a batch",
		req:       withBody(`[{"jsonrpc":"2.0","id":1,"method":"tools/list"},`+toolCall("delete_repo")+`]`, baseScopes),
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin"),
		body:      `[{"jsonrpc":"2.0","id":1,"error":{"code":-32004,`,
	}, {
		name:      "two scoped tools in a batch, one scope held",
		req:       withBody(`[`+toolCall("delete_repo")+`,`+toolCall("read_secrets")+`]`, []string{"profile", "email", "repo:admin"}),
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin secrets:read"),
	}, {
		name:      "tool name under a differently cased key",
		req:       withBody(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","Name":"delete_repo"}}`, baseScopes),
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin"),
	}, {
		name:      "tool name given twice",
		req:       withBody(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","name":"search"}}`, baseScopes),
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin"),
	}, {
		name: "scoped tool named in the Mcp-Name header",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			req := withBody(toolCall("search"), baseScopes)(t, e)
			req.Header.Set("Mcp-Method", "tools/call")
			req.Header.Set("Mcp-Name", "=?base64?"+base64.StdEncoding.EncodeToString([]byte("delete_repo"))+"?=")
			return req
		},
		status:    http.StatusForbidden,
		challenge: insufficient("profile email repo:admin"),
	}, {
		name:   "params.name an object",
		req:    withBody(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":{"tool":"delete_repo"}}}`, allScopes),
		status: http.StatusBadRequest,
		body:   "params.name must be a string",
	}, {
		name:   "params an array",
		req:    withBody(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":["delete_repo"]}`, allScopes),
		status: http.StatusBadRequest,
		body:   "params must be an object",
	}, {
		name:   "unparseable body while tool scopes are configured",
		req:    withBody(`{"jsonrpc":"2.0","id":NaN,"method":"tools/call","params":{"name":"delete_repo"}}`, baseScopes),
		status: http.StatusBadRequest,
		body:   `"code":-32700`,
	}, {
		name:   "a second JSON value after the message",
		req:    withBody(toolCall("search")+toolCall("delete_repo"), baseScopes),
		status: http.StatusBadRequest,
		body:   `"code":-32700`,
	}, {
		name: "disallowed Origin",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			req := withToken(valid)(t, e)
			req.Header.Set("Origin", "https://evil.example.com")
			return req
		},
		status: http.StatusForbidden,
		body:   "origin not allowed",
	}, {
		name: "null Origin",
		req: func(t *testing.T, e *gwEnv) *http.Request {
			req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
			req.Header.Set("Origin", "null")
			return req
		},
		status: http.StatusForbidden,
		body:   "origin not allowed",
	}, {
		name: "body over the limit",
		env: func(*testing.T) []envOption {
			return []envOption{withOptions(func(o *gateway.Options) { o.MaxBodyBytes = 4096 })}
		},
		req:    withBody(`{"jsonrpc":"2.0","id":1,"method":"ping","params":{"pad":"`+strings.Repeat("x", 5000)+`"}}`, allScopes),
		status: http.StatusRequestEntityTooLarge,
		body:   "413 request body larger than 4096 bytes",
	}, {
		name: "chunked body over the limit",
		env: func(*testing.T) []envOption {
			return []envOption{withOptions(func(o *gateway.Options) { o.MaxBodyBytes = 4096 })}
		},
		req: func(t *testing.T, e *gwEnv) *http.Request {
			req := withBody(`{"pad":"`+strings.Repeat("x", 5000)+`"}`, allScopes)(t, e)
			req.ContentLength = -1 // sent chunked: no Content-Length to refuse early
			return req
		},
		status: http.StatusRequestEntityTooLarge,
		body:   "413 request body larger than 4096 bytes",
	}, {
		name:   "method the endpoint does not serve",
		req:    func(t *testing.T, e *gwEnv) *http.Request { return newRequest(t, http.MethodPut, e.mcpURL(), "{}") },
		status: http.StatusMethodNotAllowed,
	}, {
		name: "Clerk unavailable for an opaque token",
		env:  faulty("POST /v1/oauth_applications/access_tokens/verify", clerktest.Fault{Status: http.StatusServiceUnavailable, RetryAfter: 7 * time.Second}),
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque})
		}),
		status:     http.StatusServiceUnavailable,
		retryAfter: "7",
	}, {
		name: "Clerk rate limiting opaque lookups",
		env:  faulty("POST /v1/oauth_applications/access_tokens/verify", clerktest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 12 * time.Second}),
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque})
		}),
		status:     http.StatusServiceUnavailable,
		retryAfter: "12",
	}, {
		name:       "Clerk's key set unreachable for a JWT",
		env:        faulty("GET /.well-known/jwks.json", clerktest.Fault{Outage: true}),
		req:        withToken(valid),
		status:     http.StatusServiceUnavailable,
		retryAfter: "1",
	}, {
		name: "Clerk refusing the gateway's secret key",
		env: func(t *testing.T) []envOption {
			return []envOption{withConfig(func(c *config.Config) {
				writeKeyFile(t, c.Clerk.SecretKeyFile, "sk_test_wrong")
			})}
		},
		req: withToken(func(t *testing.T, e *gwEnv) string {
			return e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque})
		}),
		status:     http.StatusServiceUnavailable,
		retryAfter: "30",
	}}
	if len(tests) < 30 {
		t.Fatalf("only %d cases", len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if tc.env != nil {
				opts = tc.env(t)
			}
			e := newEnv(t, opts...)
			resp, body := do(t, tc.req(t, e))
			if resp.StatusCode != tc.status {
				t.Fatalf("status = %d, want %d; body %q", resp.StatusCode, tc.status, body)
			}
			if got := e.up.requests(); len(got) != 0 {
				t.Errorf("the upstream received %d requests, want none", len(got))
			}
			if !strings.Contains(body, tc.body) {
				t.Errorf("body %q does not contain %q", body, tc.body)
			}
			if got := resp.Header.Get("Retry-After"); got != tc.retryAfter {
				t.Errorf("Retry-After = %q, want %q", got, tc.retryAfter)
			}
			values := resp.Header.Values("WWW-Authenticate")
			if tc.challenge == nil {
				if len(values) != 0 {
					t.Errorf("WWW-Authenticate = %q, want none", values)
				}
				return
			}
			if len(values) != 1 {
				t.Fatalf("WWW-Authenticate = %q, want one challenge", values)
			}
			scheme, params := parseChallenge(t, values[0])
			want := map[string]string{}
			for k, v := range tc.challenge {
				want[k] = strings.ReplaceAll(v, meta, e.metadataURL())
			}
			if scheme != "Bearer" || !mapsEqual(params, want) {
				t.Errorf("WWW-Authenticate = %s\n parsed %s %v\n want Bearer %v", values[0], scheme, params, want)
			}
		})
	}
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// TestAuthorizedRequests checks requests that must pass, and what the
// upstream learns from them: the gateway's identity headers and never the
// client's credentials.
// rawPath builds a request whose path reaches the gateway as written, with
// no client-side cleaning; token "valid" adds a token with every scope.
func rawPath(method, path, token string) func(*testing.T, *gwEnv) *http.Request {
	return func(t *testing.T, e *gwEnv) *http.Request {
		req := newRequest(t, method, e.mcpURL(), toolCall("search"))
		req.URL.Path, req.URL.RawPath = "", ""
		req.URL.Opaque = "//" + req.URL.Host + path
		if token == "valid" {
			req.Header.Set("Authorization", "Bearer "+e.token(t, clerktest.TokenRequest{Scopes: allScopes}))
		}
		return req
	}
}

func TestAuthorizedRequests(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		// cfg changes the configuration.
		cfg func(*config.Config)
		// token is the access token request; Format picks JWT or opaque.
		token clerktest.TokenRequest
		// scheme is the Authorization scheme as the client spells it.
		scheme string
		// body is the POST body.
		body string
		// header adds request headers.
		header http.Header
		// wantOrigin is the expected Access-Control-Allow-Origin.
		wantOrigin string
		// boundToURL gives the token the MCP URL the client uses as aud.
		boundToURL bool
	}{{
		name:   "lower-case bearer",
		token:  clerktest.TokenRequest{Scopes: baseScopes},
		scheme: "bearer",
		body:   toolCall("search"),
	}, {
		name:       "JWT bound to the URL the client used, no public URL configured",
		token:      clerktest.TokenRequest{Scopes: baseScopes},
		scheme:     "Bearer",
		body:       toolCall("search"),
		boundToURL: true,
	}, {
		name:   "upper-case bearer",
		token:  clerktest.TokenRequest{Scopes: baseScopes},
		scheme: "BEARER",
		body:   toolCall("search"),
	}, {
		name:   "opaque token",
		token:  clerktest.TokenRequest{Scopes: baseScopes, Format: clerktest.FormatOpaque},
		scheme: "Bearer",
		body:   toolCall("search"),
	}, {
		name:   "scoped tool with its scope",
		token:  clerktest.TokenRequest{Scopes: []string{"email", "repo:admin", "profile"}},
		scheme: "Bearer",
		body:   toolCall("delete_repo"),
	}, {
		name:   "scoped tool with its scopes, in a batch",
		token:  clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque},
		scheme: "Bearer",
		body:   `[` + toolCall("read_secrets") + `,{"jsonrpc":"2.0","method":"notifications/progress"}]`,
	}, {
		name:   "unscoped tool named in the Mcp-Name header",
		token:  clerktest.TokenRequest{Scopes: baseScopes},
		scheme: "Bearer",
		body:   toolCall("search"),
		header: http.Header{"Mcp-Method": {"tools/call"}, "Mcp-Name": {"search"}},
	}, {
		name:   "not JSON, no tool scopes configured: passed on for the upstream to answer",
		cfg:    func(c *config.Config) { c.ToolScopes = nil },
		token:  clerktest.TokenRequest{Scopes: baseScopes},
		scheme: "Bearer",
		body:   `{"jsonrpc":"2.0","id":NaN}`,
	}, {
		name:       "configured origin",
		cfg:        func(c *config.Config) { c.AllowedOrigins = []string{"https://app.example.com"} },
		token:      clerktest.TokenRequest{Scopes: baseScopes},
		scheme:     "Bearer",
		body:       toolCall("search"),
		header:     http.Header{"Origin": {"https://app.example.com"}},
		wantOrigin: "https://app.example.com",
	}, {
		name:       "origin of the public URL, default port spelled out",
		cfg:        func(c *config.Config) { c.PublicURL = "https://tools.example.com:443/mcp" },
		token:      clerktest.TokenRequest{Scopes: baseScopes, Audience: []string{"https://tools.example.com:443/mcp"}},
		scheme:     "Bearer",
		body:       toolCall("search"),
		header:     http.Header{"Origin": {"https://TOOLS.example.com"}},
		wantOrigin: "https://TOOLS.example.com",
	}, {
		name:   "client-sent identity headers and credentials",
		token:  clerktest.TokenRequest{Scopes: baseScopes, ClientID: "client_real"},
		scheme: "Bearer",
		body:   toolCall("search"),
		header: http.Header{
			"X-Mcpgate-User-Id":       {"user_admin"},
			"x-mcpgate-client-id":     {"client_evil"},
			"X_Mcpgate_Scopes":        {"repo:admin"},
			"X-MCPGATE-SCOPES":        {"secrets:read"},
			"X_Mcpgate_User_Email":    {"ceo@example.com"},
			"x-mcpgate-organizations": {"org_evil:evil:org:admin"},
			"X-Mcpgate-Organizations": {"org_evil2:evil:org:admin"},
			"Cookie":                  {"session=secret"},
		},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []envOption
			if tc.cfg != nil {
				opts = append(opts, withConfig(tc.cfg))
			}
			e := newEnv(t, opts...)
			if tc.boundToURL {
				tc.token.Audience = []string{e.mcpURL()}
			}
			tok := e.token(t, tc.token)
			req := newRequest(t, http.MethodPost, e.mcpURL(), tc.body)
			for k, v := range tc.header {
				req.Header[k] = v // as spelled, not canonicalized
			}
			req.Header.Set("Authorization", tc.scheme+" "+tok)
			resp, body := do(t, req)
			if resp.StatusCode != http.StatusOK || body != toolResult {
				t.Fatalf("status %d, body %q; want 200 and the upstream's result", resp.StatusCode, body)
			}
			if got := resp.Header.Get("Access-Control-Allow-Origin"); got != tc.wantOrigin {
				t.Errorf("Access-Control-Allow-Origin = %q, want %q", got, tc.wantOrigin)
			}
			seen := e.up.requests()
			if len(seen) != 1 {
				t.Fatalf("upstream received %d requests, want 1", len(seen))
			}
			got := seen[0]
			if string(got.Body) != tc.body {
				t.Errorf("upstream body = %q, want it unchanged: %q", got.Body, tc.body)
			}
			want := map[string]string{
				identity.UserHeader:   clerktest.DefaultUserID,
				identity.ClientHeader: tc.token.ClientID,
				identity.ScopesHeader: strings.Join(tc.token.Scopes, " "),
			}
			for name, values := range got.Header {
				folded := strings.ToLower(strings.ReplaceAll(name, "_", "-"))
				switch {
				case folded == "authorization" || folded == "cookie":
					t.Errorf("upstream received %s", name)
				case strings.HasPrefix(folded, "x-mcpgate-"):
					w, ok := want[name]
					if !ok {
						t.Errorf("upstream received identity header %q = %q, which the client sent", name, values)
						continue
					}
					if w != "" && (len(values) != 1 || values[0] != w) {
						t.Errorf("upstream %s = %q, want %q", name, values, w)
					}
				}
			}
			for name := range want {
				if len(got.Header.Values(name)) != 1 {
					t.Errorf("upstream %s = %q, want one value", name, got.Header.Values(name))
				}
			}
			if slices.Contains(got.Header.Values(identity.UserHeader), "user_admin") {
				t.Error("the client's user id reached the upstream")
			}
		})
	}
}
