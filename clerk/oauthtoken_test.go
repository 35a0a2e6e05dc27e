package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// epOAuthToken is the emulator's endpoint name for a user's tokens.
const epOAuthToken = "GET /v1/users/{user_id}/oauth_access_tokens/{provider}"

// tokenCalls returns how many times the Directory asked for tokens.
func (f directoryFixture) tokenCalls() int { return f.emu.Calls(epOAuthToken) }

// wantTokenCalls fails unless the emulator counted n token lookups.
func (f directoryFixture) wantTokenCalls(t *testing.T, n int) {
	t.Helper()
	if got := f.tokenCalls(); got != n {
		t.Fatalf("token lookups: %d, want %d", got, n)
	}
}

// connect gives the user a GitHub token expiring in ttl (zero: never).
func (f directoryFixture) connect(t *testing.T, userID, token string, ttl time.Duration) {
	t.Helper()
	tok := clerktest.OAuthToken{Token: token, Scopes: []string{"repo", "read:org"}}
	if ttl != 0 {
		tok.ExpiresAt = f.clock.Now().Add(ttl)
	}
	if err := f.emu.SetOAuthToken(userID, "oauth_github", tok); err != nil {
		t.Fatal(err)
	}
}

// wantToken fails unless the Directory hands out token now.
func (f directoryFixture) wantToken(t *testing.T, userID, token string) OAuthToken {
	t.Helper()
	got, err := f.dir.OAuthToken(context.Background(), userID, "oauth_github")
	if err != nil || got.Token != token {
		t.Fatalf("OAuthToken = %q, %v; want %q", got.Token, err, token)
	}
	return got
}

// wantNoSecret fails if err's message quotes a token.
func wantNoSecret(t *testing.T, err error, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if err != nil && strings.Contains(err.Error(), tok) {
			t.Fatalf("error quotes a token: %v", err)
		}
	}
}

// TestDirectory_OAuthToken_CachedToExpiry checks that a token is reused
// until oauthTokenRefetchMargin before its expiry, and then looked up again.
func TestDirectory_OAuthToken_CachedToExpiry(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	f.connect(t, clerktest.DefaultUserID, "gho_first", time.Hour)

	got := f.wantToken(t, clerktest.DefaultUserID, "gho_first")
	if !got.ExpiresAt.Equal(f.clock.Now().Add(time.Hour)) || !slices.Equal(got.Scopes, []string{"repo", "read:org"}) {
		t.Fatalf("token = expires %s, scopes %v", got.ExpiresAt, got.Scopes)
	}
	got.Scopes[0] = "admin" // a caller's change must not reach the cache
	f.connect(t, clerktest.DefaultUserID, "gho_second", 2*time.Hour)
	f.clock.Step(time.Hour - oauthTokenRefetchMargin - time.Second)
	if got := f.wantToken(t, clerktest.DefaultUserID, "gho_first"); got.Scopes[0] != "repo" {
		t.Fatalf("cached scopes changed: %v", got.Scopes)
	}
	f.wantTokenCalls(t, 1)

	f.clock.Step(time.Second)
	f.wantToken(t, clerktest.DefaultUserID, "gho_second")
	f.wantTokenCalls(t, 2)
}

// TestDirectory_OAuthToken_NearExpiry checks what happens when Clerk still
// holds the old token at the refetch point, as a Clerk that refreshes only
// expired tokens does: it is used while it has oauthTokenMinLife left, then
// callers wait (503, Retry-After) until it has expired and Clerk refreshed
// it; it is never handed out with less left. A token that stays expired
// means the user must connect again.
func TestDirectory_OAuthToken_NearExpiry(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	f.connect(t, clerktest.DefaultUserID, "gho_old", time.Hour)
	f.wantToken(t, clerktest.DefaultUserID, "gho_old")

	f.clock.Step(time.Hour - oauthTokenRefetchMargin)
	f.wantToken(t, clerktest.DefaultUserID, "gho_old")
	f.wantTokenCalls(t, 2)
	f.clock.Step(oauthTokenRefetchMargin - oauthTokenMinLife - time.Second)
	f.wantToken(t, clerktest.DefaultUserID, "gho_old")
	f.wantTokenCalls(t, 2)

	f.clock.Step(time.Second) // oauthTokenMinLife left
	for range 3 {
		_, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
		if ue := wantUnavailable(t, err); ue.RetryAfter != oauthTokenMinLife+time.Second {
			t.Fatalf("RetryAfter = %s, want %s", ue.RetryAfter, oauthTokenMinLife+time.Second)
		}
		wantNoSecret(t, err, "gho_old")
	}
	f.wantTokenCalls(t, 3)

	// Clerk refreshes the expired token on the next lookup.
	f.clock.Step(oauthTokenMinLife + time.Second)
	f.connect(t, clerktest.DefaultUserID, "gho_new", time.Hour)
	f.wantToken(t, clerktest.DefaultUserID, "gho_new")
	f.wantTokenCalls(t, 4)

	// A token Clerk cannot refresh: right after its expiry callers wait;
	// long after it, the user is told to connect again.
	f.clock.Step(time.Hour)
	f.connect(t, clerktest.DefaultUserID, "gho_dead", -time.Second)
	_, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
	if ue := wantUnavailable(t, err); ue.RetryAfter != time.Second {
		t.Fatalf("just expired: RetryAfter = %s", ue.RetryAfter)
	}
	f.clock.Step(oauthTokenExpiredGrace)
	_, err = f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("long expired: %v, want ErrNotConnected", err)
	}
	wantNoSecret(t, err, "gho_dead")
}

// TestDirectory_OAuthToken_Collapse checks that concurrent misses for one
// user and provider share one Backend API call.
func TestDirectory_OAuthToken_Collapse(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	f.connect(t, clerktest.DefaultUserID, "gho_collapse", time.Hour)
	f.emu.SetFault(epOAuthToken, clerktest.Fault{Latency: 100 * time.Millisecond})

	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if tok, err := f.dir.OAuthToken(context.Background(), clerktest.DefaultUserID, "oauth_github"); err != nil || tok.Token != "gho_collapse" {
				errs <- fmt.Errorf("OAuthToken: %q, %v", tok.Token, err)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.wantTokenCalls(t, 1)
}

// TestDirectory_OAuthToken_NotConnected checks that "not connected" is an
// answer, reused for oauthNotConnectedTTL only, per provider.
func TestDirectory_OAuthToken_NotConnected(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	for range 2 {
		_, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
		var ue *UnavailableError
		if !errors.Is(err, ErrNotConnected) || errors.As(err, &ue) {
			t.Fatalf("got %v, want ErrNotConnected", err)
		}
	}
	f.wantTokenCalls(t, 1)

	f.connect(t, clerktest.DefaultUserID, "gho_now", time.Hour)
	f.clock.Step(oauthNotConnectedTTL - time.Second)
	if _, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("within the not-connected TTL: %v", err)
	}
	if _, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_google"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("another provider: %v", err)
	}
	f.wantTokenCalls(t, 2)
	f.clock.Step(time.Second)
	f.wantToken(t, clerktest.DefaultUserID, "gho_now")
	f.wantTokenCalls(t, 3)

	// Disconnecting counts once the token is looked up again.
	if err := f.emu.RemoveOAuthToken(clerktest.DefaultUserID, "oauth_github"); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(time.Hour)
	if _, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github"); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("after disconnecting: %v", err)
	}
}

// TestDirectory_OAuthToken_UnknownUser checks that an unknown user is
// ErrUserNotFound, cached (for this provider only: a 404 here may be about
// the provider), that a user ID that cannot be Clerk's costs no call, and
// that a user User found unknown is not asked about.
func TestDirectory_OAuthToken_UnknownUser(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	for range 2 {
		_, err := f.dir.OAuthToken(ctx, "user_2unknown000000000000000000", "oauth_github")
		wantNotFound(t, err)
	}
	f.wantTokenCalls(t, 1)
	_, err := f.dir.User(ctx, "user_2unknown000000000000000000")
	wantNotFound(t, err)
	f.wantCalls(t, 1, 0)

	_, err = f.dir.OAuthToken(ctx, "user_x/../../jwks", "oauth_github")
	wantNotFound(t, err)
	f.wantTokenCalls(t, 1)

	// A user the Directory knows not to exist is not asked about again.
	_, err = f.dir.User(ctx, "user_2gone00000000000000000000")
	wantNotFound(t, err)
	_, err = f.dir.OAuthToken(ctx, "user_2gone00000000000000000000", "oauth_github")
	wantNotFound(t, err)
	f.wantTokenCalls(t, 1)
}

// TestDirectory_OAuthToken_Outage checks that an outage before the refetch
// point is not seen (the cached token is still good) and one after it is an
// *UnavailableError: the old token is never handed out past that point.
func TestDirectory_OAuthToken_Outage(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	f.connect(t, clerktest.DefaultUserID, "gho_outage", time.Hour)
	f.wantToken(t, clerktest.DefaultUserID, "gho_outage")

	for _, fault := range []clerktest.Fault{{Outage: true}, {Status: http.StatusInternalServerError}, {Status: http.StatusBadGateway}} {
		f.emu.SetFault(clerktest.AllEndpoints, fault)
		f.wantToken(t, clerktest.DefaultUserID, "gho_outage")
	}
	f.wantTokenCalls(t, 1)

	f.clock.Step(time.Hour - oauthTokenRefetchMargin)
	for name, fault := range map[string]clerktest.Fault{
		"dropped": {Outage: true},
		"500":     {Status: http.StatusInternalServerError},
		"503":     {Status: http.StatusServiceUnavailable, RetryAfter: 4 * time.Second},
	} {
		f.emu.SetFault(clerktest.AllEndpoints, fault)
		tok, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
		ue := wantUnavailable(t, err)
		if tok.Token != "" {
			t.Fatalf("%s: a token was handed out with an error", name)
		}
		if name == "503" && ue.RetryAfter != 4*time.Second {
			t.Fatalf("503: RetryAfter = %s, want Clerk's 4s", ue.RetryAfter)
		}
		wantNoSecret(t, err, "gho_outage", f.emu.SecretKey())
	}
	f.emu.ClearFaults()
	f.wantToken(t, clerktest.DefaultUserID, "gho_outage")

	// A rejected secret key is ours to fix: unavailable for longer.
	f.clock.Step(time.Hour)
	f.secretKey.Store("sk_test_wrong")
	_, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
	if ue := wantUnavailable(t, err); ue.RetryAfter != retryMisconfigured || !IsUnauthorized(err) {
		t.Fatalf("bad key: %v", err)
	}
	wantNoSecret(t, err, "sk_test_wrong")
}

// TestDirectory_OAuthToken_RateLimited checks that a 429 is an
// *UnavailableError with Clerk's Retry-After, and that no token lookup is
// made until it has passed.
func TestDirectory_OAuthToken_RateLimited(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	f.connect(t, clerktest.DefaultUserID, "gho_limited", time.Hour)
	f.emu.SetFault(epOAuthToken, clerktest.Fault{Status: http.StatusTooManyRequests, RetryAfter: 7 * time.Second})
	_, err := f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
	if d, ok := RetryAfter(err); !ok || d != 7*time.Second {
		t.Fatalf("RetryAfter(%v) = %s, %t; want 7s", err, d, ok)
	}
	f.emu.ClearFaults()
	f.clock.Step(5 * time.Second)
	_, err = f.dir.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github")
	if d, ok := RetryAfter(err); !ok || d != 2*time.Second {
		t.Fatalf("during back-off: RetryAfter(%v) = %s, %t; want 2s", err, d, ok)
	}
	f.wantTokenCalls(t, 1)
	f.clock.Step(2 * time.Second)
	f.wantToken(t, clerktest.DefaultUserID, "gho_limited")
	f.wantTokenCalls(t, 2)
}

// TestDirectory_OAuthToken_Provider checks that a provider that is not
// Clerk's shape is refused before any call, so it cannot change the path.
func TestDirectory_OAuthToken_Provider(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	for _, p := range []string{
		"", "github", "oauth_", "oauth_GitHub", "oauth_github/../../../jwks", "oauth_github?paginated=true",
		"oauth_git hub", "oauth_github%2F..", "oauth_github#x", "oauth-github", "OAUTH_github", "oauth_" + strings.Repeat("a", 65),
	} {
		_, err := f.dir.OAuthToken(context.Background(), clerktest.DefaultUserID, p)
		var ue *UnavailableError
		if err == nil || errors.Is(err, ErrNotConnected) || errors.Is(err, ErrUserNotFound) || errors.As(err, &ue) {
			t.Errorf("provider %q: %v, want a refusal", p, err)
		}
		if ValidOAuthProvider(p) {
			t.Errorf("ValidOAuthProvider(%q) = true", p)
		}
	}
	if n := f.emu.Calls(clerktest.AllEndpoints); n != 0 {
		t.Fatalf("%d Backend API calls for bad providers", n)
	}
	for _, p := range []string{"oauth_github", "oauth_google", "oauth_custom_acme", "oauth_x", "oauth_" + strings.Repeat("a", 64)} {
		if !ValidOAuthProvider(p) {
			t.Errorf("ValidOAuthProvider(%q) = false", p)
		}
	}
}

// TestDirectory_OAuthToken_NoExpiry checks that a token without an expiry
// is reused for the Directory's TTL, and never longer than maxOAuthTokenTTL.
func TestDirectory_OAuthToken_NoExpiry(t *testing.T) {
	t.Parallel()
	for name, c := range map[string]struct {
		ttl  time.Duration // the Directory's TTL
		want time.Duration // how long the token is reused
	}{
		"directory ttl": {ttl: time.Minute, want: time.Minute},
		"bounded":       {ttl: time.Hour, want: maxOAuthTokenTTL},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := newDirectoryFixture(t, func(o *DirectoryOptions) { o.TTL = c.ttl })
			f.connect(t, clerktest.DefaultUserID, "gho_forever", 0)
			if got := f.wantToken(t, clerktest.DefaultUserID, "gho_forever"); !got.ExpiresAt.IsZero() {
				t.Fatalf("ExpiresAt = %s, want zero", got.ExpiresAt)
			}
			f.connect(t, clerktest.DefaultUserID, "gho_rotated", 0)
			f.clock.Step(c.want - time.Second)
			f.wantToken(t, clerktest.DefaultUserID, "gho_forever")
			f.clock.Step(time.Second)
			f.wantToken(t, clerktest.DefaultUserID, "gho_rotated")
			f.wantTokenCalls(t, 2)
		})
	}
}

// TestDirectory_OAuthToken_SeveralAccounts checks that with several
// accounts at the provider the first Clerk lists with a token is used.
func TestDirectory_OAuthToken_SeveralAccounts(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	f.connect(t, clerktest.DefaultUserID, "gho_personal", time.Hour)
	if err := f.emu.AddOAuthToken(clerktest.DefaultUserID, "oauth_github", clerktest.OAuthToken{Token: "gho_work"}); err != nil {
		t.Fatal(err)
	}
	f.wantToken(t, clerktest.DefaultUserID, "gho_personal")
}

// TestDirectory_OAuthToken_Answers checks answers the emulator does not
// give: an entry without a token, another provider's entry, the list
// envelope, milliseconds, and a body that is no list.
func TestDirectory_OAuthToken_Answers(t *testing.T) {
	t.Parallel()
	now := newFakeClock().Now()
	exp := now.Add(time.Hour)
	for name, c := range map[string]struct {
		body    string
		token   string // "" wants the error
		wantErr func(error) bool
	}{
		"empty token only": {body: `[{"token":"","provider":"oauth_github","expires_at":null}]`, wantErr: func(err error) bool { return errors.Is(err, ErrNotConnected) }},
		"first non-empty":  {body: `[{"token":"","provider":"oauth_github"},{"token":"gho_b","provider":"oauth_github","expires_at":null}]`, token: "gho_b"},
		"other provider":   {body: `[{"token":"goog","provider":"oauth_google"},{"token":"gho_c","provider":"oauth_github"}]`, token: "gho_c"},
		"envelope":         {body: `{"data":[{"token":"gho_d","provider":"oauth_github"}],"total_count":1}`, token: "gho_d"},
		"milliseconds":     {body: fmt.Sprintf(`[{"token":"gho_e","provider":"oauth_github","expires_at":%d}]`, exp.UnixMilli()), token: "gho_e"},
		"not a list":       {body: `"gho_secret_in_a_string"`, wantErr: func(err error) bool { var ue *UnavailableError; return errors.As(err, &ue) }},
		"broken":           {body: `[{"token":gho_secret}]`, wantErr: func(err error) bool { var ue *UnavailableError; return errors.As(err, &ue) }},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path != "/v1/users/user_a/oauth_access_tokens/oauth_github" || r.URL.RawQuery != "" {
					http.NotFound(w, r)
					return
				}
				w.Header().Set("Content-Type", "application/json")
				_, _ = w.Write([]byte(c.body))
			}))
			defer srv.Close()
			d, err := NewDirectory(DirectoryOptions{BackendAPIURL: srv.URL + "/v1", SecretKey: staticKey("sk_test_x"), Now: func() time.Time { return now }})
			if err != nil {
				t.Fatal(err)
			}
			tok, err := d.OAuthToken(context.Background(), "user_a", "oauth_github")
			if c.token != "" {
				if err != nil || tok.Token != c.token {
					t.Fatalf("got %q, %v; want %q", tok.Token, err, c.token)
				}
				if name == "milliseconds" && !tok.ExpiresAt.Equal(exp) {
					t.Fatalf("ExpiresAt = %s, want %s", tok.ExpiresAt, exp)
				}
				return
			}
			if !c.wantErr(err) {
				t.Fatalf("got %v", err)
			}
			wantNoSecret(t, err, "gho_secret", "gho_secret_in_a_string")
		})
	}
}

// TestDirectory_OAuthToken_CacheBound checks that many connections do not
// grow the token cache past MaxEntries.
func TestDirectory_OAuthToken_CacheBound(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t, func(o *DirectoryOptions) { o.MaxEntries = 8 })
	for i := range 40 {
		_, err := f.dir.OAuthToken(context.Background(), clerktest.DefaultUserID, fmt.Sprintf("oauth_p%d", i))
		if !errors.Is(err, ErrNotConnected) {
			t.Fatal(err)
		}
	}
	if n := f.dir.tokens.len(); n > 8 {
		t.Fatalf("token cache holds %d entries, max 8", n)
	}
}

// BenchmarkDirectory_OAuthToken is the gateway's per-request cost of a user
// token with a warm cache: two map lookups and a copy of the scopes, and no
// Backend API call after the first.
func BenchmarkDirectory_OAuthToken(b *testing.B) {
	emu := clerktest.NewServer()
	defer emu.Close()
	clock := newFakeClock()
	d, err := NewDirectory(DirectoryOptions{BackendAPIURL: emu.BackendAPIURL(), SecretKey: staticKey(emu.SecretKey()), Now: clock.Now})
	if err != nil {
		b.Fatal(err)
	}
	tok := clerktest.OAuthToken{Token: "gho_bench", Scopes: []string{"repo"}, ExpiresAt: clock.Now().Add(time.Hour)}
	if err := emu.SetOAuthToken(clerktest.DefaultUserID, "oauth_github", tok); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := d.OAuthToken(ctx, clerktest.DefaultUserID, "oauth_github"); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if n := emu.Calls(epOAuthToken); n != 1 {
		b.Fatalf("%d token lookups, want 1", n)
	}
}
