package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/clock"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

// eventReasonSettingsPatched is the reason of the Event for a PATCH of the
// instance settings.
const eventReasonSettingsPatched = "ClerkSettingsPatched"

// ClerkSettingsSync keeps the OAuth application settings of each Clerk
// instance in line with what the objects naming it declare: McpServers with
// an inline clerk block, ClerkInstances and ClusterClerkInstances. One is
// shared by their reconcilers, so that the Backend API calls grow with the
// number of Clerk instances, not of objects: per instance (keyed by issuer)
// it remembers the settings last read and any failure; a settled instance
// is read again only after the resync interval, and a failing one is left
// alone until its backoff has passed.
type ClerkSettingsSync struct {
	// reader is the cache: who declares what.
	reader client.Reader
	// secrets reads secret key values, which the cache does not hold.
	secrets  client.Reader
	recorder events.EventRecorder
	clock    clock.PassiveClock
	opts     Options

	mu       sync.Mutex
	byIssuer map[string]*issuerSettings
	// listings remembers, per issuer, the declarers last listed from the
	// cache, so that a reconcile whose object declares what it did before
	// does not list every declarer of its issuer again: with 500 McpServers
	// on one instance, that listing was most of an inline reconcile's cost.
	// forget drops an issuer's entry on every declaration event, before
	// the peers the event concerns are woken (see conflictPeers).
	listings map[string]*declarersMemo
	// forgets counts the forget calls per issuer.
	forgets map[string]uint64
}

// declarersMemo is one listing of an issuer's declarers.
type declarersMemo struct {
	all []declarer
	// declared is what each declarer declared then, by id, rendered.
	declared map[string]string

	// mergeOnce guards merged and conflicts, the merge of all, which every
	// reconcile of a declarer that still declares what was listed shares:
	// merging 500 declarers for each of them was the rest of the cost.
	mergeOnce sync.Once
	merged    declared
	conflicts map[string]string
}

func newDeclarersMemo(all []declarer) *declarersMemo {
	memo := &declarersMemo{all: all, declared: make(map[string]string, len(all))}
	for _, d := range all {
		memo.declared[d.id] = d.declared.String()
	}
	return memo
}

// mergeFor is what self's declaration merges to with the listed others,
// and self's conflict. While self declares what the listing saw, that is
// the merge of the listing itself (mergeAll orders declarers by id, so
// where self sits does not matter), computed once per listing.
func (m *declarersMemo) mergeFor(self declarer) (declared, string) {
	if was, ok := m.declared[self.id]; !ok || was != self.declared.String() {
		return mergeDeclared(self, m.all)
	}
	m.mergeOnce.Do(func() { m.merged, m.conflicts = mergeAll(m.all) })
	return m.merged, m.conflicts[self.id]
}

// NewClerkSettingsSync returns the sync the reconcilers of mgr share. Of
// opts it uses the Clerk API URL, HTTP client, resync interval and backoff.
func NewClerkSettingsSync(mgr ctrl.Manager, recorder events.EventRecorder, clk clock.PassiveClock, opts Options) *ClerkSettingsSync {
	return newClerkSettingsSync(mgr.GetClient(), mgr.GetAPIReader(), recorder, clk, opts)
}

func newClerkSettingsSync(reader, secrets client.Reader, recorder events.EventRecorder, clk clock.PassiveClock, opts Options) *ClerkSettingsSync {
	return &ClerkSettingsSync{
		reader: reader, secrets: secrets, recorder: recorder, clock: clk, opts: opts.withDefaults(),
		byIssuer: map[string]*issuerSettings{}, listings: map[string]*declarersMemo{}, forgets: map[string]uint64{},
	}
}

// declarers returns the listing of issuer's declarers: the remembered one
// while no declaration event has come since and self declares there what it
// declares now (its reconcile may run on a newer object than the listing
// saw), otherwise a new listing from the cache.
func (s *ClerkSettingsSync) declarers(ctx context.Context, issuer string, self declarer) (*declarersMemo, error) {
	s.mu.Lock()
	memo, gen := s.listings[issuer], s.forgets[issuer]
	s.mu.Unlock()
	if memo != nil {
		if was, ok := memo.declared[self.id]; ok && was == self.declared.String() {
			return memo, nil
		}
	}
	all, err := listDeclarers(ctx, s.reader, issuer)
	if err != nil {
		return nil, err
	}
	memo = newDeclarersMemo(all)
	s.mu.Lock()
	// NOTE: a forget that came while the cache was read may be about a
	// change this listing missed, so it is remembered only if none came.
	if s.forgets[issuer] == gen {
		s.listings[issuer] = memo
	}
	s.mu.Unlock()
	return memo, nil
}

// forget drops the remembered declarers of issuer. conflictPeers calls it
// for every event that changes what an object declares for issuer, before
// it wakes anyone, so that no reconcile it wakes sees the old listing.
func (s *ClerkSettingsSync) forget(issuer string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.listings, issuer)
	s.forgets[issuer]++
}

// settingsDeclaration is what one object asks of the sync.
type settingsDeclaration struct {
	// object gets the Event of a PATCH made for it.
	object client.Object
	self   declarer
	issuer string
	// secretNamespace and secretRef locate the Clerk secret key;
	// secretMissing, when set, says why it cannot be read.
	secretNamespace string
	secretRef       mcpv1.SecretKeyReference
	secretMissing   string
	// report reads the instance settings even when self declares none, so
	// that the object's status can show them.
	report bool
}

// settingsOutcome is what the declaring object's condition says: True
// once the instance has what is declared.
type settingsOutcome struct {
	status          metav1.ConditionStatus
	reason, message string
	// requeue is when to look again without an event: the resync interval,
	// a failed call's backoff, or 0.
	requeue time.Duration
	// observed is the instance's settings, read at observedAt; set when
	// status is True and they have been read. They must not be changed.
	observed   *clerk.OAuthApplicationSettings
	observedAt time.Time
}

// declare merges d with what every other object declares for its Clerk
// instance, and brings the instance in line: a conflict with another
// object, a missing secret key or a Backend API failure is the outcome's
// reason, and a PATCH is an Event on d.object. The error is for what the
// caller should retry (the cache failing).
func (s *ClerkSettingsSync) declare(ctx context.Context, d settingsDeclaration) (settingsOutcome, error) {
	if d.self.declared.empty() && !d.report {
		return settingsOutcome{status: metav1.ConditionTrue, reason: mcpv1.ReasonNothingToConfigure,
			message: "No Clerk instance settings declared"}, nil
	}
	if d.secretMissing != "" {
		return settingsOutcome{status: metav1.ConditionFalse, reason: mcpv1.ReasonSecretNotFound, message: d.secretMissing}, nil
	}
	listing, err := s.declarers(ctx, d.issuer, d.self)
	if err != nil {
		return settingsOutcome{}, err
	}
	merged, conflict := listing.mergeFor(d.self)
	if conflict != "" {
		return settingsOutcome{status: metav1.ConditionFalse, reason: mcpv1.ReasonConflict, message: conflict}, nil
	}

	connect := func(ctx context.Context) (settingsAPI, error) {
		key, err := readSecretKey(ctx, s.secrets, d.secretNamespace, d.secretRef)
		if err != nil {
			return nil, err
		}
		return clerk.NewSettingsClient(s.opts.ClerkAPIURL, key, s.opts.ClerkHTTPClient), nil
	}
	inst := s.issuer(d.issuer)
	patched, err := inst.sync(ctx, s, merged, connect)
	if ce, ok := asClerkError(err); ok {
		return settingsOutcome{status: metav1.ConditionFalse, reason: ce.reason,
			message: "Clerk Backend API: " + ce.Error(), requeue: ce.retryIn}, nil
	}
	if err != nil {
		return settingsOutcome{}, err
	}
	if len(patched) > 0 {
		s.recorder.Eventf(d.object, nil, corev1.EventTypeNormal, eventReasonSettingsPatched, "PatchClerkSettings",
			"Patched Clerk instance %s: %s", d.issuer, strings.Join(patched, ", "))
	}
	out := settingsOutcome{status: metav1.ConditionTrue, reason: mcpv1.ReasonSettingsSynced,
		message: "Clerk instance settings match: " + d.self.declared.String(), requeue: s.opts.ClerkResyncInterval}
	if d.self.declared.empty() {
		out.message = "No settings declared; the instance's are shown in status.settings"
	}
	out.observed, out.observedAt = inst.last()
	return out, nil
}

// settingsAPI is what the sync needs of clerk.SettingsClient.
type settingsAPI interface {
	Get(ctx context.Context) (*clerk.OAuthApplicationSettings, error)
	Patch(ctx context.Context, p clerk.OAuthApplicationSettingsPatch) (*clerk.OAuthApplicationSettings, error)
}

// issuerSettings is what the sync knows of one Clerk instance.
type issuerSettings struct {
	// mu serializes the Backend API calls for the instance.
	mu         sync.Mutex
	observed   *clerk.OAuthApplicationSettings
	observedAt time.Time
	failures   int
	notBefore  time.Time
	lastErr    *clerkError
}

func (s *ClerkSettingsSync) issuer(issuer string) *issuerSettings {
	s.mu.Lock()
	defer s.mu.Unlock()
	inst, ok := s.byIssuer[issuer]
	if !ok {
		inst = &issuerSettings{}
		s.byIssuer[issuer] = inst
	}
	return inst
}

// sync makes the instance's settings match want, calling the Backend API only
// when its last reading is stale or does not match. It returns the fields it
// patched. connect is called only when a call is needed.
func (inst *issuerSettings) sync(ctx context.Context, s *ClerkSettingsSync, want declared, connect func(context.Context) (settingsAPI, error)) ([]string, error) {
	inst.mu.Lock()
	defer inst.mu.Unlock()

	now := s.clock.Now()
	if now.Before(inst.notBefore) {
		return nil, &clerkError{reason: inst.lastErr.reason, retryIn: inst.notBefore.Sub(now), err: inst.lastErr.err}
	}
	fresh := inst.observed != nil && now.Sub(inst.observedAt) < s.opts.ClerkResyncInterval
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
	inst.observed, inst.observedAt = current, s.clock.Now()
	inst.failures, inst.notBefore, inst.lastErr = 0, time.Time{}, nil
	return changed, nil
}

// fail classifies err, and backs off: as Retry-After says after a 429,
// exponentially otherwise.
func (inst *issuerSettings) fail(s *ClerkSettingsSync, err error) *clerkError {
	inst.failures++
	delay := s.opts.ClerkRetryBase << min(inst.failures-1, 16)
	if delay > s.opts.ClerkRetryMax || delay <= 0 {
		delay = s.opts.ClerkRetryMax
	}
	ce := &clerkError{reason: mcpv1.ReasonClerkUnavailable, err: err}
	if after, ok := clerk.RetryAfter(err); ok {
		ce.reason, delay = mcpv1.ReasonClerkRateLimited, max(after, s.opts.ClerkRetryBase)
	} else if clerk.IsUnauthorized(err) {
		ce.reason = mcpv1.ReasonClerkUnauthorized
	} else if code := clerk.StatusCode(err); code >= 400 && code < 500 {
		ce.reason = mcpv1.ReasonClerkRejected
	}
	ce.retryIn = delay
	inst.notBefore, inst.lastErr = s.clock.Now().Add(delay), ce
	return ce
}

// last returns the settings last read from the instance, and when; nil
// before the first successful call.
func (inst *issuerSettings) last() (*clerk.OAuthApplicationSettings, time.Time) {
	inst.mu.Lock()
	defer inst.mu.Unlock()
	return inst.observed, inst.observedAt
}

// clerkError is a failed Backend API exchange, classified for the
// condition it sets, with the delay before the next attempt.
type clerkError struct {
	reason  string
	retryIn time.Duration
	err     error
}

func (e *clerkError) Error() string { return e.err.Error() }
func (e *clerkError) Unwrap() error { return e.err }

// asClerkError unwraps a classified Backend API failure.
func asClerkError(err error) (*clerkError, bool) {
	var ce *clerkError
	ok := errors.As(err, &ce)
	return ce, ok
}
