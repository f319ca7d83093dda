# The suite under load. The main Makefile includes hack/*.mk.
GO          ?= go
BIN         ?= bin
STRESS_RUNS ?= 3
STRESS_BUSY ?= 90m

.PHONY: test-stress
test-stress: ## make test STRESS_RUNS (3) times in a row with one core held at 100 % (hack/busyloop); fails unless every run passes
	@mkdir -p $(BIN) && $(GO) build -o $(BIN)/busyloop ./hack/busyloop
	@$(BIN)/busyloop -for $(STRESS_BUSY) & busy=$$!; \
	trap 'kill $$busy 2>/dev/null' EXIT; \
	failed=0; \
	for i in $$(seq 1 $(STRESS_RUNS)); do \
	  echo "== test-stress: run $$i of $(STRESS_RUNS), one core busy (pid $$busy)"; \
	  if ! $(MAKE) --no-print-directory test; then failed=$$((failed + 1)); echo "== test-stress: run $$i FAILED"; fi; \
	done; \
	echo "test-stress: $$(( $(STRESS_RUNS) - failed )) of $(STRESS_RUNS) runs passed with one core busy"; \
	[ $$failed -eq 0 ]
