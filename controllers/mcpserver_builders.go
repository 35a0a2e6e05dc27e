package controllers

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	autoscalingv2ac "k8s.io/client-go/applyconfigurations/autoscaling/v2"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
	metav1ac "k8s.io/client-go/applyconfigurations/meta/v1"
	networkingv1ac "k8s.io/client-go/applyconfigurations/networking/v1"
	policyv1ac "k8s.io/client-go/applyconfigurations/policy/v1"

	mcpv1 "github.com/mcpgate/mcpgate/api/v1alpha1"
	"github.com/mcpgate/mcpgate/gateway/config"
)

// The gateway's fixed layout: ports, mount points and the names the
// controller gives to what it owns.
const (
	trafficPortName = "http"
	trafficPort     = 8080
	healthPortName  = "health"
	healthPort      = 8081
	servicePort     = 80

	configVolume   = "config"
	configDir      = "/etc/mcpgate/config"
	secretVolume   = "clerk-secret"
	secretDir      = "/etc/mcpgate/clerk"
	secretFileName = "secret-key"
	tmpVolume      = "tmp"

	gatewayContainer = "gateway"
	gatewayUID       = 65532

	defaultPath = "/mcp"
)

// Labels on every object the controller owns, beside config.LabelManagedBy,
// which also filters the controller's cache so that it holds only its own
// ConfigMaps, Deployments, Ingresses and PodDisruptionBudgets.
const (
	labelName      = "app.kubernetes.io/name"
	labelComponent = "app.kubernetes.io/component"
	labelPartOf    = "app.kubernetes.io/part-of"
	gatewayAppName = "mcpgate-gateway"
)

// gatewayName names every object owned by mcp (see config.GatewayName).
func gatewayName(mcp *mcpv1.McpServer) string { return config.GatewayName(mcp.Name) }

func selectorLabels(mcp *mcpv1.McpServer) map[string]string {
	return map[string]string{labelName: gatewayAppName, config.LabelMcpServer: mcp.Name}
}

func objectLabels(mcp *mcpv1.McpServer) map[string]string {
	l := selectorLabels(mcp)
	l[config.LabelManagedBy] = config.ManagedByValue
	l[labelComponent] = "gateway"
	l[labelPartOf] = "mcpgate"
	return l
}

func ownerReference(mcp *mcpv1.McpServer) *metav1ac.OwnerReferenceApplyConfiguration {
	return metav1ac.OwnerReference().
		WithAPIVersion(mcpv1.GroupVersion.String()).
		WithKind("McpServer").
		WithName(mcp.Name).
		WithUID(mcp.UID).
		WithController(true).
		WithBlockOwnerDeletion(true)
}

// mcpPath is spec.path, defaulted as the API server would.
func mcpPath(mcp *mcpv1.McpServer) string {
	if mcp.Spec.Path == "" {
		return defaultPath
	}
	return string(mcp.Spec.Path)
}

// endpoints are the URLs at which clients reach an McpServer.
type endpoints struct {
	// url is the MCP endpoint.
	url string
	// resourceMetadataURL is the RFC 9728 metadata document.
	resourceMetadataURL string
	// public is true when url is the Ingress URL clients use, rather than the
	// in-cluster Service URL.
	public bool
}

// endpointsFor derives the public URLs of mcp from its spec alone.
func endpointsFor(mcp *mcpv1.McpServer) endpoints {
	path := mcpPath(mcp)
	var base string
	public := false
	if ing := mcp.Spec.Ingress; ing != nil {
		scheme := "http"
		if ing.TLS != nil {
			scheme = "https"
		}
		base, public = scheme+"://"+ing.Host, true
	} else if route := mcp.Spec.HTTPRoute; route != nil && len(route.Hostnames) > 0 {
		// Gateways terminate TLS for their listeners' hostnames.
		base, public = "https://"+string(route.Hostnames[0]), true
	} else {
		base = fmt.Sprintf("http://%s.%s.svc", gatewayName(mcp), mcp.Namespace)
	}
	return endpoints{url: base + path, resourceMetadataURL: base + config.ResourceMetadataPath(path), public: public}
}

// upstreamURL is the absolute URL of the upstream MCP endpoint. A named
// Service port is resolved from upstreamSvc, which may be nil for a numbered
// port or a url upstream.
func upstreamURL(mcp *mcpv1.McpServer, upstreamSvc *corev1.Service) (string, error) {
	up := mcp.Spec.Upstream
	path := string(up.Path)
	if path == "" {
		path = defaultPath
	}
	if up.URL != "" {
		return strings.TrimSuffix(up.URL, "/") + path, nil
	}
	if up.Service == nil {
		return "", fmt.Errorf("upstream has neither service nor url")
	}
	port, err := servicePortNumber(up.Service.Port, upstreamSvc)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("http://%s.%s.svc:%d%s", up.Service.Name, mcp.Namespace, port, path), nil
}

func servicePortNumber(port intstr.IntOrString, svc *corev1.Service) (int32, error) {
	if port.Type == intstr.Int {
		return port.IntVal, nil
	}
	if svc == nil {
		return 0, fmt.Errorf("service port %q cannot be resolved: the Service does not exist", port.StrVal)
	}
	for _, p := range svc.Spec.Ports {
		if p.Name == port.StrVal {
			return p.Port, nil
		}
	}
	return 0, fmt.Errorf("service %s has no port named %q", svc.Name, port.StrVal)
}

// buildGatewayConfig is the configuration the gateway of mcp runs with.
func buildGatewayConfig(mcp *mcpv1.McpServer, opts Options, issuer, upstream string) config.Config {
	ep := endpointsFor(mcp)
	cfg := config.Config{
		Server:       config.ServerRef{Namespace: mcp.Namespace, Name: mcp.Name},
		Listen:       config.Listen{Traffic: ":" + strconv.Itoa(trafficPort), Health: ":" + strconv.Itoa(healthPort)},
		Path:         mcpPath(mcp),
		ResourceName: mcp.Namespace + "/" + mcp.Name,
		Upstream:     config.Upstream{URL: upstream},
		Clerk: config.Clerk{
			Issuer:        issuer,
			APIURL:        opts.ClerkAPIURL,
			SecretKeyFile: secretDir + "/" + secretFileName,
		},
	}
	if opts.brokered() {
		// The broker holds the key; the gateway asks it instead.
		cfg.Clerk.SecretKeyFile = ""
		cfg.Broker = brokerConfig(opts)
	}
	if ep.public {
		cfg.PublicURL = ep.url
	}
	for _, o := range mcp.Spec.Gateway.AllowedOrigins {
		cfg.AllowedOrigins = append(cfg.AllowedOrigins, string(o))
	}
	for _, s := range mcp.Spec.Scopes {
		cfg.Scopes = append(cfg.Scopes, string(s))
	}
	for _, ts := range mcp.Spec.ToolScopes {
		scopes := make([]string, 0, len(ts.Scopes))
		for _, s := range ts.Scopes {
			scopes = append(scopes, string(s))
		}
		cfg.ToolScopes = append(cfg.ToolScopes, config.ToolScope{Tool: string(ts.Tool), Scopes: scopes})
	}
	// StepUp, the default, is left out, so the configuration of a server
	// that does not ask for AtSignIn is what it was before the field
	// existed and an operator upgrade does not roll its gateway.
	if mcp.Spec.ToolScopeChallenge == mcpv1.ToolScopeChallengeAtSignIn && len(cfg.ToolScopes) > 0 {
		cfg.ToolScopeChallenge = config.ToolScopeChallengeAtSignIn
	}
	cfg.Access = buildAccess(mcp.Spec.Access)
	cfg.Upstream.Credentials = buildCredentials(mcp.Spec.Upstream.Credentials, issuer)
	cfg.Audit = buildAudit(mcp.Spec.Gateway.Audit)
	cfg.Tracing = buildTracing(mcp.Spec.Gateway.Tracing, opts)
	return cfg
}

// defaultAccessCacheTTL is spec.access.cacheTTL's default, for an object the
// API server has not defaulted.
const defaultAccessCacheTTL = 60 * time.Second

// buildAccess is the gateway's access block: nil, admitting every signed-in
// user, when the McpServer has no access rules.
func buildAccess(access *mcpv1.AccessSpec) *config.Access {
	if access == nil || (len(access.Allow) == 0 && len(access.ToolAccess) == 0) {
		return nil
	}
	ttl := defaultAccessCacheTTL
	if access.CacheTTL != nil && access.CacheTTL.Duration > 0 {
		ttl = access.CacheTTL.Duration
	}
	out := &config.Access{
		Allow: accessRules(access.Allow),
		// Round up: a TTL under a second still caches for one.
		CacheTTLSeconds: int((ttl + time.Second - 1) / time.Second),
	}
	for _, ta := range access.ToolAccess {
		out.ToolAccess = append(out.ToolAccess, config.ToolAccess{Tool: string(ta.Tool), Allow: accessRules(ta.Allow)})
	}
	return out
}

// accessRules converts API access entries to the gateway's. Email domains
// are lowercased: the gateway compares them without regard to case, and a
// change of case alone then leaves the config, and the pods, as they are.
func accessRules(rules []mcpv1.AccessRule) []config.AccessRule {
	if len(rules) == 0 {
		return nil
	}
	out := make([]config.AccessRule, 0, len(rules))
	for _, r := range rules {
		rule := config.AccessRule{
			Organization: r.Organization,
			EmailDomain:  strings.ToLower(r.EmailDomain),
			User:         r.User,
		}
		for _, role := range r.Roles {
			rule.Roles = append(rule.Roles, string(role))
		}
		for _, p := range r.Permissions {
			rule.Permissions = append(rule.Permissions, string(p))
		}
		out = append(out, rule)
	}
	return out
}

// accessMode is status.access: whether spec.access restricts anyone.
func accessMode(mcp *mcpv1.McpServer) mcpv1.AccessMode {
	if buildAccess(mcp.Spec.Access) != nil {
		return mcpv1.AccessRestricted
	}
	return mcpv1.AccessAnySignedInUser
}

// configHash fingerprints the gateway configuration for the pod template.
// It covers config.json only: the broker's CA bundle beside it changes with
// each CA rotation, and the gateway re-reads that file (which the kubelet
// updates in place), so a rotation rolls no pod.
func configHash(data []byte) string {
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16])
}

// buildConfigMap holds the encoded gateway configuration and, with the
// broker, its CA bundle (brokerCA; left out while there is none).
func buildConfigMap(mcp *mcpv1.McpServer, data []byte, brokerCA string) *corev1ac.ConfigMapApplyConfiguration {
	files := map[string]string{config.FileName: string(data)}
	if brokerCA != "" {
		files[config.BrokerCAKey] = brokerCA
	}
	return corev1ac.ConfigMap(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithData(files)
}

// pullSecrets refers to the named image pull Secrets.
func pullSecrets(names []string) []*corev1ac.LocalObjectReferenceApplyConfiguration {
	refs := make([]*corev1ac.LocalObjectReferenceApplyConfiguration, 0, len(names))
	for _, name := range names {
		refs = append(refs, corev1ac.LocalObjectReference().WithName(name))
	}
	return refs
}

// buildDeployment runs the gateway of mcp. Without the broker, the Clerk
// secret key reaches it only as a file from the Secret volume (ref, in mcp's
// namespace); with it, the gateway holds no key and runs as its own
// ServiceAccount, with that account's broker-audience token projected. The
// upstream credential headers' values arrive as files from a projected
// volume of their Secrets. The kubelet refreshes all of these in place when
// a Secret or token is rotated, so the pod template, and the pods, stay as
// they are.
func buildDeployment(mcp *mcpv1.McpServer, opts Options, hash string, ref mcpv1.SecretKeyReference) *appsv1ac.DeploymentApplyConfiguration {
	replicas := int32(1)
	if r := mcp.Spec.Gateway.Replicas; r != nil {
		replicas = *r
	}

	clerkAccess := clerkAccessVolume(opts, ref)
	container := corev1ac.Container().
		WithName(gatewayContainer).
		WithImage(opts.GatewayImage).
		WithCommand("mcpgate").
		WithArgs("gateway", "--config", configDir+"/"+config.FileName).
		WithPorts(
			corev1ac.ContainerPort().WithName(trafficPortName).WithContainerPort(trafficPort).WithProtocol(corev1.ProtocolTCP),
			corev1ac.ContainerPort().WithName(healthPortName).WithContainerPort(healthPort).WithProtocol(corev1.ProtocolTCP),
		).
		WithLivenessProbe(httpProbe("/healthz")).
		WithReadinessProbe(httpProbe("/readyz")).
		WithSecurityContext(corev1ac.SecurityContext().
			WithAllowPrivilegeEscalation(false).
			WithReadOnlyRootFilesystem(true).
			WithRunAsNonRoot(true).
			WithCapabilities(corev1ac.Capabilities().WithDrop("ALL"))).
		WithVolumeMounts(
			corev1ac.VolumeMount().WithName(configVolume).WithMountPath(configDir).WithReadOnly(true),
			clerkAccess.mount,
			corev1ac.VolumeMount().WithName(tmpVolume).WithMountPath("/tmp"),
		)
	credentials := credentialsVolumeSource(mcp.Spec.Upstream.Credentials)
	if credentials != nil {
		container.WithVolumeMounts(corev1ac.VolumeMount().WithName(credentialsVolume).WithMountPath(credentialsDir).WithReadOnly(true))
	}
	tracingHeaders, tracingMount := tracingHeadersVolume(mcp)
	if tracingMount != nil {
		container.WithVolumeMounts(tracingMount)
	}
	container.WithResources(buildResources(mcp.Spec.Gateway.Resources))
	if opts.GatewayImagePullPolicy != "" {
		container.WithImagePullPolicy(opts.GatewayImagePullPolicy)
	}

	pod := corev1ac.PodSpec().
		// The gateway never calls the Kubernetes API; with the broker it
		// gets only a token for the broker's audience.
		WithAutomountServiceAccountToken(false).
		WithEnableServiceLinks(false).
		WithSecurityContext(corev1ac.PodSecurityContext().
			WithRunAsNonRoot(true).
			WithRunAsUser(gatewayUID).
			WithRunAsGroup(gatewayUID).
			// Mounted secret files are readable by the gateway's group only.
			WithFSGroup(gatewayUID).
			WithSeccompProfile(corev1ac.SeccompProfile().WithType(corev1.SeccompProfileTypeRuntimeDefault))).
		WithContainers(container).
		WithImagePullSecrets(pullSecrets(opts.GatewayImagePullSecrets)...).
		WithVolumes(
			corev1ac.Volume().WithName(configVolume).WithConfigMap(
				corev1ac.ConfigMapVolumeSource().WithName(gatewayName(mcp)).WithDefaultMode(0o444)),
			clerkAccess.volume,
			corev1ac.Volume().WithName(tmpVolume).WithEmptyDir(corev1ac.EmptyDirVolumeSource()),
		)
	if opts.brokered() {
		pod.WithServiceAccountName(gatewayName(mcp))
	}
	if credentials != nil {
		pod.WithVolumes(corev1ac.Volume().WithName(credentialsVolume).WithProjected(credentials))
	}
	if tracingHeaders != nil {
		pod.WithVolumes(tracingHeaders)
	}
	spec := appsv1ac.DeploymentSpec()
	if mcp.Spec.Gateway.Autoscaling == nil {
		// With an autoscaler the field is left out, so the autoscaler owns it.
		spec.WithReplicas(replicas)
	}
	return appsv1ac.Deployment(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(spec.
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(mcp))).
			// Surge before removing a pod, so a rollout never drops capacity.
			WithStrategy(appsv1ac.DeploymentStrategy().
				WithType("RollingUpdate").
				WithRollingUpdate(appsv1ac.RollingUpdateDeployment().
					WithMaxUnavailable(intstr.FromInt32(0)).
					WithMaxSurge(intstr.FromInt32(1)))).
			WithTemplate(corev1ac.PodTemplateSpec().
				WithLabels(objectLabels(mcp)).
				WithAnnotations(map[string]string{config.ConfigHashAnnotation: hash}).
				WithSpec(pod)))
}

func httpProbe(path string) *corev1ac.ProbeApplyConfiguration {
	return corev1ac.Probe().WithHTTPGet(
		corev1ac.HTTPGetAction().WithPath(path).WithPort(intstr.FromString(healthPortName)))
}

// buildPodDisruptionBudget keeps all but one gateway pod up during voluntary
// disruptions. It is built only when there is more than one replica.
// buildHorizontalPodAutoscaler scales the gateway Deployment on CPU use.
func buildHorizontalPodAutoscaler(mcp *mcpv1.McpServer) *autoscalingv2ac.HorizontalPodAutoscalerApplyConfiguration {
	as := mcp.Spec.Gateway.Autoscaling
	minReplicas, target := max(as.MinReplicas, 1), as.TargetCPUUtilizationPercentage
	if target == 0 {
		target = 80
	}
	return autoscalingv2ac.HorizontalPodAutoscaler(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(autoscalingv2ac.HorizontalPodAutoscalerSpec().
			WithScaleTargetRef(autoscalingv2ac.CrossVersionObjectReference().
				WithAPIVersion("apps/v1").WithKind("Deployment").WithName(gatewayName(mcp))).
			WithMinReplicas(minReplicas).
			WithMaxReplicas(as.MaxReplicas).
			WithMetrics(autoscalingv2ac.MetricSpec().
				WithType(autoscalingv2.ResourceMetricSourceType).
				WithResource(autoscalingv2ac.ResourceMetricSource().
					WithName(corev1.ResourceCPU).
					WithTarget(autoscalingv2ac.MetricTarget().
						WithType(autoscalingv2.UtilizationMetricType).
						WithAverageUtilization(target)))))
}

// minGatewayReplicas is the fewest pods the gateway runs with: the
// autoscaler's floor, or the fixed replica count.
func minGatewayReplicas(mcp *mcpv1.McpServer) int32 {
	if as := mcp.Spec.Gateway.Autoscaling; as != nil {
		return max(as.MinReplicas, 1)
	}
	if r := mcp.Spec.Gateway.Replicas; r != nil {
		return *r
	}
	return 1
}

func buildPodDisruptionBudget(mcp *mcpv1.McpServer) *policyv1ac.PodDisruptionBudgetApplyConfiguration {
	return policyv1ac.PodDisruptionBudget(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(policyv1ac.PodDisruptionBudgetSpec().
			WithMaxUnavailable(intstr.FromInt32(1)).
			WithSelector(metav1ac.LabelSelector().WithMatchLabels(selectorLabels(mcp))))
}

// buildService exposes the gateway inside the cluster on port 80.
func buildService(mcp *mcpv1.McpServer) *corev1ac.ServiceApplyConfiguration {
	return corev1ac.Service(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(corev1ac.ServiceSpec().
			WithType(corev1.ServiceTypeClusterIP).
			WithSelector(selectorLabels(mcp)).
			WithPorts(corev1ac.ServicePort().
				WithName(trafficPortName).
				WithProtocol(corev1.ProtocolTCP).
				WithPort(servicePort).
				WithTargetPort(intstr.FromString(trafficPortName))))
}

// buildIngress routes the MCP path and its protected resource metadata path
// on spec.ingress.host to the gateway Service. Exact paths let several
// McpServers share one host under different paths.
func buildIngress(mcp *mcpv1.McpServer) *networkingv1ac.IngressApplyConfiguration {
	spec := mcp.Spec.Ingress
	path := mcpPath(mcp)
	backend := networkingv1ac.IngressBackend().WithService(
		networkingv1ac.IngressServiceBackend().
			WithName(gatewayName(mcp)).
			WithPort(networkingv1ac.ServiceBackendPort().WithName(trafficPortName)))
	httpPath := func(p string) *networkingv1ac.HTTPIngressPathApplyConfiguration {
		return networkingv1ac.HTTPIngressPath().WithPath(p).WithPathType(networkingv1.PathTypeExact).WithBackend(backend)
	}

	ingSpec := networkingv1ac.IngressSpec().
		WithRules(networkingv1ac.IngressRule().
			WithHost(spec.Host).
			WithHTTP(networkingv1ac.HTTPIngressRuleValue().
				WithPaths(httpPath(path), httpPath(config.ResourceMetadataPath(path)))))
	if spec.ClassName != nil {
		ingSpec.WithIngressClassName(*spec.ClassName)
	}
	if spec.TLS != nil {
		ingSpec.WithTLS(networkingv1ac.IngressTLS().WithHosts(spec.Host).WithSecretName(spec.TLS.SecretName))
	}

	ing := networkingv1ac.Ingress(gatewayName(mcp), mcp.Namespace).
		WithLabels(objectLabels(mcp)).
		WithOwnerReferences(ownerReference(mcp)).
		WithSpec(ingSpec)
	if len(spec.Annotations) > 0 {
		ing.WithAnnotations(spec.Annotations)
	}
	return ing
}
