package localstack

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlconfig "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/mcpgate/mcpgate/gateway/config"
)

// Timing of the kubelet emulation.
const (
	// readyTimeout bounds how long a new gateway process may take to answer
	// /readyz before it is stopped and started again.
	readyTimeout = 60 * time.Second
	// defaultGracePeriod is a pod's terminationGracePeriodSeconds when the
	// template does not say.
	defaultGracePeriod = 30 * time.Second
	// crashBackoffMax caps the wait before restarting a process that
	// exited, which doubles from a second with each crash in a row.
	crashBackoffMax = 30 * time.Second
)

// secretIndex and configMapIndex index gateway Deployments by the Secrets
// and ConfigMaps their pods mount, so a changed Secret or ConfigMap finds
// the pods whose files must follow it.
const (
	secretIndex    = "localstack.spec.template.secrets"
	configMapIndex = "localstack.spec.template.configmaps"
)

// kubelet plays the parts of a cluster that envtest lacks, for gateway
// Deployments (label app.kubernetes.io/managed-by=mcpgate) only: the
// Deployment controller and the kubelet. For each Deployment it runs the
// pod template's container as a local process, restarts it when the template
// changes or the process dies, stops it when the Deployment goes, and
// writes the Deployment status a real cluster would (readyReplicas, the
// Available condition), so the McpServer's Ready condition works as it would.
type kubelet struct {
	client  client.Client // the manager's: Deployments from the cache
	reader  client.Reader // uncached: ConfigMaps, Secrets and Services, read when needed
	mcpgate string        // the local binary standing in for the image's mcpgate
	podDir  string
	logDir  string
	log     logr.Logger
	exits   chan event.GenericEvent // a process exited: look at its Deployment again
	stopped chan struct{}           // closed when the kubelet shuts down
	clock   func() time.Time        // when projected tokens are due

	mu      sync.Mutex
	slots   map[types.NamespacedName]*slot
	changed chan struct{} // closed and replaced whenever a gateway changes
	// draining counts replaced processes still finishing their requests.
	draining sync.WaitGroup
}

// slot is the state kept per Deployment, from its first sighting until the
// stack stops.
type slot struct {
	// Fixed when the slot is made.
	deployment types.NamespacedName
	mcpServer  string
	fwd        *forwarder
	logPath    string

	// Guarded by kubelet.mu.
	mcpPath string
	cur     *pod // the newest process; nil before the first start and while stopped
	starts  int
	crashes int // exits in a row without a replacement becoming ready
}

// pod is one local gateway process.
type pod struct {
	name         string
	templateHash string
	configHash   string
	dir          string
	proc         *process
	trafficAddr  string
	healthAddr   string
	configPath   string // the local copy of the configuration it runs with
	grace        time.Duration
	// serviceAccount is the pod's, for its projected tokens.
	serviceAccount string
	// refreshed are the ConfigMap, Secret and projected volumes, rewritten
	// when what they project changes or a token is due.
	refreshed []mount
	// tokens are the projected ServiceAccount tokens, by volume/path.
	tokens map[string]*projectedToken

	// Guarded by kubelet.mu.
	ready    bool
	exited   bool
	exitedAt time.Time
	stopping bool
}

// kubeletSpec is what startKubelet needs.
type kubeletSpec struct {
	restConfig *rest.Config
	mcpgate    string
	workDir    string
	logDir     string
	logger     logr.Logger
}

// startKubelet starts the emulation in a controller-runtime manager of its
// own and returns once its caches are in sync. stop shuts it down and stops
// every process it started.
func startKubelet(ctx context.Context, s kubeletSpec) (k *kubelet, stop func() error, err error) {
	managed := labels.SelectorFromSet(labels.Set{config.LabelManagedBy: config.ManagedByValue})
	mgr, err := ctrl.NewManager(s.restConfig, ctrl.Options{
		Scheme:                 newScheme(),
		Logger:                 s.logger,
		Metrics:                metricsserver.Options{BindAddress: "0"},
		HealthProbeBindAddress: "0",
		Cache:                  cache.Options{ByObject: map[client.Object]cache.ByObject{&appsv1.Deployment{}: {Label: managed}}},
		// Several stacks may run in one test binary, each with a controller
		// of this name.
		Controller: ctrlconfig.Controller{SkipNameValidation: ptr.To(true)},
	})
	if err != nil {
		return nil, nil, fmt.Errorf("create the kubelet's manager: %w", err)
	}
	k = &kubelet{
		client:  mgr.GetClient(),
		reader:  mgr.GetAPIReader(),
		mcpgate: s.mcpgate,
		podDir:  filepath.Join(s.workDir, "pods"),
		logDir:  s.logDir,
		log:     s.logger.WithName("kubelet"),
		exits:   make(chan event.GenericEvent, 64),
		stopped: make(chan struct{}),
		slots:   map[types.NamespacedName]*slot{},
		changed: make(chan struct{}),
		clock:   time.Now,
	}
	if err := k.setup(ctx, mgr); err != nil {
		return nil, nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan error, 1)
	go func() { done <- mgr.Start(runCtx) }()
	stop = func() error {
		cancel()
		err := <-done
		close(k.stopped)
		return errors.Join(err, k.stopAll())
	}
	syncCtx, cancelSync := context.WithTimeout(ctx, 30*time.Second)
	defer cancelSync()
	if !mgr.GetCache().WaitForCacheSync(syncCtx) {
		return nil, nil, errors.Join(errors.New("the kubelet's caches did not sync"), stop())
	}
	return k, stop, nil
}

// setup registers the indexes and the watches: gateway Deployments, the
// exits of the processes, and (metadata only) the Secrets and ConfigMaps
// they mount.
func (k *kubelet) setup(ctx context.Context, mgr ctrl.Manager) error {
	for index, names := range map[string]func(corev1.Volume) []string{secretIndex: volumeSecrets, configMapIndex: volumeConfigMaps} {
		err := mgr.GetFieldIndexer().IndexField(ctx, &appsv1.Deployment{}, index, func(o client.Object) []string {
			var all []string
			for _, v := range o.(*appsv1.Deployment).Spec.Template.Spec.Volumes {
				all = append(all, names(v)...)
			}
			return all
		})
		if err != nil {
			return fmt.Errorf("index deployments by %s: %w", index, err)
		}
	}
	return ctrl.NewControllerManagedBy(mgr).
		Named("localstack-kubelet").
		// Status changes too, the kubelet's own among them: a status that
		// someone else changed, or that a stale cache hid, is put right.
		For(&appsv1.Deployment{}).
		WatchesRawSource(source.Channel(k.exits, &handler.EnqueueRequestForObject{})).
		WatchesMetadata(&corev1.Secret{}, handler.EnqueueRequestsFromMapFunc(k.deploymentsMounting(secretIndex))).
		WatchesMetadata(&corev1.ConfigMap{}, handler.EnqueueRequestsFromMapFunc(k.deploymentsMounting(configMapIndex))).
		WithOptions(controller.Options{MaxConcurrentReconciles: 4}).
		Complete(k)
}

// deploymentsMounting maps a Secret or ConfigMap to the gateway
// Deployments mounting it, through index.
func (k *kubelet) deploymentsMounting(index string) handler.MapFunc {
	return func(ctx context.Context, o client.Object) []reconcile.Request {
		var list appsv1.DeploymentList
		if err := k.client.List(ctx, &list, client.InNamespace(o.GetNamespace()), client.MatchingFields{index: o.GetName()}); err != nil {
			k.log.Error(err, "Failed to list Deployments mounting an object", "index", index, "name", o.GetName())
			return nil
		}
		reqs := make([]reconcile.Request, 0, len(list.Items))
		for _, d := range list.Items {
			reqs = append(reqs, reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&d)})
		}
		return reqs
	}
}

// Reconcile makes the local processes of one Deployment match it.
func (k *kubelet) Reconcile(ctx context.Context, req ctrl.Request) (ctrl.Result, error) {
	d := &appsv1.Deployment{}
	if err := k.client.Get(ctx, req.NamespacedName, d); err != nil {
		if apierrors.IsNotFound(err) {
			k.remove(req.NamespacedName)
			return ctrl.Result{}, nil
		}
		return ctrl.Result{}, fmt.Errorf("get deployment: %w", err)
	}
	if !d.DeletionTimestamp.IsZero() {
		k.remove(req.NamespacedName)
		return ctrl.Result{}, nil
	}
	if ptr.Deref(d.Spec.Replicas, 1) == 0 {
		k.stopCurrent(req.NamespacedName)
		return ctrl.Result{}, k.reportStatus(ctx, d, false)
	}
	s, err := k.slotFor(d)
	if err != nil {
		return ctrl.Result{}, err
	}
	want := templateHash(&d.Spec.Template)
	cur, ready, exited, exitedAt, crashes := k.current(s)
	if cur != nil && cur.templateHash == want {
		if !exited {
			if err := k.refreshVolumes(ctx, d.Namespace, cur); err != nil {
				return ctrl.Result{}, err
			}
			return ctrl.Result{RequeueAfter: k.nextTokenRefresh(cur)}, k.reportStatus(ctx, d, ready)
		}
		// The process died: unavailable until it is back, restarted after
		// a back-off that grows with each crash in a row, like CrashLoopBackOff.
		if err := k.reportStatus(ctx, d, false); err != nil {
			return ctrl.Result{}, err
		}
		if wait := time.Until(exitedAt.Add(crashBackoff(crashes))); wait > 0 {
			return ctrl.Result{RequeueAfter: wait}, nil
		}
	}

	next, err := k.startPod(ctx, d, s, want)
	if err != nil {
		if cur == nil || exited {
			if serr := k.reportStatus(ctx, d, false); serr != nil {
				err = errors.Join(err, serr)
			}
		}
		return ctrl.Result{}, fmt.Errorf("run gateway of %s: %w", req.NamespacedName, err)
	}
	k.promote(s, next)
	return ctrl.Result{RequeueAfter: k.nextTokenRefresh(next)}, k.reportStatus(ctx, d, true)
}

// crashBackoff is the wait before restarting after the n-th crash in a row.
func crashBackoff(n int) time.Duration {
	if n <= 0 {
		return 0
	}
	return min(time.Second<<min(n-1, 10), crashBackoffMax)
}

// slotFor returns the Deployment's slot, creating it (and the forwarder
// holding its stable address) on first sight.
func (k *kubelet) slotFor(d *appsv1.Deployment) (*slot, error) {
	key := client.ObjectKeyFromObject(d)
	k.mu.Lock()
	defer k.mu.Unlock()
	if s, ok := k.slots[key]; ok {
		return s, nil
	}
	fwd, err := newForwarder()
	if err != nil {
		return nil, fmt.Errorf("listen for gateway %s: %w", key, err)
	}
	mcpServer := d.Labels[config.LabelMcpServer]
	if mcpServer == "" {
		mcpServer = strings.TrimSuffix(d.Name, config.GatewaySuffix)
	}
	s := &slot{
		deployment: key,
		mcpServer:  mcpServer,
		fwd:        fwd,
		logPath:    filepath.Join(k.logDir, fmt.Sprintf("gateway-%s-%s.log", d.Namespace, mcpServer)),
	}
	k.slots[key] = s
	return s, nil
}

// current reads a slot's current process state under the lock.
func (k *kubelet) current(s *slot) (cur *pod, ready, exited bool, exitedAt time.Time, crashes int) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if s.cur == nil {
		return nil, false, false, time.Time{}, s.crashes
	}
	return s.cur, s.cur.ready, s.cur.exited, s.cur.exitedAt, s.crashes
}

// startPod prepares the files of a new process for d's template, starts it,
// and waits until it answers /readyz. The previous process keeps serving
// meanwhile; on failure the new one is stopped and the error returned, so the
// work queue retries with back-off.
func (k *kubelet) startPod(ctx context.Context, d *appsv1.Deployment, s *slot, tmplHash string) (*pod, error) {
	c, err := gatewayContainer(d)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(k.podDir, 0o755); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp(k.podDir, d.Namespace+"_"+d.Name+"-")
	if err != nil {
		return nil, err
	}
	p := &pod{
		name:         filepath.Base(dir),
		templateHash: tmplHash,
		configHash:   d.Spec.Template.Annotations[config.ConfigHashAnnotation],
		dir:          dir,
		grace:        defaultGracePeriod,

		serviceAccount: podServiceAccount(d.Spec.Template.Spec),
		tokens:         map[string]*projectedToken{},
	}
	if g := d.Spec.Template.Spec.TerminationGracePeriodSeconds; g != nil {
		p.grace = time.Duration(*g) * time.Second
	}
	args, env, cfg, err := k.preparePod(ctx, d, c, p)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}

	k.mu.Lock()
	s.mcpPath = cfg.Path
	s.starts++
	k.mu.Unlock()
	appendLog(s.logPath, fmt.Sprintf("--- localstack: starting %s (config hash %s): mcpgate %s\n", p.name, p.configHash, strings.Join(args, " ")))
	p.proc, err = startProcess(processSpec{name: "gateway " + p.name, path: k.mcpgate, args: args, env: env, logPath: s.logPath, clearEnv: true})
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	go k.watchExit(s, p)
	if err := waitHTTPReady(ctx, "http://"+p.healthAddr+"/readyz", p.proc, readyTimeout); err != nil {
		k.stopPod(p)
		return nil, fmt.Errorf("gateway process %s did not become ready: %w (log: %s)", p.name, err, s.logPath)
	}
	k.log.Info("Started gateway", "deployment", s.deployment.String(), "pod", p.name, "pid", p.proc.pid(),
		"configHash", p.configHash, "url", "http://"+s.fwd.addr()+cfg.Path)
	return p, nil
}

// watchExit marks p exited when its process ends and, unless the kubelet
// stopped it, asks for its Deployment to be looked at again.
func (k *kubelet) watchExit(s *slot, p *pod) {
	<-p.proc.exited()
	k.mu.Lock()
	p.ready, p.exited, p.exitedAt = false, true, time.Now()
	expected := p.stopping
	if !expected && s.cur == p {
		s.crashes++
	}
	k.notifyLocked()
	k.mu.Unlock()
	if expected {
		return
	}
	s.fwd.clearBackend(p.trafficAddr)
	k.log.Info("Gateway process exited", "deployment", s.deployment.String(), "pod", p.name, "error", fmt.Sprint(p.proc.exitErr()))
	obj := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Namespace: s.deployment.Namespace, Name: s.deployment.Name}}
	select {
	case k.exits <- event.GenericEvent{Object: obj}:
	case <-k.stopped:
	}
}

// promote makes next the process that gets new connections and stops the
// one it replaces in the background, letting it drain as a pod would.
func (k *kubelet) promote(s *slot, next *pod) {
	k.mu.Lock()
	old := s.cur
	s.cur = next
	next.ready = !next.exited
	s.crashes = 0
	// NOTE: switch the forwarder before waking waiters, or one that sees the
	// new process ready could still be relayed to the old one, which is
	// about to stop.
	s.fwd.setBackend(next.trafficAddr)
	k.notifyLocked()
	k.mu.Unlock()
	if old != nil {
		k.draining.Add(1)
		go func() {
			defer k.draining.Done()
			k.stopPod(old)
		}()
	}
}

// stopPod stops a process, giving it its grace period, and removes its files.
func (k *kubelet) stopPod(p *pod) {
	k.mu.Lock()
	p.stopping = true
	p.ready = false
	crashed := p.exited // its exit was logged when it happened
	k.notifyLocked()
	k.mu.Unlock()
	if err := p.proc.stop(p.grace); err != nil && !crashed {
		k.log.Info("Gateway process did not stop cleanly", "pod", p.name, "error", err.Error())
	}
	_ = os.RemoveAll(p.dir)
}

// stopCurrent stops a Deployment's process (scaled to zero) but keeps its
// slot and address.
func (k *kubelet) stopCurrent(key types.NamespacedName) {
	k.mu.Lock()
	s := k.slots[key]
	var cur *pod
	if s != nil {
		cur, s.cur = s.cur, nil
		k.notifyLocked()
	}
	k.mu.Unlock()
	if cur != nil {
		s.fwd.clearBackend(cur.trafficAddr)
		k.stopPod(cur)
	}
}

// remove stops a deleted Deployment's process. The slot and its address
// stay, as the gateway's Service does: a Deployment that comes back (the
// operator recreates a deleted one) serves at the same URL.
func (k *kubelet) remove(key types.NamespacedName) {
	k.mu.Lock()
	_, known := k.slots[key]
	k.mu.Unlock()
	if !known {
		return
	}
	k.stopCurrent(key)
	k.log.Info("Stopped gateway: its Deployment is gone", "deployment", key.String())
}

// stopAll closes every forwarder first, ending client connections so that
// the processes drain at once, then stops every process.
func (k *kubelet) stopAll() error {
	k.mu.Lock()
	slots := make([]*slot, 0, len(k.slots))
	for _, s := range k.slots {
		slots = append(slots, s)
	}
	k.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range slots {
		s.fwd.close()
		k.mu.Lock()
		cur := s.cur
		k.mu.Unlock()
		if cur != nil {
			wg.Go(func() { k.stopPod(cur) })
		}
	}
	wg.Wait()
	k.draining.Wait()
	return nil
}

// appendLog adds a line of the kubelet's own to a process log.
func appendLog(path, line string) {
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return
	}
	_, _ = f.WriteString(line)
	_ = f.Close()
}
