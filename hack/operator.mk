# The operator's targets (docs/operator.md). The main Makefile includes hack/*.mk.
GO        ?= go
TESTFLAGS ?= -race -count=1 -timeout 20m
OPERATOR_PKGS ?= ./api/... ./controllers/... ./cmd/chatr-operator/... ./test/operator/...

.PHONY: generate
generate: ## regenerate the API's deepcopy functions (controller-gen)
	@hack/generate-operator.sh generate

.PHONY: manifests
manifests: ## regenerate the CRD, the RBAC role and the Helm chart's copies of both (controller-gen)
	@hack/generate-operator.sh manifests

.PHONY: verify-generated
verify-generated: ## fail if generated files differ from what the code generates
	@hack/verify-generated.sh

.PHONY: test-operator
test-operator: ## the operator's tests against a real kube-apiserver (envtest), with -race
	@assets=$$(hack/envtest-assets.sh) || { echo "test-operator: hack/envtest-assets.sh failed, so the envtest suites cannot run" >&2; exit 1; }; \
	helm=$$(hack/tools-bin.sh helm) || { echo "test-operator: hack/tools-bin.sh helm failed" >&2; exit 1; }; \
	KUBEBUILDER_ASSETS=$$assets CHATR_HELM=$$helm CHATR_TEST_STRICT=1 $(GO) test $(TESTFLAGS) $(OPERATOR_PKGS)
