package gateway

import (
	"net/http"
	"net/url"
	"strings"
)

// corsExposedHeaders are the response headers a browser client must be able
// to read: the session, the negotiated version, and the auth challenge that
// starts (or steps up) authorization.
const corsExposedHeaders = "Mcp-Session-Id, MCP-Protocol-Version, WWW-Authenticate, Retry-After, X-Request-Id"

// mcpMethods are the methods of the MCP endpoint.
const mcpMethods = "POST, GET, DELETE, OPTIONS"

// origin normalizes scheme://host[:port] for comparison: lower case, and
// the scheme's default port dropped, as browsers send it.
func origin(scheme, host string) string {
	scheme, host = strings.ToLower(scheme), strings.ToLower(host)
	switch {
	case scheme == "https" && strings.HasSuffix(host, ":443"):
		host = strings.TrimSuffix(host, ":443")
	case scheme == "http" && strings.HasSuffix(host, ":80"):
		host = strings.TrimSuffix(host, ":80")
	}
	return scheme + "://" + host
}

// originAllowed reports whether an Origin header value is the public URL's
// origin or one of the configured ones. Without a configured public URL no
// origin is implicitly allowed: comparing with the request's own Host would
// let a DNS-rebinding page through, which is what the check is for.
func (g *Gateway) originAllowed(o string) bool {
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.User != nil {
		return false // includes "null", sent by sandboxed and file: pages
	}
	return g.allowedOrigins[origin(u.Scheme, u.Host)]
}

// checkOrigin refuses browser requests from foreign origins with 403, as the
// streamable HTTP transport requires, and gives allowed origins the CORS
// headers they need, answering their preflight requests. Requests without
// Origin (non-browser clients) pass untouched.
func (g *Gateway) checkOrigin(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Add("Vary", "Origin")
		origins := r.Header.Values("Origin")
		if len(origins) == 0 {
			next.ServeHTTP(w, r)
			return
		}
		if len(origins) > 1 || !g.originAllowed(origins[0]) {
			writePlain(w, http.StatusForbidden, "403 origin not allowed")
			return
		}
		h.Set("Access-Control-Allow-Origin", origins[0])
		h.Set("Access-Control-Expose-Headers", corsExposedHeaders)
		if r.Method == http.MethodOptions && r.Header.Get("Access-Control-Request-Method") != "" {
			h.Set("Access-Control-Allow-Methods", mcpMethods)
			if allowed := preflightHeaders(r.Header.Values("Access-Control-Request-Headers")); allowed != "" {
				h.Set("Access-Control-Allow-Headers", allowed)
			}
			h.Set("Access-Control-Max-Age", "600")
			w.WriteHeader(http.StatusNoContent)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// preflightHeaders returns those of the requested headers a browser client
// may send to the MCP endpoint: the MCP transport headers (Mcp-Param-* of
// any name), Authorization and the content headers.
func preflightHeaders(requested []string) string {
	var out []string
	for _, line := range requested {
		for _, name := range strings.Split(line, ",") {
			name = strings.ToLower(strings.TrimSpace(name))
			switch {
			case name == "":
			case strings.HasPrefix(name, "mcp-param-"),
				name == "authorization", name == "content-type", name == "accept",
				name == "mcp-session-id", name == "mcp-protocol-version", name == "last-event-id",
				name == "mcp-method", name == "mcp-name", name == "x-request-id":
				out = append(out, name)
			}
		}
	}
	return strings.Join(out, ", ")
}

// allowMethods answers methods the MCP endpoint does not serve: OPTIONS
// outside a CORS preflight gets the method list, others 405. It runs before
// authentication: the list is no secret.
func allowMethods(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.Method {
		case http.MethodPost, http.MethodGet, http.MethodDelete:
			next.ServeHTTP(w, r)
		case http.MethodOptions:
			w.Header().Set("Allow", mcpMethods)
			w.WriteHeader(http.StatusNoContent)
		default:
			w.Header().Set("Allow", mcpMethods)
			writePlain(w, http.StatusMethodNotAllowed, "405 method not allowed")
		}
	})
}
