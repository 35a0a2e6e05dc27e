package gateway

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Results of looking up a caller's token at a provider, the label values of
// mcpgate_gateway_user_token_lookups_total.
const (
	tokenFound        = "found"
	tokenNotConnected = "not_connected"
	tokenUnavailable  = "unavailable"
)

// JSON-RPC error codes of a caller without the provider connection.
const (
	// codeURLElicitationRequired is MCP's URLElicitationRequiredError
	// (since 2025-11-25): the request cannot proceed until the user has
	// been to a URL, here the page where they connect the provider.
	codeURLElicitationRequired = -32042
	// codeNotConnected is the same refusal when the gateway knows no such
	// page, from the range MCP leaves to implementations: a -32042 without
	// a URL would be malformed.
	codeNotConnected = -32005
)

// userToken returns the caller's token at u's provider, which Clerk holds
// from the user's social sign-in; the people lookup caches it and collapses
// concurrent misses. When it cannot, it has answered: a caller without the
// connection gets refuseNotConnected, Clerk unavailable a 503 with
// Retry-After. The token is never logged or put in an error.
func (g *Gateway) userToken(w http.ResponseWriter, r *http.Request, u *config.UserOAuthToken) (string, bool) {
	ri := infoFrom(r.Context())
	tok, err := g.people.OAuthTokenOf(r.Context(), g.subject(ri), u.Provider)
	switch {
	case errors.Is(err, clerk.ErrNotConnected) || errors.Is(err, clerk.ErrUserNotFound) || err == nil && tok.Token == "":
		// A user Clerk does not know (deleted, with a token still valid)
		// has no connection either.
		g.metrics.userTokenLookups.WithLabelValues(tokenNotConnected).Inc()
		g.refuseNotConnected(w, r, u)
		return "", false
	case err != nil:
		g.metrics.userTokenLookups.WithLabelValues(tokenUnavailable).Inc()
		g.refuseLookup(w, r, err, "Could not look up a user's OAuth token")
		return "", false
	case !isHeaderValue(tok.Token):
		g.metrics.userTokenLookups.WithLabelValues(tokenUnavailable).Inc()
		g.refuseCredential(w, r, "Clerk answered with an OAuth token that is no valid header value",
			slog.String("user_id", ri.userID), slog.String("provider", u.Provider))
		return "", false
	}
	g.metrics.userTokenLookups.WithLabelValues(tokenFound).Inc()
	return tok.Token, true
}

// urlElicitation is one URL-mode elicitation of a -32042 error's
// data.elicitations, as MCP 2025-11-25 defines it (ElicitRequestURLParams).
type urlElicitation struct {
	Mode          string `json:"mode"`
	ElicitationID string `json:"elicitationId"`
	URL           string `json:"url"`
	Message       string `json:"message"`
}

// refuseNotConnected answers a caller who has not connected u's provider,
// which the upstream needs their token for, with something they can act on
// rather than an upstream failure.
//
// With a connect URL it is MCP's URLElicitationRequiredError: code -32042,
// data.elicitations holding one URL-mode elicitation that sends the user
// to connect the provider; a client that supports URL elicitation shows
// it, and any other shows the message. Without one it is a JSON-RPC error
// (codeNotConnected) naming the provider to connect in their Clerk account.
//
// A request the error answers (it has an id) gets it with HTTP 200, how
// the streamable HTTP transport carries any JSON-RPC error: SDK clients
// (Go v1.8.0, TypeScript) then hand the error, code and data, to the code
// that made the call; an HTTP error status would reach it as a transport
// failure, if at all. Initialize is refused too: the server is unusable
// without the connection. What has no id to answer (a notification, a GET
// stream, a DELETE) gets 403 with the error and id null. The gateway sends
// no notifications/elicitation/complete, as it cannot see the user
// connect: the client retries when the user is done.
func (g *Gateway) refuseNotConnected(w http.ResponseWriter, r *http.Request, u *config.UserOAuthToken) {
	ri := infoFrom(r.Context())
	ri.auth = reasonNotConnected
	g.metrics.countAuth(reasonNotConnected)
	status := http.StatusForbidden
	if answersCall(ri.rpc) {
		status = http.StatusOK
	}
	name := providerName(u.Provider)
	if u.ConnectURL == "" {
		writeRPCErrorData(w, status, ri.rpc, codeNotConnected,
			"Connect your "+name+" account: this MCP server works with your own "+name+" account, and your account has none connected. "+
				"Sign in with "+name+", or connect "+name+" (Clerk provider "+u.Provider+") under connected accounts in your account settings, then try again.", nil)
		return
	}
	data, err := json.Marshal(struct {
		Elicitations []urlElicitation `json:"elicitations"`
	}{[]urlElicitation{{
		Mode:          "url",
		ElicitationID: newElicitationID(),
		URL:           u.ConnectURL,
		Message:       "This MCP server works with your own " + name + " account. Connect " + name + " to your account on this page, then try again.",
	}}})
	if err != nil {
		// Unreachable: strings only.
		writePlain(w, http.StatusInternalServerError, "500 could not encode an answer")
		return
	}
	writeRPCErrorData(w, status, ri.rpc, codeURLElicitationRequired, "Connect your "+name+" account to use this MCP server.", data)
}

// answersCall reports whether a JSON-RPC error response to req would carry
// an id: it holds a request, not only notifications or responses.
func answersCall(req *rpcRequest) bool {
	if req == nil {
		return false
	}
	for _, m := range req.messages {
		if replyID(m.id) != nil {
			return true
		}
	}
	return false
}

// newElicitationID is an elicitation's ID: unique, and opaque as MCP asks,
// so it says nothing about the user.
func newElicitationID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return hex.EncodeToString(b[:])
}

// providerNames spell the providers people most often connect as their
// owners do; others are named from Clerk's provider ID.
var providerNames = map[string]string{
	"oauth_github": "GitHub", "oauth_gitlab": "GitLab", "oauth_google": "Google",
	"oauth_microsoft": "Microsoft", "oauth_linear": "Linear", "oauth_atlassian": "Atlassian",
	"oauth_bitbucket": "Bitbucket", "oauth_slack": "Slack", "oauth_notion": "Notion",
	"oauth_hubspot": "HubSpot", "oauth_linkedin_oidc": "LinkedIn", "oauth_dropbox": "Dropbox",
	"oauth_figma": "Figma", "oauth_discord": "Discord", "oauth_x": "X",
}

// providerName is how a message names provider: "GitHub" for oauth_github,
// "Acme" for oauth_custom_acme.
func providerName(provider string) string {
	if n, ok := providerNames[provider]; ok {
		return n
	}
	n := strings.TrimPrefix(strings.TrimPrefix(provider, "oauth_"), "custom_")
	if n == "" {
		return provider
	}
	return strings.ToUpper(n[:1]) + n[1:]
}
