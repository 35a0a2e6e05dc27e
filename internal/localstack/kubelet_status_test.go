package localstack

import (
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
)

func TestDeploymentStatus(t *testing.T) {
	t.Parallel()
	t0 := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	t1 := metav1.NewTime(t0.Add(time.Minute))
	tests := map[string]struct {
		replicas      int32
		ready         bool
		wantReady     int32
		wantAvailable corev1.ConditionStatus
	}{
		"ready":            {replicas: 1, ready: true, wantReady: 1, wantAvailable: corev1.ConditionTrue},
		"starting":         {replicas: 1, ready: false, wantReady: 0, wantAvailable: corev1.ConditionFalse},
		"one process, two": {replicas: 2, ready: true, wantReady: 2, wantAvailable: corev1.ConditionTrue},
		"scaled to zero":   {replicas: 0, ready: false, wantReady: 0, wantAvailable: corev1.ConditionTrue},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			d := &appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(tc.replicas)}}
			d.Generation = 3
			st := deploymentStatus(d, tc.ready, t0)
			if st.ObservedGeneration != 3 || st.Replicas != tc.replicas || st.ReadyReplicas != tc.wantReady ||
				st.AvailableReplicas != tc.wantReady || st.UnavailableReplicas != tc.replicas-tc.wantReady {
				t.Errorf("status = %+v", st)
			}
			if c := findCondition(st, appsv1.DeploymentAvailable); c == nil || c.Status != tc.wantAvailable {
				t.Errorf("Available = %+v, want %s", c, tc.wantAvailable)
			}

			// Writing the same state again changes nothing, times included.
			d.Status = st
			if again := deploymentStatus(d, tc.ready, t1); !equality.Semantic.DeepEqual(again, st) {
				t.Errorf("second status differs:\n%+v\n%+v", again, st)
			}
			// A change of state moves the transition time of what changed.
			flipped := deploymentStatus(d, !tc.ready, t1)
			c := findCondition(flipped, appsv1.DeploymentAvailable)
			if tc.replicas > 0 && (c.Status == tc.wantAvailable || !c.LastTransitionTime.Equal(&t1)) {
				t.Errorf("after flipping readiness, Available = %+v", c)
			}
		})
	}
}

func findCondition(st appsv1.DeploymentStatus, typ appsv1.DeploymentConditionType) *appsv1.DeploymentCondition {
	for i := range st.Conditions {
		if st.Conditions[i].Type == typ {
			return &st.Conditions[i]
		}
	}
	return nil
}
