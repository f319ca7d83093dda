#!/usr/bin/env bash
# The room on a real one-node Kubernetes cluster (test/realnode, docs/e2e.md):
# builds (once, cached by version) the cluster's binaries and helm, builds the
# images as OCI archives, installs the Debian packages a node needs, then runs
# the test as root. The test brings the node up in a network namespace of its
# own and tears it down on exit, even on failure.
#
#   make node-e2e                         # CHATR_REALNODE_LOGDIR=dir keeps the logs
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
  echo "node-e2e: needs root (network namespaces, containerd, the kubelet)" >&2
  exit 1
fi

# Debian's container runtime, CNI plugins, the firewall tools kube-proxy and
# kube-router drive, and nginx as the ingress proxy.
need=()
command -v containerd >/dev/null || need+=(containerd)
command -v runc >/dev/null || need+=(runc)
[[ -x /usr/lib/cni/bridge ]] || need+=(containernetworking-plugins)
command -v iptables >/dev/null || need+=(iptables)
command -v ipset >/dev/null || need+=(ipset)
command -v conntrack >/dev/null || need+=(conntrack)
command -v nginx >/dev/null || need+=(nginx-light)
command -v nsenter >/dev/null || need+=(util-linux)
if (( ${#need[@]} )); then
  echo "node-e2e: installing ${need[*]}" >&2
  apt-get update -qq >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >&2
fi
hack/services.sh   # Postgres and Redis binaries (the node runs private instances)

assets=$(hack/node-assets.sh)
helm=$(hack/tools-bin.sh helm)

make --no-print-directory image
images=bin/images
# shellcheck disable=SC1091
source "$images/tags.env"
for prog in pause probe; do
  CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o "bin/realnode-$prog" "./test/realnode/$prog"
  go run ./hack/image -name "chatr.ai/$prog:test" -out "$images/realnode-$prog.tar" \
    -file "bin/realnode-$prog:/$prog" -entrypoint "/$prog" >/dev/null
done

export CHATR_NODE_ASSETS=$assets CHATR_HELM=$helm CHATR_IMAGES_DIR=$PWD/$images
export CHATR_IMAGE CHATR_OPERATOR_IMAGE
exec go test -tags realnode -count=1 -v -timeout 30m ${REALNODE_TESTFLAGS:-} ./test/realnode/
