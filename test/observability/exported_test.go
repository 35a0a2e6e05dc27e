package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/mcpgate/mcpgate/internal/localstack"
	"github.com/mcpgate/mcpgate/internal/mcpclient"
	"github.com/mcpgate/mcpgate/internal/sampleserver"
	"github.com/mcpgate/mcpgate/internal/testenv"
)

const (
	// buildTimeout bounds building mcpgate and finding the envtest
	// binaries, which a cold cache makes slow; testTimeout bounds the rest:
	// the stack's start, the traffic and the waits.
	buildTimeout = 10 * time.Minute
	testTimeout  = 3 * time.Minute
	// mcpServer is the McpServer the traffic goes to, with instanceName,
	// the ClerkInstance it uses, so that the manager has an instance's
	// conditions and last sync to export.
	mcpServer    = "observed"
	instanceName = "main"
)

// prometheusOperator holds the Prometheus Operator's CRDs (PodMonitor,
// ServiceMonitor, PrometheusRule), which the rendered objects are checked
// against: the real ones, from the Go module proxy.
const prometheusOperator = "github.com/prometheus-operator/prometheus-operator@v0.85.0"

// TestChartQueriesParse checks every query the chart ships with
// Prometheus' parser: each parses with the default options (no experimental
// functions), and each selector names its metric, so that the check against
// what mcpgate exports (TestChartQueriesUseExportedMetrics) covers it. The
// parser is shown a broken query too, so that a checker that accepts
// anything fails here.
func TestChartQueriesParse(t *testing.T) {
	t.Parallel()
	qs, err := chartQueries(renderChart(t, chartValues...))
	if err != nil {
		t.Fatal(err)
	}
	canaries := []query{
		{ID: "canary: unbalanced", Expr: `sum(rate(mcpgate_gateway_requests_total[5m])`},
		{ID: "canary: experimental", Expr: `sort_by_label(mcpgate_gateway_requests_total, "code")`},
	}
	results := analyze(t, append(slices.Clone(qs), canaries...))
	for _, r := range results[len(qs):] {
		if r.Error == "" {
			t.Errorf("%s parsed; the checker accepts what Prometheus refuses", r.ID)
		}
	}
	for _, r := range results[:len(qs)] {
		if r.Error != "" {
			t.Errorf("%s: %s", r.ID, r.Error)
		}
		if r.Unnamed > 0 {
			t.Errorf("%s: %d selectors name no metric, so nothing can check them", r.ID, r.Unnamed)
		}
		if len(r.Metrics) == 0 && r.Error == "" {
			t.Errorf("%s queries no metric", r.ID)
		}
	}
	t.Logf("%d queries parsed", len(qs))
}

// TestChartQueriesUseExportedMetrics runs the local stack (a real manager,
// key broker and gateway), sends the requests that make every metric family
// appear, scrapes the three before and after a real MCP client's session,
// and checks the chart's queries against what they exported:
//   - each metric a query names is exported, with every label the query
//     matches on (or one Prometheus adds as it scrapes);
//   - evaluated by Prometheus' engine over the two scrapes, every query
//     runs without an error; every dashboard query returns series (the
//     "not Ready" list aside), most of them numbers; and no alert fires on
//     this healthy stack (reconcile errors aside, which a conflict on a
//     status write can cause at any time).
//
// It also applies the rendered PodMonitor, ServiceMonitors, PrometheusRule
// and dashboard ConfigMap to the stack's API server with a server-side dry
// run, against the Prometheus Operator's CRDs.
func TestChartQueriesUseExportedMetrics(t *testing.T) {
	objs := renderChart(t, chartValues...)
	qs, err := chartQueries(objs)
	if err != nil {
		t.Fatal(err)
	}
	results := analyze(t, qs)

	bins, assets := stackParts(t)
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	stack := startStack(t, ctx, bins, assets)
	dryRunMonitoring(t, ctx, stack, objs)
	gw := applyMcpServer(t, ctx, stack)
	sendAnonymous(t, ctx, gw)
	broker, ok := stack.Broker()
	if !ok {
		t.Fatal("the stack runs no key broker")
	}
	targets := []*target{
		{name: "manager", url: stack.ManagerMetricsURL(), labels: map[string]string{
			"namespace": "ops", "job": "mcpgate-metrics", "service": "mcpgate-metrics", "pod": "mcpgate-0", "instance": "10.0.0.1:8080", "container": "manager", "endpoint": "metrics"}},
		{name: "broker", url: broker.HealthURL + "/metrics", labels: map[string]string{
			"namespace": "ops", "job": "mcpgate-broker", "service": "mcpgate-broker", "pod": "mcpgate-broker-0", "instance": "10.0.0.2:8081", "container": "broker", "endpoint": "metrics"}},
		{name: "gateway", url: gw.HealthURL + "/metrics", labels: map[string]string{
			"namespace": stack.Namespace(), "mcpserver": mcpServer, "job": "ops/mcpgate-gateways", "pod": mcpServer + "-gateway-0", "instance": "10.0.0.3:8081", "container": "gateway", "endpoint": "health"}},
	}

	// The manager's state metrics appear once it has reconciled the objects
	// and the instance has synced, and the McpServer is Ready once its
	// gateway is: wait for them rather than race them.
	ready := regexp.MustCompile(`(?m)^mcpgate_mcpserver_condition\{mcpserver="` + mcpServer + `",namespace="[^"]+",reason="[^"]*",type="Ready"\} 1$`)
	waitFor(t, ctx, "the manager's state metrics", func() (bool, error) {
		text, err := fetch(ctx, targets[0].url)
		if err != nil {
			return false, err
		}
		for _, m := range []string{"mcpgate_clerk_instance_condition{", "mcpgate_clerk_instance_last_sync_timestamp_seconds{", "controller_runtime_reconcile_time_seconds_bucket{"} {
			if !strings.Contains(text, m) {
				return false, fmt.Errorf("no %s yet", m)
			}
		}
		if !ready.MatchString(text) {
			return false, fmt.Errorf("%s is not Ready yet", mcpServer)
		}
		return true, nil
	})
	for _, tg := range targets {
		tg.scrape(t, ctx)
	}
	runClient(t, ctx, gw)
	for _, tg := range targets {
		tg.scrape(t, ctx)
	}

	all := exported{}
	for _, tg := range targets {
		all.add(parseExposition(tg.texts[1]), sortedKeys(tg.labels))
	}
	for _, r := range results {
		if r.Error != "" {
			t.Errorf("%s: %s", r.ID, r.Error)
			continue
		}
		for _, s := range r.Selectors {
			labels, ok := all[s.Metric]
			if !ok {
				t.Errorf("%s: no running gateway, broker or manager exports %s", r.ID, s.Metric)
				continue
			}
			for _, l := range s.Labels {
				if !labels[l] {
					t.Errorf("%s: %s has no label %s (it has %q)", r.ID, s.Metric, l, sortedKeys(labels))
				}
			}
		}
	}
	t.Logf("%d queries checked against %d exported metrics", len(results), len(all))
	checkEvaluation(t, qs, evaluate(t, qs, targets))
}

// Queries that may return nothing, or only NaN, on a healthy stack after
// one client session, by the start of their ID.
var (
	// mayBeEmpty: the McpServers that are not Ready; there are none.
	mayBeEmpty = []string{`mcpgate.json panel "McpServers not Ready"`}
	// mayBeNaN: ratios and quantiles of what did not happen between the
	// two scrapes: the session made no access-rule or provider-token
	// lookups (0/0), the gateway made no direct Clerk calls (the broker
	// answers), and the operator need not reconcile; a quantile of no
	// observations is NaN.
	mayBeNaN = []string{
		`mcpgate.json panel "User and membership cache hit ratio"`,
		`mcpgate.json panel "Provider token cache hit ratio"`,
		`mcpgate.json panel "Clerk call time"`,
		`mcpgate.json panel "Reconcile time"`,
	}
	// mayFire: reconcile errors happen on a healthy operator too (a
	// conflict on a status write is retried as an error).
	mayFire = []string{"rule mcpgate-operator/McpgateReconcileErrors"}
)

func hasPrefix(prefixes []string, id string) bool {
	for _, p := range prefixes {
		if strings.HasPrefix(id, p) {
			return true
		}
	}
	return false
}

// checkEvaluation judges what Prometheus' engine made of each query.
func checkEvaluation(t *testing.T, qs []query, results []evalResult) {
	t.Helper()
	for i, r := range results {
		id := qs[i].ID
		switch {
		case r.Error != "":
			t.Errorf("%s: evaluation failed: %s", id, r.Error)
		case strings.HasPrefix(id, "rule "):
			if r.Series > 0 && !hasPrefix(mayFire, id) {
				t.Errorf("%s fires on a healthy stack (%d series)", id, r.Series)
			}
		case r.Series == 0:
			if !hasPrefix(mayBeEmpty, id) {
				t.Errorf("%s returns no series", id)
			}
		case r.Numbers == 0:
			if !hasPrefix(mayBeNaN, id) {
				t.Errorf("%s returns only NaN (%d series)", id, r.Series)
			}
		}
	}
}

// target is a /metrics endpoint of the stack, the labels Prometheus would
// add to its series with the chart's scrape objects, and its scrapes.
type target struct {
	name, url string
	labels    map[string]string
	texts     []string
}

func (tg *target) scrape(t *testing.T, ctx context.Context) {
	t.Helper()
	text, err := fetch(ctx, tg.url)
	if err != nil {
		t.Fatalf("scrape the %s: %v", tg.name, err)
	}
	tg.texts = append(tg.texts, text)
}

// evalResult is hack/tools/promql eval's answer about one query.
type evalResult struct {
	ID      string `json:"id"`
	Series  int    `json:"series"`
	Numbers int    `json:"numbers"`
	Error   string `json:"error"`
}

// scrapeInterval is how far apart the two scrapes are put for the engine:
// the chart's scrape interval.
const scrapeInterval = 30

// evaluate loads the targets' scrapes into Prometheus' TSDB, a scrape
// interval apart, and evaluates the queries just after the last.
func evaluate(t *testing.T, qs []query, targets []*target) []evalResult {
	t.Helper()
	type scrape struct {
		Time   float64           `json:"time"`
		Text   string            `json:"text"`
		Labels map[string]string `json:"labels"`
	}
	const start = 1_000_000
	var in struct {
		Scrapes []scrape `json:"scrapes"`
		Queries []query  `json:"queries"`
		Time    float64  `json:"time"`
	}
	for _, tg := range targets {
		for i, text := range tg.texts {
			in.Scrapes = append(in.Scrapes, scrape{Time: float64(start + i*scrapeInterval), Text: text, Labels: tg.labels})
		}
	}
	in.Queries = qs
	in.Time = float64(start + (len(targets[0].texts)-1)*scrapeInterval + 1)
	tool, err := testenv.FromEnvOrScript(repoRoot, "PROMQL", "setup-promql.sh")
	if err != nil {
		t.Fatal(err)
	}
	data, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	var results []evalResult
	if err := json.Unmarshal(run(t, os.Environ(), data, tool, "eval"), &results); err != nil {
		t.Fatalf("hack/tools/promql eval's output: %v", err)
	}
	if len(results) != len(qs) {
		t.Fatalf("hack/tools/promql eval answered %d of %d queries", len(results), len(qs))
	}
	return results
}

// exported maps each metric name a scrape returned to its label names.
type exported map[string]map[string]bool

// add merges other into e, each metric with the extra labels a scrape adds.
func (e exported) add(other exported, extra []string) {
	for name, labels := range other {
		if e[name] == nil {
			e[name] = map[string]bool{}
		}
		for l := range labels {
			e[name][l] = true
		}
		for _, l := range extra {
			e[name][l] = true
		}
	}
}

var (
	sampleLine = regexp.MustCompile(`^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s`)
	labelPair  = regexp.MustCompile(`([a-zA-Z_][a-zA-Z0-9_]*)="(?:[^"\\]|\\.)*"`)
)

// parseExposition reads the Prometheus text format: the name and label
// names of every sample.
func parseExposition(text string) exported {
	e := exported{}
	for _, line := range strings.Split(text, "\n") {
		m := sampleLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		labels := e[m[1]]
		if labels == nil {
			labels = map[string]bool{}
			e[m[1]] = labels
		}
		for _, p := range labelPair.FindAllStringSubmatch(m[3], -1) {
			labels[p[1]] = true
		}
	}
	return e
}

// fetch gets a /metrics endpoint in the text format.
func fetch(ctx context.Context, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("Accept", "text/plain; version=0.0.4")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return "", err
	}
	if resp.StatusCode != http.StatusOK {
		return "", fmt.Errorf("GET %s: %d", url, resp.StatusCode)
	}
	return string(body), nil
}

// stackParts builds mcpgate and finds the envtest binaries, within
// buildTimeout.
func stackParts(t *testing.T) (localstack.Binaries, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), buildTimeout)
	defer cancel()
	bins, assets, err := localstack.Prepare(ctx, localstack.Options{Progress: func(msg string) { t.Log(msg) }})
	if err != nil {
		t.Fatal(err)
	}
	return bins, assets
}

// startStack starts a local stack of the test's own (key broker included)
// and closes it when the test ends; its logs are printed if the test fails.
func startStack(t *testing.T, ctx context.Context, bins localstack.Binaries, assets string) *localstack.Stack {
	t.Helper()
	workDir := t.TempDir()
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		files, _ := filepath.Glob(filepath.Join(workDir, "logs", "*.log"))
		for _, f := range files {
			data, err := os.ReadFile(f)
			if err != nil {
				continue
			}
			lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
			t.Logf("--- last lines of %s:\n%s", filepath.Base(f), strings.Join(lines[max(0, len(lines)-30):], "\n"))
		}
	})
	stack, err := localstack.Start(ctx, localstack.Options{
		WorkDir:   workDir,
		Binaries:  bins,
		AssetsDir: assets,
		Clerk:     localstack.ClerkOptions{TokenFormat: localstack.Opaque},
		Progress:  func(msg string) { t.Log(msg) },
	})
	if err != nil {
		t.Fatalf("start the stack: %v", err)
	}
	t.Cleanup(func() {
		if err := stack.Close(); err != nil {
			t.Errorf("close the stack: %v", err)
		}
	})
	return stack
}

// applyMcpServer applies a ClerkInstance and an McpServer that uses it, and
// waits for its gateway.
func applyMcpServer(t *testing.T, ctx context.Context, stack *localstack.Stack) localstack.Gateway {
	t.Helper()
	svc, port := stack.SampleService()
	manifest := fmt.Sprintf(`apiVersion: mcpgate.dev/v1alpha1
kind: ClerkInstance
metadata: {name: %[1]s, namespace: %[2]s}
spec:
  issuer: %[3]s
  secretKeyRef: {name: %[4]s, key: %[5]s}
  dynamicClientRegistration: true
  jwtAccessTokens: false
---
apiVersion: mcpgate.dev/v1alpha1
kind: McpServer
metadata: {name: %[6]s, namespace: %[2]s}
spec:
  upstream:
    service: {name: %[7]s, port: %[8]d}
  scopes: [profile]
  clerk:
    instanceRef: {kind: ClerkInstance, name: %[1]s}
`, instanceName, stack.Namespace(), stack.Clerk().Issuer, localstack.SecretName, localstack.SecretKey, mcpServer, svc, port)
	if _, err := stack.Kubectl(ctx, []byte(manifest), "apply", "-f", "-"); err != nil {
		t.Fatal(err)
	}
	waitCtx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	gw, err := stack.WaitGateway(waitCtx, stack.Namespace(), mcpServer, "")
	if err != nil {
		t.Fatal(err)
	}
	return gw
}

// sendAnonymous sends what a client sends before it signs in: a GET of the
// resource metadata, and an MCP request without a token, refused.
func sendAnonymous(t *testing.T, ctx context.Context, gw localstack.Gateway) {
	t.Helper()
	get := func(url string, want int) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("GET %s = %d, want %d", url, resp.StatusCode, want)
		}
	}
	get(gw.MetadataURL, http.StatusOK)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, gw.URL, strings.NewReader(`{"jsonrpc":"2.0","id":1,"method":"tools/list"}`))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, text/event-stream")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an MCP request without a token = %d, want 401", resp.StatusCode)
	}
}

// runClient runs a real MCP client's session: sign-in (one more 401 first,
// dynamic registration, an opaque token verified through the broker),
// tools/list and tools/call; the session holds an SSE stream meanwhile.
func runClient(t *testing.T, ctx context.Context, gw localstack.Gateway) {
	t.Helper()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(transport.CloseIdleConnections)
	cs, err := mcpclient.Connect(ctx, mcpclient.Options{URL: gw.URL, HTTPClient: &http.Client{Transport: transport}, ClientName: "mcpgate-observability-test"})
	if err != nil {
		t.Fatalf("connect: %v", err)
	}
	t.Cleanup(func() { _ = cs.Close() })
	if _, err := cs.ListTools(ctx, nil); err != nil {
		t.Fatalf("tools/list: %v", err)
	}
	res, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: sampleserver.ToolEcho, Arguments: map[string]any{"text": "hello"}})
	if err != nil || res.IsError {
		t.Fatalf("tools/call: %v %+v", err, res)
	}
}

// dryRunMonitoring installs the Prometheus Operator's CRDs in the stack's
// API server and applies the rendered monitoring objects and the dashboard
// ConfigMap with a server-side dry run: each must be valid for its CRD.
func dryRunMonitoring(t *testing.T, ctx context.Context, stack *localstack.Stack, objs []*unstructured.Unstructured) {
	t.Helper()
	out, err := exec.CommandContext(ctx, "go", "mod", "download", "-json", prometheusOperator).Output()
	if err != nil {
		t.Fatalf("go mod download %s: %v", prometheusOperator, err)
	}
	var dir string
	for _, line := range strings.Split(string(out), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), `"Dir": "`); ok {
			dir = strings.TrimSuffix(v, `",`)
		}
	}
	crds := filepath.Join(dir, "example", "prometheus-operator-crd")
	for _, kind := range []string{"podmonitors", "servicemonitors", "prometheusrules"} {
		if _, err := stack.Kubectl(ctx, nil, "apply", "--server-side", "-f", filepath.Join(crds, "monitoring.coreos.com_"+kind+".yaml")); err != nil {
			t.Fatal(err)
		}
		if _, err := stack.Kubectl(ctx, nil, "wait", "--for=condition=Established", "crd/"+kind+".monitoring.coreos.com", "--timeout=60s"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := stack.Kubectl(ctx, nil, "create", "namespace", "ops"); err != nil {
		t.Fatal(err)
	}
	var checked []string
	for _, o := range objs {
		kind := o.GetKind()
		if kind != "PodMonitor" && kind != "ServiceMonitor" && kind != "PrometheusRule" &&
			!(kind == "ConfigMap" && o.GetLabels()["app.kubernetes.io/component"] == "dashboards") {
			continue
		}
		data, err := o.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := stack.Kubectl(ctx, data, "apply", "--server-side", "--dry-run=server", "--field-manager=observability-test", "-f", "-"); err != nil {
			t.Errorf("%s %s: %v", kind, o.GetName(), err)
		}
		checked = append(checked, kind)
	}
	slices.Sort(checked)
	if want := []string{"ConfigMap", "PodMonitor", "PrometheusRule", "ServiceMonitor", "ServiceMonitor"}; !slices.Equal(checked, want) {
		t.Errorf("dry-run applied %q, want %q", checked, want)
	}
}

// waitFor calls check until it reports done, and fails the test with
// check's last error when a minute passes or ctx ends.
func waitFor(t *testing.T, ctx context.Context, what string, check func() (bool, error)) {
	t.Helper()
	testenv.Eventually(t, ctx, what, time.Minute, 200*time.Millisecond, check)
}
