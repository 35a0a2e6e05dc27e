package controllers

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"golang.org/x/sync/singleflight"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/broker"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// Defaults of BrokerResolverOptions.
const (
	// DefaultBrokerKeyTTL is how long the broker reuses a secret key it read
	// from its Secret: a rotated key is used at most this long after the
	// Secret changed, and a busy instance costs the API server one GET per
	// TTL rather than one per Backend API call.
	DefaultBrokerKeyTTL = 10 * time.Second
	// DefaultBrokerMaxKeys bounds the keys kept; one per Secret key in use.
	DefaultBrokerMaxKeys = 1024
	// secretReadTimeout bounds one read of a key's Secret.
	secretReadTimeout = 10 * time.Second
)

// BrokerResolverOptions configure a BrokerResolver.
type BrokerResolverOptions struct {
	// Reader reads McpServers, ClerkInstances and ClusterClerkInstances:
	// the informers of NewBrokerCache, so a request costs the API server
	// nothing.
	Reader client.Reader
	// SecretReader reads the Secrets that hold secret keys: the uncached
	// API reader, so that the broker keeps no informer of Secrets (which
	// would hold every Secret of the cluster in its memory).
	SecretReader client.Reader
	// ClusterResourceNamespace holds the Secrets of ClusterClerkInstances
	// (the operator's namespace).
	ClusterResourceNamespace string
	// ClerkAPIURL is the Backend API base URL of every instance.
	ClerkAPIURL string
	// KeyTTL is how long a secret key read is reused (DefaultBrokerKeyTTL
	// when zero; negative: read on every call).
	KeyTTL time.Duration
	// MaxKeys bounds the keys kept (DefaultBrokerMaxKeys when zero).
	MaxKeys int
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// BrokerResolver is the broker's broker.Resolver: a gateway's
// ServiceAccount "<mcpserver>-gateway" in a namespace may use the Clerk
// instance of the McpServer of that name in that namespace, and nothing
// else. The binding rules are the reconciler's (see resolveClerk): inline,
// a ClerkInstance of the namespace, or a ClusterClerkInstance whose key is
// in the cluster resource namespace. Instance IDs name the object the
// configuration comes from, kind first ("McpServer/<ns>/<name>",
// "ClerkInstance/<ns>/<name>", "ClusterClerkInstance/<name>"), so the
// McpServers sharing an instance object share the broker's verifier and
// caches. It is safe for concurrent use.
type BrokerResolver struct {
	opts BrokerResolverOptions
	keys *secretKeyCache
}

// NewBrokerResolver checks opts and fills in defaults.
func NewBrokerResolver(opts BrokerResolverOptions) (*BrokerResolver, error) {
	switch {
	case opts.Reader == nil:
		return nil, errors.New("reader is required")
	case opts.SecretReader == nil:
		return nil, errors.New("secret reader is required")
	case opts.ClerkAPIURL == "":
		return nil, errors.New("clerk api url is required")
	case opts.MaxKeys < 0:
		return nil, fmt.Errorf("max keys %d is negative", opts.MaxKeys)
	}
	if opts.KeyTTL == 0 {
		opts.KeyTTL = DefaultBrokerKeyTTL
	}
	if opts.MaxKeys == 0 {
		opts.MaxKeys = DefaultBrokerMaxKeys
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &BrokerResolver{opts: opts, keys: &secretKeyCache{
		reader: opts.SecretReader, ttl: opts.KeyTTL, max: opts.MaxKeys, now: opts.Now,
		entries: map[secretKeyRef]cachedKey{},
	}}, nil
}

// brokerBinding is where an McpServer's Clerk instance comes from, as the
// broker needs it: its identity, issuer fields and secret key source.
type brokerBinding struct {
	id             string
	publishableKey mcpv1.PublishableKey
	issuer         mcpv1.IssuerURL
	field          string
	key            secretKeyRef
}

// Resolve returns the instance caller may use. Errors wrap
// broker.ErrNoInstance when the caller is no gateway's ServiceAccount, its
// McpServer does not exist or names an instance object that does not;
// any other error (the cache or API server failing, a binding the broker
// cannot use) means it cannot tell right now, and the broker answers 503.
func (r *BrokerResolver) Resolve(ctx context.Context, caller broker.Caller) (broker.Instance, error) {
	name, ok := strings.CutSuffix(caller.Name, config.GatewaySuffix)
	if !ok || name == "" {
		return broker.Instance{}, fmt.Errorf("service account %s is not named like a gateway: %w", caller, broker.ErrNoInstance)
	}
	mcp := &mcpv1.McpServer{}
	err := r.opts.Reader.Get(ctx, types.NamespacedName{Namespace: caller.Namespace, Name: name}, mcp)
	switch {
	case apierrors.IsNotFound(err):
		return broker.Instance{}, fmt.Errorf("service account %s: no McpServer %s/%s: %w", caller, caller.Namespace, name, broker.ErrNoInstance)
	case err != nil:
		return broker.Instance{}, fmt.Errorf("get McpServer %s/%s: %w", caller.Namespace, name, err)
	}
	// NOTE: the lookup by name makes this hold; it stays checked so that a
	// change of the naming rule cannot hand one McpServer's instance to
	// another's gateway.
	if mcp.Namespace != caller.Namespace || config.GatewayName(mcp.Name) != caller.Name {
		return broker.Instance{}, fmt.Errorf("service account %s is not McpServer %s/%s's gateway: %w", caller, mcp.Namespace, mcp.Name, broker.ErrNoInstance)
	}
	b, err := r.binding(ctx, mcp)
	if err != nil {
		return broker.Instance{}, err
	}
	issuer, err := resolveIssuer(b.publishableKey, b.issuer, b.field)
	if err != nil {
		return broker.Instance{}, fmt.Errorf("McpServer %s/%s: %w", mcp.Namespace, mcp.Name, err)
	}
	inst := broker.Instance{
		ID:            b.id,
		Issuer:        issuer,
		BackendAPIURL: r.opts.ClerkAPIURL,
		KeyRef:        b.key.String(),
		SecretKey:     r.keys.source(b.key),
	}
	// A server with a public URL accepts tokens for that URL only, as its
	// gateway does (config.PublicURL); one reached through its Service
	// names the resource per request, so the request's audiences apply.
	if ep := endpointsFor(mcp); ep.public {
		inst.Audiences = []string{ep.url}
	}
	return inst, nil
}

// binding finds mcp's Clerk instance in the cache.
func (r *BrokerResolver) binding(ctx context.Context, mcp *mcpv1.McpServer) (brokerBinding, error) {
	spec := mcp.Spec.Clerk
	if spec.InstanceRef == nil {
		return brokerBinding{
			id:             instanceKey(kindMcpServer, mcp.Namespace, mcp.Name),
			publishableKey: spec.PublishableKey,
			issuer:         spec.Issuer,
			field:          "spec.clerk.publishableKey",
			key:            secretKeyRef{namespace: mcp.Namespace, name: spec.SecretKeyRef.Name, key: spec.SecretKeyRef.Key},
		}, nil
	}
	kind := refKind(spec.InstanceRef)
	inst := newInstance(kind)
	key := types.NamespacedName{Name: spec.InstanceRef.Name}
	secretNamespace := mcp.Namespace
	if kind == mcpv1.KindClerkInstance {
		key.Namespace = mcp.Namespace
	} else {
		secretNamespace = r.opts.ClusterResourceNamespace
	}
	err := r.opts.Reader.Get(ctx, key, inst)
	switch {
	case apierrors.IsNotFound(err):
		return brokerBinding{}, fmt.Errorf("McpServer %s/%s: %s %s not found: %w", mcp.Namespace, mcp.Name, kind, spec.InstanceRef.Name, broker.ErrNoInstance)
	case err != nil:
		return brokerBinding{}, fmt.Errorf("get %s %s: %w", kind, spec.InstanceRef.Name, err)
	}
	if secretNamespace == "" {
		// Not ErrNoInstance: the broker is misconfigured, not the caller.
		return brokerBinding{}, fmt.Errorf("%s %s: the broker has no cluster resource namespace to read its Secret from", kind, inst.GetName())
	}
	is := inst.GetInstanceSpec()
	return brokerBinding{
		id:             instanceKey(kind, key.Namespace, key.Name),
		publishableKey: is.PublishableKey,
		issuer:         is.Issuer,
		field:          kind + " " + instanceID(inst) + ": spec.publishableKey",
		key:            secretKeyRef{namespace: secretNamespace, name: is.SecretKeyRef.Name, key: is.SecretKeyRef.Key},
	}, nil
}

// BrokerCacheObjects are the kinds the broker's resolver reads from its
// cache.
func BrokerCacheObjects() []client.Object {
	return []client.Object{&mcpv1.McpServer{}, &mcpv1.ClerkInstance{}, &mcpv1.ClusterClerkInstance{}}
}

// NewBrokerCache returns the broker's cache, not started, with an informer
// for each of BrokerCacheObjects and none other: reading any other kind
// through it fails rather than starting an informer (and needing its
// RBAC), so Secrets are never cached.
func NewBrokerCache(ctx context.Context, cfg *rest.Config, scheme *runtime.Scheme) (cache.Cache, error) {
	c, err := cache.New(cfg, cache.Options{
		Scheme:                      scheme,
		DefaultTransform:            cache.TransformStripManagedFields(),
		ReaderFailOnMissingInformer: true,
	})
	if err != nil {
		return nil, fmt.Errorf("create cache: %w", err)
	}
	for _, obj := range BrokerCacheObjects() {
		// NOTE: before Start this registers the informer without waiting;
		// Start then starts it, and WaitForCacheSync waits for it.
		if _, err := c.GetInformer(ctx, obj); err != nil {
			return nil, fmt.Errorf("informer for %T: %w", obj, err)
		}
	}
	return c, nil
}

// secretKeyRef is a key of a Secret.
type secretKeyRef struct{ namespace, name, key string }

func (k secretKeyRef) String() string { return k.namespace + "/" + k.name + "/" + k.key }

// cachedKey is one secret key read, and when.
type cachedKey struct {
	value string
	read  time.Time
}

// secretKeyCache reads secret keys through the API reader and keeps each
// for a TTL, bounded in size. Keys live in memory only: never logged, and
// errors name the Secret, not its content. Failures are not kept, so a
// Secret that appears is used at once.
type secretKeyCache struct {
	reader  client.Reader
	ttl     time.Duration
	max     int
	now     func() time.Time
	flights singleflight.Group

	mu      sync.Mutex
	entries map[secretKeyRef]cachedKey
}

// source is an Instance.SecretKey reading ref.
func (c *secretKeyCache) source(ref secretKeyRef) func(context.Context) (string, error) {
	return func(ctx context.Context) (string, error) { return c.get(ctx, ref) }
}

func (c *secretKeyCache) get(ctx context.Context, ref secretKeyRef) (string, error) {
	if v, ok := c.cached(ref); ok {
		return v, nil
	}
	// Concurrent misses of one key share one read, detached from the
	// first caller's context so that its hanging up fails no one else.
	v, err, _ := c.flights.Do(ref.String(), func() (any, error) {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), secretReadTimeout)
		defer cancel()
		key, err := readSecretKey(rctx, c.reader, ref.namespace, mcpv1.SecretKeyReference{Name: ref.name, Key: ref.key})
		if err != nil {
			return "", fmt.Errorf("namespace %s: %w", ref.namespace, err)
		}
		c.store(ref, key)
		return key, nil
	})
	if err != nil {
		return "", err
	}
	return v.(string), nil
}

func (c *secretKeyCache) cached(ref secretKeyRef) (string, bool) {
	if c.ttl < 0 {
		return "", false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[ref]
	if !ok || c.now().Sub(e.read) >= c.ttl {
		return "", false
	}
	return e.value, true
}

// store keeps key; when full, expired entries go first, then arbitrary
// ones (an evicted key costs one more read, never a wrong answer).
func (c *secretKeyCache) store(ref secretKeyRef, key string) {
	if c.ttl < 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if len(c.entries) >= c.max {
		for k, e := range c.entries {
			if now.Sub(e.read) >= c.ttl {
				delete(c.entries, k)
			}
		}
		for k := range c.entries {
			if len(c.entries) < c.max {
				break
			}
			delete(c.entries, k)
		}
	}
	c.entries[ref] = cachedKey{value: key, read: now}
}
