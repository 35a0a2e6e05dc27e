package localstack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"time"
)

// managerSpec is how the stack runs `mcpgate manager`.
type managerSpec struct {
	bin         string
	kubeconfig  string
	clerkAPIURL string
	resync      time.Duration
	logDir      string
}

// startManager runs `mcpgate manager` as the operator runs in a cluster,
// except that it reaches the API server through the admin kubeconfig and
// binds its metrics and probes to free loopback ports. It returns once the
// manager answers /readyz.
func startManager(ctx context.Context, s managerSpec) (*process, error) {
	ports, err := freePorts(2)
	if err != nil {
		return nil, err
	}
	probeAddr := loopback(ports[1])
	spec := processSpec{
		name: "mcpgate manager",
		path: s.bin,
		args: []string{
			"manager",
			"--metrics-bind-address", loopback(ports[0]),
			"--health-probe-bind-address", probeAddr,
			"--gateway-image", GatewayImage,
			"--clerk-api-url", s.clerkAPIURL,
			"--clerk-resync-interval", s.resync.String(),
			"--zap-encoder", "console",
		},
		env:     []string{"KUBECONFIG=" + s.kubeconfig},
		logPath: filepath.Join(s.logDir, "manager.log"),
	}
	proc, err := startProcess(spec)
	if err != nil {
		return nil, err
	}
	if err := waitHTTPReady(ctx, "http://"+probeAddr+"/readyz", proc, 60*time.Second); err != nil {
		_ = proc.stop(10 * time.Second)
		return nil, fmt.Errorf("mcpgate manager did not become ready: %w (log: %s)", err, spec.logPath)
	}
	return proc, nil
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
