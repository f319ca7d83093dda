#!/usr/bin/env bash
# Fails when a generated file is out of date: regenerates everything into the
# tree (hack/generate-operator.sh), then asks git whether anything changed or
# appeared. CI runs it; on failure, run `make generate manifests` and commit.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(api config charts)
hack/generate-operator.sh all
changed=$(git status --porcelain --untracked-files=all -- "${paths[@]}")
if [[ -n $changed ]]; then
  echo "generated files are out of date (run: make generate manifests, then commit):" >&2
  echo "$changed" >&2
  git --no-pager diff --stat -- "${paths[@]}" >&2
  exit 1
fi
echo "generated files are up to date"
