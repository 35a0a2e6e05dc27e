package gateway

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// bodyReadTimeout bounds reading a request body, which the server's
// timeouts cannot do without also cutting streams.
const bodyReadTimeout = 30 * time.Second

// jsonRPCParseError is what a JSON-RPC server answers to a body it cannot
// parse; the gateway answers it itself when it must understand the body.
const jsonRPCParseError = `{"jsonrpc":"2.0","id":null,"error":{"code":-32700,"message":"Parse error"}}`

// applyScopePolicy requires the configured scopes of every token, and for
// each tools/call of a tool with tool scopes, those as well; a token without
// them gets 403 insufficient_scope naming every scope the request needs, so
// the client can step up. The body is read (bounded) to find the tool calls,
// a single JSON-RPC message or a batch, and handed on unchanged; a body the
// policy cannot judge is refused (400, 413) rather than passed.
func (g *Gateway) applyScopePolicy(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var tools []string
		if r.Body != nil && r.Body != http.NoBody {
			body, ok := g.readBody(w, r)
			if !ok {
				return
			}
			var err error
			tools, err = toolCalls(body)
			var bad *badCallError
			switch {
			case errors.As(err, &bad):
				g.refuseBody(w, r, http.StatusBadRequest, "400 "+bad.msg)
				return
			case err != nil && len(g.toolScopes) > 0:
				// A body we cannot parse might still be a tool call to a
				// more lenient parser upstream (NaN, comments, trailing
				// data); with tool scopes at stake it does not pass.
				infoFrom(r.Context()).auth = reasonMalformedRequest
				g.metrics.countAuth(reasonMalformedRequest)
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, jsonRPCParseError)
				return
			}
		}
		if slices.Contains(r.Header.Values("Mcp-Method"), "tools/call") {
			// The 2026-07-28 transport mirrors the tool name into a
			// header; an upstream that routes on it must not bypass us.
			for _, name := range r.Header.Values("Mcp-Name") {
				tools = append(tools, decodeHeaderValue(name))
			}
		}
		// NOTE: a copy; appending to g.scopes could write into its spare
		// capacity, shared by concurrent requests.
		needed := slices.Clone(g.scopes)
		for _, t := range tools {
			needed = append(needed, g.toolScopes[t]...)
		}
		// One challenge names everything the request needs, so a client
		// steps up once.
		if needed = unique(needed); !containsAll(infoFrom(r.Context()).identity.Scopes, needed) {
			g.challenge(w, r, http.StatusForbidden, reasonInsufficientScope, "insufficient_scope", "", needed)
			return
		}
		infoFrom(r.Context()).auth = reasonOK
		g.metrics.countAuth(reasonOK)
		next.ServeHTTP(w, r)
	})
}

// readBody reads the whole body, at most MaxBodyBytes, and puts it back for
// the proxy with an exact Content-Length. On failure it has answered.
func (g *Gateway) readBody(w http.ResponseWriter, r *http.Request) ([]byte, bool) {
	limit := g.opts.MaxBodyBytes
	tooLarge := "413 request body larger than " + strconv.FormatInt(limit, 10) + " bytes"
	if r.ContentLength > limit {
		g.refuseBody(w, r, http.StatusRequestEntityTooLarge, tooLarge)
		return nil, false
	}
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Now().Add(bodyReadTimeout))
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	// NOTE: the deadline must go before the handler streams: the server
	// reads the connection in the background from here on to notice a
	// client hanging up, and a deadline firing there would end the stream.
	_ = rc.SetReadDeadline(time.Time{})
	_ = r.Body.Close()
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			g.refuseBody(w, r, http.StatusRequestEntityTooLarge, tooLarge)
		} else {
			g.refuseBody(w, r, http.StatusBadRequest, "400 cannot read the request body")
		}
		return nil, false
	}
	r.Body = io.NopCloser(bytes.NewReader(body))
	r.ContentLength = int64(len(body))
	r.TransferEncoding = nil
	r.Trailer = nil // trailers could carry headers we stripped
	r.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
	return body, true
}

// refuseBody answers a body the policy cannot judge, in plain text.
func (g *Gateway) refuseBody(w http.ResponseWriter, r *http.Request, status int, msg string) {
	infoFrom(r.Context()).auth = reasonMalformedRequest
	g.metrics.countAuth(reasonMalformedRequest)
	writePlain(w, status, msg)
}

// badCallError is a tools/call whose shape the gateway must refuse: it
// cannot tell which tool it calls, and the upstream might read it otherwise.
type badCallError struct{ msg string }

func (e *badCallError) Error() string { return e.msg }

// toolCalls returns the tool names of every tools/call in body, a JSON-RPC
// message or a batch of them. A body that is not JSON gives an error; a
// tools/call whose params or name has an unexpected type gives a
// *badCallError. Anything else (other methods, responses, odd shapes the
// upstream will reject) gives no names.
//
// The inspection must see at least what any upstream parser sees, so it
// does not use struct decoding: keys are matched case-insensitively (Go's
// encoding/json does so upstream) and every duplicate key counts (parsers
// differ on which one wins).
func toolCalls(body []byte) ([]string, error) {
	// Validating first lets the walk below trust the syntax, so it can
	// find members and elements without decoding what it skips.
	if !json.Valid(body) {
		return nil, errors.New("parse body: not one JSON value")
	}
	msg := trimSpace(body)
	if msg[0] != '[' {
		return messageToolCalls(msg)
	}
	var names []string
	for _, m := range arrayElements(msg) {
		n, err := messageToolCalls(m)
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	return names, nil
}

// messageToolCalls returns the tool names a single message calls.
func messageToolCalls(msg []byte) ([]string, error) {
	fields, ok := objectFields(msg)
	if !ok {
		return nil, nil
	}
	call := false
	var params [][]byte
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.key, "method"):
			if m, ok := jsonString(f.value); ok && m == "tools/call" {
				call = true
			}
		case strings.EqualFold(f.key, "params"):
			params = append(params, f.value)
		}
	}
	if !call {
		return nil, nil
	}
	var names []string
	for _, p := range params {
		if string(p) == "null" {
			continue
		}
		pf, ok := objectFields(p)
		if !ok {
			return nil, &badCallError{msg: "tools/call params must be an object"}
		}
		for _, f := range pf {
			if !strings.EqualFold(f.key, "name") {
				continue
			}
			name, ok := jsonString(f.value)
			if !ok {
				return nil, &badCallError{msg: "tools/call params.name must be a string"}
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// decodeHeaderValue undoes the 2026-07-28 transport's encoding of header
// values that are not plain ASCII: "=?base64?<base64 of UTF-8>?=".
func decodeHeaderValue(v string) string {
	inner, ok := strings.CutPrefix(v, "=?base64?")
	if !ok {
		return v
	}
	inner, ok = strings.CutSuffix(inner, "?=")
	if !ok {
		return v
	}
	b, err := base64.StdEncoding.DecodeString(inner)
	if err != nil {
		return v
	}
	return string(b)
}

// containsAll reports whether granted holds every scope in needed.
func containsAll(granted, needed []string) bool {
	for _, s := range needed {
		if !slices.Contains(granted, s) {
			return false
		}
	}
	return true
}
