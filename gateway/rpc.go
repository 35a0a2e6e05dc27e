package gateway

import (
	"encoding/json"
	"slices"
)

// rpcRequest is what the gateway understood of an MCP request's body, parsed
// once by parseRequest for the steps after it (access, scopes, the tools/list
// filter), so that none of them reads the body again.
type rpcRequest struct {
	// messages are the body's JSON-RPC messages in order: one, or the
	// elements of a batch. Responses and notifications are included (a
	// response has no method, a notification no id).
	messages []rpcMessage
	// batch is set when the body was a JSON array.
	batch bool
}

// rpcMessage is one JSON-RPC message of a request body.
//
// The parse matches keys case-insensitively and keeps every duplicate, as the
// scope policy always has: an upstream parser may read any of them. method is
// what Go's encoding/json would read (the last "method" member); methods
// holds every string a "method" member had, so a check asking "is this a
// tools/list?" can look at all of them (see rpcRequest.has).
type rpcMessage struct {
	// method is the message's method; empty for a response or a message
	// without a string method.
	method string
	// methods are the values of every "method" member, duplicates included.
	methods []string
	// id is the raw JSON of the message's id, nil when it has none.
	id json.RawMessage
	// tool is the tool a tools/call calls (params.name); empty otherwise.
	// With duplicate name members, tools holds them all and tool the last.
	tool  string
	tools []string
}

// has reports whether any message of the request might be a call of method,
// counting every duplicate "method" member. A nil request has no messages.
func (r *rpcRequest) has(method string) bool {
	if r == nil {
		return false
	}
	for _, m := range r.messages {
		if slices.Contains(m.methods, method) {
			return true
		}
	}
	return false
}
