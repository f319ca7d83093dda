#!/usr/bin/env bash
# The streamer's benchmark: builds chatrd and streambench, starts one
# streamer on a fresh room, and runs streambench's scenarios against it
# (load tool and server share this machine's cores). Prints the figures;
# exits non-zero if a delivery check fails.
#   STREAMBENCH_IDLE_CONNS (20000)  idle connections for the RSS figure
#   STREAMBENCH_DURATION (10s)      publishing time per scenario
set -euo pipefail
cd "$(dirname "$0")/../.."
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"
# The hard limit on open files may be below 20,000 (containers): stay under it.
idle=${STREAMBENCH_IDLE_CONNS:-20000}
hard=$(ulimit -n)
if (( idle > hard - 200 )); then echo "ulimit -n is $hard: measuring $((hard - 200)) idle connections instead of $idle"; idle=$((hard - 200)); fi
dur=${STREAMBENCH_DURATION:-10s}
out=$(mktemp -d)
go build -o "$out/chatrd" ./cmd/chatrd
go build -o "$out/streambench" ./cmd/streambench
schema="bench_$(date +%s)_$$"
export CHATR_DB_SCHEMA=$schema
export CHATR_LISTEN=127.0.0.1:18090
export CHATR_POD_NAME=bench
export CHATR_MAX_CONNECTIONS=$((idle + 1000))
export CHATR_LOG_LEVEL=warn
start_server() {
  "$out/chatrd" streamer &
  pid=$!
  for _ in $(seq 1 100); do
    curl -fsS "http://$CHATR_LISTEN/readyz" >/dev/null 2>&1 && return
    sleep 0.1
  done
}
stop_server() { kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; }
start_server
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "chatr:{$schema}:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
bench() { "$out/streambench" -url "http://$CHATR_LISTEN" -pid "$pid" "$@"; }
echo "-- fan-out latency: 1,000 clients, 10 msg/s (goal p99 <= 10ms)"
bench -mode latency -conns 1000 -rate 10 -duration "$dur"
echo "-- throughput: 1,000 clients, full rate (goal >= 400,000 deliveries/s)"
bench -mode throughput -conns 1000 -duration "$dur"
echo "-- 1,000 simultaneous connects (goal: all served within 1s, no Postgres query)"
bench -mode connect -conns 1000
# A fresh process: the earlier scenarios' closed streams are still counted
# until the server's next ping finds them gone.
stop_server
start_server
echo "-- memory: $idle idle connections (goal <= 6 KiB RSS each)"
bench -mode idle -conns "$idle"
