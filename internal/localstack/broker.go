package localstack

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// Where the operator's side of the stack lives.
const (
	// OperatorNamespace is the operator's namespace: the manager's and the
	// broker's --cluster-resource-namespace, where ClusterClerkInstances
	// keep their Secrets and the operator keeps the broker's TLS Secret.
	OperatorNamespace = "mcpgate-system"
	// BrokerTLSSecret is the broker's TLS Secret, which the operator
	// creates and rotates (--broker-tls-secret).
	BrokerTLSSecret = "mcpgate-broker-tls"
	// brokerTLSWait bounds the wait for the operator to create it.
	brokerTLSWait = 60 * time.Second
	// brokerTLSSync is how often the broker's certificate files are
	// compared with the Secret, standing in for the kubelet's refresh of a
	// mounted Secret.
	brokerTLSSync = time.Second
)

// Broker says where the local `mcpgate broker` answers.
type Broker struct {
	// URL is the broker's base URL as gateways have it (--broker-url): a
	// stable loopback address, which the operator's serving certificate
	// names as an IP address.
	URL string
	// HealthURL serves /healthz, /readyz and /metrics.
	HealthURL string
	// LogPath is where the broker logs.
	LogPath string
}

// brokerProcess is `mcpgate broker` as the local stack runs it: behind a
// forwarder whose address, fixed before the manager starts, is the broker
// URL the manager hands gateways (there is no cluster DNS for a Service
// name), with its certificate and key written from the operator's TLS
// Secret as the kubelet would mount it, and kept in step with it.
type brokerProcess struct {
	fwd     *forwarder
	reader  client.Reader
	tlsDir  string
	logPath string

	proc     *process
	health   string
	stopSync context.CancelFunc
	synced   sync.WaitGroup
}

// brokerSpec is what startBroker needs.
type brokerSpec struct {
	mcpgate     string
	kubeconfig  string
	clerkAPIURL string
	workDir     string
	logDir      string
}

// newBrokerAddress holds the broker's address from before the manager
// starts, so that its URL can be the manager's --broker-url.
func newBrokerAddress(reader client.Reader) (*brokerProcess, error) {
	fwd, err := newForwarder()
	if err != nil {
		return nil, fmt.Errorf("listen for the broker: %w", err)
	}
	return &brokerProcess{fwd: fwd, reader: reader}, nil
}

// url is the broker's base URL.
func (b *brokerProcess) url() string { return "https://" + b.fwd.addr() }

// start waits for the operator's TLS Secret, writes its certificate and
// key, starts the broker and waits until it is ready (which takes a synced
// cache and a reachable Clerk), then sends the forwarder's connections to it.
func (b *brokerProcess) start(ctx context.Context, s brokerSpec) error {
	b.tlsDir = filepath.Join(s.workDir, "broker", "tls")
	b.logPath = filepath.Join(s.logDir, "broker.log")
	if err := os.MkdirAll(b.tlsDir, 0o700); err != nil {
		return fmt.Errorf("create the broker's tls directory: %w", err)
	}
	if err := b.waitTLS(ctx); err != nil {
		return err
	}
	var line struct {
		Listen string `json:"listen"`
		Health string `json:"health"`
	}
	proc, err := startAnnouncing(ctx, processSpec{
		name: "mcpgate broker",
		path: s.mcpgate,
		args: []string{
			"broker",
			"--listen", "127.0.0.1:0",
			"--health-listen", "127.0.0.1:0",
			"--tls-cert-file", filepath.Join(b.tlsDir, corev1.TLSCertKey),
			"--tls-key-file", filepath.Join(b.tlsDir, corev1.TLSPrivateKeyKey),
			"--kubeconfig", s.kubeconfig,
			"--cluster-resource-namespace", OperatorNamespace,
			"--clerk-api-url", s.clerkAPIURL,
			// No Service must first stop sending it traffic: stop at once.
			"--shutdown-delay", "0s",
		},
		logPath: b.logPath,
	}, &line)
	if err != nil {
		return err
	}
	b.proc, b.health = proc, line.Health
	if err := waitHTTPReady(ctx, "http://"+line.Health+"/readyz", proc, 60*time.Second); err != nil {
		return fmt.Errorf("mcpgate broker did not become ready: %w (log: %s)", err, b.logPath)
	}
	b.fwd.setBackend(line.Listen)
	syncCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	b.stopSync = cancel
	b.synced.Add(1)
	go func() {
		defer b.synced.Done()
		b.syncTLS(syncCtx)
	}()
	return nil
}

// waitTLS waits until the operator has created the TLS Secret with a
// certificate and key, and writes them, as a pod mounting the Secret waits
// in ContainerCreating until it exists.
func (b *brokerProcess) waitTLS(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, brokerTLSWait)
	defer cancel()
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		written, err := b.writeTLS(ctx)
		switch {
		case err != nil:
			return err
		case written:
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("the operator created no Secret %s/%s with a certificate and key: %w", OperatorNamespace, BrokerTLSSecret, context.Cause(ctx))
		case <-tick.C:
		}
	}
}

// writeTLS writes the Secret's certificate and key where they differ from
// the files; written is false while the Secret is missing or incomplete.
func (b *brokerProcess) writeTLS(ctx context.Context) (written bool, err error) {
	sec := &corev1.Secret{}
	err = b.reader.Get(ctx, types.NamespacedName{Namespace: OperatorNamespace, Name: BrokerTLSSecret}, sec)
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("get secret %s/%s: %w", OperatorNamespace, BrokerTLSSecret, err)
	}
	cert, key := sec.Data[corev1.TLSCertKey], sec.Data[corev1.TLSPrivateKeyKey]
	if len(cert) == 0 || len(key) == 0 {
		return false, nil
	}
	changed := map[string]projectedFile{}
	for name, data := range map[string][]byte{corev1.TLSCertKey: cert, corev1.TLSPrivateKeyKey: key} {
		if old, err := os.ReadFile(filepath.Join(b.tlsDir, name)); err != nil || !bytes.Equal(old, data) {
			changed[name] = projectedFile{data: data, mode: 0o600}
		}
	}
	if err := writeVolume(b.tlsDir, changed); err != nil {
		return false, fmt.Errorf("write the broker's certificate: %w", err)
	}
	return true, nil
}

// syncTLS keeps the files in step with the Secret until ctx ends, so a
// certificate the operator renews is served without a restart.
func (b *brokerProcess) syncTLS(ctx context.Context) {
	tick := time.NewTicker(brokerTLSSync)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
			_, _ = b.writeTLS(ctx) // a failure is tried again on the next tick
		}
	}
}

// info describes the broker.
func (b *brokerProcess) info() Broker {
	return Broker{URL: b.url(), HealthURL: "http://" + b.health, LogPath: b.logPath}
}

// stop ends the relayed connections, the file sync and the process.
func (b *brokerProcess) stop() error {
	b.fwd.close()
	if b.stopSync != nil {
		b.stopSync()
		b.synced.Wait()
	}
	if b.proc == nil {
		return nil
	}
	if err := b.proc.stop(15 * time.Second); err != nil {
		return errors.Join(err, fmt.Errorf("log: %s", b.logPath))
	}
	return nil
}
