package controllers

// The settings that objects declare for a Clerk instance, and how the
// declarations of several objects combine: pure functions, no client.

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

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
	// Copies, not pointers into the object: declarations outlive the
	// cache's objects they are read from.
	d := declared{
		dynamicClientRegistration: cloneBool(s.DynamicClientRegistration),
		clientIDMetadataDocuments: cloneBool(s.ClientIDMetadataDocuments),
		jwtAccessTokens:           cloneBool(s.JWTAccessTokens),
	}
	if scopes != nil {
		d.defaultScopes = make([]string, 0, len(scopes))
		for _, sc := range scopes {
			d.defaultScopes = append(d.defaultScopes, string(sc))
		}
	}
	return d
}

func cloneBool(b *bool) *bool {
	if b == nil {
		return nil
	}
	v := *b
	return &v
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

// kindMcpServer names McpServers among the declarers.
const kindMcpServer = "McpServer"

// declarer is one object that declares settings for a Clerk instance: an
// McpServer with an inline clerk block, a ClerkInstance or a
// ClusterClerkInstance.
type declarer struct {
	// kind and key find the object, to wake it when its conflict changes.
	kind string
	key  types.NamespacedName
	// id names the object, as "McpServer team-a/tools"; it orders declarers.
	id string
	// fieldPrefix is where its settings are, as "spec.clerk.".
	fieldPrefix string
	declared    declared
}

func newDeclarer(kind string, obj metav1.Object, fieldPrefix string, d declared) declarer {
	return declarer{
		kind:        kind,
		key:         types.NamespacedName{Namespace: obj.GetNamespace(), Name: obj.GetName()},
		id:          kind + " " + instanceID(obj),
		fieldPrefix: fieldPrefix,
		declared:    d,
	}
}

func mcpServerDeclarer(mcp *mcpv1.McpServer) declarer {
	return newDeclarer(kindMcpServer, mcp, "spec.clerk.", declaredSettings(mcp.Spec.Clerk.ClerkSettings, nil))
}

func instanceDeclarer(kind string, inst mcpv1.GenericClerkInstance) declarer {
	spec := inst.GetInstanceSpec()
	return newDeclarer(kind, inst, "spec.", declaredSettings(spec.ClerkSettings, spec.DefaultScopes))
}

// instanceID is namespace/name, or name for a cluster-scoped object.
func instanceID(obj metav1.Object) string {
	if obj.GetNamespace() == "" {
		return obj.GetName()
	}
	return obj.GetNamespace() + "/" + obj.GetName()
}

// mergeDeclared combines what every object using one instance declares,
// with self's declaration in place of any listed for it (the cache may hold
// an older one, or none yet). conflict is self's entry of mergeAll's.
func mergeDeclared(self declarer, all []declarer) (merged declared, conflict string) {
	all = slices.DeleteFunc(slices.Clone(all), func(d declarer) bool { return d.id == self.id })
	merged, conflicts := mergeAll(append(all, self))
	return merged, conflicts[self.id]
}

// mergeAll combines what the declarers of one instance declare. A field on
// which they disagree is left out of the result, so that no reconcile flips
// it back and forth, and every declarer of that field is in conflict: its
// entry names the first other declarer (by id) that disagrees with it, on
// the first such field. The result is the same whatever the order of all.
func mergeAll(all []declarer) (merged declared, conflicts map[string]string) {
	all = slices.Clone(all)
	slices.SortFunc(all, func(a, b declarer) int { return strings.Compare(a.id, b.id) })
	conflicts = map[string]string{}
	for _, f := range settingFields() {
		// first declares f; other is the first whose value differs from first's.
		var first, other *declarer
		var firstValue string
		for i := range all {
			v, ok := f.declared(all[i].declared)
			switch {
			case !ok:
			case first == nil:
				first, firstValue = &all[i], v
			case other == nil && v != firstValue:
				other = &all[i]
			}
		}
		if first == nil {
			continue
		}
		if other == nil {
			f.take(&merged, first.declared)
			continue
		}
		for _, d := range all {
			v, ok := f.declared(d.declared)
			if !ok || conflicts[d.id] != "" {
				continue
			}
			them := first
			if v == firstValue {
				them = other
			}
			theirs, _ := f.declared(them.declared)
			conflicts[d.id] = fmt.Sprintf("%s%s is %s here but %s in %s, which uses the same Clerk instance",
				d.fieldPrefix, f.spec, v, theirs, them.id)
		}
	}
	return merged, conflicts
}

// listDeclarers finds every object that declares settings for the Clerk
// instance of issuer: McpServers with an inline block, ClerkInstances and
// ClusterClerkInstances. The objects are the cache's own, not copies: they
// are only read.
func listDeclarers(ctx context.Context, c client.Reader, issuer string) ([]declarer, error) {
	var servers mcpv1.McpServerList
	if err := c.List(ctx, &servers, client.MatchingFields{issuerIndex: issuer}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list mcpservers of issuer %s: %w", issuer, err)
	}
	var instances mcpv1.ClerkInstanceList
	if err := c.List(ctx, &instances, client.MatchingFields{instanceIssuerIndex: issuer}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list clerkinstances of issuer %s: %w", issuer, err)
	}
	var clusterInstances mcpv1.ClusterClerkInstanceList
	if err := c.List(ctx, &clusterInstances, client.MatchingFields{instanceIssuerIndex: issuer}, client.UnsafeDisableDeepCopy); err != nil {
		return nil, fmt.Errorf("list clusterclerkinstances of issuer %s: %w", issuer, err)
	}
	out := make([]declarer, 0, len(servers.Items)+len(instances.Items)+len(clusterInstances.Items))
	for i := range servers.Items {
		out = append(out, mcpServerDeclarer(&servers.Items[i]))
	}
	for i := range instances.Items {
		out = append(out, instanceDeclarer(mcpv1.KindClerkInstance, &instances.Items[i]))
	}
	for i := range clusterInstances.Items {
		out = append(out, instanceDeclarer(mcpv1.KindClusterClerkInstance, &clusterInstances.Items[i]))
	}
	return out, nil
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
