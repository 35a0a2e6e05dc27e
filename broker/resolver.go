package broker

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
)

// Instance is the Clerk instance a caller may ask about, and how the broker
// reaches it.
type Instance struct {
	// ID names where the instance's configuration comes from, such as the
	// McpServer "team-a/github-tools". Callers resolving to the same ID,
	// Issuer, BackendAPIURL and KeyRef share one verifier and directory
	// (and their caches).
	ID string
	// Issuer is the instance's Frontend API URL, the iss of its JWTs.
	Issuer string
	// BackendAPIURL is the Backend API base, e.g. https://api.clerk.com/v1.
	BackendAPIURL string
	// KeyRef names the secret key's source (such as "<namespace>/<secret>/<key>");
	// a change of source gives a new verifier and directory.
	KeyRef string
	// SecretKey returns the instance's secret key; called before each
	// Backend API call, so a rotated key is picked up.
	SecretKey func(ctx context.Context) (string, error)
	// Audiences, when set, are the only aud values a JWT may name (the
	// McpServer's public URLs); the request's audiences are then ignored.
	// Empty: the request's audiences apply, as the gateway's WithAudience
	// does today. Either way a JWT without aud is accepted.
	Audiences []string
}

// instanceKey is what makes two Instances share a verifier and directory.
type instanceKey struct{ id, issuer, backendAPIURL, keyRef string }

func (i Instance) key() instanceKey {
	return instanceKey{i.ID, i.Issuer, i.BackendAPIURL, i.KeyRef}
}

// Resolver says which Clerk instance a caller may use. An error wrapping
// ErrNoInstance refuses the caller (403); any other error means the broker
// cannot tell right now (503).
type Resolver interface {
	Resolve(ctx context.Context, caller Caller) (Instance, error)
}

// ErrNoInstance means the caller may use no Clerk instance through the
// broker: it is not the ServiceAccount of any gateway.
var ErrNoInstance = errors.New("caller may use no clerk instance")

// StaticResolver maps ServiceAccounts to instances from a fixed table. It
// serves tests and a broker configured by hand; the operator's resolver
// finds the McpServer whose gateway runs as the ServiceAccount. It is safe
// for concurrent use.
type StaticResolver struct {
	mu        sync.RWMutex
	instances map[Caller]Instance
}

// NewStaticResolver returns a resolver answering from instances (copied).
func NewStaticResolver(instances map[Caller]Instance) *StaticResolver {
	return &StaticResolver{instances: maps.Clone(instances)}
}

// Set gives caller an instance, or none when inst is nil.
func (r *StaticResolver) Set(caller Caller, inst *Instance) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.instances == nil {
		r.instances = map[Caller]Instance{}
	}
	if inst == nil {
		delete(r.instances, caller)
		return
	}
	r.instances[caller] = *inst
}

// Resolve returns caller's instance, or ErrNoInstance.
func (r *StaticResolver) Resolve(_ context.Context, caller Caller) (Instance, error) {
	r.mu.RLock()
	defer r.mu.RUnlock()
	inst, ok := r.instances[caller]
	if !ok {
		return Instance{}, fmt.Errorf("service account %s: %w", caller, ErrNoInstance)
	}
	return inst, nil
}
