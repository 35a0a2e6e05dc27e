package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"strings"
)

// rpcRequest is what the gateway understood of an MCP request's body, parsed
// once by parseRequest for the steps after it (access, scopes, the header
// check, the tools/list filter), so that none of them reads the body again.
type rpcRequest struct {
	// messages are the body's JSON-RPC messages in order: one, or the
	// elements of a batch. Responses and notifications are included (a
	// response has no method, a notification no id); a batch element that
	// is not an object is a message with nothing set.
	messages []rpcMessage
	// batch is set when the body was a JSON array.
	batch bool
}

// rpcMessage is one JSON-RPC message of a request body.
//
// The parse matches keys case-insensitively and keeps every duplicate, as
// the scope policy always has: an upstream parser may read any of them.
// method is what Go's encoding/json would read (the last "method" member);
// methods holds every string a "method" member had, so that a check asking
// "is this a tools/list?" can look at all of them (see rpcRequest.has).
type rpcMessage struct {
	// method is the message's method; empty for a response or a message
	// without a string method.
	method string
	// methods are the values of every "method" member, duplicates included.
	methods []string
	// id is the raw JSON of the message's id (the last "id" member), nil
	// when it has none.
	id json.RawMessage
	// tool is the tool a tools/call calls (params.name); empty otherwise.
	// With duplicate name members, tool is the last and names holds all.
	tool string
	// names and uris are the string values of every params.name and
	// params.uri member, whatever the method: the tools a tools/call calls,
	// and what the Mcp-Name header must equal. oddName is set when one of
	// them is no string, which no header value can match.
	names, uris []string
	oddName     bool
	// arguments (a tools/call's params.arguments, raw) and protocolVersion
	// (an initialize's) are for the audit stream (noteAuditParam).
	arguments       json.RawMessage
	protocolVersion string
}

// toolNames returns the tool names of every tools/call, in order.
func (r *rpcRequest) toolNames() []string {
	var names []string
	for _, m := range r.messages {
		if slices.Contains(m.methods, "tools/call") {
			names = append(names, m.names...)
		}
	}
	return names
}

// badCallError is a tools/call whose shape the gateway must refuse: it
// cannot tell which tool it calls, and the upstream might read it otherwise.
type badCallError struct{ msg string }

func (e *badCallError) Error() string { return e.msg }

// parseRPC parses body, a JSON-RPC message or a batch of them. A body that
// is not one JSON value gives an error; a tools/call whose params or name
// has an unexpected type gives a *badCallError. Anything else (responses,
// odd shapes the upstream will reject) parses to what it holds.
//
// The parse must see at least what any upstream parser sees, so it does
// not use struct decoding: keys are matched case-insensitively (Go's
// encoding/json does so upstream) and every duplicate key counts (parsers
// differ on which one wins).
func parseRPC(body []byte) (*rpcRequest, error) {
	// Validating first lets the walk below trust the syntax, so it can
	// find members and elements without decoding what it skips.
	if !json.Valid(body) {
		return nil, errors.New("parse body: not one JSON value")
	}
	raw := trimSpace(body)
	if raw[0] != '[' {
		m, err := parseMessage(raw)
		if err != nil {
			return nil, err
		}
		return &rpcRequest{messages: []rpcMessage{m}}, nil
	}
	elems := arrayElements(raw)
	req := &rpcRequest{batch: true, messages: make([]rpcMessage, 0, len(elems))}
	for _, e := range elems {
		m, err := parseMessage(e)
		if err != nil {
			return nil, err
		}
		req.messages = append(req.messages, m)
	}
	return req, nil
}

// toolCalls returns the tool names of every tools/call in body, with
// parseRPC's errors.
func toolCalls(body []byte) ([]string, error) {
	req, err := parseRPC(body)
	if err != nil {
		return nil, err
	}
	return req.toolNames(), nil
}

// parseMessage parses one message of a body json.Valid accepted.
func parseMessage(raw []byte) (rpcMessage, error) {
	var m rpcMessage
	fields, ok := objectFields(raw)
	if !ok {
		return m, nil
	}
	var params [][]byte
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.key, "method"):
			if s, ok := jsonString(f.value); ok {
				m.method = s
				m.methods = append(m.methods, s)
			} else {
				m.method = ""
			}
		case strings.EqualFold(f.key, "id"):
			m.id = json.RawMessage(f.value)
		case strings.EqualFold(f.key, "params"):
			params = append(params, f.value)
		}
	}
	call := slices.Contains(m.methods, "tools/call")
	for _, p := range params {
		if string(p) == "null" {
			continue
		}
		pf, ok := objectFields(p)
		if !ok {
			if call {
				return m, &badCallError{msg: "tools/call params must be an object"}
			}
			continue
		}
		for _, f := range pf {
			m.noteAuditParam(f, call)
			isName := strings.EqualFold(f.key, "name")
			if !isName && !strings.EqualFold(f.key, "uri") {
				continue
			}
			s, ok := jsonString(f.value)
			switch {
			case isName && call && !ok:
				return m, &badCallError{msg: "tools/call params.name must be a string"}
			case !ok:
				m.oddName = true
			case isName:
				m.names = append(m.names, s)
				if call {
					m.tool = s
				}
			default:
				m.uris = append(m.uris, s)
			}
		}
	}
	return m, nil
}
