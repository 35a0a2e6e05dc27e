package observability

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// TestChartRendersMonitoring checks where the chart puts its dashboard,
// alerts and gateway PodMonitor, and that each is off by default.
func TestChartRendersMonitoring(t *testing.T) {
	t.Parallel()
	tests := map[string]struct {
		args  []string                                                       // helm --set flags
		kinds []string                                                       // the monitoring kinds rendered, sorted
		check func(t *testing.T, objs map[string]*unstructured.Unstructured) // by kind, on those rendered
	}{
		"defaults": {},
		"all on, as the queries test renders it": {
			args:  chartValues,
			kinds: []string{"ConfigMap", "PodMonitor", "PrometheusRule"},
			check: func(t *testing.T, objs map[string]*unstructured.Unstructured) {
				cm := objs["ConfigMap"]
				if cm.GetNamespace() != "ops" || cm.GetLabels()["grafana_dashboard"] != "1" {
					t.Errorf("dashboard ConfigMap %s/%s labels %v, want ops and grafana_dashboard=1", cm.GetNamespace(), cm.GetName(), cm.GetLabels())
				}
				if data, _, _ := unstructured.NestedStringMap(cm.Object, "data"); data["mcpgate.json"] == "" {
					t.Errorf("dashboard ConfigMap keys %v, want mcpgate.json", sortedKeys(data))
				}
				if groups := ruleGroups(objs["PrometheusRule"]); !slices.Equal(groups, []string{"mcpgate-gateway", "mcpgate-operator", "mcpgate-broker"}) {
					t.Errorf("rule groups %q", groups)
				}
				if any, _, _ := unstructured.NestedBool(objs["PodMonitor"].Object, "spec", "namespaceSelector", "any"); !any {
					t.Error("the PodMonitor does not select gateways in every namespace")
				}
			},
		},
		"placed and labelled for another Grafana and Prometheus, no broker, some namespaces": {
			args: []string{
				"--set", "dashboards.enabled=true", "--set", "dashboards.namespace=grafana",
				"--set", "dashboards.label=grafana.com/dashboard", "--set", "dashboards.labelValue=mcp",
				"--set", "dashboards.annotations.grafana_folder=mcpgate",
				"--set", "prometheusRule.enabled=true", "--set", "prometheusRule.namespace=monitoring",
				"--set", "prometheusRule.labels.release=prom", "--set", "prometheusRule.additionalRuleLabels.team=platform",
				"--set", "prometheusRule.thresholds.responseTimeP95Seconds=2.5",
				"--set", "metrics.gatewayPodMonitor.enabled=true", "--set", "watchNamespaces={team-a,team-b}",
				"--set", "broker.enabled=false",
			},
			kinds: []string{"ConfigMap", "PodMonitor", "PrometheusRule"},
			check: func(t *testing.T, objs map[string]*unstructured.Unstructured) {
				cm := objs["ConfigMap"]
				if cm.GetNamespace() != "grafana" || cm.GetLabels()["grafana.com/dashboard"] != "mcp" || cm.GetAnnotations()["grafana_folder"] != "mcpgate" {
					t.Errorf("dashboard ConfigMap %s/%s labels %v annotations %v", cm.GetNamespace(), cm.GetName(), cm.GetLabels(), cm.GetAnnotations())
				}
				rule := objs["PrometheusRule"]
				if rule.GetNamespace() != "monitoring" || rule.GetLabels()["release"] != "prom" {
					t.Errorf("PrometheusRule %s/%s labels %v", rule.GetNamespace(), rule.GetName(), rule.GetLabels())
				}
				if groups := ruleGroups(rule); !slices.Equal(groups, []string{"mcpgate-gateway", "mcpgate-operator"}) {
					t.Errorf("rule groups without the broker %q", groups)
				}
				groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
				for _, g := range groups {
					rules, _ := g.(map[string]any)["rules"].([]any)
					for _, r := range rules {
						rule, _ := r.(map[string]any)
						labels, _ := rule["labels"].(map[string]any)
						if labels["team"] != "platform" || labels["severity"] == nil {
							t.Errorf("alert %v labels %v, want team=platform and a severity", rule["alert"], labels)
						}
						expr, _ := rule["expr"].(string)
						if rule["alert"] == "McpgateGatewaySlow" && !strings.Contains(expr, "> 2.5") {
							t.Errorf("McpgateGatewaySlow ignores its threshold: %s", expr)
						}
						if strings.Contains(expr, "mcpgate_broker_") {
							t.Errorf("alert %v reads the broker's metrics without a broker", rule["alert"])
						}
					}
				}
				names, _, _ := unstructured.NestedStringSlice(objs["PodMonitor"].Object, "spec", "namespaceSelector", "matchNames")
				if !slices.Equal(names, []string{"team-a", "team-b"}) {
					t.Errorf("PodMonitor namespaces %q, want the watched ones", names)
				}
			},
		},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			found := map[string]*unstructured.Unstructured{}
			var kinds []string
			for _, o := range renderChart(t, tc.args...) {
				kind := o.GetKind()
				if kind == "PodMonitor" || kind == "PrometheusRule" || (kind == "ConfigMap" && o.GetLabels()["app.kubernetes.io/component"] == "dashboards") {
					found[kind] = o
					kinds = append(kinds, kind)
				}
			}
			slices.Sort(kinds)
			if !slices.Equal(kinds, tc.kinds) {
				t.Fatalf("rendered %q, want %q", kinds, tc.kinds)
			}
			if tc.check != nil {
				tc.check(t, found)
			}
		})
	}
}

// ruleGroups names a PrometheusRule's groups in order.
func ruleGroups(rule *unstructured.Unstructured) []string {
	groups, _, _ := unstructured.NestedSlice(rule.Object, "spec", "groups")
	var names []string
	for _, g := range groups {
		if m, ok := g.(map[string]any); ok {
			name, _ := m["name"].(string)
			names = append(names, name)
		}
	}
	return names
}

// TestAlertsHaveRunbooks checks that every alert says what it is and where
// its runbook is: a summary, a description, a severity, and a runbook_url
// whose anchor is the alert's own heading in docs/observability.md.
func TestAlertsHaveRunbooks(t *testing.T) {
	t.Parallel()
	doc := string(readFile(t, filepath.Join(repoRoot, "docs", "observability.md")))
	var alerts int
	for _, o := range renderChart(t, chartValues...) {
		if o.GetKind() != "PrometheusRule" {
			continue
		}
		groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "groups")
		for _, g := range groups {
			rules, _ := g.(map[string]any)["rules"].([]any)
			for _, r := range rules {
				rule, _ := r.(map[string]any)
				name, _ := rule["alert"].(string)
				annotations, _ := rule["annotations"].(map[string]any)
				labels, _ := rule["labels"].(map[string]any)
				alerts++
				for _, key := range []string{"summary", "description"} {
					if s, _ := annotations[key].(string); len(strings.TrimSpace(s)) < 20 {
						t.Errorf("%s: annotation %s is %q", name, key, s)
					}
				}
				if s := labels["severity"]; s != "warning" && s != "critical" {
					t.Errorf("%s: severity %v, want warning or critical", name, s)
				}
				want := "https://github.com/mcpgate/mcpgate/blob/main/docs/observability.md#" + strings.ToLower(name)
				if got := annotations["runbook_url"]; got != want {
					t.Errorf("%s: runbook_url %v, want %s", name, got, want)
				}
				if !strings.Contains(doc, "\n#### "+name+"\n") {
					t.Errorf("%s: docs/observability.md has no heading #### %s for its runbook_url", name, name)
				}
			}
		}
	}
	if alerts == 0 {
		t.Fatal("no alerts rendered")
	}
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
