# mcpgate Makefile. `make help` lists the targets.

# Version stamped into the binary and used as the default image tag.
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null)
DATE    ?= $(shell date -u +%Y-%m-%dT%H:%M:%SZ)
IMG     ?= ghcr.io/mcpgate/mcpgate:$(VERSION)

# Kubernetes version of the local control plane used by the tests.
ENVTEST_K8S_VERSION ?= 1.36.3

# How long `make fuzz` runs each fuzz target.
FUZZTIME ?= 30s

GO              ?= go
CONTROLLER_GEN  ?= $(GO) tool -modfile=hack/tools/go.mod controller-gen
LDFLAGS         := -s -w \
	-X github.com/mcpgate/mcpgate/internal/version.Version=$(VERSION) \
	-X github.com/mcpgate/mcpgate/internal/version.Commit=$(COMMIT) \
	-X github.com/mcpgate/mcpgate/internal/version.Date=$(DATE)

SHELL := /usr/bin/env bash -o pipefail
.SHELLFLAGS := -ec
.DEFAULT_GOAL := help

##@ General

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*##"; printf "\nUsage:\n  make \033[36m<target>\033[0m\n"} /^[a-zA-Z_0-9-]+:.*?##/ { printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2 } /^##@/ { printf "\n\033[1m%s\033[0m\n", substr($$0, 5) } ' $(MAKEFILE_LIST)

##@ Development

.PHONY: manifests
manifests: ## Generate the CRD and RBAC manifests from the API and controller markers.
	$(CONTROLLER_GEN) rbac:roleName=mcpgate-manager crd paths="./api/..." paths="./controllers/..." \
		output:crd:artifacts:config=config/crd/bases output:rbac:artifacts:config=config/rbac
	@# The Helm chart ships the very same CRDs and manager rules.
	rm -f charts/mcpgate/files/crds/*.yaml
	cp config/crd/bases/*.yaml charts/mcpgate/files/crds/
	cp config/rbac/role.yaml charts/mcpgate/files/rbac/manager-role.yaml

.PHONY: generate
generate: ## Generate the DeepCopy methods of the API types and docs/api-reference.md from their doc comments.
	$(CONTROLLER_GEN) object:headerFile="hack/boilerplate.go.txt" paths="./api/..."
	$(GO) tool -modfile=hack/tools/go.mod crd-ref-docs --source-path=./api/v1alpha1 --renderer=markdown \
		--config=hack/api-docs/config.yaml --templates-dir=hack/api-docs/templates \
		--output-path=docs/api-reference.md --log-level=ERROR

.PHONY: fmt
fmt: ## Run gofmt on the code.
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## Run go vet.
	$(GO) vet ./...

.PHONY: lint
lint: ## Run golangci-lint (pinned in hack/tools/lint, built into the cache) with .golangci.yml.
	"$$(hack/setup-golangci-lint.sh)" run ./...

.PHONY: verify
verify: ## Fail when gofmt would change a file or the generated files are stale.
	@unformatted=$$(gofmt -l $$(git ls-files '*.go')); \
	if [ -n "$$unformatted" ]; then echo "gofmt would change: $$unformatted"; exit 1; fi
	hack/verify-generated.sh

.PHONY: envtest
envtest: ## Build or fetch etcd, kube-apiserver and kubectl for the tests (cached outside the repo).
	@hack/setup-envtest.sh >/dev/null

.PHONY: demo
demo: ## Run mcpgate locally: control plane, operator, Clerk emulator, sample server, gateway (DEMO_ONESHOT=1: one scripted client session, then exit).
	$(GO) run ./hack/demo $(ARGS)

.PHONY: test
test: lint vet verify envtest helm promql otlp-receiver ## Run every check and test (what CI runs): lint, vet, generated files, and the three tiers below in one go test run.
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" HELM="$$(hack/setup-helm.sh)" PROMQL="$$(hack/setup-promql.sh)" OTLP_RECEIVER="$$(hack/setup-otlp-receiver.sh)" $(GO) test -race ./... -count=1 -timeout 20m $(TESTFLAGS)

.PHONY: test-unit
test-unit: ## Run the unit tests: every package whose tests need no control plane, helm or node (hack/test-packages.sh).
	@# KUBEBUILDER_ASSETS and HELM point nowhere, so that a package which does
	@# need them fails here at once instead of building them.
	pkgs=$$(hack/test-packages.sh unit); \
	KUBEBUILDER_ASSETS=/make-test-unit-has-no-control-plane HELM=/make-test-unit-has-no-helm \
		OTLP_RECEIVER="$$(hack/setup-otlp-receiver.sh)" $(GO) test -race $$pkgs -count=1 -timeout 10m $(TESTFLAGS)

.PHONY: test-integration
test-integration: envtest ## Run the tests that start a local control plane (envtest): controllers, cmd/mcpgate, hack/bench and the like.
	pkgs=$$(hack/test-packages.sh integration); \
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" OTLP_RECEIVER="$$(hack/setup-otlp-receiver.sh)" $(GO) test -race $$pkgs -count=1 -timeout 20m $(TESTFLAGS)

.PHONY: test-e2e
test-e2e: envtest helm promql ## Run test/...: install, fault, end-to-end, client-compatibility, image and dashboard tests (node and npm for the TypeScript clients).
	pkgs=$$(hack/test-packages.sh e2e); \
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" HELM="$$(hack/setup-helm.sh)" PROMQL="$$(hack/setup-promql.sh)" $(GO) test -race $$pkgs -count=1 -timeout 20m $(TESTFLAGS)

.PHONY: fuzz
fuzz: ## Run every fuzz target for FUZZTIME each (default 30s); make test runs their seed corpora.
	@set -e; \
	for dir in $$(grep -rl --include='*_test.go' --exclude-dir=.git --exclude-dir=testdata '^func Fuzz' . | xargs -n1 dirname | sort -u); do \
		for name in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go | sed 's/^func //' | sort -u); do \
			echo "$(GO) test $$dir -run '^$$' -fuzz '^$$name\$$' -fuzztime $(FUZZTIME)"; \
			$(GO) test $$dir -run '^$$' -fuzz "^$$name\$$" -fuzztime $(FUZZTIME); \
		done; \
	done

.PHONY: helm
helm: ## Build helm (pinned) from its Go module into the cache, outside the repository.
	@hack/setup-helm.sh >/dev/null

.PHONY: promql
promql: ## Build the PromQL checker (hack/tools/promql, Prometheus' parser) into the cache, for the dashboard and alert test.
	@hack/setup-promql.sh >/dev/null
	cd hack/tools/promql && $(GO) test ./... -count=1

.PHONY: otlp-receiver
otlp-receiver: ## Build the OTLP trace receiver (hack/tools/otlpreceiver: the OpenTelemetry Collector's otlpreceiver) into the cache, for the tracing tests and the bench.
	@hack/setup-otlp-receiver.sh >/dev/null

.PHONY: bench
bench: envtest ## Measure the gateway (vs direct and a bare proxy), 1000 SSE streams and the operator at 1000 McpServers; writes bench/results.{md,json} (BENCHFLAGS for options, -h lists them).
	KUBEBUILDER_ASSETS="$$(hack/setup-envtest.sh)" $(GO) run ./hack/bench -out bench $(BENCHFLAGS)

##@ Cluster (a real node; needs root)

.PHONY: test-cluster
test-cluster: helm ## Run test/cluster on a single-node cluster from hack/cluster (built and cached on first use), then tear it down; MCPGATE_SKIP_CLUSTER=1 skips outside CI.
	hack/cluster/test.sh

.PHONY: cluster-up
cluster-up: ## Start the single-node cluster and leave it running; prints the KUBECONFIG and what to run next.
	hack/cluster/up.sh

.PHONY: cluster-down
cluster-down: ## Stop the cluster and remove everything it made (processes, mounts, namespaces, interfaces, rules).
	hack/cluster/down.sh

##@ Build

.PHONY: build
build: ## Build bin/mcpgate.
	CGO_ENABLED=0 $(GO) build -trimpath -ldflags "$(LDFLAGS)" -o bin/mcpgate ./cmd/mcpgate

.PHONY: run
run: manifests generate ## Run the manager against the cluster of the current kubeconfig.
	$(GO) run -ldflags "$(LDFLAGS)" ./cmd/mcpgate manager $(ARGS)

.PHONY: docker-build
docker-build: ## Build the image IMG with the Dockerfile (needs a Docker engine).
	@command -v docker >/dev/null && docker info >/dev/null 2>&1 || { echo "docker-build needs a running Docker engine" >&2; exit 1; }
	docker build --build-arg VERSION=$(VERSION) --build-arg COMMIT=$(COMMIT) --build-arg DATE=$(DATE) -t $(IMG) .

.PHONY: docker-push
docker-push: ## Push the image IMG.
	docker push $(IMG)

.PHONY: release
release: manifests helm ## Write dist/install.yaml (single-file install of IMG) and the packaged Helm chart.
	HELM="$$(hack/setup-helm.sh)" hack/release.sh --version $(VERSION) --image $(IMG) --out dist

##@ Deployment

.PHONY: install
install: manifests ## Install the CRD into the cluster of the current kubeconfig.
	kubectl apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## Remove the CRD (and with it every McpServer) from the cluster.
	kubectl delete --ignore-not-found -k config/crd

.PHONY: deploy
deploy: manifests ## Deploy the operator (image IMG) into the cluster of the current kubeconfig.
	hack/render-install.sh $(IMG) | kubectl apply --server-side -f -

.PHONY: undeploy
undeploy: ## Remove the operator from the cluster.
	kubectl delete --ignore-not-found -k config/default
