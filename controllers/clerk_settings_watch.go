package controllers

import (
	"context"
	"sync"

	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// conflictPeers wakes the objects of one kind whose Conflict a change in
// what another object declares starts, ends or rewords, and only those: a
// change that leaves every object's conflict as it was (an agreeing
// McpServer created, a spec change beside the Clerk settings) wakes none,
// however many objects share the Clerk instance.
//
// Each controller has its own, fed by its watches of the three declaring
// kinds. Per issuer it remembers every declarer's conflict as last computed
// from the cache, and the merged settings while there is none.
type conflictPeers struct {
	// kind is the kind of the objects it wakes.
	kind   string
	reader client.Reader
	// changed, if set, hears of every declaration event's issuer first
	// (ClerkSettingsSync.forget).
	changed func(issuer string)

	// NOTE: mu is held across the cache read and the update of byIssuer,
	// so that what is remembered never goes back to an older reading when
	// two informers deliver events at once.
	mu       sync.Mutex
	byIssuer map[string]*issuerConflicts
}

// issuerConflicts is what every declarer for one Clerk instance was last
// found to conflict with.
type issuerConflicts struct {
	// merged holds what is declared, when nothing conflicts; it may hold
	// more (a field no object declares any longer), which only makes the
	// next declaration compare against the cache.
	merged    declared
	conflicts map[string]conflict // by declarer id
}

type conflict struct {
	of      declarer
	message string
}

func newConflictPeers(kind string, reader client.Reader, changed func(issuer string)) *conflictPeers {
	return &conflictPeers{kind: kind, reader: reader, changed: changed, byIssuer: map[string]*issuerConflicts{}}
}

// requests maps a created, changed or deleted declaration to the other
// objects of p.kind whose conflict changed with it. For an update it is
// called with the old and the new object, so a declarer leaving an issuer
// is seen there too.
func (p *conflictPeers) requests(ctx context.Context, obj client.Object) []reconcile.Request {
	d, issuer := declarerOf(obj)
	if issuer == "" {
		return nil
	}
	if p.changed != nil {
		p.changed(issuer)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	last := p.byIssuer[issuer]
	if last != nil && len(last.conflicts) == 0 && last.merged.agrees(d.declared) {
		// No conflict before, none after: adding d cannot make one, and
		// taking it away cannot either.
		last.merged.add(d.declared)
		return nil
	}

	all, err := listDeclarers(ctx, p.reader, issuer)
	if err != nil {
		// The peers keep their conditions until their next reconcile; the
		// next event compares against the cache again, as last is kept.
		ctrl.LoggerFrom(ctx).Error(err, "Failed to list the declarers of a Clerk instance", "issuer", issuer)
		return nil
	}
	merged, found := mergeAll(all)
	next := &issuerConflicts{merged: merged, conflicts: make(map[string]conflict, len(found))}
	for _, x := range all {
		if msg, ok := found[x.id]; ok {
			next.conflicts[x.id] = conflict{of: x, message: msg}
		}
	}
	if len(all) == 0 {
		delete(p.byIssuer, issuer)
	} else {
		p.byIssuer[issuer] = next
	}

	var reqs []reconcile.Request
	wake := func(c conflict) {
		// The object of the event is not woken here: its own watch does
		// that, with the same change.
		if c.of.kind == p.kind && c.of.id != d.id {
			reqs = append(reqs, reconcile.Request{NamespacedName: c.of.key})
		}
	}
	if last == nil {
		last = &issuerConflicts{}
	}
	for id, c := range next.conflicts {
		if last.conflicts[id].message != c.message {
			wake(c)
		}
	}
	for id, c := range last.conflicts {
		if _, still := next.conflicts[id]; !still {
			wake(c)
		}
	}
	return reqs
}

// handler is the event handler of p's watches.
func (p *conflictPeers) handler() handler.EventHandler {
	return handler.EnqueueRequestsFromMapFunc(p.requests)
}

// declarerOf reads what obj declares, and for which issuer; issuer is ""
// when obj declares for no Clerk instance (an McpServer with an
// instanceRef, or an issuer that does not resolve).
func declarerOf(obj client.Object) (d declarer, issuer string) {
	switch o := obj.(type) {
	case *mcpv1.McpServer:
		return mcpServerDeclarer(o), issuerKey(o)
	case *mcpv1.ClerkInstance:
		return instanceDeclarer(mcpv1.KindClerkInstance, o), instanceIssuerKey(o)
	case *mcpv1.ClusterClerkInstance:
		return instanceDeclarer(mcpv1.KindClusterClerkInstance, o), instanceIssuerKey(o)
	}
	return declarer{}, ""
}

// agrees tells whether d sets no field to another value than m does.
func (m declared) agrees(d declared) bool {
	for _, f := range settingFields() {
		mine, ok := f.declared(m)
		theirs, set := f.declared(d)
		if ok && set && mine != theirs {
			return false
		}
	}
	return true
}

// add takes the fields d declares and m does not.
func (m *declared) add(d declared) {
	for _, f := range settingFields() {
		_, ok := f.declared(*m)
		if _, set := f.declared(d); set && !ok {
			f.take(m, d)
		}
	}
}

// declarationChanged passes the updates that change what an object declares
// for a Clerk instance, or which instance it declares for; every create and
// delete passes.
func declarationChanged() predicate.Predicate {
	return predicate.Funcs{UpdateFunc: func(e event.UpdateEvent) bool {
		before, beforeIssuer := declarerOf(e.ObjectOld)
		after, afterIssuer := declarerOf(e.ObjectNew)
		return beforeIssuer != afterIssuer || before.declared.String() != after.declared.String()
	}}
}
