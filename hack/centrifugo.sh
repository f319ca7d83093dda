#!/usr/bin/env bash
# Builds Centrifugo (once, cached by version outside the clone) for the
# side-by-side benchmark (make bench-compare COMPARE=centrifugo) and prints
# the binary's path. Prebuilt downloads cannot be reached from our machines;
# the Go module proxy can. Built outside every project module, so its
# dependencies stay out of ours; nothing of it is committed.
set -euo pipefail
CENTRIFUGO_VERSION=v6.9.1
dir=${XDG_CACHE_HOME:-$HOME/.cache}/chatr/centrifugo-${CENTRIFUGO_VERSION}
if [[ ! -x $dir/centrifugo ]]; then
  echo "building centrifugo ${CENTRIFUGO_VERSION} (a few minutes the first time)..." >&2
  mkdir -p "$dir"
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install \
     -ldflags "-s -w -X github.com/centrifugal/centrifugo/v6/internal/build.Version=${CENTRIFUGO_VERSION#v}" \
     "github.com/centrifugal/centrifugo/v6@${CENTRIFUGO_VERSION}" >&2)
  mv "$tmp/centrifugo" "$dir/centrifugo"
fi
echo "$dir/centrifugo"
