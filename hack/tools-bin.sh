#!/usr/bin/env bash
# Builds a pinned command-line tool from its Go module, once, into a cache
# folder outside the clone, and prints the binary's path. Prebuilt downloads
# cannot be reached from our machines; the Go module proxy can.
#
#   HELM=$(hack/tools-bin.sh helm)     # about 2 minutes the first time on 2 cores
set -euo pipefail

tool=${1:?usage: $0 helm}
dir=${CHATR_TOOLS_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatr/bin}

case $tool in
  helm) version=v3.22.0; pkg=helm.sh/helm/v3/cmd/helm ;;
  *) echo "unknown tool: $tool" >&2; exit 2 ;;
esac

bin="$dir/$tool-$version"
if [[ ! -x $bin ]]; then
  echo "building $tool $version (once; cached in $dir)..." >&2
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Outside the project's module, so the tool's dependencies stay out of go.mod.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install -ldflags "-s -w" "$pkg@$version" >&2)
  mv "$tmp/$tool" "$bin"
fi
echo "$bin"
