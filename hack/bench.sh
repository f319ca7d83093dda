#!/usr/bin/env bash
# Runs the micro-benchmarks (every package with a *_bench_test.go file, for
# BENCHTIME each, default 1s; BENCH selects them, default all) and then the
# benchmark programs (hack/bench.d/*.sh); each prints its own figures. Add
# yours here. The load average is printed first: figures taken while other
# processes are busy on the machine are not quiet-machine figures.
set -euo pipefail
cd "$(dirname "$0")/.."
echo "== micro-benchmarks ($(uptime))"
mapfile -t pkgs < <(find . -name '*_bench_test.go' -not -path './.git/*' -printf '%h\n' | sort -u)
if (( ${#pkgs[@]} > 0 )); then
  go test -run '^$' -bench "${BENCH:-.}" -benchmem -benchtime "${BENCHTIME:-1s}" "${pkgs[@]}"
fi
for b in hack/bench.d/*.sh; do
  [[ -e $b ]] || continue
  echo "== $b ($(uptime))"
  bash "$b"
done
