// Package clerk talks to Clerk, the OAuth authorization server behind every gateway.
package clerk

import (
	"encoding/base64"
	"fmt"
	"strings"
)

// IssuerFromPublishableKey derives the token issuer, the instance's Frontend
// API URL, from a publishable key: pk_test_ or pk_live_ followed by the base64
// encoding (standard or URL-safe, padding optional) of "<frontend-api-host>$".
func IssuerFromPublishableKey(key string) (string, error) {
	var encoded string
	switch {
	case strings.HasPrefix(key, "pk_test_"):
		encoded = strings.TrimPrefix(key, "pk_test_")
	case strings.HasPrefix(key, "pk_live_"):
		encoded = strings.TrimPrefix(key, "pk_live_")
	default:
		return "", fmt.Errorf("publishable key must start with pk_test_ or pk_live_")
	}
	encoded = strings.TrimRight(encoded, "=")
	if encoded == "" {
		return "", fmt.Errorf("publishable key has nothing after its prefix")
	}
	// URL-safe and standard base64 differ only in two characters; accept both.
	encoded = strings.NewReplacer("-", "+", "_", "/").Replace(encoded)
	decoded, err := base64.RawStdEncoding.DecodeString(encoded)
	if err != nil {
		return "", fmt.Errorf("publishable key is not valid base64: %w", err)
	}
	host, ok := strings.CutSuffix(string(decoded), "$")
	switch {
	case !ok:
		return "", fmt.Errorf("publishable key does not decode to a host ending in '$'")
	case strings.Contains(host, "$"):
		return "", fmt.Errorf("publishable key decodes to more than one '$'")
	case !validHost(host):
		return "", fmt.Errorf("publishable key decodes to %q, which is not a host name", host)
	}
	return "https://" + host, nil
}

// validHost accepts DNS names with at least one dot, as Frontend API hosts are.
func validHost(host string) bool {
	if !strings.Contains(host, ".") || strings.HasPrefix(host, ".") || strings.HasSuffix(host, ".") || len(host) > 253 {
		return false
	}
	for _, r := range host {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}
