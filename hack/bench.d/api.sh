#!/usr/bin/env bash
# REST API throughput: one in-process API server with relaxed limits on the
# local Postgres and Redis, many agents and concurrent clients posting.
# Prints posts/s and latency p50/p99 for each of RUNS runs (default 3; the
# median is the figure to quote on a shared, noisy machine).
# Extra arguments go to apibench, e.g. `hack/bench.d/api.sh -clients 64`.
set -euo pipefail
cd "$(dirname "$0")/../.."
bin=$(mktemp -d)/apibench
trap 'rm -rf "$(dirname "$bin")"' EXIT
go build -o "$bin" ./cmd/apibench
for i in $(seq 1 "${RUNS:-3}"); do
  echo "-- api run $i"
  "$bin" -duration "${DURATION:-10s}" "$@"
done
