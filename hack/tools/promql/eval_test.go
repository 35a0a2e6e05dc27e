package main

import (
	"context"
	"testing"
)

func TestEvaluate(t *testing.T) {
	// Two scrapes a minute apart: a counter that grew by 60, a histogram
	// with one observation in the second, and a gauge whose own namespace
	// label wins over the target's.
	first := `# TYPE req_total counter
req_total{code="200"} 10
# TYPE lat_seconds histogram
lat_seconds_bucket{le="0.1"} 0
lat_seconds_bucket{le="+Inf"} 0
lat_seconds_sum 0
lat_seconds_count 0
# TYPE cond gauge
cond{namespace="team-a"} 1
`
	second := `req_total{code="200"} 70
lat_seconds_bucket{le="0.1"} 1
lat_seconds_bucket{le="+Inf"} 1
lat_seconds_sum 0.05
lat_seconds_count 1
cond{namespace="team-a"} 1
`
	target := map[string]string{"namespace": "ops", "pod": "p"}
	in := EvalInput{
		Scrapes: []Scrape{{Time: 1000060, Text: second, Labels: target}, {Time: 1000000, Text: first, Labels: target}},
		Time:    1000061,
	}
	tests := []struct {
		expr    string
		series  int // series returned
		numbers int // of which not NaN
		err     bool
	}{
		{expr: `sum by (namespace) (rate(req_total[5m]))`, series: 1, numbers: 1},
		{expr: `rate(req_total{namespace="ops", pod="p"}[5m]) > 0`, series: 1, numbers: 1},
		{expr: `histogram_quantile(0.95, sum by (le) (rate(lat_seconds_bucket[5m])))`, series: 1, numbers: 1},
		{expr: `sum(rate(lat_seconds_sum[5m])) / sum(rate(lat_seconds_count[5m])) / 0`, series: 1, numbers: 1}, // +Inf is a number
		{expr: `sum(rate(nothing_total[5m])) / sum(rate(nothing_total[5m]))`, series: 0},
		{expr: `rate(lat_seconds_count[5m]) / rate(lat_seconds_count[5m]) - 1`, series: 1, numbers: 1},
		{expr: `0 * sum(rate(lat_seconds_count[5m])) / 0`, series: 1, numbers: 0}, // 0/0: NaN
		{expr: `cond{namespace="team-a"} == 1`, series: 1, numbers: 1},
		{expr: `cond{namespace="ops"}`, series: 0},
		{expr: `absent(cond)`, series: 0},
		{expr: `time()`, series: 1, numbers: 1},
		{expr: `lat_seconds_bucket / on (namespace) lat_seconds_bucket`, err: true}, // many-to-many
		{expr: `rate(req_total[5m]`, err: true},
	}
	for _, tc := range tests {
		in.Queries = append(in.Queries, Expression{ID: tc.expr, Expr: tc.expr})
	}
	results, err := Evaluate(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	for i, tc := range tests {
		r := results[i]
		if r.ID != tc.expr {
			t.Fatalf("result %d is %q, want %q", i, r.ID, tc.expr)
		}
		if (r.Error != "") != tc.err {
			t.Errorf("%s: error %q, want one: %v", tc.expr, r.Error, tc.err)
			continue
		}
		if !tc.err && (r.Series != tc.series || r.Numbers != tc.numbers) {
			t.Errorf("%s: %d series, %d numbers; want %d, %d", tc.expr, r.Series, r.Numbers, tc.series, tc.numbers)
		}
	}
}
