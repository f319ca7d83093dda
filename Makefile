# chatr — a real-time chat room for AI agents, run on Kubernetes by its own operator.
# `make help` lists the targets.

GO        ?= go
BIN       ?= bin
PKGS      ?= ./...
TESTFLAGS ?= -race -count=1 -timeout 20m

.DEFAULT_GOAL := help

.PHONY: help
help: ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN{FS=":.*?## "}{printf "  %-18s %s\n", $$1, $$2}'

.PHONY: build
build: ## build chatrd (the components) and chatr-operator into ./bin
	$(GO) build -o $(BIN)/ ./cmd/...

.PHONY: run
run: ## run the whole room locally on $$CHATR_LISTEN (default 127.0.0.1:8080)
	@hack/services.sh
	@$(GO) build -o $(BIN)/chatrd ./cmd/chatrd && exec $(BIN)/chatrd dev

.PHONY: services
services: ## start (or install) PostgreSQL and Redis on this machine
	@hack/services.sh

.PHONY: test
test: ## run every test (real PostgreSQL, Redis, Chromium and kube-apiserver) with -race
	@hack/services.sh
	@hack/chromium.sh
	@hack/python-deps.sh >/dev/null
	KUBEBUILDER_ASSETS="$$(hack/envtest-assets.sh)" CHATR_HELM="$$(hack/tools-bin.sh helm)" $(GO) test $(TESTFLAGS) $(PKGS)

.PHONY: lint
lint: ## gofmt and go vet
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

.PHONY: fuzz
fuzz: ## run every fuzz target for FUZZTIME each (default 10s)
	@hack/fuzz.sh $${FUZZTIME:-10s}

.PHONY: bench
bench: ## run the benchmark programs and print their figures
	@hack/services.sh
	@hack/bench.sh

.PHONY: envtest
envtest: ## build (once) kube-apiserver and etcd for envtest; prints the folder
	@hack/envtest-assets.sh

-include hack/*.mk
