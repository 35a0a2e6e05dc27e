package clerk

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	clocktesting "k8s.io/utils/clock/testing"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// The emulator's endpoint names, for faults and call counts.
const (
	epUser        = "GET /v1/users/{user_id}"
	epMemberships = "GET /v1/users/{user_id}/organization_memberships"
)

// directoryFixture is an emulator, a Directory on a fake clock in front of
// it, and the number of times the Directory asked for the secret key.
type directoryFixture struct {
	emu       *clerktest.Server
	dir       *Directory
	clock     *clocktesting.FakeClock
	keyCalls  *atomic.Int64
	secretKey *atomic.Value // string the SecretKey source returns
}

// newDirectoryFixture starts an emulator and a Directory (TTL one minute
// unless opts changes it); opts may change the options before NewDirectory.
func newDirectoryFixture(t *testing.T, opts ...func(*DirectoryOptions)) directoryFixture {
	t.Helper()
	emu := clerktest.NewServer()
	t.Cleanup(emu.Close)
	f := directoryFixture{emu: emu, clock: newFakeClock(), keyCalls: &atomic.Int64{}, secretKey: &atomic.Value{}}
	f.secretKey.Store(emu.SecretKey())
	o := DirectoryOptions{
		BackendAPIURL: emu.BackendAPIURL(),
		SecretKey: func(context.Context) (string, error) {
			f.keyCalls.Add(1)
			return f.secretKey.Load().(string), nil
		},
		Now: f.clock.Now,
	}
	for _, opt := range opts {
		opt(&o)
	}
	dir, err := NewDirectory(o)
	if err != nil {
		t.Fatal(err)
	}
	f.dir = dir
	return f
}

// user creates a user in the emulator and returns its ID.
func (f directoryFixture) user(t *testing.T, p clerktest.UserParams) string {
	t.Helper()
	u, err := f.emu.CreateUser(p)
	if err != nil {
		t.Fatal(err)
	}
	return u.ID
}

// calls returns the emulator's call counts for the two endpoints.
func (f directoryFixture) calls() (user, memberships int) {
	return f.emu.Calls(epUser), f.emu.Calls(epMemberships)
}

// wantCalls fails unless the emulator counted exactly these calls.
func (f directoryFixture) wantCalls(t *testing.T, user, memberships int) {
	t.Helper()
	if u, m := f.calls(); u != user || m != memberships {
		t.Fatalf("calls: %d user, %d membership pages; want %d, %d", u, m, user, memberships)
	}
}

// wantNotFound fails unless err wraps ErrUserNotFound and is no outage.
func wantNotFound(t testing.TB, err error) {
	t.Helper()
	var ue *UnavailableError
	if !errors.Is(err, ErrUserNotFound) || errors.As(err, &ue) {
		t.Fatalf("got %v (%T), want ErrUserNotFound", err, err)
	}
}

func TestNewDirectory(t *testing.T) {
	t.Parallel()
	key := staticKey("sk_test_x")
	for name, opts := range map[string]DirectoryOptions{
		"no url":       {SecretKey: key},
		"relative url": {BackendAPIURL: "/v1", SecretKey: key},
		"no key":       {BackendAPIURL: "https://api.clerk.com/v1"},
		"negative max": {BackendAPIURL: "https://api.clerk.com/v1", SecretKey: key, MaxEntries: -1},
	} {
		if _, err := NewDirectory(opts); err == nil {
			t.Errorf("%s: NewDirectory accepted %+v", name, opts)
		}
	}
	d, err := NewDirectory(DirectoryOptions{BackendAPIURL: "https://api.clerk.com/v1", SecretKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if d.opts.TTL != DefaultDirectoryTTL || d.opts.MaxEntries != DefaultMaxCacheEntries || d.opts.Now == nil {
		t.Errorf("defaults not applied: %+v", d.opts)
	}
}

// TestDirectory_User checks which email addresses count: only verified
// ones, and the primary only when it is verified.
func TestDirectory_User(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	tests := map[string]struct {
		params       clerktest.UserParams // the user as created
		addVerified  []string             // addresses added afterwards, verified
		addPending   []string             // addresses added afterwards, never verified
		wantPrimary  string
		wantVerified []string
	}{
		"verified": {
			params:       clerktest.UserParams{Emails: []string{"ada@example.com", "ada@work.example"}},
			wantPrimary:  "ada@example.com",
			wantVerified: []string{"ada@example.com", "ada@work.example"},
		},
		"unverified excluded": {
			params:       clerktest.UserParams{Emails: []string{"bob@example.com"}, UnverifiedEmails: []string{"bob@evil.example"}},
			addPending:   []string{"bob@other.example"},
			wantPrimary:  "bob@example.com",
			wantVerified: []string{"bob@example.com"},
		},
		"primary unverified": {
			params:       clerktest.UserParams{UnverifiedEmails: []string{"eve@example.com"}},
			addVerified:  []string{"eve@verified.example"},
			wantPrimary:  "",
			wantVerified: []string{"eve@verified.example"},
		},
		"no email": {},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			id := f.user(t, tc.params)
			for _, e := range tc.addVerified {
				if _, err := f.emu.AddEmailAddress(id, e, true); err != nil {
					t.Fatal(err)
				}
			}
			for _, e := range tc.addPending {
				if _, err := f.emu.AddEmailAddress(id, e, false); err != nil {
					t.Fatal(err)
				}
			}
			u, err := f.dir.User(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			if u.ID != id || u.PrimaryEmail != tc.wantPrimary || !slices.Equal(u.VerifiedEmails, tc.wantVerified) {
				t.Errorf("got %+v, want primary %q, verified %q", u, tc.wantPrimary, tc.wantVerified)
			}
		})
	}

	t.Run("unknown user", func(t *testing.T) {
		_, err := f.dir.User(context.Background(), "user_2unknown000000000000000000")
		wantNotFound(t, err)
	})
	t.Run("not a user id", func(t *testing.T) {
		before, _ := f.calls()
		for _, id := range []string{"", "user_x/../../jwks", "user_x?limit=1", strings.Repeat("u", 200)} {
			_, err := f.dir.User(context.Background(), id)
			wantNotFound(t, err)
			_, err = f.dir.Memberships(context.Background(), id)
			wantNotFound(t, err)
		}
		if after, _ := f.calls(); after != before {
			t.Errorf("malformed user IDs reached Clerk: %d calls", after-before)
		}
	})
}

// TestDirectory_Memberships checks the fields of a membership, every page of
// a long list, and the bound on pages.
func TestDirectory_Memberships(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	owner := f.user(t, clerktest.UserParams{Emails: []string{"owner@example.com"}})

	// orgs creates n organizations owned by owner, with slugs prefix-i.
	orgs := func(t *testing.T, prefix string, n int) []string {
		t.Helper()
		ids := make([]string, n)
		for i := range ids {
			id, err := f.emu.CreateOrganization(fmt.Sprintf("%s %d", prefix, i), fmt.Sprintf("%s-%d", prefix, i), owner)
			if err != nil {
				t.Fatal(err)
			}
			ids[i] = id
		}
		return ids
	}

	t.Run("fields", func(t *testing.T) {
		id := f.user(t, clerktest.UserParams{Emails: []string{"m@example.com"}})
		ids := orgs(t, "fields", 2)
		if err := f.emu.SetMembership(ids[0], id, "org:admin"); err != nil {
			t.Fatal(err)
		}
		if err := f.emu.SetMembership("fields-1", id, "org:member"); err != nil {
			t.Fatal(err)
		}
		ms, err := f.dir.Memberships(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		byOrg := map[string]Membership{}
		for _, m := range ms {
			byOrg[m.OrganizationID] = m
		}
		admin, member := byOrg[ids[0]], byOrg[ids[1]]
		if len(ms) != 2 || admin.OrganizationSlug != "fields-0" || admin.Role != "org:admin" ||
			member.OrganizationSlug != "fields-1" || member.Role != "org:member" {
			t.Fatalf("memberships %+v", ms)
		}
		if len(admin.Permissions) == 0 || len(admin.Permissions) <= len(member.Permissions) {
			t.Errorf("admin permissions %q, member permissions %q", admin.Permissions, member.Permissions)
		}
	})

	t.Run("none", func(t *testing.T) {
		id := f.user(t, clerktest.UserParams{})
		ms, err := f.dir.Memberships(ctx, id)
		if err != nil || len(ms) != 0 {
			t.Fatalf("got %v, %v; want none", ms, err)
		}
	})

	t.Run("pages", func(t *testing.T) {
		id := f.user(t, clerktest.UserParams{})
		ids := orgs(t, "page", 250)
		for _, org := range ids {
			if err := f.emu.SetMembership(org, id, "org:member"); err != nil {
				t.Fatal(err)
			}
		}
		_, before := f.calls()
		ms, err := f.dir.Memberships(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if _, after := f.calls(); after-before != 3 {
			t.Errorf("%d pages fetched for 250 memberships, want 3", after-before)
		}
		got := make([]string, 0, len(ms))
		for _, m := range ms {
			got = append(got, m.OrganizationID)
		}
		slices.Sort(got)
		slices.Sort(ids)
		if !slices.Equal(got, ids) {
			t.Errorf("got %d memberships, want the 250 created", len(got))
		}
	})

	t.Run("too many", func(t *testing.T) {
		id := f.user(t, clerktest.UserParams{})
		for _, org := range orgs(t, "many", membershipsPageSize*maxMembershipPages+1) {
			if err := f.emu.SetMembership(org, id, "org:member"); err != nil {
				t.Fatal(err)
			}
		}
		_, before := f.calls()
		for range 3 {
			if _, err := f.dir.Memberships(ctx, id); !errors.Is(err, ErrTooManyMemberships) {
				t.Fatalf("got %v, want ErrTooManyMemberships", err)
			}
		}
		if _, after := f.calls(); after-before != 1 {
			t.Errorf("%d calls for an over-long list asked three times, want 1 (total_count decides, and is cached)", after-before)
		}
	})
}

// TestDirectory_TTL checks that an answer is reused for TTL without a call,
// and asked for again after it.
func TestDirectory_TTL(t *testing.T) {
	t.Parallel()
	const ttl = 30 * time.Second
	f := newDirectoryFixture(t, func(o *DirectoryOptions) { o.TTL = ttl })
	ctx := context.Background()
	id := f.user(t, clerktest.UserParams{Emails: []string{"t@example.com"}})
	org, err := f.emu.CreateOrganization("TTL", "ttl", id)
	if err != nil {
		t.Fatal(err)
	}
	ask := func() (User, []Membership) {
		t.Helper()
		u, err := f.dir.User(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		ms, err := f.dir.Memberships(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		return u, ms
	}
	u, ms := ask()
	f.wantCalls(t, 1, 1)
	if len(ms) != 1 || ms[0].OrganizationID != org || ms[0].Role != "org:admin" {
		t.Fatalf("memberships %+v", ms)
	}

	// Answers handed out are copies.
	u.VerifiedEmails[0], ms[0].Role, ms[0].Permissions[0] = "x", "x", "x"

	// Clerk changes; within the TTL the Directory does not see it.
	if err := f.emu.RemoveMembership(org, id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.emu.AddEmailAddress(id, "t2@example.com", true); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(ttl - time.Second)
	u, ms = ask()
	f.wantCalls(t, 1, 1)
	if len(u.VerifiedEmails) != 1 || u.VerifiedEmails[0] != "t@example.com" || len(ms) != 1 ||
		ms[0].Role != "org:admin" || ms[0].Permissions[0] == "x" {
		t.Fatalf("cached answer changed: %+v %+v", u, ms)
	}

	// At the TTL, both are asked again.
	f.clock.Step(time.Second)
	u, ms = ask()
	f.wantCalls(t, 2, 2)
	if len(u.VerifiedEmails) != 2 || len(ms) != 0 {
		t.Fatalf("after the TTL: %+v %+v", u, ms)
	}
}

// TestDirectory_NoReuse checks a negative TTL, the key broker's: every
// answer is asked for again (users, memberships, "not found", OAuth tokens
// and "not connected"), so that a caller's own TTL is the only one.
func TestDirectory_NoReuse(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t, func(o *DirectoryOptions) { o.TTL = -1 })
	ctx := context.Background()
	id := f.user(t, clerktest.UserParams{Emails: []string{"n@example.com"}})
	f.connect(t, id, "gho_nr", time.Hour)
	for i := 1; i <= 2; i++ {
		if _, err := f.dir.User(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := f.dir.Memberships(ctx, id); err != nil {
			t.Fatal(err)
		}
		f.wantToken(t, id, "gho_nr")
		if _, err := f.dir.User(ctx, "user_gone"); !errors.Is(err, ErrUserNotFound) {
			t.Fatalf("unknown user: %v", err)
		}
		f.wantCalls(t, 2*i, i)
		f.wantTokenCalls(t, i)
	}
	if n := f.dir.users.len() + f.dir.memberships.len() + f.dir.tokens.len(); n != 0 {
		t.Errorf("%d answers kept", n)
	}
}

// TestDirectory_Collapse sends 1,000 concurrent lookups of each kind for a
// user nobody asked about yet: Clerk sees one call per endpoint.
func TestDirectory_Collapse(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	id := f.user(t, clerktest.UserParams{Emails: []string{"c@example.com"}})
	if _, err := f.emu.CreateOrganization("Collapse", "collapse", id); err != nil {
		t.Fatal(err)
	}
	// Slow answers, so the lookups overlap in flight and not only in cache.
	f.emu.SetFault(epUser, clerktest.Fault{Latency: 100 * time.Millisecond})
	f.emu.SetFault(epMemberships, clerktest.Fault{Latency: 100 * time.Millisecond})

	const n = 1000
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for range n {
		wg.Add(2)
		go func() {
			defer wg.Done()
			if u, err := f.dir.User(context.Background(), id); err != nil || u.PrimaryEmail != "c@example.com" {
				errs <- fmt.Errorf("user: %+v, %v", u, err)
			}
		}()
		go func() {
			defer wg.Done()
			if ms, err := f.dir.Memberships(context.Background(), id); err != nil || len(ms) != 1 {
				errs <- fmt.Errorf("memberships: %+v, %v", ms, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	f.wantCalls(t, 1, 1)
	t.Logf("%d concurrent User and %d Memberships lookups: %d GET user, %d membership pages", n, n, f.emu.Calls(epUser), f.emu.Calls(epMemberships))
}

// TestDirectory_CallerCancels checks that a caller giving up fails only
// itself: the shared call goes on and serves the others.
func TestDirectory_CallerCancels(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	id := f.user(t, clerktest.UserParams{Emails: []string{"k@example.com"}})
	f.emu.SetFault(epUser, clerktest.Fault{Latency: 300 * time.Millisecond})

	ctx, cancel := context.WithCancel(context.Background())
	first := make(chan error, 1)
	go func() {
		_, err := f.dir.User(ctx, id)
		first <- err
	}()
	for f.emu.Calls(epUser) == 0 {
		time.Sleep(time.Millisecond)
	}
	second := make(chan error, 1)
	go func() {
		_, err := f.dir.User(context.Background(), id)
		second <- err
	}()
	cancel()
	err := <-first
	if ue := wantUnavailable(t, err); !errors.Is(ue, context.Canceled) {
		t.Fatalf("cancelled caller: %v, want context.Canceled", err)
	}
	if err := <-second; err != nil {
		t.Fatalf("the other caller failed with the first: %v", err)
	}
	f.wantCalls(t, 1, 0)
}

// TestDirectory_NotFound checks that "not found" is an answer: cached for
// the TTL, and shared by both lookups.
func TestDirectory_NotFound(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	id := f.user(t, clerktest.UserParams{Emails: []string{"gone@example.com"}})
	if _, err := f.emu.CreateOrganization("Gone", "gone", id); err != nil {
		t.Fatal(err)
	}
	if err := f.emu.DeleteUser(id); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		_, err := f.dir.User(ctx, id)
		wantNotFound(t, err)
		_, err = f.dir.Memberships(ctx, id)
		wantNotFound(t, err)
	}
	// One GET user; the memberships of a user Clerk does not know are not
	// asked for.
	f.wantCalls(t, 1, 0)

	// A user of that ID appearing is seen after the TTL, not before.
	if _, err := f.emu.CreateUser(clerktest.UserParams{ID: id, Emails: []string{"back@example.com"}}); err != nil {
		t.Fatal(err)
	}
	f.clock.Step(DefaultDirectoryTTL - time.Second)
	_, err := f.dir.User(ctx, id)
	wantNotFound(t, err)
	f.clock.Step(time.Second)
	if u, err := f.dir.User(ctx, id); err != nil || u.PrimaryEmail != "back@example.com" {
		t.Fatalf("after the TTL: %+v, %v", u, err)
	}
	f.wantCalls(t, 2, 0)

	// Asked first, the memberships of a deleted user are none.
	other := f.user(t, clerktest.UserParams{})
	if err := f.emu.DeleteUser(other); err != nil {
		t.Fatal(err)
	}
	if ms, err := f.dir.Memberships(ctx, other); err != nil && !errors.Is(err, ErrUserNotFound) || len(ms) != 0 {
		t.Fatalf("memberships of a deleted user: %+v, %v", ms, err)
	}
}

// TestDirectory_Unavailable checks each way of failing to get an answer:
// an *UnavailableError with a useful RetryAfter, nothing cached, and no
// secret in the message.
func TestDirectory_Unavailable(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		fault          clerktest.Fault // injected into both endpoints
		badKey         bool            // the SecretKey source returns a rejected key
		keyErr         bool            // the SecretKey source fails
		wantStatus     int             // StatusCode(err); 0: no HTTP answer
		wantRetryAfter time.Duration   // UnavailableError.RetryAfter
		unauthorized   bool            // IsUnauthorized(err)
	}{
		"500":             {fault: clerktest.Fault{Status: 500}, wantStatus: 500, wantRetryAfter: retryTransient},
		"503 retry-after": {fault: clerktest.Fault{Status: 503, RetryAfter: 4 * time.Second}, wantStatus: 503, wantRetryAfter: 4 * time.Second},
		"outage":          {fault: clerktest.Fault{Outage: true}, wantRetryAfter: retryTransient},
		"403":             {fault: clerktest.Fault{Status: 403}, wantStatus: 403, wantRetryAfter: retryMisconfigured, unauthorized: true},
		"bad secret key":  {badKey: true, wantStatus: 401, wantRetryAfter: retryMisconfigured, unauthorized: true},
		"no secret key":   {keyErr: true, wantRetryAfter: retryMisconfigured},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			keyErr := errors.New("secret not mounted")
			f := newDirectoryFixture(t, func(o *DirectoryOptions) {
				if tc.keyErr {
					o.SecretKey = func(context.Context) (string, error) { return "", keyErr }
				}
			})
			id := f.user(t, clerktest.UserParams{Emails: []string{"u@example.com"}})
			good := f.emu.SecretKey()
			if tc.badKey {
				f.secretKey.Store("sk_test_" + strings.Repeat("0", 40))
			}
			f.emu.SetFault(epUser, tc.fault)
			f.emu.SetFault(epMemberships, tc.fault)
			for what, lookup := range map[string]func() error{
				"user":        func() error { _, err := f.dir.User(context.Background(), id); return err },
				"memberships": func() error { _, err := f.dir.Memberships(context.Background(), id); return err },
			} {
				err := lookup()
				ue := wantUnavailable(t, err)
				if ue.RetryAfter != tc.wantRetryAfter || StatusCode(err) != tc.wantStatus || IsUnauthorized(err) != tc.unauthorized {
					t.Errorf("%s: %v: RetryAfter %s, status %d, unauthorized %t", what, err, ue.RetryAfter, StatusCode(err), IsUnauthorized(err))
				}
				if _, limited := RetryAfter(err); limited || errors.Is(err, ErrUserNotFound) {
					t.Errorf("%s: %v reads as rate limited or not found", what, err)
				}
				if strings.Contains(err.Error(), good) || strings.Contains(err.Error(), f.secretKey.Load().(string)) {
					t.Errorf("%s: the error quotes the secret key", what)
				}
			}
			// Nothing was cached: once Clerk answers, so do we.
			f.emu.ClearFaults()
			f.secretKey.Store(good)
			if tc.keyErr {
				return
			}
			if _, err := f.dir.User(context.Background(), id); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
			if _, err := f.dir.Memberships(context.Background(), id); err != nil {
				t.Fatalf("after recovery: %v", err)
			}
		})
	}
}

// TestDirectory_OutageAroundTTL checks that an outage is invisible while an
// answer is fresh, and that an expired answer is never served.
func TestDirectory_OutageAroundTTL(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	id := f.user(t, clerktest.UserParams{Emails: []string{"o@example.com"}})
	if _, err := f.dir.User(ctx, id); err != nil {
		t.Fatal(err)
	}
	if _, err := f.dir.Memberships(ctx, id); err != nil {
		t.Fatal(err)
	}
	f.emu.SetFault(clerktest.AllEndpoints, clerktest.Fault{Outage: true})

	f.clock.Step(DefaultDirectoryTTL - time.Second)
	if u, err := f.dir.User(ctx, id); err != nil || u.PrimaryEmail != "o@example.com" {
		t.Fatalf("within the TTL: %+v, %v", u, err)
	}
	if _, err := f.dir.Memberships(ctx, id); err != nil {
		t.Fatalf("within the TTL: %v", err)
	}
	f.wantCalls(t, 1, 1)

	f.clock.Step(time.Second)
	_, err := f.dir.User(ctx, id)
	wantUnavailable(t, err)
	_, err = f.dir.Memberships(ctx, id)
	wantUnavailable(t, err)
	// NOTE: net/http retries an idempotent GET once when a reused
	// connection drops without an answer, so Clerk may count two.
	if u, m := f.calls(); u < 2 || m < 2 {
		t.Fatalf("expired answers served without asking Clerk: %d user, %d membership calls", u, m)
	}
}

// TestDirectory_RateLimited checks that a 429's Retry-After is honoured:
// until it passes, lookups that miss the cache fail fast without a call.
func TestDirectory_RateLimited(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	a := f.user(t, clerktest.UserParams{Emails: []string{"a@example.com"}})
	b := f.user(t, clerktest.UserParams{Emails: []string{"b@example.com"}})
	cached := f.user(t, clerktest.UserParams{Emails: []string{"c@example.com"}})
	if _, err := f.dir.User(ctx, cached); err != nil {
		t.Fatal(err)
	}

	f.emu.SetFault(epUser, clerktest.Fault{Status: 429, RetryAfter: 5 * time.Second})
	_, err := f.dir.User(ctx, a)
	if d, ok := RetryAfter(err); !ok || d != 5*time.Second || wantUnavailable(t, err).RetryAfter != 5*time.Second {
		t.Fatalf("RetryAfter(%v) = %s, %t; want 5s", err, d, ok)
	}
	f.emu.ClearFaults()
	f.wantCalls(t, 2, 0)

	f.clock.Step(3 * time.Second)
	for _, lookup := range []func() error{
		func() error { _, err := f.dir.User(ctx, a); return err },
		func() error { _, err := f.dir.User(ctx, b); return err },
		func() error { _, err := f.dir.Memberships(ctx, b); return err },
	} {
		err := lookup()
		if d, ok := RetryAfter(err); !ok || d != 2*time.Second {
			t.Fatalf("during back-off: RetryAfter(%v) = %s, %t; want 2s", err, d, ok)
		}
	}
	if _, err := f.dir.User(ctx, cached); err != nil {
		t.Fatalf("a cached answer is not served during back-off: %v", err)
	}
	f.wantCalls(t, 2, 0)

	f.clock.Step(2 * time.Second)
	if _, err := f.dir.User(ctx, a); err != nil {
		t.Fatalf("after back-off: %v", err)
	}
	if _, err := f.dir.Memberships(ctx, b); err != nil {
		t.Fatalf("after back-off: %v", err)
	}
	f.wantCalls(t, 3, 1)
}

// TestDirectory_CacheBound checks that many users do not grow the caches
// past MaxEntries.
func TestDirectory_CacheBound(t *testing.T) {
	t.Parallel()
	const maxEntries = 8
	f := newDirectoryFixture(t, func(o *DirectoryOptions) { o.MaxEntries = maxEntries })
	ctx := context.Background()
	for i := range 50 {
		id := f.user(t, clerktest.UserParams{Emails: []string{fmt.Sprintf("b%d@example.com", i)}})
		if _, err := f.dir.User(ctx, id); err != nil {
			t.Fatal(err)
		}
		if _, err := f.dir.Memberships(ctx, id); err != nil {
			t.Fatal(err)
		}
		_, err := f.dir.User(ctx, fmt.Sprintf("user_missing%d", i))
		wantNotFound(t, err)
		if u, m := f.dir.users.len(), f.dir.memberships.len(); u > maxEntries || m > maxEntries {
			t.Fatalf("after %d users: %d users, %d memberships cached; bound %d", i+1, u, m, maxEntries)
		}
	}
}

// TestDirectory_KeyRotation checks that the secret key is asked for before
// every Backend API call, each page included, so a rotated key is used at
// once; and that a rejected key is not remembered.
func TestDirectory_KeyRotation(t *testing.T) {
	t.Parallel()
	f := newDirectoryFixture(t)
	ctx := context.Background()
	id := f.user(t, clerktest.UserParams{Emails: []string{"r@example.com"}})
	for i := range 150 {
		if _, err := f.emu.CreateOrganization(fmt.Sprintf("Rot %d", i), fmt.Sprintf("rot-%d", i), id); err != nil {
			t.Fatal(err)
		}
	}
	good := f.emu.SecretKey()
	f.secretKey.Store("sk_test_revoked000000000000000000000000000")
	_, err := f.dir.User(ctx, id)
	if !IsUnauthorized(err) {
		t.Fatalf("old key: %v, want unauthorized", err)
	}
	f.secretKey.Store(good)
	if _, err := f.dir.User(ctx, id); err != nil {
		t.Fatalf("rotated key: %v", err)
	}
	ms, err := f.dir.Memberships(ctx, id)
	if err != nil || len(ms) != 150 {
		t.Fatalf("rotated key: %d memberships, %v", len(ms), err)
	}
	u, m := f.calls()
	if calls := int64(u + m); f.keyCalls.Load() != calls {
		t.Errorf("SecretKey called %d times for %d Backend API calls", f.keyCalls.Load(), calls)
	}
	f.wantCalls(t, 2, 2)
}

// TestDirectory_NotFoundOnlyFor404 guards notFoundError: only a 404 is "not
// found"; any other status is not an answer.
func TestDirectory_NotFoundOnlyFor404(t *testing.T) {
	t.Parallel()
	for status, want := range map[int]bool{http.StatusNotFound: true, http.StatusBadRequest: false, http.StatusGone: false} {
		err := notFoundError(&BackendError{Op: "get user", StatusCode: status}, "user_x")
		if errors.Is(err, ErrUserNotFound) != want {
			t.Errorf("%d: %v", status, err)
		}
	}
}
