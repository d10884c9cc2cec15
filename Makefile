# csi-thin build, test and release tasks. `make help` lists them.

GO        ?= go
BIN       := bin
PKGS      := ./...
STATICCHECK_VERSION := v0.8.2

.PHONY: help build check test test-unit test-kernel fuzz lint fmt clean deps-kernel

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

build: ## compile every package and command
	CGO_ENABLED=0 $(GO) build $(PKGS)

check: lint test test-kernel ## everything CI runs: lint, unit tests, kernel tests

test: test-unit ## unit tests (kernel tests skip here: see test-kernel)

test-unit: ## unit tests with the race detector
	$(GO) test -race -count=1 $(PKGS)

test-kernel: ## tests and benchmarks inside a real kernel with dm-thin (User-Mode Linux)
	test/kernel/test.sh

fuzz: ## run every parser fuzz target for FUZZTIME each (default 20s)
	@for f in $$($(GO) test ./pkg/devmapper -list 'Fuzz.*' | grep ^Fuzz); do \
		echo "fuzz $$f"; $(GO) test ./pkg/devmapper -run '^$$' -fuzz "^$$f$$" -fuzztime $${FUZZTIME:-20s} || exit 1; \
	done

lint: ## gofmt, go vet and staticcheck
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) run honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION) $(PKGS)

fmt: ## format the code
	gofmt -w $$(git ls-files '*.go')

deps-kernel: ## install the kernel harness's packages (Debian or Ubuntu, as root)
	apt-get update
	DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
		user-mode-linux kmod e2fsprogs xfsprogs thin-provisioning-tools util-linux iproute2

clean: ## remove build output
	rm -rf $(BIN)

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
