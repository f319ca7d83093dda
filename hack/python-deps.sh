#!/usr/bin/env bash
# Makes sure a python3 that can `import requests` is on this machine, for the
# Python example agent's test (test/clients). PyPI cannot be reached from our
# build machines, so a missing requests comes from Debian's python3-requests
# (for /usr/bin/python3). Prints the interpreter to use on stdout. Idempotent.
#
#   PYTHON=$(hack/python-deps.sh)
set -euo pipefail

log() { echo "python-deps: $*" >&2; }
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }

find_python() {
  local py
  for py in python3 /usr/bin/python3; do
    if command -v "$py" >/dev/null 2>&1 && "$py" -c 'import requests' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

if find_python; then exit 0; fi
log "no python3 with requests: installing Debian's python3 and python3-requests"
as_root apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq python3 python3-requests >&2
find_python || { log "python3-requests is installed but no python3 imports it"; exit 1; }
