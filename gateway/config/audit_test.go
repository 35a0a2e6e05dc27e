package config

import (
	"strings"
	"testing"
)

// TestAudit checks the audit block: the zero value audits, and the
// arguments bound is the CRD's range.
func TestAudit(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		audit   Audit
		wantErr string // empty: valid
	}{
		"zero value":         {},
		"disabled":           {audit: Audit{Disabled: true}},
		"arguments":          {audit: Audit{ArgumentsMaxBytes: 1024}},
		"arguments at limit": {audit: Audit{ArgumentsMaxBytes: MaxAuditArgumentsBytes}},
		"negative":           {audit: Audit{ArgumentsMaxBytes: -1}, wantErr: "audit.argumentsMaxBytes -1 must be from 0 to 65536"},
		"too large":          {audit: Audit{ArgumentsMaxBytes: MaxAuditArgumentsBytes + 1}, wantErr: "audit.argumentsMaxBytes 65537"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			c := validConfig()
			c.Audit = tc.audit
			data, err := Marshal(c)
			switch {
			case tc.wantErr == "" && err != nil:
				t.Fatalf("Marshal: %v", err)
			case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
				t.Fatalf("Marshal error = %v, want one containing %q", err, tc.wantErr)
			case tc.wantErr != "":
				return
			}
			got, err := Parse(data)
			if err != nil {
				t.Fatalf("Parse: %v", err)
			}
			if got.Audit != tc.audit {
				t.Errorf("round trip: audit = %+v, want %+v", got.Audit, tc.audit)
			}
			if tc.audit == (Audit{}) && strings.Contains(string(data), `"audit"`) {
				t.Errorf("the zero audit block is written out:\n%s", data)
			}
		})
	}
}
