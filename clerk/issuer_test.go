package clerk

import (
	"encoding/base64"
	"strings"
	"testing"
)

func TestIssuerFromPublishableKey(t *testing.T) {
	t.Parallel()
	enc := func(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }
	tests := map[string]struct {
		key     string
		want    string // issuer on success
		wantErr string // substring of the error; empty means success
	}{
		"development key":   {key: "pk_test_" + enc("happy-otter-12.clerk.accounts.dev$"), want: "https://happy-otter-12.clerk.accounts.dev"},
		"production key":    {key: "pk_live_" + enc("clerk.example.com$"), want: "https://clerk.example.com"},
		"padding stripped":  {key: "pk_test_" + strings.TrimRight(enc("clerk.example.co$"), "="), want: "https://clerk.example.co"},
		"url-safe alphabet": {key: "pk_test_" + base64.RawURLEncoding.EncodeToString([]byte("a.b-c.dev$")), want: "https://a.b-c.dev"},
		"wrong prefix":      {key: "sk_test_" + enc("clerk.example.com$"), wantErr: "must start with pk_test_ or pk_live_"},
		"empty body":        {key: "pk_test_", wantErr: "nothing after its prefix"},
		"not base64":        {key: "pk_test_!!!!", wantErr: "not valid base64"},
		"no dollar":         {key: "pk_test_" + enc("clerk.example.com"), wantErr: "ending in '$'"},
		"two dollars":       {key: "pk_test_" + enc("clerk.example.com$$"), wantErr: "more than one '$'"},
		"host without dot":  {key: "pk_test_" + enc("localhost$"), wantErr: "not a host name"},
		"host with path":    {key: "pk_test_" + enc("clerk.example.com/x$"), wantErr: "not a host name"},
		"host with port":    {key: "pk_test_" + enc("clerk.example.com:443$"), wantErr: "not a host name"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, err := IssuerFromPublishableKey(tc.key)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if got != tc.want {
				t.Fatalf("issuer = %q, want %q", got, tc.want)
			}
		})
	}
}
