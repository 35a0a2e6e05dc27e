package gateway

import (
	"encoding/json"
	"net/http"
)

// JSON-RPC error codes the gateway answers with itself. MCP leaves
// -32000..-32019 to implementations and defines -32020..-32099.
const (
	// codeAccessDenied: the caller's Clerk account is outside the server's
	// or the tool's access rules. Stepping up scopes cannot change that,
	// so it is an error response and not an insufficient_scope challenge.
	codeAccessDenied = -32003
	// codeHeaderMismatch is the 2026-07-28 transport's HeaderMismatch: an
	// Mcp-* header disagrees with the body.
	codeHeaderMismatch = -32020
)

// rpcError is a JSON-RPC error response.
type rpcError struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Error   struct {
		Code    int             `json:"code"`
		Message string          `json:"message"`
		Data    json.RawMessage `json:"data,omitempty"`
	} `json:"error"`
}

// writeRPCError answers with a JSON-RPC error response, so an MCP client can
// show the message to its user. A single request gets one response with its
// id; a batch gets an array with a response for each of its requests (the
// messages with an id), as all of them were refused together, or one with
// id null beyond maxRPCErrorReplies of them; anything else
// (no body, a notification, a batch of notifications) gets one response
// with id null, as JSON-RPC answers what it cannot attribute.
func writeRPCError(w http.ResponseWriter, status int, req *rpcRequest, code int, msg string) {
	writeRPCErrorData(w, status, req, code, msg, nil)
}

// writeRPCErrorData is writeRPCError with the error's data member, which
// some MCP errors define (-32042's elicitations); nil leaves it out.
func writeRPCErrorData(w http.ResponseWriter, status int, req *rpcRequest, code int, msg string, data json.RawMessage) {
	one := func(id json.RawMessage) rpcError {
		e := rpcError{JSONRPC: "2.0", ID: id}
		e.Error.Code, e.Error.Message, e.Error.Data = code, msg, data
		return e
	}
	var out any = one(nil)
	if req != nil {
		var all []rpcError
		for _, m := range req.messages {
			if id := replyID(m.id); id != nil {
				all = append(all, one(id))
			}
		}
		switch {
		case req.batch && len(all) > maxRPCErrorReplies:
			// One error for the batch: repeating the message per request
			// would answer a hostile 1 MiB batch with many times that.
		case req.batch && len(all) > 0:
			out = all
		case !req.batch && len(all) == 1:
			out = all[0]
		}
	}
	body, err := json.Marshal(out)
	if err != nil {
		// Unreachable: every part is a string, a number or valid JSON.
		writePlain(w, status, msg)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// maxRPCErrorReplies is the most error responses writeRPCError writes for a
// batch; a larger one gets a single error with id null. MCP clients send
// one message per request (batches left the protocol in 2025-06-18), so
// this only bounds what a hostile batch gets back.
const maxRPCErrorReplies = 32

// replyID is the id a response to a message with raw id carries: a string
// or a number as sent; nil (no response) for a notification or an id JSON-RPC
// does not allow.
func replyID(raw json.RawMessage) json.RawMessage {
	if len(raw) == 0 || string(raw) == "null" {
		return nil
	}
	switch raw[0] {
	case '{', '[', 't', 'f':
		return nil
	}
	return raw
}
