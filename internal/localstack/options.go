package localstack

import (
	"time"

	"github.com/mcpgate/mcpgate/clerk/clerktest"
)

// Defaults for Options.
const (
	// DefaultNamespace holds the sample upstream's Service, the Clerk Secret
	// and the sample McpServer.
	DefaultNamespace = "demo"
	// DefaultSampleService and DefaultSamplePort name the Service in front of
	// the sample MCP server, the upstream the sample McpServer is pointed at.
	DefaultSampleService = "sample-mcp"
	DefaultSamplePort    = 8080
	// SecretName and SecretKey are where the Clerk secret key is stored, as
	// config/samples expects it.
	SecretName = "clerk"
	SecretKey  = "secret-key"
	// GatewayImage is the image the manager writes into gateway Deployments.
	// Nothing pulls it: the kubelet emulation runs the locally built binary.
	GatewayImage = "mcpgate.localstack/mcpgate:dev"
	// DefaultClerkResyncInterval is the manager's --clerk-resync-interval:
	// short, so that a setting changed behind the operator's back (in the
	// emulator) is put back quickly, and at the manager's minimum of 10s.
	DefaultClerkResyncInterval = 10 * time.Second
)

// DefaultClerkScopes are the custom scopes the emulated Clerk instance
// knows unless ClerkOptions.Scopes says otherwise: the tool scope of
// config/samples, without which no client could step up to call delete_repo.
func DefaultClerkScopes() []string { return []string{"repo:admin"} }

// Mode says how a helper server runs.
type Mode int

const (
	// InProcess runs the server in the calling process: quick to start, and
	// tests can reach into it (the emulator's call counters and settings).
	InProcess Mode = iota
	// Subprocess runs the server's command from hack/ as a child process,
	// built like the mcpgate binary: the same program a developer starts by
	// hand with go run, with its own log file.
	Subprocess
)

func (m Mode) String() string {
	if m == Subprocess {
		return "subprocess"
	}
	return "in-process"
}

// TokenFormat is a format of Clerk OAuth access tokens, the
// oauth_jwt_access_tokens setting of an instance.
type TokenFormat int

const (
	// JWT access tokens, verified by the gateway against the instance's keys.
	JWT TokenFormat = iota
	// Opaque "oat_" access tokens, verified through the Backend API.
	Opaque
)

func (f TokenFormat) String() string {
	if f == Opaque {
		return "opaque"
	}
	return "jwt"
}

// Options configure Start. The zero value starts the stack the demo uses.
type Options struct {
	// RepoRoot is the mcpgate checkout whose config/, hack/ and cmd/ are
	// used. Empty: found by walking up from the working directory to the
	// go.mod of github.com/mcpgate/mcpgate.
	RepoRoot string

	// CacheDir keeps what outlives a run: built binaries under bin/ and
	// (through hack/setup-envtest.sh) the envtest binaries. Empty:
	// $MCPGATE_CACHE_DIR, else ${XDG_CACHE_HOME:-~/.cache}/mcpgate, as
	// hack/setup-envtest.sh has it.
	CacheDir string

	// WorkDir receives the kubeconfig, the logs, the kustomize overlay and
	// the gateways' files. Empty: a new temporary directory, removed by Close.
	WorkDir string

	// AssetsDir holds etcd, kube-apiserver and kubectl. Empty:
	// $KUBEBUILDER_ASSETS when it holds all three, else the directory
	// hack/setup-envtest.sh prints (which may build them on a first run).
	AssetsDir string

	// Binaries are prebuilt programs; empty fields are built (see Build).
	// Tests that start several stacks build once and share them.
	Binaries Binaries

	// Namespace is where the sample upstream, its Service and the Clerk
	// Secret are created; empty means DefaultNamespace.
	Namespace string

	// Clerk configures the Clerk emulator.
	Clerk ClerkOptions

	// Sample configures the sample MCP server.
	Sample SampleOptions

	// ClerkResyncInterval is the manager's --clerk-resync-interval; zero
	// means DefaultClerkResyncInterval.
	ClerkResyncInterval time.Duration

	// NoBroker runs the stack without `mcpgate broker`: the manager gets no
	// --broker-url, so every gateway mounts its Clerk secret key (and a
	// ClusterClerkInstance's key is copied into the McpServer's namespace),
	// as before the broker existed.
	NoBroker bool

	// Progress, if set, receives one line for each step as the stack starts
	// and stops, with how long it took. Start may call it from any goroutine
	// but never concurrently.
	Progress func(msg string)
}

// ClerkOptions configure the Clerk emulator.
type ClerkOptions struct {
	// Mode is InProcess (clerktest.Start; the default) or Subprocess
	// (hack/clerk-emulator).
	Mode Mode
	// Scopes are the instance's custom scopes. Nil means DefaultClerkScopes;
	// an empty, non-nil slice means none.
	Scopes []string
	// TokenFormat is the instance's oauth_jwt_access_tokens setting when it
	// starts; the manager changes it when an McpServer declares another.
	TokenFormat TokenFormat
	// ExtraOptions are passed to clerktest.Start after the ones above
	// (InProcess only), for tests that need a user, a clock or an observer.
	ExtraOptions []clerktest.Option
}

// SampleOptions configure the sample MCP server and its Service.
type SampleOptions struct {
	// Mode is InProcess (internal/sampleserver; the default) or Subprocess
	// (hack/sample-mcp-server).
	Mode Mode
	// ServiceName and ServicePort name the Service the McpServers use as
	// their upstream; empty or zero mean DefaultSampleService and
	// DefaultSamplePort.
	ServiceName string
	ServicePort int32
}

func (o Options) withDefaults() Options {
	if o.Namespace == "" {
		o.Namespace = DefaultNamespace
	}
	if o.Clerk.Scopes == nil {
		o.Clerk.Scopes = DefaultClerkScopes()
	}
	if o.Sample.ServiceName == "" {
		o.Sample.ServiceName = DefaultSampleService
	}
	if o.Sample.ServicePort == 0 {
		o.Sample.ServicePort = DefaultSamplePort
	}
	if o.ClerkResyncInterval <= 0 {
		o.ClerkResyncInterval = DefaultClerkResyncInterval
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
	return o
}
