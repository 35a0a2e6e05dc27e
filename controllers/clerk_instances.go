package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

// settingsAPI is what the sync needs of clerk.SettingsClient.
type settingsAPI interface {
	Get(ctx context.Context) (*clerk.OAuthApplicationSettings, error)
	Patch(ctx context.Context, p clerk.OAuthApplicationSettingsPatch) (*clerk.OAuthApplicationSettings, error)
}

// declared is a partial set of instance settings: a nil field is not declared
// and is left as the instance has it.
type declared struct {
	dynamicClientRegistration *bool
	clientIDMetadataDocuments *bool
	jwtAccessTokens           *bool
}

// settingField ties one declared field to its spec name and its Backend API field.
type settingField struct {
	spec    string // field name under spec.clerk
	of      func(*declared) **bool
	current func(*clerk.OAuthApplicationSettings) bool
	patch   func(*clerk.OAuthApplicationSettingsPatch, *bool)
}

// settingFields lists the instance settings an McpServer may declare.
func settingFields() []settingField {
	return []settingField{
		{
			spec:    "dynamicClientRegistration",
			of:      func(d *declared) **bool { return &d.dynamicClientRegistration },
			current: func(s *clerk.OAuthApplicationSettings) bool { return s.DynamicOAuthClientRegistration },
			patch:   func(p *clerk.OAuthApplicationSettingsPatch, v *bool) { p.DynamicOAuthClientRegistration = v },
		},
		{
			spec:    "clientIdMetadataDocuments",
			of:      func(d *declared) **bool { return &d.clientIDMetadataDocuments },
			current: func(s *clerk.OAuthApplicationSettings) bool { return s.ClientIDMetadataDocumentsAdvertised },
			patch:   func(p *clerk.OAuthApplicationSettingsPatch, v *bool) { p.ClientIDMetadataDocumentsAdvertised = v },
		},
		{
			spec:    "jwtAccessTokens",
			of:      func(d *declared) **bool { return &d.jwtAccessTokens },
			current: func(s *clerk.OAuthApplicationSettings) bool { return s.OAuthJWTAccessTokens },
			patch:   func(p *clerk.OAuthApplicationSettingsPatch, v *bool) { p.OAuthJWTAccessTokens = v },
		},
	}
}

func declaredBy(spec mcpv1.ClerkSpec) declared {
	return declared{
		dynamicClientRegistration: spec.DynamicClientRegistration,
		clientIDMetadataDocuments: spec.ClientIDMetadataDocuments,
		jwtAccessTokens:           spec.JWTAccessTokens,
	}
}

func (d declared) empty() bool {
	return d.dynamicClientRegistration == nil && d.clientIDMetadataDocuments == nil && d.jwtAccessTokens == nil
}

// String lists the declared fields, for condition messages and events.
func (d declared) String() string {
	var parts []string
	for _, f := range settingFields() {
		if v := *f.of(&d); v != nil {
			parts = append(parts, fmt.Sprintf("%s=%t", f.spec, *v))
		}
	}
	return strings.Join(parts, ", ")
}

// mergeDeclared combines what every McpServer using one instance declares.
// A field on which they disagree is left out of the result, so that no
// reconcile flips it back and forth; conflict names, for self, the first
// other McpServer that disagrees with it ("" when self agrees with all).
// The result is the same whichever of the McpServers computes it.
func mergeDeclared(self *mcpv1.McpServer, users []mcpv1.McpServer) (merged declared, conflict string) {
	users = slices.Clone(users)
	if !slices.ContainsFunc(users, func(u mcpv1.McpServer) bool { return u.UID == self.UID }) {
		users = append(users, *self) // the cache may not have seen self yet
	}
	slices.SortFunc(users, func(a, b mcpv1.McpServer) int {
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	mine := declaredBy(self.Spec.Clerk)
	for _, f := range settingFields() {
		var agreed *bool
		disagree := false
		for _, u := range users {
			d := declaredBy(u.Spec.Clerk)
			v := *f.of(&d)
			switch {
			case v == nil:
			case agreed == nil:
				agreed = v
			case *v != *agreed:
				disagree = true
			}
			if own := *f.of(&mine); own != nil && v != nil && *v != *own && conflict == "" && u.UID != self.UID {
				conflict = fmt.Sprintf("spec.clerk.%s is %t here but %t in McpServer %s/%s, which uses the same Clerk instance",
					f.spec, *own, *v, u.Namespace, u.Name)
			}
		}
		if !disagree {
			*f.of(&merged) = agreed
		}
	}
	return merged, conflict
}

// patchFor is the PATCH that brings current to what is declared; ok is false
// when nothing differs.
func patchFor(current *clerk.OAuthApplicationSettings, want declared) (p clerk.OAuthApplicationSettingsPatch, changed []string) {
	for _, f := range settingFields() {
		if v := *f.of(&want); v != nil && f.current(current) != *v {
			f.patch(&p, v)
			changed = append(changed, fmt.Sprintf("%s=%t", f.spec, *v))
		}
	}
	return p, changed
}

// clerkError is a failed Backend API exchange, classified for the
// ClerkConfigured condition, with the delay before the next attempt.
type clerkError struct {
	reason  string
	retryIn time.Duration
	err     error
}

func (e *clerkError) Error() string { return e.err.Error() }
func (e *clerkError) Unwrap() error { return e.err }

// clerkInstances remembers, per Clerk instance (keyed by issuer), the settings
// last read and any failure, so that the Backend API calls grow with the
// number of instances, not with the number of McpServers: a settled instance
// is read again only after the resync interval, and a failing one is left
// alone until its backoff has passed.
type clerkInstances struct {
	now       func() time.Time
	resync    time.Duration
	retryBase time.Duration
	retryMax  time.Duration
	mu        sync.Mutex
	byIssuer  map[string]*clerkInstance
}

type clerkInstance struct {
	// mu serializes the Backend API calls for one instance.
	mu         sync.Mutex
	observed   *clerk.OAuthApplicationSettings
	observedAt time.Time
	failures   int
	notBefore  time.Time
	lastErr    *clerkError
}

func newClerkInstances(now func() time.Time, resync, retryBase, retryMax time.Duration) *clerkInstances {
	return &clerkInstances{now: now, resync: resync, retryBase: retryBase, retryMax: retryMax, byIssuer: map[string]*clerkInstance{}}
}

func (s *clerkInstances) instance(issuer string) *clerkInstance {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.byIssuer[issuer]
	if !ok {
		inst = &clerkInstance{}
		s.byIssuer[issuer] = inst
	}
	return inst
}

// sync makes the instance's settings match want, calling the Backend API only
// when its last reading is stale or does not match. It returns the fields it
// patched. connect is called only when a call is needed.
func (s *clerkInstances) sync(ctx context.Context, issuer string, want declared, connect func(context.Context) (settingsAPI, error)) ([]string, error) {
	inst := s.instance(issuer)
	inst.mu.Lock()
	defer inst.mu.Unlock()

	now := s.now()
	if now.Before(inst.notBefore) {
		return nil, &clerkError{reason: inst.lastErr.reason, retryIn: inst.notBefore.Sub(now), err: inst.lastErr.err}
	}
	fresh := inst.observed != nil && now.Sub(inst.observedAt) < s.resync
	if fresh {
		if _, changed := patchFor(inst.observed, want); len(changed) == 0 {
			return nil, nil
		}
	}

	api, err := connect(ctx)
	if err != nil {
		return nil, err
	}
	current := inst.observed
	if !fresh {
		if current, err = api.Get(ctx); err != nil {
			return nil, inst.fail(s, fmt.Errorf("get oauth application settings: %w", err))
		}
	}
	patch, changed := patchFor(current, want)
	if len(changed) > 0 {
		if current, err = api.Patch(ctx, patch); err != nil {
			inst.observed = nil // what the instance holds now is unknown
			return nil, inst.fail(s, fmt.Errorf("patch oauth application settings: %w", err))
		}
	}
	inst.observed, inst.observedAt = current, s.now()
	inst.failures, inst.notBefore, inst.lastErr = 0, time.Time{}, nil
	return changed, nil
}

// fail classifies err, and backs off: as Retry-After says after a 429,
// exponentially otherwise.
func (inst *clerkInstance) fail(s *clerkInstances, err error) *clerkError {
	inst.failures++
	delay := s.retryBase << min(inst.failures-1, 16)
	if delay > s.retryMax || delay <= 0 {
		delay = s.retryMax
	}
	ce := &clerkError{reason: mcpv1.ReasonClerkUnavailable, err: err}
	if after, ok := clerk.RetryAfter(err); ok {
		ce.reason, delay = mcpv1.ReasonClerkRateLimited, max(after, s.retryBase)
	} else if clerk.IsUnauthorized(err) {
		ce.reason = mcpv1.ReasonClerkUnauthorized
	} else if code := clerk.StatusCode(err); code >= 400 && code < 500 {
		ce.reason = mcpv1.ReasonClerkRejected
	}
	ce.retryIn = delay
	inst.notBefore, inst.lastErr = s.now().Add(delay), ce
	return ce
}

// asClerkError unwraps a classified Backend API failure.
func asClerkError(err error) (*clerkError, bool) {
	var ce *clerkError
	ok := errors.As(err, &ce)
	return ce, ok
}
