package controllers

import (
	"context"
	"reflect"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
	"github.com/mcpgate/mcpgate/internal/tracing"
	"github.com/mcpgate/mcpgate/internal/tracing/tracingtest"
)

// withTracing sets spec.gateway.tracing.
func withTracing(endpoint, ratio, headersSecret string) mcpOption {
	return func(m *mcpv1.McpServer) {
		m.Spec.Gateway.Tracing = &mcpv1.GatewayTracing{Endpoint: endpoint, SamplingRatio: ratio}
		if headersSecret != "" {
			m.Spec.Gateway.Tracing.HeadersSecretRef = &mcpv1.LocalSecretReference{Name: headersSecret}
		}
	}
}

func TestBuildTracing(t *testing.T) {
	t.Parallel()
	operatorDefault := TracingDefaults{Endpoint: "http://otel-collector.observability:4318", SamplingRatio: 0.05}
	tests := map[string]struct {
		mcp      *mcpv1.McpServer
		defaults TracingDefaults // the manager's --gateway-tracing-* flags
		want     *config.Tracing
	}{
		"off":                {mcp: newMcpServer("team-a", "tools")},
		"operator's default": {mcp: newMcpServer("team-a", "tools"), defaults: operatorDefault, want: &config.Tracing{Endpoint: operatorDefault.Endpoint, SamplingRatio: 0.05}},
		"the spec wins over the default": {
			mcp:      newMcpServer("team-a", "tools", withTracing("https://otlp.example.com", "0.01", "")),
			defaults: operatorDefault,
			want:     &config.Tracing{Endpoint: "https://otlp.example.com", SamplingRatio: 0.01},
		},
		"ratio not defaulted is 1": {
			mcp:  newMcpServer("team-a", "tools", withTracing("https://otlp.example.com", "", "")),
			want: &config.Tracing{Endpoint: "https://otlp.example.com", SamplingRatio: 1},
		},
		"ratio zero": {
			mcp:  newMcpServer("team-a", "tools", withTracing("https://otlp.example.com", "0", "")),
			want: &config.Tracing{Endpoint: "https://otlp.example.com", SamplingRatio: 0},
		},
		"ten decimals": {
			mcp:  newMcpServer("team-a", "tools", withTracing("https://otlp.example.com", "0.0000000001", "")),
			want: &config.Tracing{Endpoint: "https://otlp.example.com", SamplingRatio: 1e-10},
		},
		"headers from a Secret": {
			mcp:  newMcpServer("team-a", "tools", withTracing("https://otlp.example.com", "1.0", "otlp-auth")),
			want: &config.Tracing{Endpoint: "https://otlp.example.com", SamplingRatio: 1, HeadersDir: "/etc/mcpgate/tracing-headers"},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			opts := testOptions
			opts.GatewayTracing = tc.defaults
			got := buildTracing(tc.mcp.Spec.Gateway.Tracing, opts)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("buildTracing = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestParseSamplingRatio(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]float64{"": 1, "0": 0, "1": 1, "0.25": 0.25, "1.0000000000": 1, "x": 1, "NaN": 1, "2": 1, "-1": 0} {
		if got := parseSamplingRatio(in); got != want {
			t.Errorf("parseSamplingRatio(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestBuildDeployment_tracingHeaders(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct {
		mcp  *mcpv1.McpServer
		want bool // a tracing headers volume and mount
	}{
		"no tracing":         {mcp: newMcpServer("team-a", "tools")},
		"tracing, no header": {mcp: newMcpServer("team-a", "tools", withTracing("http://c:4318", "1", ""))},
		"headers Secret":     {mcp: newMcpServer("team-a", "tools", withTracing("http://c:4318", "1", "otlp-auth")), want: true},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := typed[appsv1.Deployment](t, buildDeployment(tc.mcp, testOptions, "abc123", tc.mcp.Spec.Clerk.SecretKeyRef))
			pod := d.Spec.Template.Spec
			var vol *corev1.Volume
			for i := range pod.Volumes {
				if pod.Volumes[i].Name == tracingHeadersVolumeName {
					vol = &pod.Volumes[i]
				}
			}
			var mount *corev1.VolumeMount
			for i := range pod.Containers[0].VolumeMounts {
				if m := pod.Containers[0].VolumeMounts[i]; m.Name == tracingHeadersVolumeName {
					mount = &m
				}
			}
			if !tc.want {
				if vol != nil || mount != nil {
					t.Errorf("tracing headers volume %+v mount %+v, want none", vol, mount)
				}
				return
			}
			want := &corev1.ProjectedVolumeSource{
				DefaultMode: ptr.To[int32](0o440),
				Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{
					LocalObjectReference: corev1.LocalObjectReference{Name: "otlp-auth"}, Optional: ptr.To(true),
				}}},
			}
			if vol == nil || !reflect.DeepEqual(vol.Projected, want) {
				t.Errorf("tracing headers volume = %+v, want projected %+v", vol, want)
			}
			if mount == nil || mount.MountPath != tracingHeadersDir || !mount.ReadOnly {
				t.Errorf("mount = %+v, want read-only at %s", mount, tracingHeadersDir)
			}
		})
	}
}

// TestMcpServerReconciler_tracing: a tracing headers Secret that does not
// exist holds the McpServer at SecretNotFound, naming the field, while the
// gateway is deployed anyway (tracing is no part of what it serves); once
// the Secret appears it moves on by the Secret watch alone.
func TestMcpServerReconciler_tracing(t *testing.T) {
	t.Parallel()
	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withUpstreamURL("https://mcp.example.com"), withTracing("http://otel-collector.observability:4318", "0.25", "otlp-auth")))

	mcp := f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonSecretNotFound))
	if msg := meta.FindStatusCondition(mcp.Status.Conditions, mcpv1.ConditionReady).Message; !strings.Contains(msg, "spec.gateway.tracing.headersSecretRef") || !strings.Contains(msg, `"otlp-auth"`) {
		t.Errorf("message does not name the field and the Secret: %q", msg)
	}
	f.waitEvent("tools", corev1.EventTypeWarning, mcpv1.ReasonSecretNotFound)
	waitFor(f, "tools-gateway", &appsv1.Deployment{}, nil)
	cm := waitFor(f, "tools-gateway", &corev1.ConfigMap{}, nil)
	cfg, err := gatewayConfig(cm)
	if err != nil {
		t.Fatal(err)
	}
	if want := (&config.Tracing{Endpoint: "http://otel-collector.observability:4318", SamplingRatio: 0.25, HeadersDir: tracingHeadersDir}); !reflect.DeepEqual(cfg.Tracing, want) {
		t.Errorf("tracing = %+v, want %+v", cfg.Tracing, want)
	}
	f.createSecret("otlp-auth", map[string]string{"X-Api-Key": "k"})
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable))
}

// TestTraceReconciler runs the McpServer reconciler of the envtest manager
// through traceReconciler with a real provider, and reads the span from a
// real OTLP receiver: named for the kind, a root, with the object.
func TestTraceReconciler(t *testing.T) {
	t.Parallel()
	recv := tracingtest.StartT(t)
	tp, err := tracing.New(tracing.Config{Endpoint: recv.Endpoint, SamplingRatio: 1, ServiceName: "mcpgate-manager"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tp.Shutdown(context.Background()) })

	f := newFixture(t)
	f.createSecret("clerk", map[string]string{"secret-key": "sk_test_x"})
	f.create(newMcpServer(f.ns, "tools", withUpstreamURL("https://mcp.example.com")))
	f.waitMcp("tools", condition(mcpv1.ConditionReady, metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable))
	r := traceReconciler("McpServer", tp.Tracer(), f.tc.reconciler)
	if _, err := r.Reconcile(context.Background(), ctrl.Request{NamespacedName: types.NamespacedName{Namespace: f.ns, Name: "tools"}}); err != nil {
		t.Fatalf("reconcile: %v", err)
	}
	if traceReconciler("McpServer", nil, f.tc.reconciler) != f.tc.reconciler {
		t.Error("without a tracer the reconciler is not returned as it is")
	}
	if err := tp.ForceFlush(context.Background()); err != nil {
		t.Fatal(err)
	}
	spans, err := recv.WaitForSpans(10*time.Second, func(s []tracingtest.Span) bool { return len(s) > 0 })
	if err != nil {
		t.Fatal(err)
	}
	s := spans[0]
	if s.Name != "reconcile McpServer" || s.ParentSpanID != "" || s.Attributes["k8s.namespace.name"] != f.ns ||
		s.Attributes["mcpgate.object.name"] != "tools" || s.Resource["service.name"] != "mcpgate-manager" {
		t.Errorf("span = %+v, want a root span reconcile McpServer for %s/tools", s, f.ns)
	}
	if len(spans) != 1 {
		t.Errorf("got %d spans, want one", len(spans))
	}
}
