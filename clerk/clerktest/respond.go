package clerktest

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
)

// maxBodyBytes bounds every request body the emulator reads.
const maxBodyBytes = 1 << 20

// clerkError is one entry of the spec's ClerkErrors schema.
type clerkError struct {
	Message     string         `json:"message"`
	LongMessage string         `json:"long_message"`
	Code        string         `json:"code"`
	Meta        map[string]any `json:"meta,omitempty"`
}

// clerkErrors is the spec's ClerkErrors schema, Clerk's error body on both APIs.
type clerkErrors struct {
	Errors       []clerkError `json:"errors"`
	ClerkTraceID string       `json:"clerk_trace_id,omitempty"`
}

// writeClerkError answers with Clerk's error body. The trace ID goes in the
// body and in the Clerk-Trace-Id header, where clerk-sdk-go reads it.
func writeClerkError(w http.ResponseWriter, status int, e clerkError) {
	trace := newTraceID()
	w.Header().Set("Clerk-Trace-Id", trace)
	writeJSON(w, status, clerkErrors{Errors: []clerkError{e}, ClerkTraceID: trace})
}

// notFound is Clerk's answer to a path it does not serve.
func notFound(w http.ResponseWriter, r *http.Request) {
	writeClerkError(w, http.StatusNotFound, clerkError{
		Message:     "not found",
		LongMessage: "The requested resource " + r.URL.Path + " was not found",
		Code:        "resource_not_found",
	})
}

// oauthError is the RFC 6749 section 5.2 error body, which the Frontend
// API's OAuth endpoints use instead of ClerkErrors.
type oauthError struct {
	Error       string `json:"error"`
	Description string `json:"error_description,omitempty"`
}

// writeOAuthError answers an OAuth endpoint with an RFC 6749 error body.
func writeOAuthError(w http.ResponseWriter, status int, code, description string) {
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	writeJSON(w, status, oauthError{Error: code, Description: description})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	body, err := json.Marshal(v)
	if err != nil {
		http.Error(w, "encode response: "+err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(append(body, '\n'))
}

// readBody reads a request body of at most maxBodyBytes.
func readBody(r *http.Request) ([]byte, error) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBodyBytes+1))
	if err == nil && len(body) > maxBodyBytes {
		err = errors.New("request body too large")
	}
	return body, err
}
