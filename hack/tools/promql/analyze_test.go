package main

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
)

func TestAnalyze(t *testing.T) {
	tests := map[string]struct {
		expr    string
		metrics []string // the names found, sorted
		unnamed int      // selectors without a metric name
		err     bool     // a parse error is expected
	}{
		"one counter": {
			expr: `sum by (namespace) (rate(mcpgate_gateway_requests_total{code=~"5.."}[5m]))`, metrics: []string{"mcpgate_gateway_requests_total"},
		},
		"histogram quantile and a ratio of two": {
			expr:    `histogram_quantile(0.95, sum by (le) (rate(a_bucket[5m]))) / on() group_left sum(rate(b_total[5m])) > 0.5`,
			metrics: []string{"a_bucket", "b_total"},
		},
		"one name twice":    {expr: `x_total - x_total offset 1h`, metrics: []string{"x_total"}},
		"name as a matcher": {expr: `{__name__="up_total", job="x"}`, metrics: []string{"up_total"}},
		"absent and a subquery": {
			expr: `absent(broker_ready) or max_over_time(broker_ready[10m:1m]) < 1`, metrics: []string{"broker_ready"},
		},
		"regular expression on the name": {expr: `{__name__=~"mcpgate_.*"}`, metrics: []string{}, unnamed: 1},
		"a number":                       {expr: `1`, metrics: []string{}},
		"a Grafana variable left in":     {expr: `rate(x_total[$__rate_interval])`, err: true},
		"an unknown function":            {expr: `rates(x_total[5m])`, err: true},
		"an experimental function":       {expr: `sort_by_label(x_total, "a")`, err: true},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			got := Analyze(Expression{ID: name, Expr: tc.expr})
			if got.ID != name {
				t.Errorf("ID = %q, want %q", got.ID, name)
			}
			if (got.Error != "") != tc.err {
				t.Fatalf("Error = %q, want an error: %v", got.Error, tc.err)
			}
			if tc.err {
				return
			}
			if !slices.Equal(got.Metrics, tc.metrics) {
				t.Errorf("Metrics = %q, want %q", got.Metrics, tc.metrics)
			}
			if got.Unnamed != tc.unnamed {
				t.Errorf("Unnamed = %d, want %d", got.Unnamed, tc.unnamed)
			}
		})
	}
}

func TestAnalyzeSelectors(t *testing.T) {
	got := Analyze(Expression{Expr: `sum by (a) (rate(x_total{b="1", a=~"2", b!="3"}[5m])) / on (a) {__name__="y", c=""} + z`})
	want := []Selector{
		{Metric: "x_total", Labels: []string{"a", "b"}},
		{Metric: "y", Labels: []string{"c"}},
		{Metric: "z", Labels: []string{}},
	}
	if got.Error != "" || !slices.EqualFunc(got.Selectors, want, func(a, b Selector) bool {
		return a.Metric == b.Metric && slices.Equal(a.Labels, b.Labels)
	}) {
		t.Errorf("Selectors = %+v (error %q), want %+v", got.Selectors, got.Error, want)
	}
}

func TestRun(t *testing.T) {
	in := `[{"id":"a","expr":"rate(x_total[5m])"},{"id":"b","expr":"rate(("}]`
	var out bytes.Buffer
	if err := run(strings.NewReader(in), &out); err != nil {
		t.Fatal(err)
	}
	var results []Result
	if err := json.Unmarshal(out.Bytes(), &results); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(results) != 2 || results[0].ID != "a" || results[1].ID != "b" {
		t.Fatalf("results = %+v, want a then b", results)
	}
	if !slices.Equal(results[0].Metrics, []string{"x_total"}) || results[0].Error != "" || len(results[0].Selectors) != 1 {
		t.Errorf("a = %+v", results[0])
	}
	if results[1].Error == "" {
		t.Errorf("b parsed: %+v", results[1])
	}
	if err := run(strings.NewReader("not json"), &out); err == nil {
		t.Error("run accepted input that is not JSON")
	}
}
