package controllers

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// Names of the manager's state metrics: what the dashboards and alerts read
// about McpServers and Clerk instance objects (docs/observability.md).
const (
	MetricMcpServerCondition     = "mcpgate_mcpserver_condition"
	MetricClerkInstanceCondition = "mcpgate_clerk_instance_condition"
	MetricClerkInstanceLastSync  = "mcpgate_clerk_instance_last_sync_timestamp_seconds"
)

// stateListTimeout bounds one scrape's reads of the cache. The cache answers
// from memory once synced; before that, a scrape gets no state series rather
// than hanging.
const stateListTimeout = 5 * time.Second

// StateCollector exports the conditions of McpServers and Clerk instance
// objects as the manager's cache holds them, read at scrape time: a deleted
// object's series go with it, and nothing is kept between scrapes. Every
// replica exports the same values (they read the status the leader wrote),
// so a query should take max by object, not sum.
type StateCollector struct {
	reader    client.Reader
	mcpServer *prometheus.Desc
	instance  *prometheus.Desc
	lastSync  *prometheus.Desc
}

// NewStateCollector reads objects through reader, the manager's cache.
func NewStateCollector(reader client.Reader) *StateCollector {
	return &StateCollector{
		reader: reader,
		mcpServer: prometheus.NewDesc(MetricMcpServerCondition,
			"Conditions of each McpServer: 1 when the condition is True, 0 when False or Unknown, by type and reason.",
			[]string{"namespace", "mcpserver", "type", "reason"}, nil),
		instance: prometheus.NewDesc(MetricClerkInstanceCondition,
			"Conditions of each ClerkInstance and ClusterClerkInstance: 1 when True, 0 when False or Unknown, by type and reason.",
			[]string{"kind", "namespace", "name", "type", "reason"}, nil),
		lastSync: prometheus.NewDesc(MetricClerkInstanceLastSync,
			"When each Clerk instance object's settings were last read from, or written to, Clerk successfully (status.lastSyncTime), as Unix time.",
			[]string{"kind", "namespace", "name"}, nil),
	}
}

// Describe sends the descriptors of the three families.
func (c *StateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.mcpServer
	ch <- c.instance
	ch <- c.lastSync
}

// Collect lists the objects from the cache and sends their series. A list
// that fails (the cache not synced in time) leaves its kind out of this
// scrape; it never fails the scrape of the manager's other metrics.
func (c *StateCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), stateListTimeout)
	defer cancel()
	var servers mcpv1.McpServerList
	if c.reader.List(ctx, &servers) == nil {
		for i := range servers.Items {
			s := &servers.Items[i]
			for _, cond := range s.Status.Conditions {
				ch <- prometheus.MustNewConstMetric(c.mcpServer, prometheus.GaugeValue, conditionValue(cond),
					s.Namespace, s.Name, cond.Type, cond.Reason)
			}
		}
	}
	var instances mcpv1.ClerkInstanceList
	if c.reader.List(ctx, &instances) == nil {
		for i := range instances.Items {
			c.collectInstance(ch, mcpv1.KindClerkInstance, &instances.Items[i].ObjectMeta, &instances.Items[i].Status)
		}
	}
	var clusterInstances mcpv1.ClusterClerkInstanceList
	if c.reader.List(ctx, &clusterInstances) == nil {
		for i := range clusterInstances.Items {
			c.collectInstance(ch, mcpv1.KindClusterClerkInstance, &clusterInstances.Items[i].ObjectMeta, &clusterInstances.Items[i].Status)
		}
	}
}

func (c *StateCollector) collectInstance(ch chan<- prometheus.Metric, kind string, meta *metav1.ObjectMeta, status *mcpv1.ClerkInstanceStatus) {
	for _, cond := range status.Conditions {
		ch <- prometheus.MustNewConstMetric(c.instance, prometheus.GaugeValue, conditionValue(cond),
			kind, meta.Namespace, meta.Name, cond.Type, cond.Reason)
	}
	if status.LastSyncTime != nil {
		ch <- prometheus.MustNewConstMetric(c.lastSync, prometheus.GaugeValue,
			float64(status.LastSyncTime.Unix()), kind, meta.Namespace, meta.Name)
	}
}

// conditionValue is 1 for a True condition, 0 otherwise.
func conditionValue(c metav1.Condition) float64 {
	if c.Status == metav1.ConditionTrue {
		return 1
	}
	return 0
}
