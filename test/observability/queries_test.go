package observability

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mcpgate/mcpgate/internal/testenv"
)

// repoRoot is the repository, relative to this package.
var repoRoot = filepath.Join("..", "..")

// chartValues turn on everything the chart ships for observability.
var chartValues = []string{
	"--set", "dashboards.enabled=true",
	"--set", "prometheusRule.enabled=true",
	"--set", "metrics.serviceMonitor.enabled=true",
	"--set", "metrics.gatewayPodMonitor.enabled=true",
}

// query is one PromQL expression the chart ships, and where it is.
type query struct {
	ID   string `json:"id"`
	Expr string `json:"expr"`
}

// analysis is hack/tools/promql's answer about one query.
type analysis struct {
	ID        string     `json:"id"`
	Metrics   []string   `json:"metrics"`
	Selectors []selector `json:"selectors"`
	Unnamed   int        `json:"unnamed"`
	Error     string     `json:"error"`
}

type selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

// renderChart renders the chart as release "mcpgate" in namespace "ops"
// with args (chartValues, for the tests of its queries), by the real helm,
// with helm's own directories kept out of the user's home.
func renderChart(t *testing.T, args ...string) []*unstructured.Unstructured {
	t.Helper()
	helm, err := testenv.FromEnvOrScript(repoRoot, "HELM", "setup-helm.sh")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	env := append(os.Environ(), "HELM_CACHE_HOME="+filepath.Join(dir, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(dir, "config"), "HELM_DATA_HOME="+filepath.Join(dir, "data"))
	out := run(t, env, nil, helm, append([]string{"template", "mcpgate", filepath.Join(repoRoot, "charts", "mcpgate"), "--namespace", "ops"}, args...)...)
	objs, err := testenv.DecodeObjects(out)
	if err != nil {
		t.Fatalf("decode the rendered chart: %v", err)
	}
	return objs
}

// run runs a program and returns its stdout; it fails the test on an error.
func run(t *testing.T, env []string, stdin []byte, name string, args ...string) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, errOut.String())
	}
	return out.Bytes()
}

// chartQueries collects the queries of the rendered chart: each dashboard's
// panel targets and template variables (Grafana's variables replaced by
// values a query can run with), and each alert's expression as it is.
func chartQueries(objs []*unstructured.Unstructured) ([]query, error) {
	var qs []query
	var dashboards, rules int
	for _, o := range objs {
		switch o.GetKind() {
		case "ConfigMap":
			data, _, _ := unstructured.NestedStringMap(o.Object, "data")
			for key, raw := range data {
				if !strings.HasSuffix(key, ".json") {
					continue
				}
				dq, err := dashboardQueries(key, []byte(raw))
				if err != nil {
					return nil, err
				}
				dashboards++
				qs = append(qs, dq...)
			}
		case "PrometheusRule":
			groups, _, _ := unstructured.NestedSlice(o.Object, "spec", "groups")
			for _, g := range groups {
				group, _ := g.(map[string]any)
				ruleList, _ := group["rules"].([]any)
				for _, r := range ruleList {
					rule, _ := r.(map[string]any)
					name, _ := rule["alert"].(string)
					if name == "" {
						name, _ = rule["record"].(string)
					}
					expr, _ := rule["expr"].(string)
					qs = append(qs, query{ID: fmt.Sprintf("rule %s/%s", group["name"], name), Expr: expr})
					rules++
				}
			}
		}
	}
	if dashboards == 0 || rules == 0 {
		return nil, fmt.Errorf("the chart rendered %d dashboards and %d alerting rules; want both", dashboards, rules)
	}
	return qs, nil
}

// dashboard is the part of a Grafana dashboard that holds queries.
type dashboard struct {
	Title  string  `json:"title"`
	Panels []panel `json:"panels"`
	// Templating holds the dashboard's variables; a query variable's query
	// is a string or, in newer dashboards, an object with a query field.
	Templating struct {
		List []struct {
			Name  string          `json:"name"`
			Type  string          `json:"type"`
			Query json.RawMessage `json:"query"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

// labelValues is Grafana's variable query label_values(selector, label).
var labelValues = regexp.MustCompile(`^\s*label_values\((.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)

// dashboardQueries returns the queries of one dashboard file. A panel
// target without an expression, or a variable query other than
// label_values, is an error: the test could not check it.
func dashboardQueries(file string, raw []byte) ([]query, error) {
	var d dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var qs []query
	var walk func(ps []panel) error
	walk = func(ps []panel) error {
		for _, p := range ps {
			if err := walk(p.Panels); err != nil {
				return err
			}
			if p.Type == "row" || p.Type == "text" {
				continue
			}
			if len(p.Targets) == 0 {
				return fmt.Errorf("%s: panel %q has no query", file, p.Title)
			}
			for _, tg := range p.Targets {
				id := fmt.Sprintf("%s panel %q target %s", file, p.Title, tg.RefID)
				expr, err := grafanaExpr(tg.Expr)
				if err != nil || strings.TrimSpace(tg.Expr) == "" {
					return fmt.Errorf("%s: %v (expression %q)", id, err, tg.Expr)
				}
				qs = append(qs, query{ID: id, Expr: expr})
			}
		}
		return nil
	}
	if err := walk(d.Panels); err != nil {
		return nil, err
	}
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		var text string
		if json.Unmarshal(v.Query, &text) != nil {
			var obj struct {
				Query string `json:"query"`
			}
			if err := json.Unmarshal(v.Query, &obj); err != nil {
				return nil, fmt.Errorf("%s: variable %s: %w", file, v.Name, err)
			}
			text = obj.Query
		}
		m := labelValues.FindStringSubmatch(text)
		if m == nil {
			return nil, fmt.Errorf("%s: variable %s: %q is not label_values(selector, label)", file, v.Name, text)
		}
		expr, err := grafanaExpr(m[1])
		if err != nil {
			return nil, fmt.Errorf("%s: variable %s: %w", file, v.Name, err)
		}
		qs = append(qs, query{ID: fmt.Sprintf("%s variable %s", file, v.Name), Expr: expr})
	}
	if len(qs) == 0 {
		return nil, fmt.Errorf("%s: no queries", file)
	}
	return qs, nil
}

// grafanaVariables are the values a dashboard's variables take for the
// check: Grafana's interval variables become durations, the dashboard's own
// (used in regular expression matchers) match anything.
var grafanaVariables = map[string]string{
	"__rate_interval": "5m",
	"__interval":      "1m",
	"__range":         "1h",
	"namespace":       ".*",
	"mcpserver":       ".*",
}

var grafanaVariable = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[a-z]+)?\}|\$([A-Za-z0-9_]+)`)

// grafanaExpr replaces the Grafana variables in a dashboard's expression;
// a variable it does not know is an error.
func grafanaExpr(expr string) (string, error) {
	var unknown []string
	out := grafanaVariable.ReplaceAllStringFunc(expr, func(m string) string {
		sub := grafanaVariable.FindStringSubmatch(m)
		name := sub[1] + sub[2]
		v, ok := grafanaVariables[name]
		if !ok {
			unknown = append(unknown, name)
			return m
		}
		return v
	})
	if len(unknown) > 0 {
		return "", fmt.Errorf("unknown Grafana variables %q", unknown)
	}
	return out, nil
}

// analyze runs hack/tools/promql on the queries.
func analyze(t *testing.T, qs []query) []analysis {
	t.Helper()
	tool, err := testenv.FromEnvOrScript(repoRoot, "PROMQL", "setup-promql.sh")
	if err != nil {
		t.Fatal(err)
	}
	in, err := json.Marshal(qs)
	if err != nil {
		t.Fatal(err)
	}
	var results []analysis
	if err := json.Unmarshal(run(t, os.Environ(), in, tool), &results); err != nil {
		t.Fatalf("hack/tools/promql's output: %v", err)
	}
	if len(results) != len(qs) {
		t.Fatalf("hack/tools/promql answered %d of %d queries", len(results), len(qs))
	}
	return results
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
