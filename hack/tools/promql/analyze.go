package main

import (
	"errors"
	"slices"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// Expression is one PromQL expression to parse; ID says where it came from
// (a panel's target, an alert), so that a failure can name it.
type Expression struct {
	ID   string `json:"id"`
	Expr string `json:"expr"`
}

// Result is what Analyze found in one expression.
type Result struct {
	ID string `json:"id"`
	// Metrics are the metric names its selectors name, sorted, each once.
	Metrics []string `json:"metrics"`
	// Selectors are its selectors that name a metric, in the order they
	// appear: the metric and the labels it matches on, so that a caller can
	// check those labels exist too.
	Selectors []Selector `json:"selectors"`
	// Unnamed counts selectors that name no metric exactly (no name, or a
	// regular expression on __name__): such a selector cannot be checked
	// against what is exported, so the caller should refuse it.
	Unnamed int `json:"unnamed,omitempty"`
	// Error is the parser's error; empty when the expression parsed.
	Error string `json:"error,omitempty"`
}

// Selector is one vector or matrix selector: its metric and the names of
// the labels it matches on (__name__ aside), sorted, each once.
type Selector struct {
	Metric string   `json:"metric"`
	Labels []string `json:"labels"`
}

// Analyze parses e with Prometheus' default parser options (no experimental
// functions: a rule must load in a stock Prometheus) and collects the metric
// names of its vector and matrix selectors.
func Analyze(e Expression) Result {
	r := Result{ID: e.ID, Metrics: []string{}, Selectors: []Selector{}}
	p := parser.NewParser(parser.Options{})
	expr, err := p.ParseExpr(e.Expr)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	if expr == nil {
		r.Error = errors.New("empty expression").Error()
		return r
	}
	parser.Inspect(expr, func(node parser.Node, _ []parser.Node) error {
		vs, ok := node.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if name := metricName(vs); name != "" {
			r.Metrics = append(r.Metrics, name)
			r.Selectors = append(r.Selectors, Selector{Metric: name, Labels: matcherLabels(vs)})
		} else {
			r.Unnamed++
		}
		return nil
	})
	slices.Sort(r.Metrics)
	r.Metrics = slices.Compact(r.Metrics)
	return r
}

// metricName is the metric a selector names: foo{...}, or {__name__="foo"}.
func metricName(vs *parser.VectorSelector) string {
	if vs.Name != "" {
		return vs.Name
	}
	for _, m := range vs.LabelMatchers {
		if m.Name == model.MetricNameLabel && m.Type == labels.MatchEqual {
			return m.Value
		}
	}
	return ""
}

// matcherLabels are the labels a selector matches on, __name__ aside.
func matcherLabels(vs *parser.VectorSelector) []string {
	names := []string{}
	for _, m := range vs.LabelMatchers {
		if m.Name != model.MetricNameLabel {
			names = append(names, m.Name)
		}
	}
	slices.Sort(names)
	return slices.Compact(names)
}
