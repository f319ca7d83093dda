#!/usr/bin/env bash
# REST API latency at a fixed arrival rate (open loop, no coordinated
# omission) against a separate `chatrd api` process: the server is pinned to
# CPU 0 and the load tool (apibench -rate) to CPU 1 with taskset; Postgres and
# Redis are not pinned. For each rate, RUNS runs (default 3) print the achieved
# rate, p50/p90/p99/max from each post's due time, the errors by kind and the
# server's CPU per post (/proc/<pid>/stat utime+stime), then the medians.
#
# The machine may be shared: before each run the script waits up to
# QUIET_WAIT seconds (default 60) for a 1-minute load average below LOAD_MAX
# (1.5), prints `uptime`, and marks a run that started on a busier machine
# BUSY; the medians say how many runs were busy. Figures from busy runs are
# not quiet-machine figures.
#   RATES ("1000 3000")  posts/s      DURATION (10s)  measured time per run
#   RUNS (3)                          AGENTS (200)    agents, registered through the API
set -euo pipefail
cd "$(dirname "$0")/../.."
rates=${RATES:-1000 3000}
runs=${RUNS:-3}
dur=${DURATION:-10s}
quiet_wait=${QUIET_WAIT:-60}
load_max=${LOAD_MAX:-1.5}
out=$(mktemp -d)
go build -o "$out/chatrd" ./cmd/chatrd
go build -o "$out/apibench" ./cmd/apibench
schema="apibench_$(date +%s)_$$"
listen=127.0.0.1:18091
srv_cpu=() load_cpu=()
if (( $(nproc) >= 2 )) && command -v taskset >/dev/null; then
  srv_cpu=(taskset -c 0) load_cpu=(taskset -c 1)
else
  echo "fewer than 2 CPUs or no taskset: server and load tool are not pinned"
fi
# The benchmark's agents post far beyond the contract's limits: the server
# gets limits no benchmark reaches (the limiter still runs on every request).
eval "$("$out/apibench" -print-server-env)"
CHATR_DB_SCHEMA=$schema CHATR_LISTEN=$listen CHATR_LOG_LEVEL=warn CHATR_POD_NAME=apibench \
  "${srv_cpu[@]}" "$out/chatrd" api &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "chatr:{$schema}:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP   # so that a stopped run still cleans up
for _ in $(seq 1 100); do
  curl -fsS "http://$listen/readyz" >/dev/null 2>&1 && break
  sleep 0.1
done
curl -fsS "http://$listen/readyz" >/dev/null
load1() { cut -d' ' -f1 /proc/loadavg; }
quiet() { awk -v l="$(load1)" -v m="$load_max" 'BEGIN{exit !(l < m)}'; }
median() { sort -g | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
for rate in $rates; do
  echo "-- open loop, $rate posts/s, server pid $pid on ${srv_cpu[*]:-any CPU}, load tool on ${load_cpu[*]:-any CPU}"
  busy=0
  for i in $(seq 1 "$runs"); do
    for _ in $(seq 1 "$quiet_wait"); do quiet && break; sleep 1; done
    up=$(uptime)
    if quiet; then tag=quiet; else tag=BUSY; busy=$((busy + 1)); fi
    echo "- run $i of $runs ($tag:$up)"
    "${load_cpu[@]}" "$out/apibench" -url "http://$listen" -pid "$pid" -rate "$rate" -duration "$dur" \
      -agents "${AGENTS:-200}" | tee "$out/run.$i" || true
  done
  f() { for i in $(seq 1 "$runs"); do grep -oE "$1" "$out/run.$i" | head -1 | awk -v n="$2" '{print $n}' | tr -d 'ms'; done | median; }
  echo "== $rate posts/s, median of $runs runs ($busy started with load >= $load_max):" \
    "achieved $(f '[0-9]+ posts/s achieved' 1)/s, p50 $(f 'p50 [0-9.]+ms' 2) ms, p99 $(f 'p99 [0-9.]+ms' 2) ms," \
    "server $(f 'server cpu: [0-9.]+' 3) µs CPU per post; $(uptime)"
done
