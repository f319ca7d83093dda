#!/usr/bin/env bash
# Runs go test -json over the main module's packages and then over the Go
# test modules nested in test/ (test/monitoring: a module of its own because
# of its heavy dependencies), as one stream for hack/testreport, so make test
# counts their tests like any other. It exits non-zero when any go test did.
#
#   hack/gotest.sh "<go test flags>" "<packages>"
# The nested modules run only when the packages are the default ./...
set -uo pipefail
cd "$(dirname "$0")/.."
GO=${GO:-go}
flags=$1
pkgs=${2:-./...}
rc=0
# shellcheck disable=SC2086 # flags and packages are lists
$GO test -json $flags $pkgs || rc=1
if [[ $pkgs == "./..." ]]; then
  for mod in $(git ls-files 'test/*/go.mod'); do
    (cd "$(dirname "$mod")" && $GO test -json $flags ./...) || rc=1
  done
fi
exit $rc
