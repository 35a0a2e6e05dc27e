package gateway

import (
	"encoding/json"
	"errors"
	"slices"
	"testing"
)

func TestToolCalls(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		body string
		// want are the tool names found.
		want []string
		// wantBad expects a *badCallError; wantErr any other error.
		wantBad, wantErr bool
	}{
		"tools/call":                 {body: `{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}}`, want: []string{"delete_repo"}},
		"leading whitespace":         {body: " \n\t{\"method\":\"tools/call\",\"params\":{\"name\":\"a\"}}\n", want: []string{"a"}},
		"escaped name":               {body: `{"method":"tools/call","params":{"name":"\u0064elete_repo"}}`, want: []string{"delete_repo"}},
		"other method":               {body: `{"jsonrpc":"2.0","id":1,"method":"tools/list","params":{"name":"delete_repo"}}`},
		"notification":               {body: `{"jsonrpc":"2.0","method":"notifications/initialized"}`},
		"response":                   {body: `{"jsonrpc":"2.0","id":1,"result":{}}`},
		"batch":                      {body: `[{"method":"tools/list"},{"method":"tools/call","params":{"name":"a"}},{"method":"tools/call","params":{"name":"b"}}]`, want: []string{"a", "b"}},
		"batch with non-objects":     {body: `[1,"x",null,{"method":"tools/call","params":{"name":"a"}}]`, want: []string{"a"}},
		"empty batch":                {body: `[]`},
		"not an object":              {body: `"tools/call"`},
		"method key in another case": {body: `{"METHOD":"tools/call","params":{"name":"a"}}`, want: []string{"a"}},
		"params key folded":          {body: `{"method":"tools/call","paramſ":{"name":"a"}}`, want: []string{"a"}},
		"name key in another case":   {body: `{"method":"tools/call","params":{"name":"safe","NAME":"a"}}`, want: []string{"safe", "a"}},
		"duplicate name":             {body: `{"method":"tools/call","params":{"name":"a","name":"safe"}}`, want: []string{"a", "safe"}},
		"duplicate params":           {body: `{"method":"tools/call","params":{"name":"safe"},"params":{"name":"a"}}`, want: []string{"safe", "a"}},
		"duplicate method":           {body: `{"method":"tools/list","method":"tools/call","params":{"name":"a"}}`, want: []string{"a"}},
		"method of another type":     {body: `{"method":7,"params":{"name":"a"}}`},
		"params null":                {body: `{"method":"tools/call","params":null}`},
		"no params":                  {body: `{"method":"tools/call"}`},
		"no name":                    {body: `{"method":"tools/call","params":{"arguments":{}}}`},
		"name an object":             {body: `{"method":"tools/call","params":{"name":{"x":1}}}`, wantBad: true},
		"name a number":              {body: `{"method":"tools/call","params":{"name":1}}`, wantBad: true},
		"name null":                  {body: `{"method":"tools/call","params":{"name":null}}`, wantBad: true},
		"params an array":            {body: `{"method":"tools/call","params":["a"]}`, wantBad: true},
		"bad call inside a batch":    {body: `[{"method":"tools/call","params":{"name":[]}}]`, wantBad: true},
		"not JSON":                   {body: `method=tools/call`, wantErr: true},
		"NaN":                        {body: `{"id":NaN,"method":"tools/call","params":{"name":"a"}}`, wantErr: true},
		"trailing value":             {body: `{"method":"ping"}{"method":"tools/call","params":{"name":"a"}}`, wantErr: true},
		"truncated":                  {body: `{"method":"tools/call","params":{"name":"a"`, wantErr: true},
		"empty":                      {body: ``, wantErr: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := toolCalls([]byte(tc.body))
			var bad *badCallError
			switch {
			case tc.wantBad:
				if !errors.As(err, &bad) {
					t.Fatalf("error = %v, want a bad call", err)
				}
			case tc.wantErr:
				if err == nil || errors.As(err, &bad) {
					t.Fatalf("error = %v, want a parse error", err)
				}
			case err != nil:
				t.Fatalf("error = %v", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("tools = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestDecodeHeaderValue(t *testing.T) {
	t.Parallel()
	tests := map[string]string{
		"plain":                           "plain",
		"=?base64?SGVsbG8sIOS4lueVjA==?=": "Hello, 世界",
		"=?base64?not base64?=":           "=?base64?not base64?=",
		"=?base64?unterminated":           "=?base64?unterminated",
		"=?BASE64?ZGVsZXRlX3JlcG8=?=":     "=?BASE64?ZGVsZXRlX3JlcG8=?=",
	}
	for in, want := range tests {
		if got := decodeHeaderValue(in); got != want {
			t.Errorf("decodeHeaderValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// FuzzToolCalls checks that the inspection never panics and never misses
// the tool a plain decoder sees: whatever the body, if encoding/json reads
// it as a tools/call of name, name is among the tools found.
func FuzzToolCalls(f *testing.F) {
	for _, s := range []string{
		`{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo"}}`,
		`[{"method":"tools/call","params":{"name":"a"}},{"method":"ping"}]`,
		`{"method":"tools/call","params":{"Name":"a","name":"b"}}`,
		`{"method":"tools/call","params":{"name":1}}`,
		`{"id":NaN}`, `[]`, `"x"`, ``,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		names, err := toolCalls(body)
		var msg struct {
			Method string `json:"method"`
			Params struct {
				Name string `json:"name"`
			} `json:"params"`
		}
		if json.Unmarshal(body, &msg) != nil || msg.Method != "tools/call" || msg.Params.Name == "" {
			return
		}
		if err == nil && !slices.Contains(names, msg.Params.Name) {
			t.Fatalf("encoding/json reads a call of %q; the inspection found %q", msg.Params.Name, names)
		}
	})
}

// TestEscapeOrgPart checks the organizations header's escaping: Clerk's
// spelling passes as is; ',' (the list separator), ':' outside a role,
// space, '%' and bytes beyond ASCII are percent-encoded.
func TestEscapeOrgPart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in        string
		keepColon bool
		want      string
	}{
		{"org_2abcXYZ", false, "org_2abcXYZ"},
		{"acme-corp.eu~1", false, "acme-corp.eu~1"},
		{"org:admin", true, "org:admin"},
		{"org:admin", false, "org%3Aadmin"},
		{"a,b", false, "a%2Cb"},
		{"team a%", true, "team%20a%25"},
		{"équipe", false, "%C3%A9quipe"},
		{"", false, ""},
	} {
		if got := escapeOrgPart(tc.in, tc.keepColon); got != tc.want {
			t.Errorf("escapeOrgPart(%q, %v) = %q, want %q", tc.in, tc.keepColon, got, tc.want)
		}
	}
}
