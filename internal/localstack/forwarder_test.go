package localstack

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestForwarderFollowsTheBackend checks what keeps a gateway's URL stable:
// new connections go to the current backend, none while there is none.
func TestForwarderFollowsTheBackend(t *testing.T) {
	t.Parallel()
	backend := func(name string) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = io.WriteString(w, name) }))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := backend("a"), backend("b")
	f, err := newForwarder()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(f.close)
	// A fresh connection per request, so each sees the backend of its time.
	client := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	get := func() (string, error) {
		resp, err := client.Get("http://" + f.addr() + "/")
		if err != nil {
			return "", err
		}
		defer func() { _ = resp.Body.Close() }()
		body, err := io.ReadAll(resp.Body)
		return string(body), err
	}

	if _, err := get(); err == nil {
		t.Error("a request got through without a backend")
	}
	f.setBackend(strings.TrimPrefix(a.URL, "http://"))
	if got, err := get(); got != "a" {
		t.Errorf("with backend a: %q, %v", got, err)
	}
	f.setBackend(strings.TrimPrefix(b.URL, "http://"))
	if got, err := get(); got != "b" {
		t.Errorf("with backend b: %q, %v", got, err)
	}
	f.clearBackend(strings.TrimPrefix(a.URL, "http://")) // not the current one: no effect
	if got, err := get(); got != "b" {
		t.Errorf("after clearing a stale backend: %q, %v", got, err)
	}
	f.clearBackend(strings.TrimPrefix(b.URL, "http://"))
	if _, err := get(); err == nil {
		t.Error("a request got through after the backend was cleared")
	}
}

// TestForwarderCloseCutsConnections checks that close ends relayed
// connections (so the gateway behind drains at once) and returns.
func TestForwarderCloseCutsConnections(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		select { // a stream that never ends by itself
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); srv.Close() })
	f, err := newForwarder()
	if err != nil {
		t.Fatal(err)
	}
	f.setBackend(strings.TrimPrefix(srv.URL, "http://"))
	resp, err := http.Get("http://" + f.addr() + "/")
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	f.close()
	read := make(chan struct{})
	go func() {
		_, _ = io.ReadAll(resp.Body) // ends, with or without an error, once the connection is cut
		close(read)
	}()
	select {
	case <-read:
	case <-time.After(10 * time.Second):
		t.Fatal("the stream outlived the forwarder")
	}
}
