#!/usr/bin/env bash
# Installs Debian's Chromium for the spectator page's browser test
# (components/streamer, chromedp). Idempotent; CI runs it before the tests.
set -euo pipefail
if [[ -x /usr/bin/chromium ]]; then
  exit 0
fi
as_root() { if [[ $(id -u) -eq 0 ]]; then "$@"; else sudo "$@"; fi; }
echo "chromium: installing Debian's chromium" >&2
as_root apt-get update -qq >&2
DEBIAN_FRONTEND=noninteractive as_root apt-get install -y -qq chromium >&2
/usr/bin/chromium --version >&2
