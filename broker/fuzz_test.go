package broker

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/mcpgate/mcpgate/clerk"
)

// FuzzDecodeRequest feeds arbitrary bodies to the broker's request parser,
// on every endpoint. It must never panic, and what it accepts must hold to
// the limits the rest of the server relies on.
func FuzzDecodeRequest(f *testing.F) {
	for _, seed := range []string{
		`{"access_token":"oat_0123"}`,
		`{"access_token":"a.b.c","audiences":["https://tools.example.com/mcp"]}`,
		`{"access_token":"a.b.c","provider":"oauth_github"}`,
		`{"access_token":"x","user_id":"user_1"}`,
		`{"access_token":"x"}{"access_token":"y"}`,
		`{"audiences":[""]}`,
		`[]`, `null`, ``,
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, body string) {
		for _, path := range []string{PathVerify, PathUser, PathMemberships, PathOAuthToken} {
			r := httptest.NewRequest(http.MethodPost, "https://broker"+path, strings.NewReader(body))
			req, fail := decodeRequest(r, endpoints[path])
			if fail != nil {
				if fail.code != CodeBadRequest {
					t.Fatalf("%s: refusal code %q, want bad_request", path, fail.code)
				}
				if len(body) > 8 && strings.Contains(fail.message, body) {
					t.Fatalf("%s: refusal quotes the body", path)
				}
				continue
			}
			if len(body) > maxRequestBytes || len(req.Audiences) > maxAudiences {
				t.Fatalf("%s: accepted a body over the limits", path)
			}
			for _, a := range req.Audiences {
				if a == "" || len(a) > maxAudienceLength {
					t.Fatalf("%s: accepted audience of length %d", path, len(a))
				}
			}
			if path == PathOAuthToken && !clerk.ValidOAuthProvider(req.Provider) || path != PathOAuthToken && req.Provider != "" {
				t.Fatalf("%s: accepted provider %q", path, req.Provider)
			}
		}
	})
}

// FuzzAnswerError feeds arbitrary error answers to the client. Whatever the
// broker (or something in its place) says, the client must come back with
// one of the clerk error values the gateway handles, fail closed, and keep
// invalid-token reasons to its safe alphabet.
func FuzzAnswerError(f *testing.F) {
	f.Add(422, "", `{"error":{"code":"invalid_token","reason":"token expired"}}`)
	f.Add(503, "5", `{"error":{"code":"unavailable"}}`)
	f.Add(404, "", `{"error":{"code":"user_not_found"}}`)
	f.Add(401, "", `{"error":{"code":"unauthenticated"}}`)
	f.Add(502, "-1", `<html>`)
	f.Fuzz(func(t *testing.T, status int, retryAfter, body string) {
		resp := &http.Response{StatusCode: status, Header: http.Header{"Retry-After": {retryAfter}}}
		err := answerError(PathUser, resp, []byte(body))
		var ue *clerk.UnavailableError
		var ie *clerk.InvalidTokenError
		switch {
		case errors.As(err, &ue):
			if ue.RetryAfter <= 0 || ue.RetryAfter > maxClientRetryAfter {
				t.Fatalf("RetryAfter = %s", ue.RetryAfter)
			}
		case errors.As(err, &ie):
			if safeReason(ie.Reason) != ie.Reason {
				t.Fatalf("unsafe reason %q", ie.Reason)
			}
		case errors.Is(err, clerk.ErrUserNotFound), errors.Is(err, clerk.ErrNotConnected), errors.Is(err, clerk.ErrTooManyMemberships):
		default:
			t.Fatalf("error %v (%T) is none the gateway handles", err, err)
		}
	})
}
