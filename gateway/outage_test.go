package gateway_test

import (
	"io"
	"net/http"
	"runtime"
	"strings"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mcpgate/mcpgate/clerk"
	"github.com/mcpgate/mcpgate/clerk/clerktest"
	"github.com/mcpgate/mcpgate/gateway"
)

// TestClerkOutage takes Clerk away from a running gateway: JWTs keep working
// on the cached key set, an opaque token keeps working on its cached verdict
// until that expires, anything else gets 503 with Retry-After (never a
// pass), and everything recovers, without a restart, when Clerk returns.
func TestClerkOutage(t *testing.T) {
	t.Parallel()
	c := clerktest.NewServer()
	t.Cleanup(c.Close)
	clock := clocktesting.NewFakeClock(time.Now())
	e := newEnv(t, withClerk(c), withOptions(func(o *gateway.Options) { o.Now = clock.Now }))
	jwt := e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatJWT})
	cachedOpaque := e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque})
	newOpaque := e.token(t, clerktest.TokenRequest{Scopes: allScopes, Format: clerktest.FormatOpaque})

	call := func(token string) (*http.Response, string) {
		req := newRequest(t, http.MethodPost, e.mcpURL(), toolCall("search"))
		req.Header.Set("Authorization", "Bearer "+token)
		return do(t, req)
	}
	expect := func(step, token string, status int) {
		t.Helper()
		before := len(e.up.requests())
		resp, body := call(token)
		if resp.StatusCode != status {
			t.Fatalf("%s: status %d, want %d (%s)", step, resp.StatusCode, status, body)
		}
		reached := len(e.up.requests()) - before
		switch {
		case status == http.StatusOK && reached != 1:
			t.Errorf("%s: the upstream got %d requests, want 1", step, reached)
		case status != http.StatusOK && reached != 0:
			t.Errorf("%s: a refused request reached the upstream", step)
		case status == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") == "":
			t.Errorf("%s: 503 without Retry-After", step)
		}
	}

	expect("JWT while Clerk is up", jwt, http.StatusOK)
	expect("opaque token while Clerk is up", cachedOpaque, http.StatusOK)

	for _, endpoint := range []string{"GET /.well-known/jwks.json", "POST /v1/oauth_applications/access_tokens/verify"} {
		c.SetFault(endpoint, clerktest.Fault{Outage: true})
	}
	expect("JWT on the cached key set", jwt, http.StatusOK)
	expect("opaque token on its cached verdict", cachedOpaque, http.StatusOK)
	expect("opaque token never seen", newOpaque, http.StatusServiceUnavailable)

	clock.Step(clerk.DefaultOpaqueCacheTTL + time.Second)
	expect("opaque token after its verdict expired", cachedOpaque, http.StatusServiceUnavailable)
	expect("JWT after a minute of outage", jwt, http.StatusOK)

	c.ClearFaults()
	// Past any backoff the failed lookups started.
	clock.Step(time.Minute)
	expect("opaque token once Clerk is back", cachedOpaque, http.StatusOK)
	expect("new opaque token once Clerk is back", newOpaque, http.StatusOK)
}

// TestNoLeakWhenUpstreamsDie cuts the upstream in the middle of many
// streams: each client sees its stream end in an error, and the gateway's
// goroutines and open streams return to where they were. It runs alone
// (not parallel), so the process's goroutine count is the gateway's.
func TestNoLeakWhenUpstreamsDie(t *testing.T) {
	e := newEnv(t)
	client := &http.Client{Transport: &http.Transport{}}
	stream := func(mode string) error {
		resp, err := client.Do(authorized(t, e, http.MethodPost, "mode="+mode, toolCall("search")))
		if err != nil {
			return err
		}
		defer func() { _ = resp.Body.Close() }()
		_, err = io.ReadAll(resp.Body)
		return err
	}
	settle := func() int {
		client.CloseIdleConnections()
		runtime.GC()
		time.Sleep(100 * time.Millisecond)
		return runtime.NumGoroutine()
	}
	// Warm up the pools (client, gateway to upstream), then take the baseline.
	if err := stream("die"); err == nil {
		t.Fatal("a cut stream ended cleanly")
	}
	_ = stream("")
	baseline := settle()

	for i := range 50 {
		if err := stream("die"); err == nil {
			t.Fatalf("stream %d: a cut stream ended cleanly", i)
		}
	}
	waitFor(t, "goroutines back to the baseline", 10*time.Second, func() bool { return settle() <= baseline+2 })
	waitFor(t, "no open streams", 5*time.Second, func() bool {
		resp, body := do(t, newRequest(t, http.MethodGet, e.health.URL+"/metrics", ""))
		return resp.StatusCode == http.StatusOK && strings.Contains(body, "mcpgate_gateway_open_streams 0\n")
	})
}
