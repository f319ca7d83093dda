#!/usr/bin/env bash
# The fleet benchmark (make bench-fleet): STREAMS (100,000) concurrent SSE
# streams on one room, served by STREAMERS (6) `chatrd streamer` processes
# and read by LISTENERS (6) `streambench -mode listen` processes, through a
# broadcast at each of RATES (1 and 10 msg/s) for DURATION seconds (20).
# One process may open at most `ulimit -Hn` files (about 20,000 here, root
# lacking CAP_SYS_RESOURCE), hence a fleet on both sides.
#
# Posts are direct (`streambench -mode post`: insert into Postgres, then
# publish on Redis, as the API does); each message's content carries its
# send time, taken just before the insert, and each listener times every
# delivery from it to the read that completed the event. Every stream must
# receive every message exactly once and in order.
#
# Prints: streams per streamer (their /metrics), Redis subscriptions (PUBSUB
# NUMSUB of the room's channel: one per streamer process, not per stream;
# PUBSUB CHANNELS; CLIENT LIST TYPE pubsub), total streamer RSS (VmRSS),
# the fleet's idle CPU (pings, stats), and per rate: deliveries expected and
# received, lost, duplicated, out of order, fan-out p50/p99/max merged from
# every listener's histogram and the worst listener's p99, server CPU per
# delivery (the streamers' utime+stime over the broadcast, also net of the
# idle cost), the listeners' CPU per delivery, the machine's load.
#
#   STREAMS (100000)  STREAMERS (6)  LISTENERS (6)  RATES ("1 10")
#   DURATION (20, seconds per rate)  IDLE (5, seconds of the idle measure)
#   PER_SOURCE (5: streams per 127.x.y.z source address; the per-IP limit,
#     CHATR_STREAMS_PER_IP, 10 by default, is fleet-wide)
#   PIN (none; split: streamers on CPU 0, listeners and poster on CPU 1;
#     Postgres and Redis are never pinned)
#   READERS (1: epoll loops per listener)  PORT (18100: the first streamer's)
#   CONNECT_TIMEOUT (600 s)  GRACE (120 s: a rate's wait for the last deliveries)
#   KEEP_LOGS=1 keeps every process's output (always kept on a failure)
#
# Exits non-zero, saying why, if a process cannot open its streams (the
# open-file limit it found is printed), if a delivery is lost, duplicated or
# out of order, or if Redis does not hold exactly one subscription per
# streamer.
set -euo pipefail
cd "$(dirname "$0")/.."
streams=${STREAMS:-100000}
nstreamers=${STREAMERS:-6}
nlisteners=${LISTENERS:-6}
rates=${RATES:-"1 10"}
dur=${DURATION:-20}
idle=${IDLE:-5}
per_source=${PER_SOURCE:-5}
pin=${PIN:-none}
readers=${READERS:-1}
port0=${PORT:-18100}
connect_timeout=${CONNECT_TIMEOUT:-600}
grace=${GRACE:-120}
per_ip=${CHATR_STREAMS_PER_IP:-10}

fail() { echo "bench-fleet: $*" >&2; exit 1; }
case $pin in
  none) on_server=() on_load=() pinning="nothing pinned (the kernel places every process; Postgres and Redis unpinned)" ;;
  split)
    (( $(nproc) >= 2 )) && command -v taskset >/dev/null || fail "PIN=split needs 2 CPUs and taskset"
    on_server=(taskset -c 0) on_load=(taskset -c 1)
    pinning="streamers on CPU 0, listeners and poster on CPU 1 (Postgres and Redis unpinned)" ;;
  *) fail "PIN=$pin: want none or split" ;;
esac

# Open files: each stream is one descriptor in its streamer and one in its
# listener. A process may raise its soft limit up to the hard one, no more.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
soft=$(ulimit -Sn) hard=$(ulimit -Hn)
[[ $soft == unlimited ]] && soft=1048576
echo "bench-fleet: open-file limit per process: ulimit -n $soft (hard $(ulimit -Hn))"
per_streamer=$(( (streams + nstreamers - 1) / nstreamers ))
per_listener=$(( (streams + nlisteners - 1) / nlisteners ))
margin=300
(( per_streamer + margin <= soft )) || fail "$streams streams over $nstreamers streamers is $per_streamer each, but a process may open only $soft files (ulimit -n, hard $hard; $margin kept for the rest): raise STREAMERS"
(( per_listener + margin <= soft )) || fail "$streams streams over $nlisteners listeners is $per_listener each, but a process may open only $soft files (ulimit -n, hard $hard; $margin kept for the rest): raise LISTENERS"
(( per_source <= per_ip )) || fail "PER_SOURCE=$per_source streams per source address is above the per-IP limit ($per_ip, CHATR_STREAMS_PER_IP)"
max_conns=${CHATR_MAX_CONNECTIONS:-$(( per_streamer + 200 ))}
(( max_conns > soft - 100 )) && max_conns=$(( soft - 100 ))
(( max_conns >= per_streamer )) || fail "CHATR_MAX_CONNECTIONS=$max_conns is below the $per_streamer streams each streamer must hold"

out=$(mktemp -d)
keep=${KEEP_LOGS:-0}
go build -o "$out/chatrd" ./cmd/chatrd
go build -o "$out/streambench" ./cmd/streambench
schema="fleet_$(date +%s)_$$"
export CHATR_DB_SCHEMA=$schema CHATR_LOG_LEVEL=warn
streamer_pids=() listener_pids=()
status=1
cleanup() {
  # Listeners first: a streamer with no stream left exits at once on SIGTERM.
  for p in "${listener_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${listener_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  for p in "${streamer_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${streamer_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  psql -h 127.0.0.1 -U postgres -d test -qc "DROP SCHEMA IF EXISTS $schema CASCADE" >/dev/null 2>&1 || true
  redis-cli --scan --pattern "chatr:{$schema}:*" | xargs -r -n 1000 redis-cli del >/dev/null 2>&1 || true
  rm -f "$out/chatrd" "$out/streambench"
  if [[ $status != 0 || $keep == 1 ]]; then echo "bench-fleet: the processes' output is in $out"; else rm -rf "$out"; fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

# ticks PID...: utime+stime (clock ticks) summed over the processes.
ticks() {
  local t=0 v p
  for p in "$@"; do
    v=$(sed 's/^.*) //' "/proc/$p/stat" 2>/dev/null | awk '{print $12 + $13}') || v=0
    t=$(( t + ${v:-0} ))
  done
  echo "$t"
}
busy_ticks() { awk '/^cpu / {print $2 + $3 + $4 + $7 + $8 + $9; exit}' /proc/stat; }
rss_kb() {
  local t=0 v p
  for p in "$@"; do
    v=$(awk '/^VmRSS:/ {print $2}' "/proc/$p/status" 2>/dev/null) || v=0
    t=$(( t + ${v:-0} ))
  done
  echo "$t"
}
hz=$(getconf CLK_TCK)

"$out/chatrd" migrate >"$out/migrate.log" 2>&1 || { cat "$out/migrate.log"; fail "chatrd migrate failed"; }
urls=()
for j in $(seq 0 $(( nstreamers - 1 ))); do
  addr=127.0.0.1:$(( port0 + j ))
  urls+=("http://$addr")
  CHATR_LISTEN=$addr CHATR_POD_NAME=fleet-$j CHATR_MAX_CONNECTIONS=$max_conns CHATR_MIGRATE=false CHATR_DRAIN_TIME=1s \
    "${on_server[@]}" "$out/chatrd" streamer >"$out/streamer.$j.log" 2>&1 &
  streamer_pids+=($!)
done
for j in "${!urls[@]}"; do
  for _ in $(seq 1 200); do
    curl -fsS "${urls[$j]}/readyz" >/dev/null 2>&1 && break
    kill -0 "${streamer_pids[$j]}" 2>/dev/null || break
    sleep 0.1
  done
  curl -fsS "${urls[$j]}/readyz" >/dev/null 2>&1 || { tail -20 "$out/streamer.$j.log" >&2; fail "streamer $j (${urls[$j]}) did not become ready"; }
done
echo "bench-fleet: $nstreamers streamers on ${urls[0]}..${urls[-1]} (CHATR_MAX_CONNECTIONS=$max_conns, CHATR_STREAMS_PER_IP=$per_ip, room schema $schema); $pinning"

rss_base=$(rss_kb "${streamer_pids[@]}")

# The expected messages per stream, per rate.
counts=() labels=()
for r in $rates; do
  c=$(awk -v r="$r" -v d="$dur" 'BEGIN {print int(r * d + 0.5)}')
  (( c > 0 )) || fail "RATES/DURATION: $r msg/s for ${dur}s is no message"
  counts+=("$c") labels+=("$r msg/s")
done
expect=$(IFS=,; echo "${counts[*]}")
listen_timeout=$(( idle + ${#counts[@]} * (dur + grace) + 120 ))
sources_each=$(( (per_listener + per_source - 1) / per_source ))
for i in $(seq 0 $(( nlisteners - 1 ))); do
  n=$(( streams - i * per_listener ))
  (( n > per_listener )) && n=$per_listener
  (( n > 0 )) || fail "LISTENERS=$nlisteners is more than $streams streams need"
  # Each listener starts its round-robin at another streamer.
  rot=("${urls[@]:$(( i % nstreamers ))}" "${urls[@]:0:$(( i % nstreamers ))}")
  list=$(IFS=,; echo "${rot[*]}")
  "${on_load[@]}" "$out/streambench" -mode listen -url "$list" -conns "$n" -expect "$expect" -readers "$readers" \
    -sources $(( (n + per_source - 1) / per_source )) -source-offset $(( i * sources_each )) \
    -connect-timeout "${connect_timeout}s" -timeout "${listen_timeout}s" -hold >"$out/listener.$i.log" 2>&1 &
  listener_pids+=($!)
done
echo "bench-fleet: $nlisteners listeners opening $streams streams ($per_listener each at most, $per_source per source address, $readers epoll loop(s) each) ($(uptime))"

# Until every listener has its streams open, or one has failed.
t_start=$(date +%s)
while :; do
  nready=0
  for i in "${!listener_pids[@]}"; do
    if grep -q '^ready$' "$out/listener.$i.log"; then nready=$(( nready + 1 )); continue; fi
    if ! kill -0 "${listener_pids[$i]}" 2>/dev/null; then
      echo "bench-fleet: listener $i exited before its streams were open:" >&2
      tail -5 "$out/listener.$i.log" >&2
      fail "a listener could not open its streams (open-file limit here: ulimit -n $soft, hard $hard)"
    fi
  done
  (( nready == nlisteners )) && break
  (( $(date +%s) - t_start < connect_timeout )) || fail "after ${connect_timeout}s only $nready of $nlisteners listeners have their streams open"
  for j in "${!streamer_pids[@]}"; do
    kill -0 "${streamer_pids[$j]}" 2>/dev/null || { tail -20 "$out/streamer.$j.log" >&2; fail "streamer $j exited"; }
  done
  sleep 0.2
done
echo "bench-fleet: $streams streams open in $(( $(date +%s) - t_start ))s"

conns=()
total_conns=0
for u in "${urls[@]}"; do
  c=$(curl -fsS "$u/metrics" | awk '/^chatr_streamer_connections[{ ]/ {s += $NF} END {print s + 0}')
  conns+=("$c") total_conns=$(( total_conns + c ))
done
echo "bench-fleet: streams per streamer (their /metrics): ${conns[*]}; total $total_conns"

# Redis: the room's message channel must have one subscriber per streamer.
chan="chatr:{$schema}:messages"
numsub=$(redis-cli PUBSUB NUMSUB "$chan" | tail -1)
modsub=$(redis-cli PUBSUB NUMSUB "chatr:{$schema}:moderation" | tail -1)
nchannels=$(redis-cli PUBSUB CHANNELS "chatr:{$schema}:*" | grep -c . || true)
pubsub_clients=$(redis-cli CLIENT LIST TYPE pubsub | grep -c . || true)
redis_line="PUBSUB NUMSUB $chan = $numsub ($nstreamers streamer processes, $total_conns streams); the moderation channel $modsub; the room's channels (PUBSUB CHANNELS) $nchannels; pub/sub connections on this Redis (CLIENT LIST TYPE pubsub, every room) $pubsub_clients"
echo "bench-fleet: Redis: $redis_line"
subs_ok=1
[[ $numsub == "$nstreamers" ]] || { subs_ok=0; echo "bench-fleet: Redis holds $numsub subscriptions to the room's channel, not one per streamer ($nstreamers)" >&2; }

rss_ready=$(rss_kb "${streamer_pids[@]}")
s0=$(ticks "${streamer_pids[@]}")
sleep "$idle"
s1=$(ticks "${streamer_pids[@]}")
idle_pct=$(awk -v t=$(( s1 - s0 )) -v hz="$hz" -v s="$idle" 'BEGIN {printf "%.1f", 100 * t / hz / s}')
echo "bench-fleet: the idle fleet (pings and stats to $total_conns streams) takes $idle_pct % of a CPU"

phase_lines=()
p=0
for r in $rates; do
  count=${counts[$p]}
  p=$(( p + 1 ))
  echo "- rate $r msg/s: $count messages to $streams streams ($(( count * streams )) deliveries) ($(uptime))"
  s0=$(ticks "${streamer_pids[@]}") l0=$(ticks "${listener_pids[@]}") b0=$(busy_ticks) t0=$(date +%s.%N)
  "${on_load[@]}" "$out/streambench" -mode post -rate "$r" -count "$count" 2>&1 | tee "$out/post.$p.log"
  # The last deliveries: until every listener has all of this rate's.
  done_by=$(( $(date +%s) + grace ))
  while :; do
    n=0
    for i in "${!listener_pids[@]}"; do
      grep -q "^phase $p complete" "$out/listener.$i.log" && n=$(( n + 1 ))
    done
    (( n == nlisteners )) && break
    if (( $(date +%s) >= done_by )); then echo "bench-fleet: after ${grace}s more, $n of $nlisteners listeners have every delivery of this rate" >&2; break; fi
    sleep 0.05
  done
  s1=$(ticks "${streamer_pids[@]}") l1=$(ticks "${listener_pids[@]}") b1=$(busy_ticks) t1=$(date +%s.%N)
  rss=$(rss_kb "${streamer_pids[@]}")
  line=$(awk -v s=$(( s1 - s0 )) -v l=$(( l1 - l0 )) -v b=$(( b1 - b0 )) -v hz="$hz" -v t0="$t0" -v t1="$t1" \
    -v idle="$idle_pct" -v n=$(( count * streams )) -v cpus="$(nproc)" 'BEGIN {
      span = t1 - t0; us = 1e6 / hz
      net = s - idle / 100 * span * hz
      printf "server CPU per delivery: streamers %.2f µs (%.2f µs net of the idle cost), over %.1f s; listeners %.2f µs; machine %.0f %% busy of %d CPUs, %.0f %% of it neither streamers nor listeners",
        s * us / n, net * us / n, span, l * us / n, 100 * b / hz / span / cpus, cpus, (b > 0 ? 100 * (b - s - l) / b : 0)
    }')
  echo "  $line"
  echo "  streamer RSS: total $(( rss / 1024 )) MiB"
  phase_lines+=("rate $r msg/s: $line; streamer RSS total $(( rss / 1024 )) MiB; post: $(grep -o 'directly.*' "$out/post.$p.log" || echo 'failed')")
done

rss_end=$(rss_kb "${streamer_pids[@]}")
# The listeners hold their streams open (-hold) until told to stop and report.
for i in "${!listener_pids[@]}"; do kill -TERM "${listener_pids[$i]}" 2>/dev/null || true; done
listeners_ok=1
for i in "${!listener_pids[@]}"; do
  wait "${listener_pids[$i]}" || { listeners_ok=0; echo "bench-fleet: listener $i: $(grep -h 'streambench:' "$out/listener.$i.log" | tail -1)" >&2; }
done
listener_pids=()

echo
echo "== fleet: $streams streams, $nstreamers streamers, $nlisteners listeners; $pinning"
echo "streams per streamer: ${conns[*]} (total $total_conns)"
echo "Redis subscriptions: $redis_line"
echo "streamer RSS: total $(( rss_ready / 1024 )) MiB with the streams open, $(( rss_base / 1024 )) MiB before ($(awk -v r=$(( rss_ready - rss_base )) -v n="$total_conns" 'BEGIN {printf "%.2f", (n ? r / n : 0)}') KiB per stream), $(( rss_end / 1024 )) MiB after the broadcasts"
echo "idle fleet: $idle_pct % of a CPU"
merge_ok=1
"$out/streambench" -mode merge -labels "$(IFS=,; echo "${labels[*]}")" "$out"/listener.*.log || merge_ok=0
for l in "${phase_lines[@]}"; do echo "$l"; done
echo "posts: direct (insert into Postgres, then publish on Redis); fan-out latency from the send time in the content (taken before the insert) to the listener's read"
echo "uptime: $(uptime)"
if (( merge_ok && listeners_ok && subs_ok )); then
  status=0
  echo "bench-fleet: PASS: every delivery arrived exactly once and in order; one Redis subscription per streamer"
else
  echo "bench-fleet: FAIL (see above)" >&2
  exit 1
fi
