package config

import (
	"strings"
	"testing"
)

// TestToolScopeChallenge: the field is left out for the default, so that
// configurations (and their hashes) written before it existed stay as they
// were, and a gateway refuses a mode it does not know.
func TestToolScopeChallenge(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		mode    string // Config.ToolScopeChallenge
		inJSON  string // expected in the marshalled config; "" for nothing
		wantErr string // "" for valid
	}{
		"default":  {mode: ""},
		"StepUp":   {mode: ToolScopeChallengeStepUp, inJSON: `"toolScopeChallenge": "StepUp"`},
		"AtSignIn": {mode: ToolScopeChallengeAtSignIn, inJSON: `"toolScopeChallenge": "AtSignIn"`},
		"unknown":  {mode: "atsignin", wantErr: `toolScopeChallenge "atsignin" must be "StepUp" or "AtSignIn"`},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			c.ToolScopeChallenge = tc.mode
			data, err := Marshal(c)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Marshal error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.inJSON == "" && strings.Contains(string(data), "toolScopeChallenge") {
				t.Errorf("config names toolScopeChallenge for the default:\n%s", data)
			}
			if !strings.Contains(string(data), tc.inJSON) {
				t.Errorf("config does not hold %s:\n%s", tc.inJSON, data)
			}
			got, err := Parse(data)
			if err != nil || got.ToolScopeChallenge != tc.mode {
				t.Errorf("Parse = %q, %v; want %q", got.ToolScopeChallenge, err, tc.mode)
			}
		})
	}
}
