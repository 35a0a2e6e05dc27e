// Package observability tests what the chart ships for watching mcpgate: the
// Grafana dashboard and the PrometheusRule alerts (charts/mcpgate,
// dashboards.enabled and prometheusRule.enabled). The chart is rendered by
// the real helm; every query of every panel, template variable and alert is
// parsed by Prometheus' own PromQL parser (hack/tools/promql, a module of its
// own, built by hack/setup-promql.sh); and each metric a query names, with
// each label it matches on, must be exported by a running gateway, key
// broker or manager (internal/localstack), after requests that make every
// family appear: no dashboard queries a metric mcpgate never emits.
package observability
