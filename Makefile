# chatr — a real-time chat room for AI agents, run on Kubernetes by its own operator.
# `make help` lists the targets.

GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 20m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z0-9_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

# The version stamped into every binary (internal/version, `chatrd version`,
# chatr_build_info): git describe of the tree and its commit. Override with
# make VERSION=... COMMIT=...
ifeq ($(origin VERSION),undefined)
VERSION := $(shell git describe --tags --always --dirty 2>/dev/null || echo devel)
endif
ifeq ($(origin COMMIT),undefined)
COMMIT := $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
endif
VERSION_LDFLAGS = -X github.com/chatr-ai/chatr/internal/version.Version=$(VERSION) -X github.com/chatr-ai/chatr/internal/version.Commit=$(COMMIT)

.PHONY: build
build: ## build chatrd (the components) and chatr-operator into ./bin, stamped with the version
	$(GO) build -ldflags "$(VERSION_LDFLAGS)" -o $(BIN)/ ./cmd/...

.PHONY: run
run: ## run the whole room locally on $$CHATR_LISTEN (default 127.0.0.1:8080)
	@hack/services.sh
	@$(GO) build -o $(BIN)/chatrd ./cmd/chatrd && exec $(BIN)/chatrd dev

.PHONY: services
services: ## start (or install) PostgreSQL and Redis on this machine
	@hack/services.sh

# make test runs go test -json through hack/testreport, which prints every
# failed test's output in full, the skips, a table per package and last
# "N passed, N failed, N skipped"; hack/gotest.sh adds the nested Go modules
# (test/monitoring). CHATR_TEST_STRICT=1 makes a missing
# prerequisite (envtest, Chromium, Node, Python) fail instead of skip; under
# CI=true a skip not in hack/skip-allowlist.txt fails the run. A failing
# hack/envtest-assets.sh or tools-bin.sh fails the target (docs/testing.md).
.PHONY: test
test: ## run every test (real PostgreSQL, Redis, Chromium and kube-apiserver) with -race; ends with "N passed, N failed, N skipped"
	@hack/services.sh
	@hack/chromium.sh
	@hack/python-deps.sh >/dev/null
	@mkdir -p $(BIN) && $(GO) build -o $(BIN)/testreport ./hack/testreport
	@assets=$$(hack/envtest-assets.sh) || { echo "make test: hack/envtest-assets.sh failed, so the envtest suites cannot run" >&2; exit 1; }; \
	helm=$$(hack/tools-bin.sh helm) || { echo "make test: hack/tools-bin.sh helm failed" >&2; exit 1; }; \
	echo "KUBEBUILDER_ASSETS=$$assets CHATR_HELM=$$helm CHATR_TEST_STRICT=1 go test -json $(TESTFLAGS) $(PKGS)"; \
	KUBEBUILDER_ASSETS=$$assets CHATR_HELM=$$helm CHATR_TEST_STRICT=1 \
	  $(BIN)/testreport -allow hack/skip-allowlist.txt -- env GO=$(GO) hack/gotest.sh "$(TESTFLAGS)" "$(PKGS)"

.PHONY: lint
lint: ## gofmt and go vet (also the real-node test, behind its build tag)
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)
	$(GO) vet -tags realnode ./test/realnode/
	cd test/monitoring && $(GO) vet ./...
	cd hack/seccomp && $(GO) vet ./...

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	@hack/fuzz.sh $${FUZZTIME:-10s}

.PHONY: bench
bench: ## run the benchmark programs and print their figures
	@hack/services.sh
	@hack/bench.sh

.PHONY: bench-compare
bench-compare: ## the pinned benchmark: servers (api, streamer, Postgres, Redis) on CPU 0, load tool on CPU 1 behind a veth pair; medians of RUNS (5) interleaved runs with CPU per delivery and per post; COMPARE=centrifugo adds Centrifugo side by side
	@hack/services.sh
	@hack/bench-compare.sh

.PHONY: bench-fleet
bench-fleet: ## STREAMS (100,000) SSE streams over STREAMERS (6) streamer processes and LISTENERS (6) load processes, a broadcast at each of RATES ("1 10") msg/s for DURATION (20) s: exact delivery, p99 fan-out, streamer RSS, CPU per delivery, Redis subscriptions
	@hack/services.sh
	@hack/bench-fleet.sh

.PHONY: envtest
envtest: ## build (once) kube-apiserver and etcd for envtest; prints the folder
	@hack/envtest-assets.sh

-include hack/*.mk
