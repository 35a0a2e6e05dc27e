package controllers

import (
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	utilruntime "k8s.io/apimachinery/pkg/util/runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/client/fake"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

func TestStateCollector(t *testing.T) {
	t.Parallel()
	cond := func(typ string, status metav1.ConditionStatus, reason string) metav1.Condition {
		return metav1.Condition{Type: typ, Status: status, Reason: reason}
	}
	synced := metav1.NewTime(time.Unix(1_790_000_000, 0))
	tests := map[string]struct {
		objects []client.Object // what the cache holds
		want    string          // the exposition of the three families
	}{
		"nothing": {},
		"a ready McpServer and one refused by Clerk": {
			objects: []client.Object{
				&mcpv1.McpServer{
					ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "tools"},
					Status: mcpv1.McpServerStatus{Conditions: []metav1.Condition{
						cond(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonReady),
						cond(mcpv1.ConditionClerkConfigured, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced),
					}},
				},
				&mcpv1.McpServer{
					ObjectMeta: metav1.ObjectMeta{Namespace: "team-b", Name: "docs"},
					Status: mcpv1.McpServerStatus{Conditions: []metav1.Condition{
						cond(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonClerkUnauthorized),
						cond(mcpv1.ConditionClerkConfigured, metav1.ConditionUnknown, mcpv1.ReasonClerkUnauthorized),
					}},
				},
			},
			want: `
# HELP mcpgate_mcpserver_condition Conditions of each McpServer: 1 when the condition is True, 0 when False or Unknown, by type and reason.
# TYPE mcpgate_mcpserver_condition gauge
mcpgate_mcpserver_condition{mcpserver="docs",namespace="team-b",reason="ClerkUnauthorized",type="ClerkConfigured"} 0
mcpgate_mcpserver_condition{mcpserver="docs",namespace="team-b",reason="ClerkUnauthorized",type="Ready"} 0
mcpgate_mcpserver_condition{mcpserver="tools",namespace="team-a",reason="Ready",type="Ready"} 1
mcpgate_mcpserver_condition{mcpserver="tools",namespace="team-a",reason="Synced",type="ClerkConfigured"} 1
`,
		},
		"both instance kinds, one never synced": {
			objects: []client.Object{
				&mcpv1.ClerkInstance{
					ObjectMeta: metav1.ObjectMeta{Namespace: "team-a", Name: "clerk"},
					Status: mcpv1.ClerkInstanceStatus{LastSyncTime: &synced, Conditions: []metav1.Condition{
						cond(mcpv1.ConditionReady, metav1.ConditionTrue, mcpv1.ReasonSettingsSynced),
					}},
				},
				&mcpv1.ClusterClerkInstance{
					ObjectMeta: metav1.ObjectMeta{Name: "shared"},
					Status: mcpv1.ClerkInstanceStatus{Conditions: []metav1.Condition{
						cond(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonClerkUnavailable),
					}},
				},
			},
			want: `
# HELP mcpgate_clerk_instance_condition Conditions of each ClerkInstance and ClusterClerkInstance: 1 when True, 0 when False or Unknown, by type and reason.
# TYPE mcpgate_clerk_instance_condition gauge
mcpgate_clerk_instance_condition{kind="ClerkInstance",name="clerk",namespace="team-a",reason="Synced",type="Ready"} 1
mcpgate_clerk_instance_condition{kind="ClusterClerkInstance",name="shared",namespace="",reason="ClerkUnavailable",type="Ready"} 0
# HELP mcpgate_clerk_instance_last_sync_timestamp_seconds When each Clerk instance object's settings were last read from, or written to, Clerk successfully (status.lastSyncTime), as Unix time.
# TYPE mcpgate_clerk_instance_last_sync_timestamp_seconds gauge
mcpgate_clerk_instance_last_sync_timestamp_seconds{kind="ClerkInstance",name="clerk",namespace="team-a"} 1.79e+09
`,
		},
	}
	scheme := runtime.NewScheme()
	utilruntime.Must(mcpv1.AddToScheme(scheme))
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			reader := fake.NewClientBuilder().WithScheme(scheme).WithObjects(tc.objects...).
				WithStatusSubresource(&mcpv1.McpServer{}, &mcpv1.ClerkInstance{}, &mcpv1.ClusterClerkInstance{}).Build()
			reg := prometheus.NewPedanticRegistry()
			reg.MustRegister(NewStateCollector(reader))
			rec := httptest.NewRecorder()
			promhttp.HandlerFor(reg, promhttp.HandlerOpts{}).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
			if got, want := sortedLines(rec.Body.String()), sortedLines(tc.want); !slices.Equal(got, want) {
				t.Errorf("exposition:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
			}
		})
	}
}

// sortedLines are the non-empty lines of an exposition, sorted.
func sortedLines(s string) []string {
	lines := slices.DeleteFunc(strings.Split(s, "\n"), func(l string) bool { return strings.TrimSpace(l) == "" })
	slices.Sort(lines)
	return lines
}
