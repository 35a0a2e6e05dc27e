package localstack

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/utils/ptr"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// This file is the kubelet emulation's volume handling: it materializes a
// pod's ConfigMap, Secret, projected (Secrets, ConfigMaps, ServiceAccount
// tokens) and emptyDir volumes under the pod's directory, and keeps Secret
// and projected volumes in step with their Secrets and tokens fresh.

// preparePod writes the pod's volumes under its directory and works out the
// local command line: the container's arguments with mounted paths mapped,
// the configuration rewritten for loopback (see localConfig), and --resolve
// for an upstream Service with a local backend (see resolveArg).
func (k *kubelet) preparePod(ctx context.Context, d *appsv1.Deployment, c corev1.Container, p *pod) ([]string, []string, config.Config, error) {
	root := filepath.Join(p.dir, "root")
	mounts, err := planMounts(c, d.Spec.Template.Spec.Volumes, root)
	if err != nil {
		return nil, nil, config.Config{}, err
	}
	for _, m := range mounts {
		if err := k.writeMount(ctx, d.Namespace, m, p); err != nil {
			return nil, nil, config.Config{}, err
		}
		if m.volume.EmptyDir == nil {
			p.refreshed = append(p.refreshed, m)
		}
	}
	// The local forwarder moves to a new process at once, so there are no
	// load balancers to wait for when one stops: no shutdown delay.
	args := append(localArgs(c.Args, mounts), "--shutdown-delay=0s")
	cfgPath, ok := flagValue(args, "config")
	if !ok {
		return nil, nil, config.Config{}, fmt.Errorf("container %s has no --config argument", c.Name)
	}
	ports, err := freePorts(2)
	if err != nil {
		return nil, nil, config.Config{}, err
	}
	p.trafficAddr, p.healthAddr = loopback(ports[0]), loopback(ports[1])
	raw, err := os.ReadFile(cfgPath)
	if err != nil {
		return nil, nil, config.Config{}, fmt.Errorf("read the gateway config: %w", err)
	}
	data, cfg, err := localConfig(raw, mounts, p.trafficAddr, p.healthAddr)
	if err != nil {
		return nil, nil, config.Config{}, fmt.Errorf("gateway config of %s: %w", d.Name, err)
	}
	p.configPath = cfgPath
	if err := os.WriteFile(cfgPath, data, 0o644); err != nil {
		return nil, nil, config.Config{}, fmt.Errorf("write the local gateway config: %w", err)
	}
	if ref, ok := upstreamService(cfg.Upstream.URL); ok {
		svc := &corev1.Service{}
		err := k.reader.Get(ctx, types.NamespacedName{Namespace: ref.namespace, Name: ref.name}, svc)
		switch {
		case apierrors.IsNotFound(err):
			k.log.Info("Upstream Service not found; the gateway will answer 502", "service", ref.namespace+"/"+ref.name)
		case err != nil:
			return nil, nil, config.Config{}, fmt.Errorf("get upstream service: %w", err)
		default:
			if arg := resolveArg(ref, svc); arg != "" {
				args = append(args, arg)
			}
		}
	}
	tmp, _ := hostPathOf(mounts, "/tmp")
	env, err := containerEnv(c, p.name, p.dir, tmp)
	if err != nil {
		return nil, nil, config.Config{}, err
	}
	return args, env, cfg, nil
}

// writeMount fills a mount's directory from its ConfigMap or Secret, read
// from the API server as the kubelet does (never from a cache).
func (k *kubelet) writeMount(ctx context.Context, namespace string, m mount, p *pod) error {
	if err := os.MkdirAll(m.hostPath, 0o755); err != nil {
		return err
	}
	v := m.volume
	if v.EmptyDir != nil {
		return nil // the directory is all there is
	}
	files, err := k.volumeFiles(ctx, namespace, v, p)
	if err != nil {
		return err
	}
	if err := writeVolume(m.hostPath, files); err != nil {
		return fmt.Errorf("volume %s: %w", v.Name, err)
	}
	return nil
}

// volumeFiles reads the files of a ConfigMap or Secret volume, or of a
// projected volume of Secrets, ConfigMaps and ServiceAccount tokens (the
// sources the gateway's pods project). A token source gets the token p
// holds for it, or a new one when p holds none or it is due (tokenFiles).
func (k *kubelet) volumeFiles(ctx context.Context, namespace string, v corev1.Volume, p *pod) (map[string]projectedFile, error) {
	switch {
	case v.ConfigMap != nil:
		return k.configMapSourceFiles(ctx, namespace, v.Name, v.ConfigMap.Name, v.ConfigMap.Items, v.ConfigMap.DefaultMode, ptr.Deref(v.ConfigMap.Optional, false))
	case v.Secret != nil:
		return k.secretSourceFiles(ctx, namespace, v.Name, v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, ptr.Deref(v.Secret.Optional, false))
	}
	files := map[string]projectedFile{}
	for _, src := range v.Projected.Sources {
		var part map[string]projectedFile
		var err error
		switch {
		case src.Secret != nil:
			part, err = k.secretSourceFiles(ctx, namespace, v.Name, src.Secret.Name, src.Secret.Items, v.Projected.DefaultMode, ptr.Deref(src.Secret.Optional, false))
		case src.ConfigMap != nil:
			part, err = k.configMapSourceFiles(ctx, namespace, v.Name, src.ConfigMap.Name, src.ConfigMap.Items, v.Projected.DefaultMode, ptr.Deref(src.ConfigMap.Optional, false))
		case src.ServiceAccountToken != nil:
			part, err = k.tokenFiles(ctx, namespace, v.Name, *src.ServiceAccountToken, v.Projected.DefaultMode, p)
		default:
			err = fmt.Errorf("volume %s: the kubelet emulation projects only Secrets, ConfigMaps and ServiceAccount tokens", v.Name)
		}
		if err != nil {
			return nil, err
		}
		for name, f := range part {
			if _, dup := files[name]; dup {
				return nil, fmt.Errorf("volume %s: two sources project %s", v.Name, name)
			}
			files[name] = f
		}
	}
	return files, nil
}

// configMapSourceFiles reads the files one ConfigMap contributes to a volume.
func (k *kubelet) configMapSourceFiles(ctx context.Context, namespace, volume, name string, items []corev1.KeyToPath, mode *int32, optional bool) (map[string]projectedFile, error) {
	cm := &corev1.ConfigMap{}
	if err := k.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, cm); err != nil {
		if optional && apierrors.IsNotFound(err) {
			return nil, nil
		}
		return nil, fmt.Errorf("volume %s: get configmap %s: %w", volume, name, err)
	}
	files, err := projectVolume(configMapData(cm), items, mode, optional)
	if err != nil {
		return nil, fmt.Errorf("volume %s: configmap %s: %w", volume, name, err)
	}
	return files, nil
}

// configMapData is a ConfigMap's text and binary data as one map.
func configMapData(cm *corev1.ConfigMap) map[string][]byte {
	data := make(map[string][]byte, len(cm.Data)+len(cm.BinaryData))
	for key, val := range cm.Data {
		data[key] = []byte(val)
	}
	for key, val := range cm.BinaryData {
		data[key] = val
	}
	return data
}

// secretSourceFiles reads the files one Secret contributes to a volume.
func (k *kubelet) secretSourceFiles(ctx context.Context, namespace, volume, secret string, items []corev1.KeyToPath, mode *int32, optional bool) (map[string]projectedFile, error) {
	sec := &corev1.Secret{}
	if err := k.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: secret}, sec); err != nil {
		return nil, fmt.Errorf("volume %s: get secret %s: %w", volume, secret, err)
	}
	files, err := projectVolume(sec.Data, items, mode, optional)
	if err != nil {
		return nil, fmt.Errorf("volume %s: secret %s: %w", volume, secret, err)
	}
	return files, nil
}

// volumeSecrets names the Secrets a volume mounts, directly or projected.
func volumeSecrets(v corev1.Volume) []string { return volumeObjects(v, false) }

// volumeConfigMaps names the ConfigMaps a volume mounts, directly or projected.
func volumeConfigMaps(v corev1.Volume) []string { return volumeObjects(v, true) }

// volumeObjects names the Secrets (or, with configMaps, the ConfigMaps) a
// volume mounts, directly or through the sources of a projected volume.
func volumeObjects(v corev1.Volume, configMaps bool) []string {
	var names []string
	add := func(secret *corev1.SecretProjection, configMap *corev1.ConfigMapProjection) {
		switch {
		case !configMaps && secret != nil:
			names = append(names, secret.Name)
		case configMaps && configMap != nil:
			names = append(names, configMap.Name)
		}
	}
	switch {
	case v.Secret != nil:
		add(&corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: v.Secret.SecretName}}, nil)
	case v.ConfigMap != nil:
		add(nil, &corev1.ConfigMapProjection{LocalObjectReference: v.ConfigMap.LocalObjectReference})
	case v.Projected != nil:
		for _, src := range v.Projected.Sources {
			add(src.Secret, src.ConfigMap)
		}
	}
	return names
}

// refreshVolumes rewrites a running process's ConfigMap, Secret and
// projected volumes as the kubelet updates them in place: from their
// Secrets (a rotated Clerk secret key reaches the gateway without a
// restart) and ConfigMaps (a rotated broker CA bundle), and with a new
// ServiceAccount token when the one projected is due for refresh. Files
// that did not change are left alone, and so is the gateway configuration,
// which the process runs rewritten for loopback (a change to it changes the
// pod template's config hash, and so starts a new process).
func (k *kubelet) refreshVolumes(ctx context.Context, namespace string, p *pod) error {
	for _, m := range p.refreshed {
		files, err := k.volumeFiles(ctx, namespace, m.volume, p)
		if err != nil {
			return err
		}
		changed := map[string]projectedFile{}
		for name, f := range files {
			path := filepath.Join(m.hostPath, filepath.FromSlash(name))
			if path == p.configPath {
				continue
			}
			old, err := os.ReadFile(path)
			if err != nil || string(old) != string(f.data) {
				changed[name] = f
			}
		}
		if len(changed) == 0 {
			continue
		}
		if err := writeVolume(m.hostPath, changed); err != nil {
			return fmt.Errorf("update volume %s: %w", m.volume.Name, err)
		}
		k.log.Info("Updated volume", "pod", p.name, "volume", m.volume.Name)
	}
	return nil
}
