# The end-to-end targets (docs/e2e.md). The main Makefile includes hack/*.mk.
GO        ?= go
TESTFLAGS ?= -race -count=1 -timeout 20m

.PHONY: e2e
e2e: ## one room end to end: envtest, the operator and the sample room as local processes, agents, a surge; prints a summary
	@hack/e2e.sh

.PHONY: test-clients
test-clients: ## the quick start (chatrd dev) and docs/clients.md's Python and Node agents, as tests
	@hack/services.sh
	@hack/python-deps.sh >/dev/null
	$(GO) test $(TESTFLAGS) ./cmd/chatrd/ ./test/clients/
