package localstack

import (
	"context"
	"fmt"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// Gateway is a gateway process the kubelet emulation runs for an McpServer.
type Gateway struct {
	// Namespace and McpServer name the McpServer; Deployment its Deployment.
	Namespace, McpServer, Deployment string
	// URL is the MCP endpoint on a stable loopback port, such as
	// http://127.0.0.1:40123/mcp. It stays the same across restarts.
	URL string
	// MetadataURL is the RFC 9728 protected resource metadata of URL.
	MetadataURL string
	// HealthURL is the current process's health port (/healthz, /readyz,
	// /metrics); it changes with each process.
	HealthURL string
	// ConfigHash is the mcpgate.dev/config-hash of the pod template the
	// process was started from.
	ConfigHash string
	// Ready reports whether the process answers /readyz and gets traffic.
	Ready bool
	// PID is the process id; Starts counts the processes started for the
	// Deployment so far, restarts included.
	PID, Starts int
	// LogPath is where the processes of this Deployment log.
	LogPath string
	// ConfigPath is the configuration the current process runs with: the
	// ConfigMap's, rewritten for loopback. The files of its volumes, the
	// Clerk secret key among them, are beside it.
	ConfigPath string
	// Dir is the current process's directory, which holds every file the
	// kubelet emulation wrote for it: its volumes, under root/ at their
	// mount paths.
	Dir string
}

// notifyLocked wakes everyone waiting for a gateway to change. k.mu must be held.
func (k *kubelet) notifyLocked() {
	close(k.changed)
	k.changed = make(chan struct{})
}

// gateway describes the slot of McpServer namespace/name; k.mu must be held.
func (k *kubelet) gatewayLocked(namespace, name string) (Gateway, bool) {
	for key, s := range k.slots {
		if key.Namespace != namespace || s.mcpServer != name {
			continue
		}
		g := Gateway{
			Namespace: namespace, McpServer: name, Deployment: key.Name,
			URL:         "http://" + s.fwd.addr() + s.mcpPath,
			MetadataURL: "http://" + s.fwd.addr() + config.ResourceMetadataPath(s.mcpPath),
			Starts:      s.starts,
			LogPath:     s.logPath,
		}
		if p := s.cur; p != nil {
			g.HealthURL = "http://" + p.healthAddr
			g.ConfigHash = p.configHash
			g.Ready = p.ready
			g.PID = p.proc.pid()
			g.ConfigPath = p.configPath
			g.Dir = p.dir
		}
		return g, true
	}
	return Gateway{}, false
}

// gateway describes the slot of McpServer namespace/name.
func (k *kubelet) gateway(namespace, name string) (Gateway, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.gatewayLocked(namespace, name)
}

// gateways lists every gateway.
func (k *kubelet) gateways() []Gateway {
	k.mu.Lock()
	defer k.mu.Unlock()
	out := make([]Gateway, 0, len(k.slots))
	for _, s := range k.slots {
		if g, ok := k.gatewayLocked(s.deployment.Namespace, s.mcpServer); ok {
			out = append(out, g)
		}
	}
	return out
}

// waitGateway waits until McpServer namespace/name has a ready process
// started from configHash ("" accepts any).
func (k *kubelet) waitGateway(ctx context.Context, namespace, name, configHash string) (Gateway, error) {
	for {
		k.mu.Lock()
		g, ok := k.gatewayLocked(namespace, name)
		changed := k.changed
		k.mu.Unlock()
		if ok && g.Ready && (configHash == "" || g.ConfigHash == configHash) {
			return g, nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			state := "no gateway Deployment seen"
			if ok {
				state = fmt.Sprintf("config hash %q, ready %t, %d starts (log: %s)", g.ConfigHash, g.Ready, g.Starts, g.LogPath)
			}
			return Gateway{}, fmt.Errorf("wait for gateway %s/%s with config hash %q: %w; last seen: %s",
				namespace, name, configHash, context.Cause(ctx), state)
		}
	}
}
