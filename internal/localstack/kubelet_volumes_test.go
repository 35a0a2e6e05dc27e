package localstack

import (
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestVolumeObjects checks which Secrets and ConfigMaps a volume mounts,
// the names the kubelet stand-in watches to keep the files in step.
func TestVolumeObjects(t *testing.T) {
	t.Parallel()
	ref := func(name string) corev1.LocalObjectReference { return corev1.LocalObjectReference{Name: name} }
	for _, tc := range []struct {
		name                string
		volume              corev1.VolumeSource
		secrets, configMaps []string
	}{
		{"secret", corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "clerk"}}, []string{"clerk"}, nil},
		{"configmap", corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: ref("tools-gateway")}}, nil, []string{"tools-gateway"}},
		{"projected", corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{
			{Secret: &corev1.SecretProjection{LocalObjectReference: ref("key-a")}},
			{ServiceAccountToken: &corev1.ServiceAccountTokenProjection{Audience: "mcpgate-broker", Path: "token"}},
			{ConfigMap: &corev1.ConfigMapProjection{LocalObjectReference: ref("ca")}},
			{Secret: &corev1.SecretProjection{LocalObjectReference: ref("key-b")}},
		}}}, []string{"key-a", "key-b"}, []string{"ca"}},
		{"empty dir", corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}, nil, nil},
	} {
		v := corev1.Volume{Name: "v", VolumeSource: tc.volume}
		if got := volumeSecrets(v); !slices.Equal(got, tc.secrets) {
			t.Errorf("%s: volumeSecrets = %q, want %q", tc.name, got, tc.secrets)
		}
		if got := volumeConfigMaps(v); !slices.Equal(got, tc.configMaps) {
			t.Errorf("%s: volumeConfigMaps = %q, want %q", tc.name, got, tc.configMaps)
		}
	}
}
