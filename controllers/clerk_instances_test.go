package controllers

import (
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/clerk"
)

func declaring(ns, name string, dcr, cimd, jwt *bool) mcpv1.McpServer {
	m := newMcpServer(ns, name, func(m *mcpv1.McpServer) {
		m.UID = types.UID(ns + "/" + name)
		m.Spec.Clerk.DynamicClientRegistration = dcr
		m.Spec.Clerk.ClientIDMetadataDocuments = cimd
		m.Spec.Clerk.JWTAccessTokens = jwt
	})
	return *m
}

func TestMergeDeclared(t *testing.T) {
	t.Parallel()
	yes, no := ptr.To(true), ptr.To(false)
	tests := map[string]struct {
		self         mcpv1.McpServer
		others       []mcpv1.McpServer // other McpServers of the same instance
		want         declared
		wantConflict string // substring of the conflict message; "" for none
	}{
		"alone": {
			self: declaring("a", "one", yes, nil, no),
			want: declared{dynamicClientRegistration: yes, jwtAccessTokens: no},
		},
		"agreeing and complementing": {
			self:   declaring("a", "one", yes, nil, nil),
			others: []mcpv1.McpServer{declaring("b", "two", yes, yes, nil)},
			want:   declared{dynamicClientRegistration: yes, clientIDMetadataDocuments: yes},
		},
		"conflict names the other and drops the field": {
			self:         declaring("a", "one", yes, nil, yes),
			others:       []mcpv1.McpServer{declaring("b", "two", no, nil, yes)},
			want:         declared{jwtAccessTokens: yes},
			wantConflict: "spec.clerk.dynamicClientRegistration is true here but false in McpServer b/two",
		},
		"a conflict between others drops the field, but self has no conflict": {
			self:   declaring("a", "one", nil, nil, yes),
			others: []mcpv1.McpServer{declaring("b", "two", no, nil, nil), declaring("c", "three", yes, nil, nil)},
			want:   declared{jwtAccessTokens: yes},
		},
		"self already in the list": {
			self:   declaring("a", "one", yes, nil, nil),
			others: []mcpv1.McpServer{declaring("a", "one", yes, nil, nil)},
			want:   declared{dynamicClientRegistration: yes},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			got, conflict := mergeDeclared(&tc.self, tc.others)
			if got.String() != tc.want.String() {
				t.Errorf("merged = %q, want %q", got, tc.want)
			}
			if (tc.wantConflict == "") != (conflict == "") || !strings.Contains(conflict, tc.wantConflict) {
				t.Errorf("conflict = %q, want %q", conflict, tc.wantConflict)
			}
			// Every McpServer of the instance computes the same merge.
			for _, other := range tc.others {
				peers := append([]mcpv1.McpServer{tc.self}, tc.others...)
				if theirs, _ := mergeDeclared(&other, peers); theirs.String() != got.String() {
					t.Errorf("%s/%s merges to %q, self to %q", other.Namespace, other.Name, theirs, got)
				}
			}
		})
	}
}

func TestPatchFor(t *testing.T) {
	t.Parallel()
	yes, no := ptr.To(true), ptr.To(false)
	current := &clerk.OAuthApplicationSettings{DynamicOAuthClientRegistration: false, OAuthJWTAccessTokens: true}
	tests := map[string]struct {
		want        declared
		wantPatch   clerk.OAuthApplicationSettingsPatch
		wantChanged []string
	}{
		"nothing declared":  {want: declared{}},
		"already as wanted": {want: declared{dynamicClientRegistration: no, jwtAccessTokens: yes}},
		"one field differs": {want: declared{dynamicClientRegistration: yes, jwtAccessTokens: yes}, wantPatch: clerk.OAuthApplicationSettingsPatch{DynamicOAuthClientRegistration: yes}, wantChanged: []string{"dynamicClientRegistration=true"}},
		"two fields differ": {want: declared{clientIDMetadataDocuments: yes, jwtAccessTokens: no}, wantPatch: clerk.OAuthApplicationSettingsPatch{ClientIDMetadataDocumentsAdvertised: yes, OAuthJWTAccessTokens: no}, wantChanged: []string{"clientIdMetadataDocuments=true", "jwtAccessTokens=false"}},
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
