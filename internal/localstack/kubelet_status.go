package localstack

import (
	"context"
	"fmt"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

// Reasons of the Deployment conditions, as the Deployment controller sets them.
const (
	reasonMinimumReplicasAvailable   = "MinimumReplicasAvailable"
	reasonMinimumReplicasUnavailable = "MinimumReplicasUnavailable"
	reasonNewReplicaSetAvailable     = "NewReplicaSetAvailable"
	reasonReplicaSetUpdated          = "ReplicaSetUpdated"
)

// deploymentStatus is the status the Deployment controller would write for
// d, were its pods the local gateway process: with ready set, every
// replica is ready and available (the one process stands in for them all,
// since they would be identical), otherwise none is. Conditions keep their
// transition times while their status stays the same, so that writing the
// same state twice changes nothing.
func deploymentStatus(d *appsv1.Deployment, ready bool, now metav1.Time) appsv1.DeploymentStatus {
	replicas := ptr.Deref(d.Spec.Replicas, 1)
	var up int32
	if ready {
		up = replicas
	}
	st := appsv1.DeploymentStatus{
		ObservedGeneration:  d.Generation,
		Replicas:            replicas,
		UpdatedReplicas:     replicas,
		ReadyReplicas:       up,
		AvailableReplicas:   up,
		UnavailableReplicas: replicas - up,
	}
	available := condition(d, appsv1.DeploymentAvailable, corev1.ConditionFalse, reasonMinimumReplicasUnavailable,
		"Deployment does not have minimum availability.", now)
	progressing := condition(d, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonReplicaSetUpdated,
		"The local gateway process is starting.", now)
	if ready || replicas == 0 {
		available = condition(d, appsv1.DeploymentAvailable, corev1.ConditionTrue, reasonMinimumReplicasAvailable,
			"Deployment has minimum availability.", now)
		progressing = condition(d, appsv1.DeploymentProgressing, corev1.ConditionTrue, reasonNewReplicaSetAvailable,
			"The local gateway process is ready.", now)
	}
	st.Conditions = []appsv1.DeploymentCondition{available, progressing}
	return st
}

// condition builds a condition of d's status, keeping the times of the one
// d has when nothing about it changed.
func condition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, message string, now metav1.Time) appsv1.DeploymentCondition {
	c := appsv1.DeploymentCondition{Type: typ, Status: status, Reason: reason, Message: message, LastUpdateTime: now, LastTransitionTime: now}
	for _, old := range d.Status.Conditions {
		if old.Type != typ {
			continue
		}
		if old.Status == status {
			c.LastTransitionTime = old.LastTransitionTime
			if old.Reason == reason && old.Message == message {
				c.LastUpdateTime = old.LastUpdateTime
			}
		}
	}
	return c
}

// reportStatus writes the Deployment status a cluster would show for it.
func (k *kubelet) reportStatus(ctx context.Context, d *appsv1.Deployment, ready bool) error {
	st := deploymentStatus(d, ready, metav1.NewTime(time.Now().Truncate(time.Second)))
	if equality.Semantic.DeepEqual(d.Status, st) {
		return nil
	}
	// NOTE: an update, not a patch: it is refused (and retried) if d is
	// older than what the API server holds, where a patch computed from a
	// stale d could leave fields it thought unchanged wrong.
	d.Status = st
	if err := k.client.Status().Update(ctx, d); err != nil {
		return fmt.Errorf("update deployment status: %w", err)
	}
	return nil
}
