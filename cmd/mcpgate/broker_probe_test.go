package main

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk"
)

// TestClerkProbe_record walks the readiness rule through sequences of
// probe outcomes.
func TestClerkProbe_record(t *testing.T) {
	t.Parallel()
	ok, fail := error(nil), errors.New("dial tcp: connection refused")
	tests := map[string]struct {
		// outcomes are the probes' results, in order.
		outcomes []error
		// want is whether the URL is reachable after them.
		want bool
	}{
		"never probed":                   {outcomes: nil, want: false},
		"first probe fails":              {outcomes: []error{fail}, want: false},
		"first probe answers":            {outcomes: []error{ok}, want: true},
		"two failures after an answer":   {outcomes: []error{ok, fail, fail}, want: true},
		"three failures after an answer": {outcomes: []error{ok, fail, fail, fail}, want: false},
		"an answer after three failures": {outcomes: []error{ok, fail, fail, fail, ok}, want: true},
		"an answer resets the count":     {outcomes: []error{ok, fail, fail, ok, fail, fail}, want: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			const u = "https://api.clerk.test/v1"
			p := newClerkProbe([]string{u}, http.DefaultClient, time.Second, slog.New(slog.DiscardHandler))
			for _, err := range tc.outcomes {
				p.record(u, err)
			}
			if got := p.reachable(u); got != tc.want {
				t.Errorf("reachable = %v, want %v", got, tc.want)
			}
			if err := p.check(); (err == nil) != tc.want {
				t.Errorf("check() = %v, want reachable %v", err, tc.want)
			}
		})
	}
}

// TestClerkProbe_probe checks what counts as an answer: any HTTP status,
// but not a refused connection or a server that does not answer in time.
func TestClerkProbe_probe(t *testing.T) {
	t.Parallel()
	status := func(code int) string {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "" {
				t.Error("the probe sent credentials")
			}
			w.WriteHeader(code)
		}))
		t.Cleanup(srv.Close)
		return srv.URL + "/v1"
	}
	hang := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); slow.Close() })
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/v1"
	_ = ln.Close()

	tests := map[string]struct {
		url      string
		answered bool
	}{
		"401":                {url: status(http.StatusUnauthorized), answered: true},
		"404":                {url: status(http.StatusNotFound), answered: true},
		"503":                {url: status(http.StatusServiceUnavailable), answered: true},
		"connection refused": {url: closed},
		"no answer in time":  {url: slow.URL + "/v1"},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := newClerkProbe([]string{tc.url}, clerk.NewHTTPClient(), 200*time.Millisecond, slog.New(slog.DiscardHandler))
			if err := p.probe(context.Background(), tc.url); (err == nil) != tc.answered {
				t.Errorf("probe = %v, want answered %v", err, tc.answered)
			}
		})
	}
}

// TestClerkProbe_run probes a Backend API that answers, then goes away:
// reachable at once, unreachable after the failures in a row.
func TestClerkProbe_run(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	u := srv.URL + "/v1"
	p := newClerkProbe([]string{u}, clerk.NewHTTPClient(), 20*time.Millisecond, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go p.run(ctx)
	waitFor := func(want bool) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for p.reachable(u) != want {
			if time.Now().After(deadline) {
				t.Fatalf("reachable never became %v: %v", want, p.check())
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitFor(true)
	srv.Close()
	waitFor(false)
	if err := p.check(); err == nil || !strings.Contains(err.Error(), u) {
		t.Errorf("check() = %v, want the unreachable URL named", err)
	}
}
