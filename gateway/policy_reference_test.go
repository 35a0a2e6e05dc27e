package gateway

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"
)

// The tool-call inspection as it was before the JSON walker (jsonwalk.go):
// encoding/json's tokenizer throughout. It is slow but plainly right, so
// the walker must agree with it on every input.

func referenceToolCalls(body []byte) ([]string, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	var msg json.RawMessage
	if err := dec.Decode(&msg); err != nil {
		return nil, fmt.Errorf("parse body: %w", err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("parse body: data after the JSON value")
	}
	if msg = bytes.TrimLeft(msg, " \t\r\n"); msg[0] != '[' {
		return referenceMessageToolCalls(msg)
	}
	var batch []json.RawMessage
	if err := json.Unmarshal(msg, &batch); err != nil {
		return nil, fmt.Errorf("parse batch: %w", err)
	}
	var names []string
	for _, m := range batch {
		n, err := referenceMessageToolCalls(m)
		if err != nil {
			return nil, err
		}
		names = append(names, n...)
	}
	return names, nil
}

// messageToolCalls returns the tool names a single message calls.
func referenceMessageToolCalls(msg json.RawMessage) ([]string, error) {
	fields, ok := referenceObjectFields(msg)
	if !ok {
		return nil, nil
	}
	call := false
	var params []json.RawMessage
	for _, f := range fields {
		switch {
		case strings.EqualFold(f.key, "method"):
			var m string
			if json.Unmarshal(f.value, &m) == nil && m == "tools/call" {
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
		pf, ok := referenceObjectFields(p)
		if !ok {
			return nil, &badCallError{msg: "tools/call params must be an object"}
		}
		for _, f := range pf {
			if !strings.EqualFold(f.key, "name") {
				continue
			}
			var name string
			if f.value[0] != '"' || json.Unmarshal(f.value, &name) != nil {
				return nil, &badCallError{msg: "tools/call params.name must be a string"}
			}
			names = append(names, name)
		}
	}
	return names, nil
}

// referenceField is one member of a JSON object.
type referenceField struct {
	key   string
	value json.RawMessage
}

// referenceObjectFields lists the members of a JSON object in order, duplicates
// included; ok is false when raw is not an object.
func referenceObjectFields(raw json.RawMessage) ([]referenceField, bool) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return nil, false
	}
	var fields []referenceField
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, false
		}
		key, _ := t.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return nil, false
		}
		fields = append(fields, referenceField{key: key, value: v})
	}
	return fields, true
}

// FuzzToolCallsMatchesReference: the walker finds exactly the tools the
// reference finds, and fails exactly where it fails, in the same way.
func FuzzToolCallsMatchesReference(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{"text":"hello"}}}`,
		` [ {"method" : "tools/call" , "params" : {"name":"a"}} , {"method":"ping"} , 1 , "x" , null , [ ] ] `,
		`{"method":"tools/call","params":{"arguments":{"name":"decoy","s":"}]\"{["},"name":"real"}}`,
		`{"method":"tools/call","params":{"a":[1,{"b":"]"}],"name":"x\\"}}`,
		`{"METHOD":"tools/call","Params":{"NAME":"\u0064elete"},"params":null}`,
		`{"method":"tools\/call","params":{"name":"a"},"params":{"name":"b"}}`,
		`{"method":"tools/call","params":{"name":1}}`,
		`{"method":"tools/call","params":[{"name":"a"}]}`,
		`{"method":"tools/call","params":{"name":"\ud800"}}`,
		"{\"method\":\"tools/call\",\"params\":{\"name\":\"\xff\"}}",
		`{"method":"tools/call","params":{"n\u0061me":"esc"}}`,
		`{"method":"tools/call","params":{"name":"a","x":-1.5e+10,"y":true,"z":false,"w":null}}`,
		`{}`, `[]`, `"x"`, `1`, ``, `{`, `{"a":1}x`, `{"id":NaN}`, `[1,]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		got, gotErr := toolCalls(body)
		want, wantErr := referenceToolCalls(body)
		if errorKind(gotErr) != errorKind(wantErr) {
			t.Fatalf("%q: error %v, the reference gives %v", body, gotErr, wantErr)
		}
		if gotErr == nil && !slices.Equal(got, want) {
			t.Fatalf("%q: tools %q, the reference finds %q", body, got, want)
		}
	})
}

// errorKind classes an inspection error: none, a refused call, unparsable.
func errorKind(err error) string {
	var bad *badCallError
	switch {
	case err == nil:
		return "none"
	case errors.As(err, &bad):
		return "bad call: " + bad.msg
	default:
		return "not JSON"
	}
}

func BenchmarkToolCalls(b *testing.B) {
	body := []byte(`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"echo","arguments":{"text":"hello"}}}`)
	for name, inspect := range map[string]func([]byte) ([]string, error){"walker": toolCalls, "reference": referenceToolCalls} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if names, err := inspect(body); err != nil || len(names) != 1 {
					b.Fatal(names, err)
				}
			}
		})
	}
}
