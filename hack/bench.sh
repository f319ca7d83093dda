#!/usr/bin/env bash
# Runs the benchmark programs; each prints its own figures. Add yours here.
set -euo pipefail
cd "$(dirname "$0")/.."
for b in hack/bench.d/*.sh; do
  [[ -e $b ]] || continue
  echo "== $b"
  bash "$b"
done
