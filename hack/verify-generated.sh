#!/usr/bin/env bash
# Fails when a generated file is out of date: regenerates everything into the
# tree (hack/generate-operator.sh) and fails if that changed anything. CI runs
# it on a clean clone; on failure, run `make generate manifests` and commit.
# On a work tree with edits of its own it compares the tree before and after,
# so only what generation changes counts.
set -euo pipefail
cd "$(dirname "$0")/.."
paths=(api config charts test/crds)

state() {
  git status --porcelain --untracked-files=all -- "${paths[@]}"
  git diff -- "${paths[@]}"
  git ls-files --others --exclude-standard -- "${paths[@]}" | while read -r f; do sha256sum "$f"; done
}

before=$(state)
hack/generate-operator.sh all
after=$(state)
if [[ $before != "$after" ]]; then
  echo "generated files are out of date (run: make generate manifests, then commit):" >&2
  diff <(echo "$before") <(echo "$after") | grep '^>' | grep -v '^> [-+@ ]' | head -20 >&2 || true
  git --no-pager diff --stat -- "${paths[@]}" >&2
  exit 1
fi
echo "generated files are up to date"
