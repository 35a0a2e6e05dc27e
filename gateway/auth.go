package gateway

import (
	"errors"
	"log/slog"
	"math"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/gateway/identity"
)

// stripInbound removes what a client must not be able to tell the upstream:
// identity headers and the upstream credential headers (credentials), which
// only the gateway sets, and cookies, which belong to the public host and
// not to the upstream. They are matched case-insensitively and with '_'
// read as '-', because CGI-style servers (WSGI, Rack, PHP) fold
// X_Mcpgate_User_Id and X-Mcpgate-User-Id into one variable, and a client
// could otherwise smuggle its own value past us. It runs first, so no step
// after it sees a client's copy.
func stripInbound(credentials []string) func(http.Handler) http.Handler {
	var names []string
	for _, n := range append(identity.Headers(), credentials...) {
		names = append(names, strings.ReplaceAll(n, "_", "-"))
	}
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			for name := range r.Header {
				folded := strings.ReplaceAll(name, "_", "-")
				for _, n := range names {
					if strings.EqualFold(folded, n) {
						delete(r.Header, name)
					}
				}
			}
			r.Header.Del("Cookie")
			next.ServeHTTP(w, r)
		})
	}
}

// extractToken takes the bearer token from the request's single
// Authorization header (RFC 6750 2.1, scheme case-insensitive) and removes
// the header, so nothing further down can forward it. A token in the query
// string is refused and never used: URLs end up in logs and histories, and
// MCP forbids it.
func (g *Gateway) extractToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := r.URL.Query()["access_token"]; ok {
			g.challenge(w, r, http.StatusUnauthorized, reasonInvalidRequest, "invalid_request",
				"access tokens are accepted only in the Authorization header", g.signInScopes())
			return
		}
		values := r.Header.Values("Authorization")
		switch {
		case len(values) == 0:
			g.challenge(w, r, http.StatusUnauthorized, reasonMissingToken, "", "", g.signInScopes())
			return
		case len(values) > 1:
			g.challenge(w, r, http.StatusUnauthorized, reasonInvalidRequest, "invalid_request",
				"more than one Authorization header", g.signInScopes())
			return
		}
		scheme, token, _ := strings.Cut(values[0], " ")
		if !strings.EqualFold(scheme, "Bearer") {
			// Another scheme is no bearer token at all: RFC 6750 3.1 asks
			// for a challenge without an error code.
			g.challenge(w, r, http.StatusUnauthorized, reasonMissingToken, "", "", g.signInScopes())
			return
		}
		token = strings.TrimLeft(token, " ")
		if !isToken68(token) {
			g.challenge(w, r, http.StatusUnauthorized, reasonInvalidToken, "invalid_token", "malformed bearer token", g.signInScopes())
			return
		}
		r.Header.Del("Authorization")
		infoFrom(r.Context()).token = token
		next.ServeHTTP(w, r)
	})
}

// isToken68 reports whether s is an RFC 9110 token68, the syntax of a
// bearer token: a run of URL-safe and base64 characters, then '=' padding.
func isToken68(s string) bool {
	body := strings.TrimRight(s, "=")
	if body == "" {
		return false
	}
	for i := 0; i < len(body); i++ {
		c := body[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
			c == '-' || c == '.' || c == '_' || c == '~' || c == '+' || c == '/') {
			return false
		}
	}
	return true
}

// verifyToken asks the Clerk verifier about the token: an invalid token is
// a 401 with error="invalid_token"; Clerk being unreachable is a 503 with
// Retry-After, never a pass. The token is forgotten once verified, unless
// people lookups go to the broker, which must be shown it: the request then
// keeps it (and the audiences it was verified for) until it is done.
//
// A JWT with aud must name this resource: the configured public URL or,
// without one, the URL the client used (see publicEndpoint), as clients
// sending RFC 8707 resource indicators get. Audience binding is then only as
// strong as the Host header: configure the public URL for a strict one.
func (g *Gateway) verifyToken(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		token := ri.token
		ri.token = ""
		start := time.Now()
		resource := g.resource(r)
		id, err := g.verifier.Verify(r.Context(), token, clerk.WithAudience(resource))
		g.metrics.verification.WithLabelValues(string(clerk.FormatOf(token))).Observe(time.Since(start).Seconds())
		if err != nil {
			g.refuseUnverified(w, r, err)
			return
		}
		ri.identity, ri.userID, ri.clientID = &id, id.UserID, id.ClientID
		if g.broker != nil && g.people != nil {
			ri.accessToken, ri.audiences = token, []string{resource}
		}
		next.ServeHTTP(w, r)
	})
}

// resource is this resource's URL for r (see publicEndpoint), without
// building the metadata URL when the public URL is configured: verifyToken
// asks on every request.
func (g *Gateway) resource(r *http.Request) string {
	if g.publicURL != nil {
		return g.cfg.PublicURL
	}
	resource, _ := g.publicEndpoint(r)
	return resource
}

// refuseUnverified answers a failed verification.
func (g *Gateway) refuseUnverified(w http.ResponseWriter, r *http.Request, err error) {
	var invalid *clerk.InvalidTokenError
	if errors.As(err, &invalid) {
		// Reason is one of the verifier's fixed phrases, never token data.
		g.challenge(w, r, http.StatusUnauthorized, reasonInvalidToken, "invalid_token", invalid.Reason, g.signInScopes())
		return
	}
	g.refuseUnavailable(w, r, err, "Could not verify a token")
}

// refuseUnavailable answers a request Clerk could not be asked about: 503
// with the Retry-After of err's *clerk.UnavailableError (1 s without one),
// never a pass. what is the log message.
func (g *Gateway) refuseUnavailable(w http.ResponseWriter, r *http.Request, err error, what string) {
	retry := time.Second
	var unavailable *clerk.UnavailableError
	if errors.As(err, &unavailable) {
		retry = unavailable.RetryAfter
	}
	ri := infoFrom(r.Context())
	if r.Context().Err() == nil {
		// A client that hung up is not Clerk's failure.
		ri.auth = reasonClerkUnavailable
		g.metrics.countAuth(reasonClerkUnavailable)
		g.log.LogAttrs(r.Context(), slog.LevelWarn, what,
			slog.String("request_id", ri.id), slog.String("user_id", ri.userID), slog.String("error", err.Error()))
	}
	w.Header().Set("Retry-After", strconv.Itoa(int(max(1, math.Ceil(retry.Seconds())))))
	writePlain(w, http.StatusServiceUnavailable, "503 the authorization server is unavailable; retry later")
}

// signInScopes are the scopes a 401 challenge names, which a client asks
// for when its user signs in (and registers with, if it registers): those
// every request needs and, with toolScopeChallenge AtSignIn, every tool's
// too, for clients that cannot step up (docs/step-up.md). Tokens still
// need only what each request calls for.
func (g *Gateway) signInScopes() []string {
	if g.cfg.ToolScopeChallenge == config.ToolScopeChallengeAtSignIn {
		return g.scopesSupported
	}
	return g.scopes
}

// challenge answers 401 or 403 with a Bearer challenge (setChallenge) and
// a plain-text body.
func (g *Gateway) challenge(w http.ResponseWriter, r *http.Request, status int, reason, errCode, description string, scopes []string) {
	g.setChallenge(w, r, status, reason, errCode, description, scopes)
	msg := strconv.Itoa(status) + " " + strings.ToLower(http.StatusText(status))
	if description != "" {
		msg += ": " + description
	}
	writePlain(w, status, msg)
}

// setChallenge sets a Bearer challenge pointing at the resource metadata,
// naming the scopes the request needs, and, when a token was sent, saying
// what is wrong with it; and counts the refusal as reason. 401 puts
// resource_metadata first and 403 the error, the orders the MCP
// specification shows. The caller writes the status and body.
func (g *Gateway) setChallenge(w http.ResponseWriter, r *http.Request, status int, reason, errCode, description string, scopes []string) {
	_, metadataURL := g.publicEndpoint(r)
	scope := strings.Join(scopes, " ")
	var params []authParam
	if status == http.StatusForbidden {
		params = []authParam{{"error", errCode}, {"scope", scope}, {"resource_metadata", metadataURL}, {"error_description", description}}
	} else {
		params = []authParam{{"resource_metadata", metadataURL}, {"scope", scope}, {"error", errCode}, {"error_description", description}}
	}
	w.Header().Set("WWW-Authenticate", bearerChallenge(params...))
	infoFrom(r.Context()).auth = reason
	g.metrics.countAuth(reason)
}

// injectIdentity tells the upstream who is calling: the token's user,
// client and scopes, and what the gateway learned from Clerk for its access
// rules (email, organizations). It runs after stripInbound, so these are
// the only identity headers the upstream sees.
func injectIdentity(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ri := infoFrom(r.Context())
		id := ri.identity
		if id == nil {
			// Unreachable behind verifyToken; never forward anonymously.
			writePlain(w, http.StatusInternalServerError, "500 request reached the proxy unverified")
			return
		}
		r.Header.Set(identity.UserHeader, id.UserID)
		r.Header.Set(identity.ClientHeader, id.ClientID)
		r.Header.Set(identity.ScopesHeader, strings.Join(id.Scopes, " "))
		injectPeopleFacts(r.Header, ri)
		next.ServeHTTP(w, r)
	})
}
