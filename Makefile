# csi-thin build, test and release tasks. `make help` lists them.

GO        ?= go
BIN       := bin
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2

.PHONY: help build check test test-unit test-kernel bench-blockmaps bench-group-snapshots fuzz lint fmt clean setup deps-kernel

help: ## list the targets
	@grep -E '^[a-z0-9-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

build: ## compile every package and command
	CGO_ENABLED=0 $(GO) build $(PKGS)

check: lint test test-kernel ## everything CI runs: lint, unit tests, kernel tests

test: test-unit ## unit tests (kernel tests skip here: see test-kernel)

test-unit: ## unit tests with the race detector; the failpoints again as the crash tests build them
	$(GO) test -race -count=1 $(PKGS)
	$(GO) test -race -count=1 -tags failpoints ./internal/failpoint

test-kernel: ## tests and benchmarks inside a real kernel with dm-thin (User-Mode Linux)
	test/kernel/test.sh

bench-blockmaps: ## the snapshot block map reads against their goals: a 100 GiB delta, a 10 GiB allocated map (writes 21 GiB; not part of check)
	CSI_THIN_BENCH_BLOCKMAPS=1 KERNEL_TEST_PKGS=./pkg/thinpool KERNEL_TEST_RUN='^$$' KERNEL_TEST_BENCH=BenchmarkBlockMaps KERNEL_TEST_BENCHTIME=3x test/kernel/test.sh

bench-group-snapshots: ## the suspend window of group snapshots of 2, 8 and 32 volumes under writers, p50 and p99 (minutes; not part of check)
	CSI_THIN_BENCH_GROUPS=1 KERNEL_TEST_PKGS=./pkg/thinpool KERNEL_TEST_RUN='^$$' KERNEL_TEST_BENCH=BenchmarkGroupSnapshotSuspend KERNEL_TEST_BENCHTIME=200x test/kernel/test.sh

fuzz: ## run every parser fuzz target for FUZZTIME each (default 20s)
	@for p in ./pkg/devmapper ./pkg/thinmeta; do \
		for f in $$($(GO) test $$p -list 'Fuzz.*' | grep ^Fuzz); do \
			echo "fuzz $$p $$f"; $(GO) test $$p -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} || exit 1; \
		done; \
	done

lint: ## gofmt, go vet, staticcheck, the chart, the workflows and the arm64 build
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags failpoints ./internal/failpoint ./pkg/thinpool
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

setup: ## install the kernel harness's packages (Debian or Ubuntu; sudo unless root)
	$(SUDO) apt-get update
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		user-mode-linux kmod e2fsprogs xfsprogs thin-provisioning-tools util-linux iproute2 gcc libc6-dev \
		fio lvm2

deps-kernel: setup ## the same as setup

clean: ## remove build output
	rm -rf $(BIN)

.PHONY: cluster-node-smoke setup-cluster test-cluster
setup-cluster: setup ## the kernel harness's packages and the cluster node's: containerd, runc, CNI plugins, busybox, iptables
	$(SUDO) env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		containerd runc containernetworking-plugins busybox-static iptables openssl curl python3

cluster-node-smoke: ## boot a Kubernetes node (containerd, runc, CNI; no kubelet yet) in User-Mode Linux with the locally built images and check it (root; not part of check)
	GO=$(GO) test/cluster/node/smoke

# The performance figures against their baselines, in one boot of the
# kernel harness: docs/performance.md says what each measures. Every count
# is a flag of test/bench (BENCH_ARGS, e.g. BENCH_ARGS='--serial 256').
BENCH_SCALE ?= 10000
BENCH_ARGS  ?=

.PHONY: bench
bench: ## csi-thin against lvm2, the bare ioctls, bare mkfs and a linear device: one table (kernel harness; ~10 min; BENCH_SCALE volumes, BENCH_ARGS; not part of check)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/csi-thin ./cmd/csi-thin
	CGO_ENABLED=0 $(GO) build -o $(BIN)/csi-thin-bench ./test/bench
	test/bench/run --scale $(BENCH_SCALE) $(BENCH_ARGS)

.PHONY: demo
demo: ## walk a volume through create, stage, publish, write, snapshot, restore and read-back on a loopback pool (in the kernel harness without dm-thin here)
	CGO_ENABLED=0 $(GO) build -o $(BIN)/csi-thin ./cmd/csi-thin
	CGO_ENABLED=0 $(GO) build -o $(BIN)/csi-thin-demo ./test/demo
	@if [ -e /dev/mapper/control ] && [ "$$(id -u)" = 0 ]; then \
		$(BIN)/csi-thin-demo --binary $(BIN)/csi-thin; \
	else \
		echo "This kernel has no device-mapper, or we are not root: running the demo inside the kernel harness (test/kernel/run)."; \
		test/kernel/run -- $(BIN)/csi-thin-demo --binary $(BIN)/csi-thin; \
	fi

# The Helm chart, its manifests and the image. Helm is pinned and built from
# source into bin/ with go install.
HELM_VERSION := v4.3.1
HELM         := $(BIN)/helm
CHART        := deploy/helm/csi-thin
MANIFESTS    := deploy/kubernetes/csi-thin.yaml
IMAGE        ?= ghcr.io/csi-thin/csi-thin
IMAGE_TAG    ?= $(shell sed -n 's/^appVersion: *"*\([^"]*\)"*$$/\1/p' $(CHART)/Chart.yaml)

.PHONY: helm chart lint-chart test-chart manifests image

# The chart checks are part of test and lint.
test: test-chart
lint: lint-chart

$(BIN)/helm-$(HELM_VERSION):
	@mkdir -p $(BIN)/.helm-$(HELM_VERSION)
	GOBIN=$(abspath $(BIN))/.helm-$(HELM_VERSION) $(GO) install helm.sh/helm/v4/cmd/helm@$(HELM_VERSION)
	mv $(BIN)/.helm-$(HELM_VERSION)/helm $@
	rmdir $(BIN)/.helm-$(HELM_VERSION)

$(HELM): $(BIN)/helm-$(HELM_VERSION)
	ln -sfn helm-$(HELM_VERSION) $@

helm: $(HELM) ## install the pinned helm into bin/ (go install)

lint-chart: $(HELM) ## helm lint --strict of the chart, with its default and its test values
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --values deploy/testdata/values-full.yaml
	$(HELM) lint --strict $(CHART) --values deploy/testdata/values-minimal.yaml
	$(HELM) lint --strict $(CHART) --set snapshots.placement=cluster

test-chart: $(HELM) ## chart checks: lint, template, strict decoding, flags, RBAC, manifests drift
	HELM=$(abspath $(HELM)) $(GO) test -count=1 ./deploy/...

chart: lint-chart ## package the chart into bin/
	$(HELM) package $(CHART) --destination $(BIN)

manifests: $(HELM) ## render deploy/kubernetes/ from the chart for kubectl apply
	$(HELM) template csi-thin $(CHART) --namespace csi-thin --set namespace.create=true > $(MANIFESTS).tmp
	mv $(MANIFESTS).tmp $(MANIFESTS)

image: ## build the container image with docker (IMAGE, IMAGE_TAG: default the chart's appVersion)
	@command -v docker >/dev/null 2>&1 || { \
		echo "make image: docker is not installed; install Docker (or a docker-compatible CLI) to build the image from the Dockerfile"; exit 1; }
	@docker info >/dev/null 2>&1 || { \
		echo "make image: the docker CLI cannot reach a Docker engine (docker info failed); start one, or set DOCKER_HOST"; exit 1; }
	docker build --build-arg VERSION=$(IMAGE_TAG) --tag $(IMAGE):$(IMAGE_TAG) .

# The image's binary for linux/arm64, the release's second platform beside
# linux/amd64: the Dockerfile's build, cross-compiled, so that lint proves it
# builds without docker. Seconds with a warm build cache.
.PHONY: build-arm64
lint: build-arm64

build-arm64: ## cross-compile cmd/csi-thin for linux/arm64 as the Dockerfile does, into bin/linux-arm64/
	CGO_ENABLED=0 GOOS=linux GOARCH=arm64 $(GO) build -trimpath -o $(BIN)/linux-arm64/csi-thin ./cmd/csi-thin

# The GitHub workflows, checked by actionlint (pinned, built from source into
# bin/ with go install, as helm is), and their run: scripts by shellcheck
# when it is installed.
ACTIONLINT_VERSION := v1.7.12
ACTIONLINT         := $(BIN)/actionlint

.PHONY: lint-workflows
lint: lint-workflows

$(BIN)/actionlint-$(ACTIONLINT_VERSION):
	@mkdir -p $(BIN)/.actionlint-$(ACTIONLINT_VERSION)
	GOBIN=$(abspath $(BIN))/.actionlint-$(ACTIONLINT_VERSION) $(GO) install github.com/rhysd/actionlint/cmd/actionlint@$(ACTIONLINT_VERSION)
	mv $(BIN)/.actionlint-$(ACTIONLINT_VERSION)/actionlint $@
	rmdir $(BIN)/.actionlint-$(ACTIONLINT_VERSION)

$(ACTIONLINT): $(BIN)/actionlint-$(ACTIONLINT_VERSION)
	ln -sfn actionlint-$(ACTIONLINT_VERSION) $@

lint-workflows: $(ACTIONLINT) ## check .github/workflows with actionlint, and their scripts with shellcheck if installed
	@command -v shellcheck >/dev/null 2>&1 || \
		echo "lint-workflows: shellcheck is not installed, so the workflows' run: scripts are not checked (apt-get install shellcheck)"
	$(ACTIONLINT)

# The cluster harness's binaries: etcd, the Kubernetes components, kubectl and
# the CSI sidecars, at the versions pinned in test/cluster/go.mod, built from
# the Go module proxy into a directory keyed by those versions (under the Go
# build cache's parent), so a warm machine builds nothing. Not part of check.
.PHONY: cluster-bins
cluster-bins: ## build the cluster harness's Kubernetes, etcd and CSI sidecars (cached by version)
	GO=$(GO) test/cluster/build-bins

# The flows of test/cluster/flows against a real cluster: the control plane
# on the host, two nodes in User-Mode Linux, the chart installed with helm.
CLUSTER_NODES ?= 2
test-cluster: $(HELM) ## PVCs, pods and VolumeSnapshots in a real Kubernetes with two dm-thin nodes (root; CI runs it)
	$(GO) -C test/cluster test -trimpath -c -o $(CURDIR)/$(BIN)/cluster/flows.test ./flows
	GO=$(GO) HELM=$(abspath $(HELM)) test/cluster/cluster -n $(CLUSTER_NODES) -- \
		$(CURDIR)/$(BIN)/cluster/flows.test -test.v -test.timeout 60m $(if $(CLUSTER_TEST),-test.run '$(CLUSTER_TEST)')

# Kubernetes' external storage tests (e2e.test of test/cluster's Kubernetes,
# driven by test/cluster/testdriver.yaml; see test/cluster/e2e/README.md).
# test/cluster/e2e/run needs a running cluster with csi-thin installed:
# CLUSTER_RUN is the command that brings one up and runs its arguments with
# KUBECONFIG (and NETNS) set, then takes it down: test/cluster/cluster by
# default (root), which run gives the test images. E2E_ARGS go to run, e.g.
# -o DIR, -k N for one shard, -f REGEXP for some specs.
CLUSTER_RUN ?= test/cluster/cluster --
E2E_ARGS    ?=

.PHONY: e2e-bins e2e-dry-run e2e-images-check test-e2e test-e2e-ci

e2e-bins: ## build e2e.test and agnhost of test/cluster's Kubernetes (cached by version)
	GO=$(GO) test/cluster/build-e2e

e2e-dry-run: ## list the external storage specs of csi-thin, CI subset, fast and all (no cluster)
	GO=$(GO) test/cluster/e2e/run -n -s ci
	GO=$(GO) test/cluster/e2e/run -n -s fast
	GO=$(GO) test/cluster/e2e/run -n -s all

e2e-images-check: ## build the storage tests' images and run in a node what the specs run in them (root; not part of check)
	GO=$(GO) test/cluster/e2e/check-images

# e2e.test is built before the cluster comes up: the command runs inside
# the cluster's network namespace, where the Go module proxy is out of
# reach, and a cold module cache has none of the suite's modules.
test-e2e: $(HELM) ## every external storage spec of csi-thin, in shards, on a cluster (root; not part of check)
	e2e=$$(GO=$(GO) test/cluster/build-e2e) && E2E_BINS=$$e2e GO=$(GO) $(CLUSTER_RUN) test/cluster/e2e/run -s all $(E2E_ARGS)

test-e2e-ci: $(HELM) ## the CI subset of the external storage specs (one or two a capability), on a cluster (root; CI runs it)
	e2e=$$(GO=$(GO) test/cluster/build-e2e) && E2E_BINS=$$e2e GO=$(GO) $(CLUSTER_RUN) test/cluster/e2e/run -s ci $(E2E_ARGS)
