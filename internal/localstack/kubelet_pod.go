package localstack

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// This file turns a gateway pod template into a local process: which binary,
// which arguments, which files. Everything here is a pure function of the
// template and the objects it refers to, so it is tested without a cluster.

// mcpgateCommand is the only container command the kubelet emulation runs:
// the image's mcpgate binary, for which it substitutes the local build.
const mcpgateCommand = "mcpgate"

// templateHash fingerprints a pod template: a Deployment rolls its pods when
// any of it changes (the config hash annotation and the arguments included),
// and so does the kubelet emulation.
func templateHash(t *corev1.PodTemplateSpec) string {
	b, err := json.Marshal(t)
	if err != nil {
		// A template that came from the API server always encodes.
		panic(fmt.Sprintf("encode pod template: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// gatewayContainer is the one container of a gateway pod template.
func gatewayContainer(d *appsv1.Deployment) (corev1.Container, error) {
	cs := d.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		return corev1.Container{}, fmt.Errorf("pod template has %d containers; the kubelet emulation runs exactly one", len(cs))
	}
	c := cs[0]
	if len(c.Command) == 0 || path.Base(c.Command[0]) != mcpgateCommand {
		return corev1.Container{}, fmt.Errorf("container %s runs %q; the kubelet emulation runs only %q", c.Name, c.Command, mcpgateCommand)
	}
	return c, nil
}

// mount is a container volume mount and the local directory standing in for it.
type mount struct {
	mountPath string // in the container, e.g. /etc/mcpgate/config
	hostPath  string // under the pod's directory
	volume    corev1.Volume
}

// planMounts places each volume mount of c under root, at root+mountPath.
func planMounts(c corev1.Container, volumes []corev1.Volume, root string) ([]mount, error) {
	byName := make(map[string]corev1.Volume, len(volumes))
	for _, v := range volumes {
		byName[v.Name] = v
	}
	mounts := make([]mount, 0, len(c.VolumeMounts))
	for _, vm := range c.VolumeMounts {
		v, ok := byName[vm.Name]
		switch {
		case !ok:
			return nil, fmt.Errorf("volume mount %s names no volume", vm.Name)
		case vm.SubPath != "" || vm.SubPathExpr != "":
			return nil, fmt.Errorf("volume mount %s uses a subPath, which the kubelet emulation does not support", vm.Name)
		case v.ConfigMap == nil && v.Secret == nil && v.EmptyDir == nil && v.Projected == nil:
			return nil, fmt.Errorf("volume %s is neither a ConfigMap, a Secret, a projected volume nor an emptyDir", v.Name)
		}
		clean := path.Clean(vm.MountPath)
		if !path.IsAbs(clean) {
			return nil, fmt.Errorf("volume mount %s: path %q is not absolute", vm.Name, vm.MountPath)
		}
		mounts = append(mounts, mount{mountPath: clean, hostPath: filepath.Join(root, filepath.FromSlash(clean)), volume: v})
	}
	return mounts, nil
}

// hostPathOf maps a path inside the container to the local file behind it,
// through the deepest mount that contains it.
func hostPathOf(mounts []mount, p string) (string, bool) {
	best := -1
	for i, m := range mounts {
		if (p == m.mountPath || strings.HasPrefix(p, m.mountPath+"/")) &&
			(best < 0 || len(m.mountPath) > len(mounts[best].mountPath)) {
			best = i
		}
	}
	if best < 0 {
		return "", false
	}
	m := mounts[best]
	return filepath.Join(m.hostPath, filepath.FromSlash(strings.TrimPrefix(p, m.mountPath))), true
}

// localArgs are the container's arguments with every mounted path, alone or
// as a --flag=value, mapped to its local file.
func localArgs(args []string, mounts []mount) []string {
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a
		if p, ok := hostPathOf(mounts, a); ok {
			out[i] = p
		} else if flag, value, found := strings.Cut(a, "="); found && strings.HasPrefix(flag, "-") {
			if p, ok := hostPathOf(mounts, value); ok {
				out[i] = flag + "=" + p
			}
		}
	}
	return out
}

// flagValue is the value of --name (or -name) in args, as the flag package
// reads it: "--name value" or "--name=value".
func flagValue(args []string, name string) (string, bool) {
	for i, a := range args {
		trimmed := strings.TrimLeft(a, "-")
		if trimmed == a || len(a)-len(trimmed) > 2 {
			continue
		}
		if trimmed == name && i+1 < len(args) {
			return args[i+1], true
		}
		if v, ok := strings.CutPrefix(trimmed, name+"="); ok {
			return v, true
		}
	}
	return "", false
}

// projectVolume is the files a ConfigMap or Secret volume holds: every key,
// or the listed items at their paths, with their modes.
func projectVolume(data map[string][]byte, items []corev1.KeyToPath, defaultMode *int32, optional bool) (map[string]projectedFile, error) {
	mode := os.FileMode(0o644)
	if defaultMode != nil {
		mode = os.FileMode(*defaultMode) & os.ModePerm
	}
	files := map[string]projectedFile{}
	if len(items) == 0 {
		for k, v := range data {
			files[k] = projectedFile{data: v, mode: mode}
		}
		return files, nil
	}
	for _, it := range items {
		v, ok := data[it.Key]
		if !ok {
			if optional {
				continue
			}
			return nil, fmt.Errorf("key %q not found", it.Key)
		}
		m := mode
		if it.Mode != nil {
			m = os.FileMode(*it.Mode) & os.ModePerm
		}
		clean := path.Clean(it.Path)
		if path.IsAbs(clean) || clean == ".." || strings.HasPrefix(clean, "../") {
			return nil, fmt.Errorf("item path %q leaves the volume", it.Path)
		}
		files[clean] = projectedFile{data: v, mode: m}
	}
	return files, nil
}

// projectedFile is one file of a volume.
type projectedFile struct {
	data []byte
	mode os.FileMode
}

// writeVolume writes files into dir, each atomically (a temporary file
// renamed into place), so that a process reading one (the gateway's secret
// key) sees either the old or the new content. The owner can always read
// them: the processes run as the user who runs the stack.
func writeVolume(dir string, files map[string]projectedFile) error {
	names := make([]string, 0, len(files))
	for name := range files {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		f := files[name]
		dst := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		tmp, err := os.CreateTemp(filepath.Dir(dst), ".tmp-")
		if err != nil {
			return err
		}
		_, werr := tmp.Write(f.data)
		cerr := tmp.Close()
		if err := firstErr(werr, cerr, os.Chmod(tmp.Name(), f.mode|0o400)); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
		if err := os.Rename(tmp.Name(), dst); err != nil {
			_ = os.Remove(tmp.Name())
			return err
		}
	}
	return nil
}

func firstErr(errs ...error) error {
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// localConfig rewrites a gateway configuration for a local process:
//   - the listen addresses, :8080 and :8081 in every pod, become the free
//     loopback ports given: without a pod network, every gateway shares the
//     host's ports, and only loopback should be reachable;
//   - the secret key file, the upstream credential files and the broker's
//     CA bundle and token files, paths in the container, become their local
//     copies.
//
// Nothing else changes, so the gateway runs what the controller configured.
func localConfig(data []byte, mounts []mount, traffic, health string) ([]byte, config.Config, error) {
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, config.Config{}, err
	}
	cfg.Listen = config.Listen{Traffic: traffic, Health: health}
	if p, ok := hostPathOf(mounts, cfg.Clerk.SecretKeyFile); ok {
		cfg.Clerk.SecretKeyFile = p
	}
	if b := cfg.Broker; b != nil {
		if p, ok := hostPathOf(mounts, b.CAFile); ok {
			b.CAFile = p
		}
		if p, ok := hostPathOf(mounts, b.TokenFile); ok {
			b.TokenFile = p
		}
	}
	if creds := cfg.Upstream.Credentials; creds != nil {
		for i, h := range creds.Headers {
			if p, ok := hostPathOf(mounts, h.File); ok {
				creds.Headers[i].File = p
			}
		}
	}
	out, err := config.Marshal(cfg)
	if err != nil {
		return nil, config.Config{}, err
	}
	return out, cfg, nil
}

// serviceRef names the in-cluster Service an upstream URL points at, such as
// http://sample-mcp.demo.svc:8080/mcp.
type serviceRef struct {
	namespace, name string
	hostPort        string // as in the URL, with the port made explicit
	port            int32
}

// upstreamService parses an upstream URL that names a Service by its
// cluster DNS name (<name>.<namespace>.svc, optionally .cluster.local); ok
// is false for any other host.
func upstreamService(raw string) (serviceRef, bool) {
	u, err := url.Parse(raw)
	if err != nil || u.Hostname() == "" {
		return serviceRef{}, false
	}
	host := strings.TrimSuffix(u.Hostname(), ".cluster.local")
	rest, ok := strings.CutSuffix(host, ".svc")
	if !ok {
		return serviceRef{}, false
	}
	name, ns, ok := strings.Cut(rest, ".")
	if !ok || name == "" || ns == "" || strings.Contains(ns, ".") {
		return serviceRef{}, false
	}
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	var n int32
	if _, err := fmt.Sscan(port, &n); err != nil || n < 1 || n > 65535 {
		return serviceRef{}, false
	}
	return serviceRef{namespace: ns, name: name, hostPort: net.JoinHostPort(u.Hostname(), port), port: n}, true
}

// resolveArg is the --resolve flag that sends the gateway's upstream
// connections for ref to the Service's local backend, or "" when the
// Service has none. Locally every pod runs on the host network of a node
// whose address is 127.0.0.1, so a Service's numeric targetPort is where its
// backend listens on loopback. A named targetPort, like a Service without
// endpoints in a cluster, leaves the upstream unreachable.
func resolveArg(ref serviceRef, svc *corev1.Service) string {
	for _, p := range svc.Spec.Ports {
		if p.Port != ref.port {
			continue
		}
		target := p.TargetPort
		if target.Type == intstr.Int && target.IntVal == 0 {
			target = intstr.FromInt32(p.Port) // the API server's default
		}
		if target.Type != intstr.Int {
			return ""
		}
		return fmt.Sprintf("--resolve=%s=%s", ref.hostPort, loopback(int(target.IntVal)))
	}
	return ""
}

// containerEnv is the environment of a local pod process: the container's
// literal variables on top of a minimal base, rather than the environment
// of whoever runs the stack (a KUBECONFIG, say), which a pod would not have.
func containerEnv(c corev1.Container, podName, home, tmp string) ([]string, error) {
	env := []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "HOSTNAME=" + podName}
	if tmp != "" {
		env = append(env, "TMPDIR="+tmp)
	}
	if len(c.EnvFrom) > 0 {
		return nil, fmt.Errorf("container %s uses envFrom, which the kubelet emulation does not support", c.Name)
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil {
			return nil, fmt.Errorf("container %s: env %s uses valueFrom, which the kubelet emulation does not support", c.Name, e.Name)
		}
		env = append(env, e.Name+"="+e.Value)
	}
	return env, nil
}
