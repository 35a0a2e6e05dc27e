package argocd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mcpgate/mcpgate/api/v1alpha1"
)

const serving = "Serving at https://tools.example.com/mcp"

// mcpServer is an McpServer as unstructured holds it. generation is the
// metadata.generation, of whatever numeric type the test needs; nil leaves it
// out. status nil leaves status out.
func mcpServer(generation any, status map[string]any) map[string]any {
	metadata := map[string]any{
		"name":              "github-tools",
		"namespace":         "tools",
		"uid":               "5f0c3a8e-8d7e-4c4f-9d8a-1b2c3d4e5f60",
		"resourceVersion":   "48213",
		"creationTimestamp": "2026-03-02T10:00:00Z",
	}
	if generation != nil {
		metadata["generation"] = generation
	}
	obj := map[string]any{
		"apiVersion": "mcpgate.dev/v1alpha1",
		"kind":       "McpServer",
		"metadata":   metadata,
		"spec": map[string]any{
			"upstream": map[string]any{
				"service": map[string]any{"name": "github-mcp", "port": int64(8080)},
				"path":    "/mcp",
			},
			"path":   "/mcp",
			"scopes": []any{"profile", "email"},
			"clerk": map[string]any{
				"publishableKey": "pk_test_ZXhhbXBsZS1hcHAtMDAuY2xlcmsuYWNjb3VudHMuZGV2JA",
				"secretKeyRef":   map[string]any{"name": "clerk", "key": "secret-key"},
			},
			"ingress": map[string]any{"host": "tools.example.com", "className": "nginx"},
			"gateway": map[string]any{},
		},
	}
	if status != nil {
		obj["status"] = status
	}
	return obj
}

// status is an McpServer status; observedGeneration nil leaves it out, and
// conditions nil leaves the list out.
func status(observedGeneration any, conditions []any) map[string]any {
	s := map[string]any{
		"url":                 "https://tools.example.com/mcp",
		"resourceMetadataURL": "https://tools.example.com/.well-known/oauth-protected-resource/mcp",
		"issuer":              "https://example-app-00.clerk.accounts.dev",
		"readyReplicas":       int64(1),
	}
	if observedGeneration != nil {
		s["observedGeneration"] = observedGeneration
	}
	if conditions != nil {
		s["conditions"] = conditions
	}
	return s
}

// condition is one entry of status.conditions; observedGeneration nil leaves
// it out.
func condition(conditionType, conditionStatus, reason, message string, observedGeneration any) map[string]any {
	c := map[string]any{
		"type":               conditionType,
		"status":             conditionStatus,
		"reason":             reason,
		"message":            message,
		"lastTransitionTime": "2026-03-02T10:01:00Z",
	}
	if observedGeneration != nil {
		c["observedGeneration"] = observedGeneration
	}
	return c
}

func conditions(cs ...map[string]any) []any {
	list := make([]any, len(cs))
	for i, c := range cs {
		list[i] = c
	}
	return list
}

func TestScript(t *testing.T) {
	// Generations as JSON decodes them (float64) and as the API machinery's
	// unstructured holds them (int64).
	g2, g3 := float64(2), float64(3)
	i2, i3 := int64(2), int64(3)

	tests := []struct {
		name        string
		obj         map[string]any
		wantStatus  string
		wantMessage string
	}{
		// Rule 1: the operator has not observed the current generation.
		{
			name:        "no status",
			obj:         mcpServer(i3, nil),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name:        "status without conditions",
			obj:         mcpServer(i3, status(i3, nil)),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name:        "empty conditions",
			obj:         mcpServer(g3, status(g3, conditions())),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name: "observedGeneration missing",
			obj: mcpServer(i3, status(nil, conditions(
				condition("Ready", "True", "Ready", serving, i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name: "stale Ready: observedGeneration behind generation (int64)",
			obj: mcpServer(i3, status(i2, conditions(
				condition("Ready", "True", "Ready", serving, i2),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name: "stale Ready: observedGeneration behind generation (float64)",
			obj: mcpServer(g3, status(g2, conditions(
				condition("Ready", "True", "Ready", serving, g2),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name: "stale Stalled is not Degraded",
			obj: mcpServer(i3, status(i2, conditions(
				condition("Ready", "False", "InvalidSpec", "publishable key does not decode", i2),
				condition("Stalled", "True", "InvalidSpec", "publishable key does not decode", i2),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 3",
		},
		{
			name:        "large generation is printed as an integer",
			obj:         mcpServer(int64(1234567), status(int64(1234566), conditions(condition("Ready", "True", "Ready", serving, int64(1234566))))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator to observe generation 1234567",
		},
		{
			name:        "generation missing does not break the script",
			obj:         mcpServer(nil, status(i3, conditions(condition("Ready", "True", "Ready", serving, i3)))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator",
		},

		// Rule 2: Stalled True is Degraded.
		{
			name: "Stalled InvalidSpec",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "False", "InvalidSpec", "spec.clerk.publishableKey does not decode", i3),
				condition("Stalled", "True", "InvalidSpec", "spec.clerk.publishableKey does not decode", i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: "InvalidSpec: spec.clerk.publishableKey does not decode",
		},
		{
			name: "Stalled SecretNotFound (float64)",
			obj: mcpServer(g3, status(g3, conditions(
				condition("Ready", "False", "SecretNotFound", `Secret "clerk" not found`, g3),
				condition("Stalled", "True", "SecretNotFound", `Secret "clerk" not found`, g3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: `SecretNotFound: Secret "clerk" not found`,
		},
		{
			name: "Stalled HostPathConflict",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "False", "HostPathConflict", "tools.example.com/mcp is served by McpServer tools/other", i3),
				condition("Stalled", "True", "HostPathConflict", "tools.example.com/mcp is served by McpServer tools/other", i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: "HostPathConflict: tools.example.com/mcp is served by McpServer tools/other",
		},
		{
			name: "Stalled ClerkUnauthorized",
			obj: mcpServer(i3, status(i3, conditions(
				condition("ClerkConfigured", "False", "ClerkUnauthorized", "the Backend API refused the secret key", i3),
				condition("Stalled", "True", "ClerkUnauthorized", "the Backend API refused the secret key", i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: "ClerkUnauthorized: the Backend API refused the secret key",
		},
		{
			name: "Stalled ClerkRejected",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Stalled", "True", "ClerkRejected", "422: invalid setting", i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: "ClerkRejected: 422: invalid setting",
		},
		{
			name: "Stalled UpstreamPortNotFound",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Stalled", "True", "UpstreamPortNotFound", `Service "github-mcp" has no port named "mcp"`, i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: `UpstreamPortNotFound: Service "github-mcp" has no port named "mcp"`,
		},
		{
			name: "Stalled without observedGeneration counts",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Stalled", "True", "InvalidSpec", "bad", nil),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: "InvalidSpec: bad",
		},
		{
			name: "Stalled without message",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Stalled", "True", "InvalidSpec", "", i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: "InvalidSpec",
		},
		{
			name: "Stalled outranks Reconciling",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "False", "SecretNotFound", `Secret "clerk" not found`, i3),
				condition("Reconciling", "True", "Progressing", "waiting for the gateway", i3),
				condition("Stalled", "True", "SecretNotFound", `Secret "clerk" not found`, i3),
			))),
			wantStatus:  StatusDegraded,
			wantMessage: `SecretNotFound: Secret "clerk" not found`,
		},
		{
			name: "Stalled of an older generation is ignored",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "False", "Progressing", "waiting for the gateway", i3),
				condition("Reconciling", "True", "Progressing", "waiting for the gateway", i3),
				condition("Stalled", "True", "InvalidSpec", "fixed in generation 3", i2),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "waiting for the gateway",
		},
		{
			name: "Stalled False is not Degraded",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "True", "Ready", serving, i3),
				condition("Stalled", "False", "Ready", "", i3),
			))),
			wantStatus:  StatusHealthy,
			wantMessage: serving,
		},

		// Rule 3: Ready True for the current generation is Healthy.
		{
			name: "Ready (int64, as from the API)",
			obj: mcpServer(i3, status(i3, conditions(
				condition("GatewayAvailable", "True", "DeploymentAvailable", "Deployment has minimum availability", i3),
				condition("ClerkConfigured", "True", "NothingToConfigure", "", i3),
				condition("IngressReady", "True", "AddressAssigned", "203.0.113.10", i3),
				condition("Ready", "True", "Ready", serving, i3),
			))),
			wantStatus:  StatusHealthy,
			wantMessage: serving,
		},
		{
			name: "Ready (float64, as from JSON)",
			obj: mcpServer(g3, status(g3, conditions(
				condition("Ready", "True", "Ready", serving, g3),
			))),
			wantStatus:  StatusHealthy,
			wantMessage: serving,
		},
		{
			name: "Ready with mixed number types",
			obj: mcpServer(i3, status(g3, conditions(
				condition("Ready", "True", "Ready", serving, 3),
			))),
			wantStatus:  StatusHealthy,
			wantMessage: serving,
		},
		{
			name: "Ready outranks Reconciling",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "True", "Ready", serving, i3),
				condition("Reconciling", "True", "Progressing", "rolling out the gateway", i3),
			))),
			wantStatus:  StatusHealthy,
			wantMessage: serving,
		},
		{
			name: "stale Ready condition is not Healthy",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "True", "Ready", serving, i2),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator",
		},
		{
			name: "Ready without observedGeneration is not Healthy",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "True", "Ready", serving, nil),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator",
		},
		{
			name: "stale Ready condition while Reconciling",
			obj: mcpServer(g3, status(g3, conditions(
				condition("Ready", "True", "Ready", serving, g2),
				condition("Reconciling", "True", "Progressing", "rolling out the gateway", g3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "rolling out the gateway",
		},

		// Rule 4: Reconciling True is Progressing with its message.
		{
			name: "Reconciling",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "False", "DeploymentUnavailable", "0 of 1 gateway pods available", i3),
				condition("Reconciling", "True", "DeploymentUnavailable", "0 of 1 gateway pods available", i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "0 of 1 gateway pods available",
		},
		{
			name: "Reconciling without message",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Reconciling", "True", "Progressing", "", i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Progressing",
		},

		// Rule 5: Ready False otherwise is Progressing with its reason and message.
		{
			name: "Ready False, address pending",
			obj: mcpServer(i3, status(i3, conditions(
				condition("IngressReady", "False", "AddressPending", "the Ingress has no address yet", i3),
				condition("Ready", "False", "AddressPending", "the Ingress has no address yet", i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "AddressPending: the Ingress has no address yet",
		},
		{
			name: "Ready False, reconcile error retried",
			obj: mcpServer(g3, status(g3, conditions(
				condition("Ready", "False", "ReconcileError", "creating Deployment: connection refused", g3),
				condition("Stalled", "False", "ReconcileError", "", g3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "ReconcileError: creating Deployment: connection refused",
		},

		// Rule 6: anything else.
		{
			name: "conditions without Ready",
			obj: mcpServer(i3, status(i3, conditions(
				condition("GatewayAvailable", "True", "DeploymentAvailable", "Deployment has minimum availability", i3),
				condition("ClerkConfigured", "True", "Synced", "", i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator",
		},
		{
			name: "Ready Unknown",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Ready", "Unknown", "Progressing", "not yet observed", i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator",
		},
		{
			name: "Reconciling False and no Ready",
			obj: mcpServer(i3, status(i3, conditions(
				condition("Reconciling", "False", "Ready", "", i3),
			))),
			wantStatus:  StatusProgressing,
			wantMessage: "Waiting for the operator",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gotStatus, gotMessage, err := Evaluate(Script, tt.obj)
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if gotStatus != tt.wantStatus || gotMessage != tt.wantMessage {
				t.Errorf("Evaluate = %q, %q; want %q, %q", gotStatus, gotMessage, tt.wantStatus, tt.wantMessage)
			}
		})
	}
}

// TestScriptTypedMcpServer runs the script on a typed McpServer converted the
// two ways Argo CD can see it: by the API machinery (int64 numbers) and
// through JSON (float64 numbers).
func TestScriptTypedMcpServer(t *testing.T) {
	t.Parallel()
	when := metav1.Date(2026, 3, 2, 10, 1, 0, 0, time.UTC)
	mcp := &v1alpha1.McpServer{
		TypeMeta:   metav1.TypeMeta{APIVersion: "mcpgate.dev/v1alpha1", Kind: "McpServer"},
		ObjectMeta: metav1.ObjectMeta{Name: "github-tools", Namespace: "tools", Generation: 7},
		Spec: v1alpha1.McpServerSpec{
			Upstream: v1alpha1.Upstream{Service: &v1alpha1.UpstreamService{Name: "github-mcp", Port: intstr.FromInt32(8080)}},
			Clerk: v1alpha1.ClerkSpec{
				PublishableKey: "pk_test_ZXhhbXBsZS1hcHAtMDAuY2xlcmsuYWNjb3VudHMuZGV2JA",
				SecretKeyRef:   v1alpha1.SecretKeyReference{Name: "clerk", Key: "secret-key"},
			},
		},
		Status: v1alpha1.McpServerStatus{
			ObservedGeneration: 7,
			URL:                "https://tools.example.com/mcp",
			Conditions: []metav1.Condition{
				{Type: v1alpha1.ConditionReady, Status: metav1.ConditionTrue, Reason: v1alpha1.ReasonReady, Message: serving, ObservedGeneration: 7, LastTransitionTime: when},
			},
		},
	}

	fromAPI, err := runtime.DefaultUnstructuredConverter.ToUnstructured(mcp)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := fromAPI["metadata"].(map[string]any)["generation"].(int64); !ok {
		t.Fatalf("generation from the converter is %T, want int64", fromAPI["metadata"].(map[string]any)["generation"])
	}
	data, err := json.Marshal(mcp)
	if err != nil {
		t.Fatal(err)
	}
	var fromJSON map[string]any
	if err := json.Unmarshal(data, &fromJSON); err != nil {
		t.Fatal(err)
	}

	check := func(name string, obj map[string]any, wantStatus, wantMessage string) {
		t.Helper()
		gotStatus, gotMessage, err := Evaluate(Script, obj)
		if err != nil {
			t.Fatalf("%s: Evaluate: %v", name, err)
		}
		if gotStatus != wantStatus || gotMessage != wantMessage {
			t.Errorf("%s: Evaluate = %q, %q; want %q, %q", name, gotStatus, gotMessage, wantStatus, wantMessage)
		}
	}
	check("unstructured", fromAPI, StatusHealthy, serving)
	check("JSON", fromJSON, StatusHealthy, serving)

	// The spec changes: generation 8, not yet observed.
	fromAPI["metadata"].(map[string]any)["generation"] = int64(8)
	fromJSON["metadata"].(map[string]any)["generation"] = float64(8)
	check("unstructured, new generation", fromAPI, StatusProgressing, "Waiting for the operator to observe generation 8")
	check("JSON, new generation", fromJSON, StatusProgressing, "Waiting for the operator to observe generation 8")
}

func TestEvaluate(t *testing.T) {
	obj := map[string]any{
		"list":    []any{"first", "second"},
		"float":   float64(1.5),
		"int64":   int64(42),
		"int":     7,
		"flag":    true,
		"nothing": nil,
		"nested":  map[string]any{"deep": map[string]any{"value": "here"}},
	}
	tests := []struct {
		name        string
		script      string
		wantStatus  string
		wantMessage string
		wantErr     string
	}{
		{
			name:        "arrays are 1-based",
			script:      `return {status = "Healthy", message = obj.list[1] .. "," .. obj.list[2] .. "," .. #obj.list}`,
			wantStatus:  StatusHealthy,
			wantMessage: "first,second,2",
		},
		{
			name:        "numbers",
			script:      `return {status = "Healthy", message = (obj.float * 2) .. " " .. (obj.int64 + obj.int)}`,
			wantStatus:  StatusHealthy,
			wantMessage: "3 49",
		},
		{
			name:        "booleans, nil and nesting",
			script:      `return {status = "Healthy", message = tostring(obj.flag == true) .. " " .. tostring(obj.nothing == nil) .. " " .. obj.nested.deep.value}`,
			wantStatus:  StatusHealthy,
			wantMessage: "true true here",
		},
		{
			name:        "hs variable, no message",
			script:      "hs = {}\nhs.status = \"Suspended\"\nreturn hs",
			wantStatus:  StatusSuspended,
			wantMessage: "",
		},
		{
			name:        "invalid status becomes Unknown, as in Argo CD",
			script:      `return {status = "Fine", message = "all good"}`,
			wantStatus:  StatusUnknown,
			wantMessage: "Lua returned an invalid health status",
		},
		{
			name:    "syntax error",
			script:  `return {status = `,
			wantErr: "running health script",
		},
		{
			name:    "runtime error",
			script:  `return {status = obj.missing.field}`,
			wantErr: "running health script",
		},
		{
			name:    "no string library, as in Argo CD",
			script:  `return {status = string.format("%s", "Healthy")}`,
			wantErr: "running health script",
		},
		{
			name:    "returns nothing",
			script:  `local hs = {status = "Healthy"}`,
			wantErr: "not a table",
		},
		{
			name:    "returns a string",
			script:  `return "Healthy"`,
			wantErr: "not a table",
		},
		{
			name:    "message not a string",
			script:  `return {status = "Healthy", message = {}}`,
			wantErr: "not a string",
		},
		{
			name:    "endless script is stopped",
			script:  `while true do end`,
			wantErr: "running health script",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			gotStatus, gotMessage, err := Evaluate(tt.script, obj)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Evaluate error = %v; want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Evaluate: %v", err)
			}
			if gotStatus != tt.wantStatus || gotMessage != tt.wantMessage {
				t.Errorf("Evaluate = %q, %q; want %q, %q", gotStatus, gotMessage, tt.wantStatus, tt.wantMessage)
			}
		})
	}
}

// TestGitOpsDocHasTheScript: the argocd-cm snippet of docs/gitops.md is the
// tested script.
func TestGitOpsDocHasTheScript(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "gitops.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "<!-- argocd:health -->\n")
	snippet, _, ok2 := strings.Cut(rest, "<!-- /argocd:health -->")
	if !ok || !ok2 {
		t.Fatal("docs/gitops.md has no <!-- argocd:health --> snippet")
	}
	_, body, ok := strings.Cut(snippet, "resource.customizations.health.mcpgate.dev_McpServer: |\n")
	body, _, _ = strings.Cut(body, "```")
	if !ok {
		t.Fatal("the snippet does not set resource.customizations.health.mcpgate.dev_McpServer")
	}
	var script strings.Builder
	for _, line := range strings.SplitAfter(body, "\n") {
		script.WriteString(strings.TrimPrefix(line, "    "))
	}
	if strings.TrimSpace(script.String()) != strings.TrimSpace(Script) {
		t.Error("the Argo CD health check in docs/gitops.md differs from internal/argocd/mcpserver-health.lua; copy it over")
	}
}
