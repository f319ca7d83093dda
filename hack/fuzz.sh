#!/usr/bin/env bash
# Runs every fuzz target in the module for the given time each (default 10s;
# CI: `FUZZTIME=3s make fuzz`). Each package's fuzzing test binary is built
# once (`go test -c -fuzz`) and run once per target, so a target costs its
# fuzz time plus about a second, not a link each. Every target runs even when
# one fails; the failures are listed at the end (go test keeps the input that
# failed under the package's testdata/fuzz/, to reproduce with
# `go test -run=<Target>/<file> <package>`) and the exit status is non-zero.
# Prints the time each package and target took, and the total.
set -euo pipefail
t=${1:-10s}
cd "$(dirname "$0")/.."
root=$PWD
module=$(go list -m)
cache=$(go env GOCACHE)/fuzz
bin=$(mktemp -d)
trap 'rm -rf "$bin"' EXIT
start=$(date +%s)
failed=()
n=0
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' | sort)
mapfile -t dirs < <(printf '%s\n' "${files[@]}" | xargs -n1 dirname | sort -u)
for dir in "${dirs[@]}"; do
  s=$(date +%s)
  exe="$bin/$(echo "$dir" | tr / _).test"
  if ! go test -c -fuzz=. -o "$exe" "./$dir"; then
    failed+=("./$dir (build)")
    continue
  fi
  echo "== ./$dir: built in $(( $(date +%s) - s ))s"
  for fn in $(grep -hoE '^func Fuzz[A-Za-z0-9_]+' "$dir"/*_test.go | awk '{print $2}' | sort); do
    n=$((n + 1))
    s=$(date +%s)
    echo "-- ./$dir $fn"
    # Run where go test runs it (the package's folder: testdata/fuzz), with
    # the corpus cache go test uses.
    # Go 1.26's fuzzing coordinator can fail a target with a bare "context
    # deadline exceeded" as -fuzztime ends, having found nothing (a race
    # between its deadline and its workers' shutdown, fixed in Go 1.27). Such
    # a run, and only such a run (no failing input written, no panic, no
    # test error), is made once more; a second failure of any kind counts.
    for attempt in 1 2; do
      if (cd "$root/$dir" && "$exe" -test.run='^$' -test.fuzz="^${fn}\$" -test.fuzztime="$t" \
        -test.fuzzcachedir="$cache/$module/$dir") 2>&1 | tee "$bin/out"; then
        break
      fi
      if (( attempt == 1 )) && grep -q '^    context deadline exceeded$' "$bin/out" &&
        ! grep -qE 'Failing input written|panic:|_test\.go:[0-9]+:' "$bin/out"; then
        echo "-- $fn: the coordinator's end-of-run deadline race, nothing found: once more"
        continue
      fi
      failed+=("./$dir $fn")
      break
    done
    echo "-- $fn: $(( $(date +%s) - s ))s"
  done
done
echo "== $n fuzz targets, $t each, in $(( $(date +%s) - start ))s ($(uptime))"
if (( ${#failed[@]} > 0 )); then
  printf 'FAILED: %s\n' "${failed[@]}"
  exit 1
fi
