package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"time"
)

// ManagerOptions say how StartManager runs `mcpgate manager`.
type ManagerOptions struct {
	// Binary is the mcpgate binary.
	Binary string
	// Kubeconfig is the kubeconfig the manager reaches the API server with.
	Kubeconfig string
	// ClerkAPIURL is the Backend API base the manager calls.
	ClerkAPIURL string
	// GatewayImage is the image gateways are given; empty means GatewayImage.
	GatewayImage string
	// ClerkResync is --clerk-resync-interval; zero keeps the manager's default.
	ClerkResync time.Duration
	// LogPath receives the manager's output.
	LogPath string
	// ClusterResourceNamespace is --cluster-resource-namespace: where the
	// Secrets of ClusterClerkInstances and the broker's TLS Secret are.
	// Empty leaves the flag out.
	ClusterResourceNamespace string
	// BrokerURL and BrokerTLSSecret are --broker-url and
	// --broker-tls-secret; an empty BrokerURL runs the manager without a
	// broker.
	BrokerURL, BrokerTLSSecret string
	// Args are further flags.
	Args []string
}

// Manager is `mcpgate manager` running as a child process of its own
// process group, as the local stack and the operator benchmark run it.
type Manager struct {
	proc *process
	// LogPath is where its output goes.
	LogPath string
	// MetricsURL is its Prometheus endpoint, such as
	// http://127.0.0.1:40123/metrics.
	MetricsURL string
}

// PID is the manager's process id, for reading its usage from /proc.
func (m *Manager) PID() int { return m.proc.pid() }

// Exited is closed once the manager has exited.
func (m *Manager) Exited() <-chan struct{} { return m.proc.exited() }

// ExitErr is how the manager exited; valid once Exited is closed.
func (m *Manager) ExitErr() error { return m.proc.exitErr() }

// Stop sends SIGTERM, as the kubelet would, and kills the manager if it has
// not exited within grace; see process.stop.
func (m *Manager) Stop(grace time.Duration) error { return m.proc.stop(grace) }

// StartManager runs `mcpgate manager` as the operator runs in a cluster,
// except that it reaches the API server through a kubeconfig and binds its
// metrics and probes to free loopback ports. It returns once the manager
// answers /readyz.
func StartManager(ctx context.Context, opts ManagerOptions) (*Manager, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	image := opts.GatewayImage
	if image == "" {
		image = GatewayImage
	}
	probeAddr := loopback(ports[1])
	args := []string{
		"manager",
		"--metrics-bind-address", loopback(ports[0]),
		"--health-probe-bind-address", probeAddr,
		"--gateway-image", image,
		"--clerk-api-url", opts.ClerkAPIURL,
		"--zap-encoder", "console",
	}
	if opts.ClerkResync > 0 {
		args = append(args, "--clerk-resync-interval", opts.ClerkResync.String())
	}
	args = withFlag(args, "--cluster-resource-namespace", opts.ClusterResourceNamespace)
	if opts.BrokerURL != "" {
		args = withFlag(args, "--broker-url", opts.BrokerURL)
		args = withFlag(args, "--broker-tls-secret", opts.BrokerTLSSecret)
	}
	spec := processSpec{
		name:    "mcpgate manager",
		path:    opts.Binary,
		args:    append(args, opts.Args...),
		env:     []string{"KUBECONFIG=" + opts.Kubeconfig},
		logPath: opts.LogPath,
	}
	proc, err := startProcess(spec)
	if err != nil {
		return nil, err
	}
	if err := waitHTTPReady(ctx, "http://"+probeAddr+"/readyz", proc, 60*time.Second); err != nil {
		_ = proc.stop(10 * time.Second)
		return nil, fmt.Errorf("mcpgate manager did not become ready: %w (log: %s)", err, spec.logPath)
	}
	return &Manager{proc: proc, LogPath: opts.LogPath, MetricsURL: "http://" + loopback(ports[0]) + "/metrics"}, nil
}

// waitHTTPReady polls url until it answers 200, proc exits, timeout passes
// or ctx ends.
func waitHTTPReady(ctx context.Context, url string, proc *process, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	client := &http.Client{Timeout: 2 * time.Second}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if probe(ctx, client, url) {
			return nil
		}
		select {
		case <-proc.exited():
			if err := proc.exitErr(); err != nil {
				return fmt.Errorf("exited: %w", err)
			}
			return errors.New("exited with status 0")
		case <-ctx.Done():
			return fmt.Errorf("no 200 from %s: %w", url, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// probe reports whether url answers 200, as a kubelet's HTTP probe does.
func probe(ctx context.Context, client *http.Client, url string) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return false
	}
	resp, err := client.Do(req)
	if err != nil {
		return false
	}
	_ = resp.Body.Close()
	return resp.StatusCode == http.StatusOK
}

// freePorts asks the kernel for n free loopback ports. They are free when
// returned, not reserved: another process may take one before it is bound,
// in which case the program given it fails to listen and is started again.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	var open []net.Listener
	defer func() {
		for _, ln := range open {
			_ = ln.Close()
		}
	}()
	// NOTE: all listeners stay open until every port is known, so the n
	// ports are distinct.
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		open = append(open, ln)
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func loopback(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }

// withFlag appends the flag name with value, when value is set.
func withFlag(args []string, name, value string) []string {
	if value == "" {
		return args
	}
	return append(args, name, value)
}
