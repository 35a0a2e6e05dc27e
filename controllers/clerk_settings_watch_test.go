package controllers

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// fakeIndexer registers field indexes with a fake client builder.
type fakeIndexer struct{ b *fake.ClientBuilder }

func (f fakeIndexer) IndexField(_ context.Context, obj client.Object, field string, fn client.IndexerFunc) error {
	f.b.WithIndex(obj, field, fn)
	return nil
}

// countingReader counts the reads of the declarers of an issuer.
type countingReader struct {
	client.Reader
	reads int
}

func (c *countingReader) List(ctx context.Context, list client.ObjectList, opts ...client.ListOption) error {
	if _, ok := list.(*mcpv1.McpServerList); ok {
		c.reads++ // listDeclarers lists McpServers once per read
	}
	return c.Reader.List(ctx, list, opts...)
}

// peerWatch is the McpServer controller's conflict watch over a fake cache.
// Each method changes the cache first, then delivers the event through the
// watch's predicate and handler, as an informer does, and returns the names
// of the objects woken.
type peerWatch struct {
	t      *testing.T
	cache  client.Client
	reader *countingReader
	peers  *conflictPeers
}

func newPeerWatch(t *testing.T) *peerWatch {
	t.Helper()
	scheme := runtime.NewScheme()
	utilruntime.Must(clientgoscheme.AddToScheme(scheme))
	utilruntime.Must(mcpv1.AddToScheme(scheme))
	b := fake.NewClientBuilder().WithScheme(scheme)
	if err := AddIndexes(context.Background(), fakeIndexer{b}); err != nil {
		t.Fatal(err)
	}
	c := b.Build()
	reader := &countingReader{Reader: c}
	return &peerWatch{t: t, cache: c, reader: reader, peers: newConflictPeers(kindMcpServer, reader, nil)}
}

// deliver runs one event through the watch and returns the names it woke.
func (w *peerWatch) deliver(send func(context.Context, workqueue.TypedRateLimitingInterface[reconcile.Request])) []string {
	q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[reconcile.Request]())
	defer q.ShutDown()
	send(context.Background(), q)
	var woken []string
	for q.Len() > 0 {
		req, _ := q.Get()
		woken = append(woken, req.Name)
		q.Done(req)
	}
	slices.Sort(woken)
	return woken
}

func (w *peerWatch) create(obj client.Object) []string {
	w.t.Helper()
	if err := w.cache.Create(context.Background(), obj); err != nil {
		w.t.Fatal(err)
	}
	e := event.CreateEvent{Object: obj}
	if !declarationChanged().Create(e) {
		return nil
	}
	return w.deliver(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		w.peers.handler().Create(ctx, e, q)
	})
}

func (w *peerWatch) update(name string, change func(*mcpv1.McpServer)) []string {
	w.t.Helper()
	old := &mcpv1.McpServer{}
	if err := w.cache.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: name}, old); err != nil {
		w.t.Fatal(err)
	}
	updated := old.DeepCopy()
	change(updated)
	if err := w.cache.Update(context.Background(), updated); err != nil {
		w.t.Fatal(err)
	}
	e := event.UpdateEvent{ObjectOld: old, ObjectNew: updated}
	if !declarationChanged().Update(e) {
		return nil
	}
	return w.deliver(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		w.peers.handler().Update(ctx, e, q)
	})
}

func (w *peerWatch) delete(name string) []string {
	w.t.Helper()
	obj := &mcpv1.McpServer{}
	if err := w.cache.Get(context.Background(), client.ObjectKey{Namespace: "team", Name: name}, obj); err != nil {
		w.t.Fatal(err)
	}
	if err := w.cache.Delete(context.Background(), obj); err != nil {
		w.t.Fatal(err)
	}
	e := event.DeleteEvent{Object: obj}
	return w.deliver(func(ctx context.Context, q workqueue.TypedRateLimitingInterface[reconcile.Request]) {
		w.peers.handler().Delete(ctx, e, q)
	})
}

// TestConflictPeers pins how many McpServers a change to one wakes, among
// peerCount inline McpServers of one Clerk instance that all declare
// dynamicClientRegistration=true (as in the operator benchmark): only those
// whose conflict the change starts or ends, never the others.
func TestConflictPeers(t *testing.T) {
	t.Parallel()
	const (
		peerCount = 40
		issuer    = "https://clerk.example.test"
	)
	yes, no := ptr.To(true), ptr.To(false)
	name := func(i int) string { return fmt.Sprintf("s%02d", i) }
	names := func(from, to int) []string { // from..to-1
		var out []string
		for i := from; i < to; i++ {
			out = append(out, name(i))
		}
		return out
	}
	server := func(i int, opts ...mcpOption) *mcpv1.McpServer {
		return newMcpServer("team", name(i), append([]mcpOption{withIssuer(issuer), func(m *mcpv1.McpServer) {
			m.Spec.Clerk.DynamicClientRegistration = yes
		}}, opts...)...)
	}
	jwt := func(v *bool) mcpOption { return func(m *mcpv1.McpServer) { m.Spec.Clerk.JWTAccessTokens = v } }

	// step is one change; want is who it wakes, wantReads how often the
	// watch reads the declarers from the cache for it.
	type step struct {
		what      string
		do        func(w *peerWatch) []string
		want      []string
		wantReads int
	}
	tests := map[string][]step{
		"a spec change beside the Clerk settings": {
			{what: "scopes of s00", do: func(w *peerWatch) []string {
				return w.update(name(0), func(m *mcpv1.McpServer) { m.Spec.Scopes = []mcpv1.Scope{"email"} })
			}},
		},
		"agreeing declarations": {
			{what: "s00 adds jwtAccessTokens", do: func(w *peerWatch) []string {
				return w.update(name(0), func(m *mcpv1.McpServer) { m.Spec.Clerk.JWTAccessTokens = yes })
			}},
			{what: "a new McpServer agreeing with all", do: func(w *peerWatch) []string { return w.create(server(peerCount, jwt(yes))) }},
			{what: "s01 deleted", do: func(w *peerWatch) []string { return w.delete(name(1)) }},
			{what: "s02 moves to another issuer", do: func(w *peerWatch) []string {
				return w.update(name(2), withIssuer("https://other.example.test"))
			}, wantReads: 1}, // the other issuer's first
		},
		"a conflict on a field all declare, then resolved": {
			{what: "s00 says false", do: func(w *peerWatch) []string {
				return w.update(name(0), func(m *mcpv1.McpServer) { m.Spec.Clerk.DynamicClientRegistration = no })
			}, want: names(1, peerCount), wantReads: 1},
			{what: "s00 stops declaring it", do: func(w *peerWatch) []string {
				return w.update(name(0), func(m *mcpv1.McpServer) { m.Spec.Clerk.DynamicClientRegistration = nil })
			}, want: names(1, peerCount), wantReads: 1},
			{what: "then a spec change", do: func(w *peerWatch) []string {
				return w.update(name(1), func(m *mcpv1.McpServer) { m.Spec.Scopes = []mcpv1.Scope{"email"} })
			}},
		},
		"a conflict between two": {
			{what: "s00 declares jwtAccessTokens=true", do: func(w *peerWatch) []string {
				return w.update(name(0), jwt(yes))
			}},
			{what: "s01 declares jwtAccessTokens=false", do: func(w *peerWatch) []string {
				return w.update(name(1), jwt(no))
			}, want: []string{name(0)}, wantReads: 1},
			{what: "a new McpServer agreeing with s00", do: func(w *peerWatch) []string { return w.create(server(peerCount, jwt(yes))) },
				want: nil, wantReads: 1}, // it conflicts with s01, which already names s00
			{what: "s01 deleted", do: func(w *peerWatch) []string { return w.delete(name(1)) },
				want: []string{name(0), name(peerCount)}, wantReads: 1},
		},
		"a ClerkInstance that conflicts with every inline McpServer": {
			{what: "created", do: func(w *peerWatch) []string {
				inst := &mcpv1.ClerkInstance{}
				inst.Namespace, inst.Name = "team", "main"
				inst.Spec = instanceSpec(issuer, "clerk", mcpv1.ClerkSettings{DynamicClientRegistration: no})
				return w.create(inst)
			}, want: names(0, peerCount), wantReads: 1},
		},
	}
	for test, steps := range tests {
		t.Run(test, func(t *testing.T) {
			t.Parallel()
			w := newPeerWatch(t)
			// The informer's first list: one read of the cache for the
			// issuer, then none for agreeing declarations.
			for i := range peerCount {
				if woken := w.create(server(i)); len(woken) > 0 {
					t.Fatalf("creating %s woke %v", name(i), woken)
				}
			}
			if w.reader.reads != 1 {
				t.Fatalf("creating %d agreeing McpServers read the cache %d times, want 1", peerCount, w.reader.reads)
			}
			for _, s := range steps {
				w.reader.reads = 0
				if woken := s.do(w); !slices.Equal(woken, s.want) {
					t.Errorf("%s woke %d McpServers %v, want %d %v", s.what, len(woken), woken, len(s.want), s.want)
				}
				if w.reader.reads != s.wantReads {
					t.Errorf("%s read the cache %d times, want %d", s.what, w.reader.reads, s.wantReads)
				}
			}
		})
	}
}

// TestDeclarersMemo: the sync lists an issuer's declarers from the cache
// once, and again only after a declaration event (delivered through the
// conflict watch, which forgets the listing before it wakes anyone) or when
// the reconciling object declares something other than the listing saw.
func TestDeclarersMemo(t *testing.T) {
	t.Parallel()
	const issuer = "https://clerk.example.test"
	w := newPeerWatch(t)
	settings := newClerkSettingsSync(w.reader, nil, nil, nil, Options{})
	w.peers.changed = settings.forget
	server := func(name string, jwt bool) *mcpv1.McpServer {
		return newMcpServer("team", name, withIssuer(issuer), func(m *mcpv1.McpServer) {
			m.Spec.Clerk.DynamicClientRegistration = ptr.To(true)
			m.Spec.Clerk.JWTAccessTokens = ptr.To(jwt)
		})
	}
	for _, n := range []string{"a", "b", "c"} {
		w.create(server(n, true))
	}
	key := issuerKey(server("a", true))
	self := mcpServerDeclarer(server("a", true))
	ids := func(all []declarer) []string {
		var out []string
		for _, d := range all {
			out = append(out, d.key.Name)
		}
		slices.Sort(out)
		return out
	}

	steps := []struct {
		what       string
		before     func()
		self       declarer
		wantListed bool
		wantNames  []string
	}{
		{what: "first reconcile lists", self: self, wantListed: true, wantNames: []string{"a", "b", "c"}},
		{what: "same declaration: the listing is reused", self: self, wantListed: false, wantNames: []string{"a", "b", "c"}},
		{what: "the object declares something else than listed: listed again",
			self: mcpServerDeclarer(server("a", false)), wantListed: true, wantNames: []string{"a", "b", "c"}},
		{what: "a peer's spec change beside the settings is no declaration event",
			before: func() { w.update("b", func(m *mcpv1.McpServer) { m.Spec.Scopes = []mcpv1.Scope{"email"} }) },
			self:   self, wantListed: false, wantNames: []string{"a", "b", "c"}},
		{what: "a new declarer: the event forgets the listing",
			before: func() { w.create(server("d", true)) },
			self:   self, wantListed: true, wantNames: []string{"a", "b", "c", "d"}},
		{what: "a peer changes its declaration",
			before: func() { w.update("c", func(m *mcpv1.McpServer) { m.Spec.Clerk.JWTAccessTokens = ptr.To(false) }) },
			self:   self, wantListed: true, wantNames: []string{"a", "b", "c", "d"}},
		{what: "a declarer deleted",
			before: func() { w.delete("d") },
			self:   self, wantListed: true, wantNames: []string{"a", "b", "c"}},
		{what: "and reused after that", self: self, wantListed: false, wantNames: []string{"a", "b", "c"}},
	}
	for _, s := range steps {
		if s.before != nil {
			s.before()
		}
		reads := w.reader.reads
		listing, err := settings.declarers(context.Background(), key, s.self)
		if err != nil {
			t.Fatal(err)
		}
		if got := ids(listing.all); !slices.Equal(got, s.wantNames) {
			t.Errorf("%s: declarers %v, want %v", s.what, got, s.wantNames)
		}
		if listed := w.reader.reads > reads; listed != s.wantListed {
			t.Errorf("%s: listed from the cache = %v, want %v", s.what, listed, s.wantListed)
		}
	}
}
