package gateway

import (
	"strings"
	"testing"
)

func TestBearerChallenge(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		params []authParam
		want   string
	}{
		"no parameters": {
			want: "Bearer",
		},
		"401 without a token": {
			params: []authParam{{"resource_metadata", "https://tools.example.com/.well-known/oauth-protected-resource/mcp"}, {"scope", "profile email"}},
			want:   `Bearer resource_metadata="https://tools.example.com/.well-known/oauth-protected-resource/mcp", scope="profile email"`,
		},
		"empty values are left out": {
			params: []authParam{{"resource_metadata", "https://x/m"}, {"scope", ""}, {"error", "invalid_token"}},
			want:   `Bearer resource_metadata="https://x/m", error="invalid_token"`,
		},
		"quote and backslash are escaped": {
			params: []authParam{{"scope", `a"b c\d`}, {"error_description", `say "hi"\`}},
			want:   `Bearer scope="a\"b c\\d", error_description="say \"hi\"\\"`,
		},
		"an attempt to add a parameter stays inside the value": {
			params: []authParam{{"scope", `x", error="fake`}},
			want:   `Bearer scope="x\", error=\"fake"`,
		},
		"control characters cannot split the header": {
			params: []authParam{{"error_description", "line1\r\nSet-Cookie: a=b\tend\x7f"}},
			want:   `Bearer error_description="line1  Set-Cookie: a=b end "`,
		},
		"non-ASCII passes as obs-text": {
			params: []authParam{{"error_description", "café"}},
			want:   `Bearer error_description="café"`,
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got := bearerChallenge(tc.params...)
			if got != tc.want {
				t.Errorf("bearerChallenge = %s\n want %s", got, tc.want)
			}
			if strings.ContainsAny(got, "\r\n") {
				t.Errorf("challenge %q holds a line break", got)
			}
		})
	}
}

// FuzzBearerChallenge checks that any value comes back out of the challenge
// unchanged (control characters aside) and alone: quoting never lets a value
// end early.
func FuzzBearerChallenge(f *testing.F) {
	for _, s := range []string{"", "profile email", `a"b`, `\`, `x", error="y`, "\r\n"} {
		f.Add(s, "second")
	}
	f.Fuzz(func(t *testing.T, a, b string) {
		got := bearerChallenge(authParam{"scope", a}, authParam{"error", b})
		params, ok := unquoteParams(strings.TrimPrefix(strings.TrimPrefix(got, "Bearer"), " "))
		if !ok {
			t.Fatalf("cannot parse %q", got)
		}
		want := map[string]string{}
		if a != "" {
			want["scope"] = controlToSpace(a)
		}
		if b != "" {
			want["error"] = controlToSpace(b)
		}
		if len(params) != len(want) {
			t.Fatalf("%q parsed to %q, want %q", got, params, want)
		}
		for k, v := range want {
			if params[k] != v {
				t.Fatalf("%q: %s = %q, want %q", got, k, params[k], v)
			}
		}
	})
}

// controlToSpace replaces control bytes, leaving all others (invalid UTF-8
// included) alone, as the challenge writer does.
func controlToSpace(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
	return string(b)
}

// unquoteParams parses name="value" pairs separated by ", ".
func unquoteParams(s string) (map[string]string, bool) {
	out := map[string]string{}
	for s != "" {
		name, rest, ok := strings.Cut(s, `="`)
		if !ok {
			return nil, false
		}
		var v strings.Builder
		i := 0
		for ; i < len(rest); i++ {
			if rest[i] == '\\' && i+1 < len(rest) {
				i++
				v.WriteByte(rest[i])
				continue
			}
			if rest[i] == '"' {
				break
			}
			v.WriteByte(rest[i])
		}
		if i == len(rest) {
			return nil, false
		}
		if _, dup := out[name]; dup {
			return nil, false
		}
		out[name] = v.String()
		s = strings.TrimPrefix(rest[i+1:], ", ")
	}
	return out, true
}
