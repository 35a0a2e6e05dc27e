package controllers

import (
	"reflect"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

func declaring(ns, name string, dcr, cimd, jwt *bool) declarer {
	m := newMcpServer(ns, name, func(m *mcpv1.McpServer) {
		m.Spec.Clerk.DynamicClientRegistration = dcr
		m.Spec.Clerk.ClientIDMetadataDocuments = cimd
		m.Spec.Clerk.JWTAccessTokens = jwt
	})
	return mcpServerDeclarer(m)
}

func instanceDeclaring(ns, name string, jwt *bool, scopes ...mcpv1.Scope) declarer {
	inst := &mcpv1.ClerkInstance{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	inst.Spec.JWTAccessTokens = jwt
	inst.Spec.DefaultScopes = scopes
	kind := mcpv1.KindClerkInstance
	if ns == "" {
		kind = mcpv1.KindClusterClerkInstance
	}
	return instanceDeclarer(kind, inst)
}

func TestMergeDeclared(t *testing.T) {
	t.Parallel()
	yes, no := ptr.To(true), ptr.To(false)
	tests := map[string]struct {
		self         declarer
		others       []declarer // other objects declaring for the same instance
		want         declared
		wantConflict string // substring of the conflict message; "" for none
	}{
		"alone": {
			self: declaring("a", "one", yes, nil, no),
			want: declared{dynamicClientRegistration: yes, jwtAccessTokens: no},
		},
		"agreeing and complementing": {
			self:   declaring("a", "one", yes, nil, nil),
			others: []declarer{declaring("b", "two", yes, yes, nil)},
			want:   declared{dynamicClientRegistration: yes, clientIDMetadataDocuments: yes},
		},
		"conflict names the other and drops the field": {
			self:         declaring("a", "one", yes, nil, yes),
			others:       []declarer{declaring("b", "two", no, nil, yes)},
			want:         declared{jwtAccessTokens: yes},
			wantConflict: "spec.clerk.dynamicClientRegistration is true here but false in McpServer b/two",
		},
		"a conflict between others drops the field, but self has no conflict": {
			self:   declaring("a", "one", nil, nil, yes),
			others: []declarer{declaring("b", "two", no, nil, nil), declaring("c", "three", yes, nil, nil)},
			want:   declared{jwtAccessTokens: yes},
		},
		"self already in the list": {
			self:   declaring("a", "one", yes, nil, nil),
			others: []declarer{declaring("a", "one", yes, nil, nil)},
			want:   declared{dynamicClientRegistration: yes},
		},
		"an instance and an inline McpServer disagree": {
			self:         instanceDeclaring("", "shared", yes),
			others:       []declarer{declaring("a", "one", nil, nil, no)},
			wantConflict: "spec.jwtAccessTokens is true here but false in McpServer a/one",
		},
		"scopes compare as sets": {
			self:   instanceDeclaring("a", "main", nil, "openid", "email"),
			others: []declarer{instanceDeclaring("", "shared", nil, "email", "openid")},
			want:   declared{defaultScopes: []string{"email", "openid"}},
		},
		"different scopes conflict": {
			self:         instanceDeclaring("a", "main", nil, "openid"),
			others:       []declarer{instanceDeclaring("", "shared", nil, "email", "openid")},
			wantConflict: "spec.defaultScopes is [openid] here but [email openid] in ClusterClerkInstance shared",
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, conflict := mergeDeclared(tc.self, tc.others)
			if got.String() != tc.want.String() {
				t.Errorf("merged = %q, want %q", got, tc.want)
			}
			if (tc.wantConflict == "") != (conflict == "") || !strings.Contains(conflict, tc.wantConflict) {
				t.Errorf("conflict = %q, want %q", conflict, tc.wantConflict)
			}
			// Every McpServer of the instance computes the same merge.
			for _, other := range tc.others {
				peers := append([]declarer{tc.self}, tc.others...)
				if theirs, _ := mergeDeclared(other, peers); theirs.String() != got.String() {
					t.Errorf("%s merges to %q, self to %q", other.id, theirs, got)
				}
			}
			// A listing that saw self as it is shares one merge, and it is
			// the same; one that saw another declaration merges self's own.
			listed := slices.DeleteFunc(slices.Clone(tc.others), func(d declarer) bool { return d.id == tc.self.id })
			for what, seen := range map[string]declarer{"as it is": tc.self, "declaring else": withDeclared(tc.self, declared{})} {
				memo := newDeclarersMemo(append(slices.Clone(listed), seen))
				for range 2 {
					m, c := memo.mergeFor(tc.self)
					if m.String() != got.String() || c != conflict {
						t.Errorf("listing that saw self %s: mergeFor = %q, %q; mergeDeclared = %q, %q", what, m, c, got, conflict)
					}
				}
			}
		})
	}
}

// withDeclared is d declaring what instead.
func withDeclared(d declarer, what declared) declarer {
	d.declared = what
	return d
}

// TestMergeAll checks who is in conflict: every declarer of a field on
// which two disagree, and no one else.
func TestMergeAll(t *testing.T) {
	t.Parallel()
	yes, no := ptr.To(true), ptr.To(false)
	tests := map[string]struct {
		all  []declarer
		want map[string]string // declarer id → substring of its conflict
	}{
		"all agree": {
			all:  []declarer{declaring("a", "one", yes, nil, nil), declaring("a", "two", yes, yes, nil), declaring("a", "three", nil, nil, nil)},
			want: map[string]string{},
		},
		"two of three disagree": {
			all: []declarer{declaring("a", "one", yes, nil, nil), declaring("a", "two", no, nil, yes), declaring("a", "three", nil, nil, yes)},
			want: map[string]string{
				"McpServer a/one": "is true here but false in McpServer a/two",
				"McpServer a/two": "is false here but true in McpServer a/one",
			},
		},
		"each names the first that disagrees": {
			all: []declarer{declaring("a", "a1", yes, nil, nil), declaring("a", "a2", yes, nil, nil), declaring("a", "b1", no, nil, nil)},
			want: map[string]string{
				"McpServer a/a1": "false in McpServer a/b1",
				"McpServer a/a2": "false in McpServer a/b1",
				"McpServer a/b1": "true in McpServer a/a1",
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, got := mergeAll(tc.all)
			if len(got) != len(tc.want) {
				t.Errorf("conflicts = %q, want %q", got, tc.want)
			}
			for id, want := range tc.want {
				if !strings.Contains(got[id], want) {
					t.Errorf("%s: conflict %q, want %q", id, got[id], want)
				}
			}
		})
	}
}

func TestPatchFor(t *testing.T) {
	t.Parallel()
	yes, no := ptr.To(true), ptr.To(false)
	current := &clerk.OAuthApplicationSettings{DynamicOAuthClientRegistration: false, OAuthJWTAccessTokens: true, DefaultScopes: []string{"email", "openid"}}
	tests := map[string]struct {
		want        declared
		wantPatch   clerk.OAuthApplicationSettingsPatch
		wantChanged []string
	}{
		"nothing declared":             {want: declared{}},
		"already as wanted":            {want: declared{dynamicClientRegistration: no, jwtAccessTokens: yes}},
		"one field differs":            {want: declared{dynamicClientRegistration: yes, jwtAccessTokens: yes}, wantPatch: clerk.OAuthApplicationSettingsPatch{DynamicOAuthClientRegistration: yes}, wantChanged: []string{"dynamicClientRegistration=true"}},
		"two fields differ":            {want: declared{clientIDMetadataDocuments: yes, jwtAccessTokens: no}, wantPatch: clerk.OAuthApplicationSettingsPatch{ClientIDMetadataDocumentsAdvertised: yes, OAuthJWTAccessTokens: no}, wantChanged: []string{"clientIdMetadataDocuments=true", "jwtAccessTokens=false"}},
		"same scopes in another order": {want: declared{defaultScopes: []string{"openid", "email"}}},
		"scopes differ":                {want: declared{defaultScopes: []string{"profile"}}, wantPatch: clerk.OAuthApplicationSettingsPatch{DefaultScopes: &[]string{"profile"}}, wantChanged: []string{"defaultScopes=[profile]"}},
		"empty scopes are declared":    {want: declared{defaultScopes: []string{}}, wantPatch: clerk.OAuthApplicationSettingsPatch{DefaultScopes: &[]string{}}, wantChanged: []string{"defaultScopes=[]"}},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			patch, changed := patchFor(current, tc.want)
			if !reflect.DeepEqual(patch, tc.wantPatch) || !reflect.DeepEqual(changed, tc.wantChanged) {
				t.Errorf("patch = %+v %q, want %+v %q", patch, changed, tc.wantPatch, tc.wantChanged)
			}
		})
	}
}
