package clerk

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	sdk "github.com/clerk/clerk-sdk-go/v2"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 5, 12, 10, 0, 0, 0, time.UTC)
	tests := map[string]struct {
		header string        // Retry-After value
		want   time.Duration // parsed delay
	}{
		"absent":           {"", 0},
		"seconds":          {"7", 7 * time.Second},
		"zero":             {"0", 0},
		"negative":         {"-3", 0},
		"huge":             {"99999999999", maxRetryAfter},
		"http date":        {now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		"date in the past": {now.Add(-time.Hour).Format(http.TimeFormat), 0},
		"garbage":          {"soon", 0},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			if got := parseRetryAfter(tc.header, now); got != tc.want {
				t.Errorf("parseRetryAfter(%q) = %s, want %s", tc.header, got, tc.want)
			}
		})
	}
}

// TestBackend_nonClerkErrors checks what the SDK alone would lose: the
// status of an error whose body is not a Clerk error document (a proxy's
// HTML page), Retry-After, and the bound on response size.
func TestBackend_nonClerkErrors(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/v1/proxy":
			w.Header().Set("Retry-After", "3")
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte("<html>upstream connect error sk_test_leak</html>"))
		case "/v1/huge":
			_, _ = w.Write([]byte(`{"object":"` + strings.Repeat("x", maxResponseBytes) + `"}`))
		case "/v1/redirect":
			http.Redirect(w, r, "https://elsewhere.example.com/", http.StatusFound)
		}
	}))
	t.Cleanup(srv.Close)
	b := newBackend(srv.URL+"/v1", nil)
	ctx := context.Background()

	var out settingsResponse
	err := b.call(ctx, "sk_test_x", "probe", sdk.NewAPIRequest(http.MethodGet, "/proxy"), &out)
	var be *BackendError
	if !errors.As(err, &be) || be.StatusCode != http.StatusServiceUnavailable || be.RetryAfter != 3*time.Second {
		t.Fatalf("got %#v, want a BackendError with 503 and Retry-After 3s", err)
	}
	if StatusCode(err) != 503 || strings.Contains(err.Error(), "sk_test_leak") {
		t.Errorf("StatusCode = %d, message %q", StatusCode(err), err)
	}

	err = b.call(ctx, "sk_test_x", "probe", sdk.NewAPIRequest(http.MethodGet, "/huge"), &out)
	if err == nil || !strings.Contains(err.Error(), "exceeds") || StatusCode(err) != 0 {
		t.Errorf("oversized body: got %v", err)
	}

	err = b.call(ctx, "sk_test_x", "probe", sdk.NewAPIRequest(http.MethodGet, "/redirect"), &out)
	if StatusCode(err) != http.StatusFound {
		t.Errorf("redirect: got %v, want a BackendError with 302", err)
	}
}
