package main

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// progressFunc says, for each McpServer of the run (in s.servers' order),
// whether it has settled.
type progressFunc func(context.Context) ([]bool, error)

// phaseTimes is how long one phase took to settle: all McpServers, and
// each group of them by how it references its Clerk instance.
type phaseTimes struct {
	all     time.Duration
	byGroup map[string]time.Duration
}

// phase times one change: act makes it, progress tells which McpServers
// have settled since. The clock starts before act and stops, for each
// group and for all, at the first poll that finds them settled, so it is
// accurate to a poll interval.
func (s *scaleRun) phase(ctx context.Context, name string, act func(context.Context) error, progress progressFunc) (phaseTimes, error) {
	ctx, cancel := context.WithTimeout(ctx, s.opts.Timeout)
	defer cancel()
	start := time.Now()
	if err := act(ctx); err != nil {
		return phaseTimes{}, fmt.Errorf("%s phase: %w", name, err)
	}
	s.logf("%s: %d McpServers written in %.1fs", name, len(s.servers), time.Since(start).Seconds())
	times, err := s.waitConverged(ctx, start, progress)
	if err != nil {
		return phaseTimes{}, fmt.Errorf("%s phase: %w", name, err)
	}
	s.logf("%s: settled in %.1fs", name, times.all.Seconds())
	if len(times.byGroup) > 1 {
		for _, g := range slices.Sorted(maps.Keys(times.byGroup)) {
			s.logf("%s: the %s McpServers settled in %.1fs", name, g, times.byGroup[g].Seconds())
		}
	}
	return times, nil
}

// createMcpServers creates the first McpServer alone, so that a spec the
// CRD rejects fails with the API server's message instead of a thousand
// times over, then the rest in parallel.
func (s *scaleRun) createMcpServers(ctx context.Context) error {
	create := func(ctx context.Context, i int) error {
		m := s.servers[i]
		if err := s.c.Create(ctx, m); err != nil {
			return fmt.Errorf("create mcpserver %s/%s: %w", m.Namespace, m.Name, err)
		}
		return nil
	}
	if err := create(ctx, 0); err != nil {
		return err
	}
	return forEach(ctx, len(s.servers)-1, operatorWorkers, func(ctx context.Context, i int) error {
		return create(ctx, i+1)
	})
}

// updateMcpServers applies updatePatch to every McpServer; each object is
// left holding the generation the change gave it.
func (s *scaleRun) updateMcpServers(ctx context.Context) error {
	patch := client.RawPatch(types.MergePatchType, []byte(updatePatch))
	return forEach(ctx, len(s.servers), operatorWorkers, func(ctx context.Context, i int) error {
		m := s.servers[i]
		if err := s.c.Patch(ctx, m, patch); err != nil {
			return fmt.Errorf("patch mcpserver %s/%s: %w", m.Namespace, m.Name, err)
		}
		return nil
	})
}

// forEach calls fn for 0..n-1 on at most workers goroutines and returns
// the first error, after which the remaining calls are skipped.
func forEach(ctx context.Context, n, workers int, fn func(context.Context, int) error) error {
	// NOTE: Wait cancels gctx, so the final check is on ctx.
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for i := range n {
		if gctx.Err() != nil {
			break
		}
		g.Go(func() error { return fn(gctx, i) })
	}
	if err := g.Wait(); err != nil {
		return err
	}
	return ctx.Err()
}

// waitConverged polls progress until every McpServer has settled, logging
// "converged N/M" now and then. It fails when ctx ends or the manager exits.
func (s *scaleRun) waitConverged(ctx context.Context, start time.Time, progress progressFunc) (phaseTimes, error) {
	total := len(s.servers)
	tick := time.NewTicker(convergePollEvery)
	defer tick.Stop()
	lastLog, done := time.Now(), 0
	times := phaseTimes{byGroup: map[string]time.Duration{}}
	for {
		settled, err := progress(ctx)
		switch {
		case err != nil && ctx.Err() == nil:
			return phaseTimes{}, err
		case err == nil:
			done = s.noteSettledGroups(settled, time.Since(start), times.byGroup)
		}
		if done >= total {
			s.logf("converged %d/%d", done, total)
			times.all = time.Since(start)
			return times, nil
		}
		if time.Since(lastLog) >= convergeProgressEvery {
			s.logf("converged %d/%d", done, total)
			lastLog = time.Now()
		}
		select {
		case <-ctx.Done():
			return phaseTimes{}, fmt.Errorf("converged %d/%d within %s: %w", done, total, s.opts.Timeout, context.Cause(ctx))
		case <-s.mgr.Exited():
			return phaseTimes{}, fmt.Errorf("manager exited with %d/%d converged: %w", done, total, s.mgr.ExitErr())
		case <-tick.C:
		}
	}
}

// noteSettledGroups counts the settled McpServers and records, for each
// group not yet in byGroup, elapsed once all of its McpServers have settled.
func (s *scaleRun) noteSettledGroups(settled []bool, elapsed time.Duration, byGroup map[string]time.Duration) int {
	done := 0
	open := map[string]bool{}
	for i, ok := range settled {
		if ok {
			done++
		} else {
			open[clerkReferences(s.opts, i)] = true
		}
	}
	for i := range s.servers {
		if g := clerkReferences(s.opts, i); !open[g] {
			if _, seen := byGroup[g]; !seen {
				byGroup[g] = elapsed
			}
		}
	}
	return done
}

// createdProgress tells which McpServers' current generation the manager
// has observed and whose Deployment, Service, Ingress and ServiceAccount
// (the gateway's identity towards the broker) exist.
func (s *scaleRun) createdProgress(ctx context.Context) ([]bool, error) {
	observed, err := s.observedGenerations(ctx)
	if err != nil {
		return nil, err
	}
	var owned []map[string]bool
	for _, gvk := range []schema.GroupVersionKind{
		appsv1.SchemeGroupVersion.WithKind("DeploymentList"),
		corev1.SchemeGroupVersion.WithKind("ServiceList"),
		networkingv1.SchemeGroupVersion.WithKind("IngressList"),
		corev1.SchemeGroupVersion.WithKind("ServiceAccountList"),
	} {
		names, err := s.gatewayObjects(ctx, gvk)
		if err != nil {
			return nil, err
		}
		owned = append(owned, names)
	}
	settled := make([]bool, len(s.servers))
	for i, m := range s.servers {
		key := gatewayKey(m)
		gen := observed[objectKey(m)]
		settled[i] = gen != 0 && gen >= m.Generation && owned[0][key] && owned[1][key] && owned[2][key] && owned[3][key]
	}
	return settled, nil
}

// updatedProgress tells which McpServers' patched generation the manager
// has observed with their gateway configuration holding the new scope.
func (s *scaleRun) updatedProgress(ctx context.Context) ([]bool, error) {
	observed, err := s.observedGenerations(ctx)
	if err != nil {
		return nil, err
	}
	configured, err := s.configuredGateways(ctx)
	if err != nil {
		return nil, err
	}
	settled := make([]bool, len(s.servers))
	for i, m := range s.servers {
		settled[i] = observed[objectKey(m)] >= m.Generation && configured[gatewayKey(m)]
	}
	return settled, nil
}

// observedGenerations maps namespace/name to the generation the manager
// has observed, for McpServers whose status is up to date with their spec
// (0 otherwise: a later spec change is still being worked on).
func (s *scaleRun) observedGenerations(ctx context.Context) (map[string]int64, error) {
	var list mcpv1.McpServerList
	if err := s.c.List(ctx, &list); err != nil {
		return nil, fmt.Errorf("list mcpservers: %w", err)
	}
	out := make(map[string]int64, len(list.Items))
	for i := range list.Items {
		m := &list.Items[i]
		if m.Status.ObservedGeneration == m.Generation {
			out[objectKey(m)] = m.Generation
		}
	}
	return out, nil
}

// gatewayObjects lists the names of the objects of one kind that mcpgate
// manages. Metadata suffices, which spares the API server encoding 1000
// full Deployments twice a second while the manager competes for it.
func (s *scaleRun) gatewayObjects(ctx context.Context, listGVK schema.GroupVersionKind) (map[string]bool, error) {
	list := &metav1.PartialObjectMetadataList{}
	list.SetGroupVersionKind(listGVK)
	if err := s.c.List(ctx, list, client.MatchingLabels{config.LabelManagedBy: config.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list %s: %w", strings.TrimSuffix(listGVK.Kind, "List"), err)
	}
	out := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		out[objectKey(&list.Items[i])] = true
	}
	return out, nil
}

// configuredGateways lists the gateway ConfigMaps whose configuration has
// updateScope among its scopes.
func (s *scaleRun) configuredGateways(ctx context.Context) (map[string]bool, error) {
	var list corev1.ConfigMapList
	if err := s.c.List(ctx, &list, client.MatchingLabels{config.LabelManagedBy: config.ManagedByValue}); err != nil {
		return nil, fmt.Errorf("list configmaps: %w", err)
	}
	out := make(map[string]bool, len(list.Items))
	for i := range list.Items {
		cm := &list.Items[i]
		var cfg config.Config
		if err := json.Unmarshal([]byte(cm.Data[config.FileName]), &cfg); err != nil {
			continue // not (yet) a gateway configuration: not converged
		}
		out[objectKey(cm)] = slices.Contains(cfg.Scopes, updateScope)
	}
	return out, nil
}

func objectKey(o metav1.Object) string { return o.GetNamespace() + "/" + o.GetName() }

// gatewayKey is the namespace/name of the objects the manager makes for m.
func gatewayKey(m *mcpv1.McpServer) string { return m.Namespace + "/" + config.GatewayName(m.Name) }
