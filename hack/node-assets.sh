#!/usr/bin/env bash
# Builds what a real one-node cluster needs beyond envtest's kube-apiserver and
# etcd: kube-controller-manager, kube-scheduler, kubelet and kube-proxy (from
# the same Kubernetes module, hack/tools) and kube-router (the NetworkPolicy
# enforcer, from its own module). Prebuilt downloads cannot be reached from our
# machines; the Go module proxy can. Binaries are cached outside the clone,
# named by version, and built only when missing. Prints the folder that holds
# them all (kube-apiserver and etcd too).
#
#   export CHATR_NODE_ASSETS=$(hack/node-assets.sh)
set -euo pipefail

K8S_VERSION=v1.37.2
KUBE_ROUTER_VERSION=v2.1.0
here=$(cd "$(dirname "$0")" && pwd)
dir=$("$here/envtest-assets.sh")   # kube-apiserver + etcd, same folder and version

minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ver="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

for cmd in kube-controller-manager kube-scheduler kubelet kube-proxy; do
  [[ -x "$dir/$cmd" ]] && continue
  echo "building $cmd ${K8S_VERSION} (about a minute with a warm cache)..." >&2
  (cd "$here/tools" && go build -ldflags "-s -w $ver" -o "$dir/$cmd.tmp" "k8s.io/kubernetes/cmd/$cmd" >&2)
  mv "$dir/$cmd.tmp" "$dir/$cmd"
done

if [[ ! -x "$dir/kube-router" || $(cat "$dir/kube-router.version" 2>/dev/null) != "$KUBE_ROUTER_VERSION" ]]; then
  echo "building kube-router ${KUBE_ROUTER_VERSION} (about 4 minutes the first time)..." >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # Outside every project module, so its dependencies stay out of ours.
  (cd "$tmp" && GOBIN="$tmp" GOFLAGS=-mod=mod go install -ldflags "-s -w" \
     "github.com/cloudnativelabs/kube-router/v2/cmd/kube-router@${KUBE_ROUTER_VERSION}" >&2)
  mv "$tmp/kube-router" "$dir/kube-router"
  echo "$KUBE_ROUTER_VERSION" > "$dir/kube-router.version"
fi
echo "$dir"
