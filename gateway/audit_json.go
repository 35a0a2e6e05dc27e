package gateway

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"
)

// appendJSON appends r as one line of JSON, newline included, as
// encoding/json would write it with the struct's tags (TestAuditRecordJSON
// holds them to it). It is written out because it runs for every audited
// request, and reflection made up half the audit's cost.
func (r *auditRecord) appendJSON(b []byte) []byte {
	b = append(b, `{"time":`...)
	b = appendJSONString(b, r.Time)
	b = appendField(b, "log", r.Log, false)
	b = appendField(b, "mcpserver", r.McpServer, false)
	b = appendField(b, "request_id", r.RequestID, false)
	b = appendField(b, "trace_id", r.TraceID, true)
	b = appendField(b, "user_id", r.UserID, true)
	b = appendField(b, "client_id", r.ClientID, true)
	b = appendField(b, "email", r.Email, true)
	if r.Organizations != nil {
		b = append(b, `,"organizations":[`...)
		for i, o := range r.Organizations {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"id":`...)
			b = appendJSONString(b, o.ID)
			b = appendField(b, "slug", o.Slug, true)
			b = appendField(b, "role", o.Role, true)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	b = appendField(b, "http_method", r.HTTPMethod, false)
	b = appendField(b, "protocol_version", r.ProtocolVersion, true)
	b = appendField(b, "method", r.Method, true)
	if len(r.RPCID) > 0 {
		// A number or a string as the body held it (see replyID): no
		// whitespace inside, valid JSON.
		b = append(b, `,"rpc_id":`...)
		b = append(b, r.RPCID...)
	}
	b = appendField(b, "tool", r.Tool, true)
	if len(r.Arguments) > 0 {
		b = append(b, `,"arguments":`...)
		// Compacted: the body may spread its arguments over lines, and a
		// record is one line. They are valid JSON (parseRPC checked).
		buf := bytes.NewBuffer(b)
		if err := json.Compact(buf, r.Arguments); err != nil {
			buf.Truncate(len(b) - len(`,"arguments":`))
		}
		b = buf.Bytes()
	}
	if r.ArgumentsTruncated {
		b = append(b, `,"arguments_truncated":true`...)
	}
	b = appendField(b, "decision", r.Decision, false)
	if len(r.MissingScopes) > 0 {
		b = append(b, `,"missing_scopes":[`...)
		for i, s := range r.MissingScopes {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, s)
		}
		b = append(b, ']')
	}
	b = appendField(b, "denied_by", r.DeniedBy, true)
	b = append(b, `,"status":`...)
	b = strconv.AppendInt(b, int64(r.Status), 10)
	if r.UpstreamStatus != 0 {
		b = append(b, `,"upstream_status":`...)
		b = strconv.AppendInt(b, int64(r.UpstreamStatus), 10)
	}
	if r.RPCErrorCode != nil {
		b = append(b, `,"rpc_error_code":`...)
		b = strconv.AppendInt(b, int64(*r.RPCErrorCode), 10)
	}
	b = append(b, `,"duration_ms":`...)
	b = strconv.AppendFloat(b, r.DurationMS, 'f', -1, 64)
	b = append(b, `,"bytes_in":`...)
	b = strconv.AppendInt(b, r.BytesIn, 10)
	b = append(b, `,"bytes_out":`...)
	b = strconv.AppendInt(b, r.BytesOut, 10)
	if r.RecordsOmitted != 0 {
		b = append(b, `,"records_omitted":`...)
		b = strconv.AppendInt(b, int64(r.RecordsOmitted), 10)
	}
	return append(b, "}\n"...)
}

// appendField appends ,"key":"value", or nothing for an empty value when
// omitEmpty is set.
func appendField(b []byte, key, value string, omitEmpty bool) []byte {
	if omitEmpty && value == "" {
		return b
	}
	b = append(b, ',', '"')
	b = append(b, key...)
	b = append(b, '"', ':')
	return appendJSONString(b, value)
}

// appendJSONString appends s as a JSON string: quotes, backslashes and
// control characters escaped, invalid UTF-8 as U+FFFD, and, as
// encoding/json does, <, >, & and U+2028/U+2029 escaped too, so a record
// is safe wherever a log viewer puts it.
func appendJSONString(b []byte, s string) []byte {
	const hex = "0123456789abcdef"
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
