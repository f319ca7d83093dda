#!/usr/bin/env bash
# The pinned benchmark (make bench-compare): the whole server side — `chatrd
# api`, `chatrd streamer`, Postgres and Redis — on CPU 0, the load tool
# (streambench) on CPU 1, so that the tool's own cost (about as much per
# delivery as the server's) never takes the server's CPU. Posts go through
# the API at a fixed arrival rate (open loop); every delivery is checked
# (lost, duplicated, out of order) and timed from its post's due time.
#
# For each case, RUNS runs (default 5), interleaved (run 1 of every case,
# then run 2, ...) so that a noisy minute does not land on one case, then
# the median with [min–max] of: fan-out p50/p99 (post due -> client read),
# POST p50/p99, server CPU per delivery (all server processes, and the
# streamer alone) and per post (all, API, Postgres, Redis), from
# /proc/<pid>/stat utime+stime. The load average is printed before each run.
#
# Postgres and Redis are the machine's (hack/services.sh starts them): their
# processes are pinned to CPU 0 for the benchmark and given every CPU again
# at the end. Their CPU counts towards the server's.
#
#   RUNS (5)  DURATION (10s per run)  CASES (all: see below)
#   BUSY=1 also runs the 1,000-client case with a busy loop on CPU 0 beside
#   the servers (a neighbour taking half their core), through the API and
#   directly (insert + publish by the tool: latency from the commit, the
#   streamer's own part).
#   CHATR_STREAM_WRITES=writev measures the streamer without io_uring.
#   NET=veth (the default as root, with ip(8)) runs streambench's sockets in
#   a network namespace of their own behind a veth pair, with each side's
#   kernel receive work steered (RPS) to its own CPU: the server's on CPU 0,
#   the clients' on CPU 1, as on two machines. NET=lo runs over loopback,
#   where the server's every send also runs the client's TCP receive, and
#   the server is charged for it (the clients' acknowledgements run the
#   server's receive in the tool, the other way round).
#   COMPARE=centrifugo adds the same three cases against Centrifugo v6.9.1
#   (hack/centrifugo.sh builds it once) with its Redis engine on the same
#   Redis, also on CPU 0: cases cf1000x10, cf5000x2, cf5000x50. Its streams
#   are its unidirectional SSE, its posts its HTTP API's publish, its channel
#   keeps a history (as chatr keeps its messages, for resuming streams).
#   PROFILE=DIR first makes one extra run per case, not counted, recording
#   the streamer's and the API's CPU profiles (go tool pprof DIR/NAME.streamer.pprof).
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${RUNS:-5}
dur=${DURATION:-10s}
if (( $(nproc) < 2 )) || ! command -v taskset >/dev/null; then
  echo "bench-compare needs 2 CPUs and taskset: the server side and the load tool each get one" >&2
  exit 1
fi
# name conns posts/s: fan-out cost at two shapes, and posts under fan-out load.
cases=${CASES:-"c1000x10:1000:10 c5000x2:5000:2 c5000x50:5000:50"}
# A name with "direct" publishes like the API (insert, then publish) without
# it: the fan-out latency then runs from the commit, the streamer's own part.
if [[ ${BUSY:-0} == 1 ]]; then cases+=" c1000x10busy:1000:10 c1000x10directbusy:1000:10"; fi
case ${COMPARE:-} in
"") ;;
centrifugo) cases+=" cf1000x10:1000:10 cf5000x2:5000:2 cf5000x50:5000:50"; centrifugo_bin=$(hack/centrifugo.sh) ;;
*) echo "COMPARE=$COMPARE: only centrifugo is known" >&2; exit 1 ;;
esac

out=$(mktemp -d)
go build -o "$out/chatrd" ./cmd/chatrd
go build -o "$out/streambench" ./cmd/streambench
go build -o "$out/apibench" ./cmd/apibench
ulimit -n 200000 2>/dev/null || ulimit -n "$(ulimit -Hn)"

schema="cmp_$(date +%s)_$$"
net=${NET:-}
if [[ -z $net ]]; then
  net=lo
  if [[ $(id -u) == 0 ]] && command -v ip >/dev/null && ip netns list >/dev/null 2>&1; then net=veth; fi
fi
host=127.0.0.1
tool_net=()
ns= veth=
export CHATR_DB_SCHEMA=$schema CHATR_LOG_LEVEL=warn
pids=()
busy_pid=
all_cpus=0-$(( $(nproc) - 1 ))
pin_services() { # pin_services CPUS: every Postgres and Redis process
  for p in $(pgrep -x postgres || true) $(pgrep -x redis-server || true); do
    taskset -a -p -c "$1" "$p" >/dev/null 2>&1 || true
  done
}
cleanup() {
  [[ -n $busy_pid ]] && kill "$busy_pid" 2>/dev/null
  [[ -n $veth ]] && ip link del "$veth" 2>/dev/null
  [[ -n $ns ]] && ip netns del "$ns" 2>/dev/null
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pin_services "$all_cpus"
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "chatr:{$schema}:*" | xargs -r redis-cli del >/dev/null 2>&1 || true
  rm -rf "$out"
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

pin_services 0
case $net in
veth)
  # The clients' side: namespace chatr-bench-PID, 10.213.0.2, source
  # addresses from 10.214.0.0/16 (a local route there); the servers listen
  # on 10.213.0.1.
  ns=chatr-bench-$$ veth=cbs$$
  ip netns add "$ns"
  ip link add "$veth" type veth peer name cbc$$ netns "$ns"
  ip addr add 10.213.0.1/30 dev "$veth"
  ip link set "$veth" up
  ip -n "$ns" addr add 10.213.0.2/30 dev cbc$$
  ip -n "$ns" link set cbc$$ up
  ip -n "$ns" link set lo up
  ip -n "$ns" route add local 10.214.0.0/16 dev lo
  ip route add 10.214.0.0/16 via 10.213.0.2 dev "$veth"
  echo 1 >"/sys/class/net/$veth/queues/rx-0/rps_cpus"
  ip netns exec "$ns" sh -c "echo 2 >/sys/class/net/cbc$$/queues/rx-0/rps_cpus"
  host=10.213.0.1
  tool_net=(-netns "/run/netns/$ns" -source-net 10.214.0.0/16)
  ;;
lo) ;;
*) echo "NET=$net: want veth or lo" >&2; exit 1 ;;
esac
api=$host:18092
streamer=$host:18093
# Limits no benchmark reaches (the limiter still runs on every post).
eval "$("$out/apibench" -print-server-env)"
prof_api= prof_streamer=
if [[ -n ${PROFILE:-} ]]; then
  mkdir -p "$PROFILE"
  prof_api=127.0.0.1:18094 prof_streamer=127.0.0.1:18095
fi
CHATR_PPROF_LISTEN=$prof_api CHATR_LISTEN=$api CHATR_POD_NAME=cmp-api taskset -c 0 "$out/chatrd" api &
api_pid=$!; pids+=("$api_pid")
CHATR_PPROF_LISTEN=$prof_streamer CHATR_LISTEN=$streamer CHATR_POD_NAME=cmp-streamer CHATR_MAX_CONNECTIONS=30000 taskset -c 0 "$out/chatrd" streamer &
streamer_pid=$!; pids+=("$streamer_pid")
for addr in $api $streamer; do
  for _ in $(seq 1 100); do curl -fsS "http://$addr/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "http://$addr/readyz" >/dev/null
done
redis_pid=$(pgrep -x redis-server | head -1)
procs="streamer=$streamer_pid,api=$api_pid,redis=$redis_pid,postgres=comm:postgres"
cf_pid= cf_key= cf_secret=
if [[ -n ${centrifugo_bin:-} ]]; then
  cf_key=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n') cf_secret=$(head -c 16 /dev/urandom | od -An -tx1 | tr -d ' \n')
  cat >"$out/centrifugo.json" <<JSON
{
  "http_server": {"address": "$host", "port": 18096},
  "log": {"level": "warn"},
  "health": {"enabled": true},
  "client": {"token": {"hmac_secret_key": "$cf_secret"}},
  "http_api": {"key": "$cf_key"},
  "uni_sse": {"enabled": true},
  "channel": {"without_namespace": {"history_size": 1000, "history_ttl": "300s"}},
  "engine": {"type": "redis", "redis": {"address": ["redis://127.0.0.1:6379"], "prefix": "cf$schema"}}
}
JSON
  taskset -c 0 "$centrifugo_bin" --config "$out/centrifugo.json" &
  cf_pid=$!; pids+=("$cf_pid")
  for _ in $(seq 1 100); do curl -fsS "http://$host:18096/health" >/dev/null 2>&1 && break; sleep 0.1; done
  curl -fsS "http://$host:18096/health" >/dev/null
  echo "centrifugo $("$centrifugo_bin" version 2>/dev/null | head -1) on CPU 0 (pid $cf_pid), Redis engine"
fi
writes=$(curl -fsS "http://$streamer/metrics" | awk '$1 == "chatr_streamer_batched_writes" {print ($2 == 1 ? "io_uring batches" : "writev")}')
echo "servers on CPU 0 (streamer $streamer_pid writing with ${writes:-?}, api $api_pid, redis $redis_pid, postgres), streambench on CPU 1; $runs runs of $dur per case"
case $net in
veth) echo "clients in network namespace $ns behind a veth pair: the servers' network receive on CPU 0, the clients' on CPU 1" ;;
lo) echo "clients over loopback: each send runs the receiver's TCP input, so the server is charged for its clients' receive" ;;
esac

# one_run NAME CONNS RATE OUTFILE
one_run() {
  local via=(-api "http://$api")
  if [[ $1 == *direct* ]]; then via=(); fi
  if [[ $1 == cf* ]]; then
    taskset -c 1 "$out/streambench" -target centrifugo -url "http://$host:18096" -pid "$cf_pid" \
      -centrifugo-api-key "$cf_key" -centrifugo-secret "$cf_secret" "${tool_net[@]}" -server-cpu 0 \
      -mode latency -conns "$2" -rate "$3" -duration "$dur" -procs "centrifugo=$cf_pid,redis=$redis_pid" | tee "$4" || true
    return
  fi
  taskset -c 1 "$out/streambench" -url "http://$streamer" -pid "$streamer_pid" "${via[@]}" "${tool_net[@]}" -server-cpu 0 \
    -mode latency -conns "$2" -rate "$3" -duration "$dur" -procs "$procs" | tee "$4" || true
}
secs=$(awk -v d="$dur" 'BEGIN{sub(/s$/,"",d); print int(d)}')
if [[ -n ${PROFILE:-} ]]; then
  for c in $cases; do
    IFS=: read -r name conns rate <<<"$c"
    [[ $name == cf* ]] && continue   # the profiles are chatr's
    echo "- $name, profiled run (not counted)"
    # The profiles start once the clients are connected (about 1 s for 5,000).
    (sleep 2; curl -fsS -o "$PROFILE/$name.streamer.pprof" "http://$prof_streamer/debug/pprof/profile?seconds=$((secs - 2))") &
    p1=$!
    (sleep 2; curl -fsS -o "$PROFILE/$name.api.pprof" "http://$prof_api/debug/pprof/profile?seconds=$((secs - 2))") &
    p2=$!
    one_run "$name" "$conns" "$rate" "$out/profiled"
    wait "$p1" "$p2" || echo "a profile failed"
  done
fi
for i in $(seq 1 "$runs"); do
  for c in $cases; do
    IFS=: read -r name conns rate <<<"$c"
    if [[ $name == *busy ]]; then
      taskset -c 0 sh -c 'while :; do :; done' &
      busy_pid=$!
    fi
    echo "- $name run $i of $runs: $conns clients, $rate posts/s ($(uptime))"
    one_run "$name" "$conns" "$rate" "$out/$name.$i"
    if [[ -n $busy_pid ]]; then kill "$busy_pid"; wait "$busy_pid" 2>/dev/null || true; busy_pid=; fi
  done
done

ms() { awk '{v=$1; if (v ~ /µs$/) {sub(/µs$/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms$/,"",v)} else if (v ~ /s$/) {sub(/s$/,"",v); v*=1000}; print v}'; }
# stat NAME REGEX N [ms]: median [min–max] over the runs of the N-th word (0: the last) of REGEX's match.
stat() {
  local vals
  vals=$(for i in $(seq 1 "$runs"); do grep -oE "$2" "$out/$1.$i" 2>/dev/null | head -1 | awk -v n="$3" '{print (n == 0 ? $NF : $n)}'; done)
  if [[ ${4:-} == ms ]]; then vals=$(ms <<<"$vals"); fi
  sort -g <<<"$vals" | awk 'NF {a[++n]=$1} END {if (n == 0) {print "n/a"; exit} printf "%s [%s–%s]", a[int((n+1)/2)], a[1], a[n]}'
}
echo
echo "== medians of $runs runs [min–max]; $(uptime)"
for c in $cases; do
  IFS=: read -r name conns rate <<<"$c"
  exact=$(cat "$out/$name".* 2>/dev/null | grep -c 'lost 0, duplicated 0, out of order 0' || true)
  echo "$name ($conns clients, $rate posts/s): exact delivery in $exact of $runs runs"
  echo "  fan-out p50 $(stat "$name" 'latency p50 [^ ]+ p99 [^ ]+' 3 ms) ms, p99 $(stat "$name" 'latency p50 [^ ]+ p99 [^ ]+' 5 ms) ms"
  echo "  POST p50 $(stat "$name" 'open loop\): p50 [^ ]+ p99 [^ ]+' 4 ms) ms, p99 $(stat "$name" 'open loop\): p50 [^ ]+ p99 [^ ]+' 6 ms) ms"
  if [[ $name == cf* ]]; then
    echo "  server µs per delivery: all $(stat "$name" 'per delivery: all [0-9.]+' 4), centrifugo $(stat "$name" 'per delivery: all [0-9.]+ µs, centrifugo [0-9.]+' 0)"
  else
    echo "  server µs per delivery: all $(stat "$name" 'per delivery: all [0-9.]+' 4), streamer $(stat "$name" 'per delivery: all [0-9.]+ µs, streamer [0-9.]+' 0)"
  fi
  if [[ $name != *busy ]]; then
    echo "  CPU 0 busy µs per delivery (every process and interrupt there): $(stat "$name" 'CPU 0\) busy per delivery: [0-9.]+' 0)"
  fi
  if [[ $name == cf* ]]; then
    echo "  server µs per post: all $(stat "$name" 'per post: all [0-9.]+' 4), centrifugo $(stat "$name" 'per post: all [^;]*centrifugo [0-9.]+' 0), redis $(stat "$name" 'per post: all [^;]*redis [0-9.]+' 0)"
    continue
  fi
  echo "  server µs per post: all $(stat "$name" 'per post: all [0-9.]+' 4), api $(stat "$name" 'per post: all [^;]*api [0-9.]+' 0), postgres $(stat "$name" 'per post: all [^;]*postgres [0-9.]+' 0), redis $(stat "$name" 'per post: all [^;]*redis [0-9.]+' 0)"
done
# Where a post's time went, over every run (the API's stage histograms).
echo "where a post's time went (means over every run; per post except commit and publish, per batch):"
curl -fsS "http://$api/metrics" | awk '
  /^chatr_api_post_stage_seconds_sum/   { match($0, /stage="[a-z]+"/); s = substr($0, RSTART+7, RLENGTH-8); sum[s] = $2 }
  /^chatr_api_post_stage_seconds_count/ { match($0, /stage="[a-z]+"/); s = substr($0, RSTART+7, RLENGTH-8); cnt[s] = $2 }
  /^chatr_api_post_batch_size_sum/      { bs = $2 } /^chatr_api_post_batch_size_count/ { bc = $2 }
  END {
    n = split("authenticate limits queue commit publish", order, " ")
    for (i = 1; i <= n; i++) { s = order[i]; if (cnt[s] > 0) printf "  %-12s %.3f ms (%d)\n", s, 1000 * sum[s] / cnt[s], cnt[s] }
    if (bc > 0) printf "  posts per batch %.2f\n", bs / bc
  }'
