package controllers

import (
	"context"
	"fmt"
	"maps"
	"net/url"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/intstr"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
)

// upstreamPolicyName and egressPolicyName name the NetworkPolicies of an
// McpServer: one around its upstream's pods, one (opt-in) around its gateway's.
func upstreamPolicyName(mcp *mcpv1.McpServer) string { return mcp.Name + "-upstream" }
func egressPolicyName(mcp *mcpv1.McpServer) string   { return mcp.Name + "-gateway-egress" }

// isolationEnabled reports whether mcp wants its upstream isolated: by
// default for a service upstream, never for a url one.
func isolationEnabled(mcp *mcpv1.McpServer) bool {
	up := mcp.Spec.Upstream
	return up.Service != nil && (up.Isolation == nil || up.Isolation.Enabled)
}

// reconcileIsolation keeps the NetworkPolicies in line with
// spec.upstream.isolation. It reports through UpstreamIsolated and never
// blocks Ready: the gateway serves either way, and the condition says
// whether the upstream is also shielded from everything else.
func (r *McpServerReconciler) reconcileIsolation(ctx context.Context, mcp *mcpv1.McpServer, _ *reconcileState) error {
	egressWanted := isolationEnabled(mcp) && mcp.Spec.Upstream.Isolation != nil && mcp.Spec.Upstream.Isolation.GatewayEgress
	if !isolationEnabled(mcp) {
		meta.RemoveStatusCondition(&mcp.Status.Conditions, mcpv1.ConditionUpstreamIsolated)
		return r.deletePolicies(ctx, mcp, upstreamPolicyName(mcp), egressPolicyName(mcp))
	}

	name := mcp.Spec.Upstream.Service.Name
	svc := &corev1.Service{}
	err := r.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: name}, svc)
	switch {
	case apierrors.IsNotFound(err):
		// Existing policies stay: isolation fails closed while the Service is away.
		r.setCondition(mcp, mcpv1.ConditionUpstreamIsolated, metav1.ConditionFalse, mcpv1.ReasonUpstreamNotFound,
			fmt.Sprintf("Service %s does not exist, so its pods cannot be isolated", name))
		return nil
	case err != nil:
		return fmt.Errorf("get upstream service %s: %w", name, err)
	case len(svc.Spec.Selector) == 0:
		r.setCondition(mcp, mcpv1.ConditionUpstreamIsolated, metav1.ConditionFalse, mcpv1.ReasonNoSelector,
			fmt.Sprintf("Service %s has no pod selector (its endpoints are managed elsewhere), so no NetworkPolicy can isolate its pods; "+
				"isolate them yourself or set spec.upstream.isolation.enabled: false", name))
		return r.deletePolicies(ctx, mcp, upstreamPolicyName(mcp), egressPolicyName(mcp))
	}

	port, ok := upstreamTargetPort(svc, mcp.Spec.Upstream.Service.Port)
	if !ok {
		// reconcileConfig has already blocked Ready with UpstreamPortNotFound.
		r.setCondition(mcp, mcpv1.ConditionUpstreamIsolated, metav1.ConditionFalse, mcpv1.ReasonUpstreamPortNotFound,
			fmt.Sprintf("Service %s has no port %s", name, mcp.Spec.Upstream.Service.Port.String()))
		return nil
	}
	if err := r.apply(ctx, buildUpstreamPolicy(mcp, svc.Spec.Selector, port)); err != nil {
		return fmt.Errorf("apply upstream networkpolicy: %w", err)
	}
	if egressWanted {
		if err := r.apply(ctx, buildGatewayEgressPolicy(mcp, svc.Spec.Selector, port, r.Options)); err != nil {
			return fmt.Errorf("apply gateway egress networkpolicy: %w", err)
		}
	} else if err := r.deletePolicies(ctx, mcp, egressPolicyName(mcp)); err != nil {
		return err
	}
	r.setCondition(mcp, mcpv1.ConditionUpstreamIsolated, metav1.ConditionTrue, mcpv1.ReasonPolicyApplied,
		fmt.Sprintf("NetworkPolicy %s admits only this gateway's pods to Service %s's pods, on port %s", upstreamPolicyName(mcp), name, port.String()))
	return nil
}

func (r *McpServerReconciler) deletePolicies(ctx context.Context, mcp *mcpv1.McpServer, names ...string) error {
	for _, name := range names {
		if err := r.deleteOwnedNamed(ctx, mcp, &networkingv1.NetworkPolicy{}, name); err != nil {
			return fmt.Errorf("delete networkpolicy %s: %w", name, err)
		}
	}
	return nil
}

// upstreamTargetPort finds the pod port behind the Service port the
// McpServer names (by number or name): the port a NetworkPolicy on the pods
// must open. A Service port without targetPort targets its own number.
func upstreamTargetPort(svc *corev1.Service, want intstr.IntOrString) (intstr.IntOrString, bool) {
	for _, p := range svc.Spec.Ports {
		if (want.Type == intstr.Int && p.Port == want.IntVal) || (want.Type == intstr.String && p.Name == want.StrVal) {
			if p.TargetPort.Type == intstr.String || p.TargetPort.IntVal != 0 {
				return p.TargetPort, true
			}
			return intstr.FromInt32(p.Port), true
		}
	}
	return intstr.IntOrString{}, false
}

// buildUpstreamPolicy selects the upstream's pods and admits, on the upstream
// port, only this McpServer's gateway pods. NetworkPolicies add up, so other
// policies (another McpServer in front of the same upstream, say) can still
// admit more.
func buildUpstreamPolicy(mcp *mcpv1.McpServer, upstreamSelector map[string]string, port intstr.IntOrString) *networkingv1ac.NetworkPolicyApplyConfiguration {
	return networkingv1ac.NetworkPolicy(upstreamPolicyName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(networkingv1ac.NetworkPolicySpec().
			WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(maps.Clone(upstreamSelector))).
			WithPolicyTypes(networkingv1.PolicyTypeIngress).
			WithIngress(networkingv1ac.NetworkPolicyIngressRule().
				WithFrom(networkingv1ac.NetworkPolicyPeer().
					WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(mcp)))).
				WithPorts(tcpPort(port))))
}

// buildGatewayEgressPolicy lets the gateway pods reach only the upstream's
// pods on the upstream port, cluster DNS (port 53 or the DNS pods' ports
// named dns and dns-tcp), and port 443 anywhere. Clerk is
// outside the cluster at addresses no policy can name, so HTTPS is as close
// as a NetworkPolicy gets. With the broker on another port, that port in
// the operator's namespace is open too.
func buildGatewayEgressPolicy(mcp *mcpv1.McpServer, upstreamSelector map[string]string, port intstr.IntOrString, opts Options) *networkingv1ac.NetworkPolicyApplyConfiguration {
	dns := func(protocol corev1.Protocol, port intstr.IntOrString) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
		return networkingv1ac.NetworkPolicyPort().WithProtocol(protocol).WithPort(port)
	}
	spec := networkingv1ac.NetworkPolicySpec().
		WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(mcp))).
		WithPolicyTypes(networkingv1.PolicyTypeEgress).
		WithEgress(
			networkingv1ac.NetworkPolicyEgressRule().
				WithTo(networkingv1ac.NetworkPolicyPeer().
					WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(maps.Clone(upstreamSelector)))).
				WithPorts(tcpPort(port)),
			networkingv1ac.NetworkPolicyEgressRule().
				WithTo(networkingv1ac.NetworkPolicyPeer().
					WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": "kube-system"})).
					WithPodSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"k8s-app": "kube-dns"}))).
				// A policy port is the DNS pod's own port, after the Service's
				// translation, and not every cluster's DNS pods listen on 53
				// (OpenShift's on 5353, non-root CoreDNS on 1053); they name
				// their ports dns and dns-tcp, as CoreDNS's manifests do.
				WithPorts(dns(corev1.ProtocolUDP, intstr.FromInt32(53)), dns(corev1.ProtocolTCP, intstr.FromInt32(53)),
					dns(corev1.ProtocolUDP, intstr.FromString("dns")), dns(corev1.ProtocolTCP, intstr.FromString("dns-tcp"))),
			networkingv1ac.NetworkPolicyEgressRule().
				WithPorts(tcpPort(intstr.FromInt32(443))),
		)
	if p, ok := brokerPort(opts); ok && p != 443 && opts.ClusterResourceNamespace != "" {
		spec.WithEgress(networkingv1ac.NetworkPolicyEgressRule().
			WithTo(networkingv1ac.NetworkPolicyPeer().
				WithNamespaceSelector(metav1ac.LabelSelector().WithMatchLabels(map[string]string{"kubernetes.io/metadata.name": opts.ClusterResourceNamespace}))).
			WithPorts(tcpPort(intstr.FromInt32(p))))
	}
	return networkingv1ac.NetworkPolicy(egressPolicyName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(spec)
}

// brokerPort is the port of the broker's URL, when there is a broker.
func brokerPort(opts Options) (int32, bool) {
	if !opts.brokered() {
		return 0, false
	}
	u, err := url.Parse(opts.BrokerURL)
	if err != nil {
		return 0, false
	}
	if u.Port() == "" {
		return 443, true
	}
	p, err := strconv.ParseUint(u.Port(), 10, 16)
	if err != nil {
		return 0, false
	}
	return int32(p), true
}

func tcpPort(port intstr.IntOrString) *networkingv1ac.NetworkPolicyPortApplyConfiguration {
	return networkingv1ac.NetworkPolicyPort().WithProtocol(corev1.ProtocolTCP).WithPort(port)
}
