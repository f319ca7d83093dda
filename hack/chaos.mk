# The fault suite (test/chaos): a room of two APIs and two streamers under
# steady posting with SSE and WebSocket readers, through freezes, partitions
# and crashes of Postgres, Redis and the parts, each fault lasting
# CHAOS_FAULT (default 30s; make test runs the same scenarios with 3 s
# faults). Prints a verdict per scenario and "chaos: N passed, N failed".
.PHONY: chaos
chaos: ## the fault suite with 30 s faults: a verdict per scenario, then "chaos: N passed, N failed"
	@hack/services.sh
	CHATR_CHAOS_FAULT=$${CHAOS_FAULT:-30s} CHATR_TEST_STRICT=1 $(GO) test -count=1 -v -timeout 60m -run TestChaos ./test/chaos/
