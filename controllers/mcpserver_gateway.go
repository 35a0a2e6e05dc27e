package controllers

import (
	"context"
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// reconcileDeployment applies the gateway Deployment and, with more than one
// replica, its PodDisruptionBudget. It owns the GatewayAvailable condition
// and status.readyReplicas, read from the Deployment the API server returns.
func (r *McpServerReconciler) reconcileDeployment(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	previousHash, err := r.deployedConfigHash(ctx, mcp)
	if err != nil {
		return err
	}
	deploy := buildDeployment(mcp, r.Options, st.configHash, st.clerk.secretRef)
	if err := r.apply(ctx, deploy); err != nil {
		return fmt.Errorf("apply deployment: %w", err)
	}
	if previousHash != "" && previousHash != st.configHash {
		r.Recorder.Eventf(mcp, nil, corev1.EventTypeNormal, eventReasonConfigChanged, "Reconcile",
			"Rolling out gateway configuration %s (was %s)", st.configHash, previousHash)
	}
	if mcp.Spec.Gateway.Autoscaling != nil {
		if err := r.apply(ctx, buildHorizontalPodAutoscaler(mcp)); err != nil {
			return fmt.Errorf("apply horizontalpodautoscaler: %w", err)
		}
	} else if err := r.deleteIfOwned(ctx, mcp, &autoscalingv2.HorizontalPodAutoscaler{}); err != nil {
		return fmt.Errorf("delete horizontalpodautoscaler: %w", err)
	}
	if minGatewayReplicas(mcp) > 1 {
		if err := r.apply(ctx, buildPodDisruptionBudget(mcp)); err != nil {
			return fmt.Errorf("apply poddisruptionbudget: %w", err)
		}
	} else if err := r.deleteIfOwned(ctx, mcp, &policyv1.PodDisruptionBudget{}); err != nil {
		return fmt.Errorf("delete poddisruptionbudget: %w", err)
	}

	status, reason, message := gatewayAvailability(deploy)
	mcp.Status.ReadyReplicas = 0
	if deploy.Status != nil && deploy.Status.ReadyReplicas != nil {
		mcp.Status.ReadyReplicas = *deploy.Status.ReadyReplicas
	}
	r.setCondition(mcp, mcpv1.ConditionGatewayAvailable, status, reason, message)
	return nil
}

// eventReasonConfigChanged is the reason of the Event for a gateway rollout.
const eventReasonConfigChanged = "ConfigChanged"

// deployedConfigHash is the configuration hash of the running Deployment,
// from the cache; "" when there is none yet.
func (r *McpServerReconciler) deployedConfigHash(ctx context.Context, mcp *mcpv1.McpServer) (string, error) {
	current := &appsv1.Deployment{}
	err := r.Get(ctx, types.NamespacedName{Namespace: mcp.Namespace, Name: gatewayName(mcp)}, current)
	if err != nil {
		return "", client.IgnoreNotFound(err)
	}
	return current.Spec.Template.Annotations[config.ConfigHashAnnotation], nil
}

// gatewayAvailability reads GatewayAvailable off an applied Deployment.
func gatewayAvailability(deploy *appsv1ac.DeploymentApplyConfiguration) (metav1.ConditionStatus, string, string) {
	if deploy.Spec.Replicas != nil && *deploy.Spec.Replicas == 0 {
		return metav1.ConditionFalse, mcpv1.ReasonScaledToZero, "spec.gateway.replicas is 0"
	}
	var ready int32
	if deploy.Status != nil {
		if deploy.Status.ReadyReplicas != nil {
			ready = *deploy.Status.ReadyReplicas
		}
		for _, c := range deploy.Status.Conditions {
			if c.Type == nil || *c.Type != appsv1.DeploymentAvailable || c.Status == nil {
				continue
			}
			msg := fmt.Sprintf("%d of %d replicas ready", ready, *deploy.Spec.Replicas)
			if *c.Status == corev1.ConditionTrue {
				return metav1.ConditionTrue, mcpv1.ReasonDeploymentAvailable, msg
			}
			if c.Message != nil {
				msg += ": " + *c.Message
			}
			return metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable, msg
		}
	}
	return metav1.ConditionFalse, mcpv1.ReasonDeploymentUnavailable, "Waiting for the gateway Deployment to become available"
}

// reconcileService applies the gateway's ClusterIP Service.
func (r *McpServerReconciler) reconcileService(ctx context.Context, mcp *mcpv1.McpServer, _ *reconcileState) error {
	if err := r.apply(ctx, buildService(mcp)); err != nil {
		return fmt.Errorf("apply service: %w", err)
	}
	return nil
}

// reconcileIngress applies the Ingress when spec.ingress is set and removes it
// otherwise. It owns the IngressReady condition, present only with an
// Ingress. When another McpServer already claims the same host and path, this
// one gets no Ingress and IngressReady=False with reason HostPathConflict.
func (r *McpServerReconciler) reconcileIngress(ctx context.Context, mcp *mcpv1.McpServer, st *reconcileState) error {
	if mcp.Spec.Ingress == nil {
		meta.RemoveStatusCondition(&mcp.Status.Conditions, mcpv1.ConditionIngressReady)
		if err := r.deleteIfOwned(ctx, mcp, &networkingv1.Ingress{}); err != nil {
			return fmt.Errorf("delete ingress: %w", err)
		}
		return nil
	}

	holder, err := r.hostPathHolder(ctx, mcp)
	if err != nil {
		return err
	}
	if holder != nil {
		if err := r.deleteIfOwned(ctx, mcp, &networkingv1.Ingress{}); err != nil {
			return fmt.Errorf("delete ingress: %w", err)
		}
		msg := fmt.Sprintf("Host %s path %s is already served by McpServer %s/%s", mcp.Spec.Ingress.Host, mcpPath(mcp), holder.Namespace, holder.Name)
		r.setCondition(mcp, mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonHostPathConflict, msg)
		st.block(mcpv1.ReasonHostPathConflict, msg)
		return nil
	}

	ing := buildIngress(mcp)
	if err := r.apply(ctx, ing); err != nil {
		return fmt.Errorf("apply ingress: %w", err)
	}
	if addrs := ingressAddresses(ing); len(addrs) > 0 {
		r.setCondition(mcp, mcpv1.ConditionIngressReady, metav1.ConditionTrue, mcpv1.ReasonAddressAssigned,
			"Ingress has address "+strings.Join(addrs, ", "))
	} else {
		r.setCondition(mcp, mcpv1.ConditionIngressReady, metav1.ConditionFalse, mcpv1.ReasonAddressPending,
			"Waiting for the ingress controller to assign an address")
	}
	return nil
}

func ingressAddresses(ing *networkingv1ac.IngressApplyConfiguration) []string {
	if ing.Status == nil || ing.Status.LoadBalancer == nil {
		return nil
	}
	var addrs []string
	for _, lb := range ing.Status.LoadBalancer.Ingress {
		switch {
		case lb.IP != nil && *lb.IP != "":
			addrs = append(addrs, *lb.IP)
		case lb.Hostname != nil && *lb.Hostname != "":
			addrs = append(addrs, *lb.Hostname)
		}
	}
	return addrs
}

// hostPathHolder returns the McpServer that owns mcp's host and path when that
// is another object, or nil when mcp may have them. The oldest claim wins
// (then namespace and name), so every reconciler reaches the same verdict
// and nobody fights over one Ingress rule.
func (r *McpServerReconciler) hostPathHolder(ctx context.Context, mcp *mcpv1.McpServer) (*mcpv1.McpServer, error) {
	var claims mcpv1.McpServerList
	if err := r.List(ctx, &claims, client.MatchingFields{hostPathIndex: hostPathKey(mcp)}); err != nil {
		return nil, fmt.Errorf("list mcpservers claiming %s: %w", hostPathKey(mcp), err)
	}
	contenders := slices.DeleteFunc(claims.Items, func(o mcpv1.McpServer) bool {
		return !o.DeletionTimestamp.IsZero() && o.UID != mcp.UID
	})
	if len(contenders) == 0 {
		return nil, nil // the cache has not seen mcp yet; it holds its own claim
	}
	first := slices.MinFunc(contenders, func(a, b mcpv1.McpServer) int {
		if c := a.CreationTimestamp.Compare(b.CreationTimestamp.Time); c != 0 {
			return c
		}
		return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name)
	})
	if first.UID == mcp.UID {
		return nil, nil
	}
	return &first, nil
}

// hostPathKey is the Ingress claim of mcp, "" without an Ingress.
func hostPathKey(mcp *mcpv1.McpServer) string {
	if mcp.Spec.Ingress == nil {
		return ""
	}
	return mcp.Spec.Ingress.Host + mcpPath(mcp)
}
