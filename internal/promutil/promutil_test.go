package promutil

import (
	"errors"
	"net/http"
	"testing"
)

func TestHTTPOutcome(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		status int   // the response's status; 0: no response
		err    error // what RoundTrip returned
		want   string
	}{
		"ok":            {http.StatusOK, nil, OutcomeOK},
		"redirect":      {http.StatusFound, nil, OutcomeOK},
		"bad request":   {http.StatusBadRequest, nil, OutcomeRejected},
		"not found":     {http.StatusNotFound, nil, OutcomeRejected},
		"unauthorized":  {http.StatusUnauthorized, nil, OutcomeUnauthorized},
		"forbidden":     {http.StatusForbidden, nil, OutcomeUnauthorized},
		"rate limited":  {http.StatusTooManyRequests, nil, OutcomeRateLimited},
		"server error":  {http.StatusInternalServerError, nil, OutcomeServerError},
		"unavailable":   {http.StatusServiceUnavailable, nil, OutcomeServerError},
		"network error": {0, errors.New("dial tcp: connection refused"), OutcomeNetworkError},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			var resp *http.Response
			if tc.status != 0 {
				resp = &http.Response{StatusCode: tc.status}
			}
			if got := HTTPOutcome(resp, tc.err); got != tc.want {
				t.Errorf("HTTPOutcome = %q, want %q", got, tc.want)
			}
		})
	}
}
