package controllers

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

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
	defaultScopes             []string
}

// settingField ties one declared field to its spec name and its Backend API
// field. Values are compared in their rendered form, which is also how
// messages show them.
type settingField struct {
	spec     string // field name under the declaring object's settings
	declared func(d declared) (string, bool)
	current  func(s *clerk.OAuthApplicationSettings) string
	patch    func(p *clerk.OAuthApplicationSettingsPatch, d declared)
	take     func(dst *declared, src declared)
}

// boolField is a settingField for a boolean setting.
func boolField(spec string, of func(*declared) **bool, current func(*clerk.OAuthApplicationSettings) bool,
	patch func(*clerk.OAuthApplicationSettingsPatch, *bool)) settingField {
	return settingField{
		spec: spec,
		declared: func(d declared) (string, bool) {
			if v := *of(&d); v != nil {
				return strconv.FormatBool(*v), true
			}
			return "", false
		},
		current: func(s *clerk.OAuthApplicationSettings) string { return strconv.FormatBool(current(s)) },
		patch:   func(p *clerk.OAuthApplicationSettingsPatch, d declared) { patch(p, *of(&d)) },
		take:    func(dst *declared, src declared) { *of(dst) = *of(&src) },
	}
}

// renderScopes shows a scope list as a set: sorted, in brackets.
func renderScopes(scopes []string) string {
	sorted := slices.Sorted(slices.Values(scopes))
	return "[" + strings.Join(sorted, " ") + "]"
}

// settingFields lists the instance settings that may be declared.
func settingFields() []settingField {
	return []settingField{
		boolField("dynamicClientRegistration",
			func(d *declared) **bool { return &d.dynamicClientRegistration },
			func(s *clerk.OAuthApplicationSettings) bool { return s.DynamicOAuthClientRegistration },
			func(p *clerk.OAuthApplicationSettingsPatch, v *bool) { p.DynamicOAuthClientRegistration = v }),
		boolField("clientIdMetadataDocuments",
			func(d *declared) **bool { return &d.clientIDMetadataDocuments },
			func(s *clerk.OAuthApplicationSettings) bool { return s.ClientIDMetadataDocumentsAdvertised },
			func(p *clerk.OAuthApplicationSettingsPatch, v *bool) { p.ClientIDMetadataDocumentsAdvertised = v }),
		boolField("jwtAccessTokens",
			func(d *declared) **bool { return &d.jwtAccessTokens },
			func(s *clerk.OAuthApplicationSettings) bool { return s.OAuthJWTAccessTokens },
			func(p *clerk.OAuthApplicationSettingsPatch, v *bool) { p.OAuthJWTAccessTokens = v }),
		{
			spec: "defaultScopes",
			declared: func(d declared) (string, bool) {
				if d.defaultScopes == nil {
					return "", false
				}
				return renderScopes(d.defaultScopes), true
			},
			current: func(s *clerk.OAuthApplicationSettings) string { return renderScopes(s.DefaultScopes) },
			patch: func(p *clerk.OAuthApplicationSettingsPatch, d declared) {
				// Clone keeps an empty list non-nil: a JSON null would reset
				// the instance to Clerk's defaults.
				scopes := slices.Clone(d.defaultScopes)
				slices.Sort(scopes)
				p.DefaultScopes = &scopes
			},
			take: func(dst *declared, src declared) { dst.defaultScopes = src.defaultScopes },
		},
	}
}

// declaredSettings reads the settings an McpServer's inline block or an
// instance object declares; scopes may be nil.
func declaredSettings(s mcpv1.ClerkSettings, scopes []mcpv1.Scope) declared {
	d := declared{
		dynamicClientRegistration: s.DynamicClientRegistration,
		clientIDMetadataDocuments: s.ClientIDMetadataDocuments,
		jwtAccessTokens:           s.JWTAccessTokens,
	}
	if scopes != nil {
		d.defaultScopes = make([]string, 0, len(scopes))
		for _, sc := range scopes {
			d.defaultScopes = append(d.defaultScopes, string(sc))
		}
	}
	return d
}

func (d declared) empty() bool {
	for _, f := range settingFields() {
		if _, ok := f.declared(d); ok {
			return false
		}
	}
	return true
}

// String lists the declared fields, for condition messages and events.
func (d declared) String() string {
	var parts []string
	for _, f := range settingFields() {
		if v, ok := f.declared(d); ok {
			parts = append(parts, f.spec+"="+v)
		}
	}
	return strings.Join(parts, ", ")
}

// declarer is one object that declares settings for a Clerk instance: an
// McpServer with an inline clerk block, a ClerkInstance or a
// ClusterClerkInstance.
type declarer struct {
	// id names the object, as "McpServer team-a/tools"; it orders declarers.
	id string
	// fieldPrefix is where its settings are, as "spec.clerk.".
	fieldPrefix string
	declared    declared
}

func mcpServerDeclarer(mcp *mcpv1.McpServer) declarer {
	return declarer{
		id:          "McpServer " + mcp.Namespace + "/" + mcp.Name,
		fieldPrefix: "spec.clerk.",
		declared:    declaredSettings(mcp.Spec.Clerk.ClerkSettings, nil),
	}
}

func instanceDeclarer(kind string, inst mcpv1.GenericClerkInstance) declarer {
	spec := inst.GetInstanceSpec()
	return declarer{
		id:          kind + " " + instanceID(inst),
		fieldPrefix: "spec.",
		declared:    declaredSettings(spec.ClerkSettings, spec.DefaultScopes),
	}
}

// instanceID is namespace/name, or name for a cluster-scoped object.
func instanceID(obj metav1.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// mergeDeclared combines what every object using one instance declares.
// A field on which they disagree is left out of the result, so that no
// reconcile flips it back and forth; conflict names, for self, the first
// other declarer that disagrees with it ("" when self agrees with all).
// The result is the same whichever of the declarers computes it.
func mergeDeclared(self declarer, all []declarer) (merged declared, conflict string) {
	all = slices.Clone(all)
	if !slices.ContainsFunc(all, func(d declarer) bool { return d.id == self.id }) {
		all = append(all, self) // the cache may not have seen self yet
	}
	slices.SortFunc(all, func(a, b declarer) int { return strings.Compare(a.id, b.id) })
	for _, f := range settingFields() {
		own, mineSet := f.declared(self.declared)
		var agreed *declarer
		disagree := false
		for i, d := range all {
			v, ok := f.declared(d.declared)
			if !ok {
				continue
			}
			if agreed == nil {
				agreed = &all[i]
			} else if first, _ := f.declared(agreed.declared); v != first {
				disagree = true
			}
			if mineSet && v != own && conflict == "" && d.id != self.id {
				conflict = fmt.Sprintf("%s%s is %s here but %s in %s, which uses the same Clerk instance",
					self.fieldPrefix, f.spec, own, v, d.id)
			}
		}
		if agreed != nil && !disagree {
			f.take(&merged, agreed.declared)
		}
	}
	return merged, conflict
}

// patchFor is the PATCH that brings current to what is declared, and the
// fields it changes (none when nothing differs).
func patchFor(current *clerk.OAuthApplicationSettings, want declared) (p clerk.OAuthApplicationSettingsPatch, changed []string) {
	for _, f := range settingFields() {
		if v, ok := f.declared(want); ok && f.current(current) != v {
			f.patch(&p, want)
			changed = append(changed, f.spec+"="+v)
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

// observed returns the settings last read from the instance of issuer, and
// when; nil before the first successful call. The settings must not be changed.
func (s *clerkInstances) observed(issuer string) (*clerk.OAuthApplicationSettings, time.Time) {
	inst := s.instance(issuer)
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.observed, inst.observedAt
}
