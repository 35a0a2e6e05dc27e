package gateway

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A small walker over JSON that json.Valid has accepted. The tool-scope
// policy needs the members of one or two objects per request, and decoding
// the whole message with encoding/json's tokenizer cost more than the rest
// of the gateway's checks together. Because the input is known to be valid,
// finding where a value ends only needs to track strings and nesting; every
// string that matters is still decoded by encoding/json.
//
// Never call these functions on input that json.Valid has not accepted.

// field is one member of a JSON object.
type field struct {
	key   string
	value []byte
}

// isSpace reports JSON's insignificant whitespace.
func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }

// trimSpace drops the whitespace around a JSON value.
func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}

// skipSpace returns the index of the first non-whitespace byte at or after i.
func skipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

// valueEnd returns the index just past the value that starts at b[i].
func valueEnd(b []byte, i int) int {
	switch b[i] {
	case '"':
		return stringEnd(b, i)
	case '{', '[':
		depth := 0
		for i < len(b) {
			switch b[i] {
			case '"':
				i = stringEnd(b, i)
				continue
			case '{', '[':
				depth++
			case '}', ']':
				depth--
				if depth == 0 {
					return i + 1
				}
			}
			i++
		}
		return i
	default: // a number, true, false or null
		for i < len(b) && b[i] != ',' && b[i] != '}' && b[i] != ']' && !isSpace(b[i]) {
			i++
		}
		return i
	}
}

// stringEnd returns the index just past the string that starts at b[i].
func stringEnd(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch b[i] {
		case '\\':
			i++ // the escaped byte cannot end the string
		case '"':
			return i + 1
		}
	}
	return i
}

// jsonString decodes a JSON string value; ok is false for any other value.
func jsonString(v []byte) (string, bool) {
	if len(v) < 2 || v[0] != '"' {
		return "", false
	}
	if inner := v[1 : len(v)-1]; bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return string(inner), true
	}
	// Escapes, and invalid UTF-8 (replaced by U+FFFD), are decoded exactly
	// as an upstream on encoding/json would decode them.
	var s string
	if err := json.Unmarshal(v, &s); err != nil {
		return "", false
	}
	return s, true
}

// objectFields lists the members of a JSON object in order, duplicates
// included; ok is false when raw is not an object.
func objectFields(raw []byte) ([]field, bool) {
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	var fields []field
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] != '}' {
		keyEnd := stringEnd(raw, i)
		key, _ := jsonString(raw[i:keyEnd])
		i = skipSpace(raw, keyEnd) + 1 // past ':'
		i = skipSpace(raw, i)
		end := valueEnd(raw, i)
		fields = append(fields, field{key: key, value: raw[i:end]})
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return fields, true
}

// arrayElements lists the elements of a JSON array.
func arrayElements(raw []byte) [][]byte {
	var elems [][]byte
	i := skipSpace(raw, 1)
	for i < len(raw) && raw[i] != ']' {
		end := valueEnd(raw, i)
		elems = append(elems, raw[i:end])
		i = skipSpace(raw, end)
		if i < len(raw) && raw[i] == ',' {
			i = skipSpace(raw, i+1)
		}
	}
	return elems
}
