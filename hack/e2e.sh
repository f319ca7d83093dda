#!/usr/bin/env bash
# `make e2e`: one chatr room end to end on this machine (test/e2e, docs/e2e.md).
# kube-apiserver and etcd (envtest, built once by hack/envtest-assets.sh), the
# ChatRoom CRD, the operator binary as a process, the sample room run by the
# local pod runner (test/e2e/localpods) behind the local ingress; agents,
# spectators, a pod deletion, a connection surge and its end. Prints a summary
# of what it saw; the logs of every process stay in $CHATR_E2E_LOGDIR.
#
#   hack/e2e.sh                       # as make e2e
#   E2E_TESTFLAGS= hack/e2e.sh        # without -race
set -euo pipefail
cd "$(dirname "$0")/.."

hack/services.sh
KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
export KUBEBUILDER_ASSETS
export CHATR_E2E_LOGDIR=${CHATR_E2E_LOGDIR:-$(mktemp -d "${TMPDIR:-/tmp}/chatr-e2e-XXXXXX")}
echo "e2e: logs in $CHATR_E2E_LOGDIR" >&2
# shellcheck disable=SC2086 # E2E_TESTFLAGS is a list of flags
exec go test ${E2E_TESTFLAGS--race} -count=1 -v -timeout 10m -run '^TestOperatorLoop$' ./test/e2e/
