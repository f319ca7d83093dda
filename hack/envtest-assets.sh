#!/usr/bin/env bash
# Builds the two binaries envtest needs (kube-apiserver and etcd) from Go modules,
# because setup-envtest downloads cannot be reached from our build machines.
# They go to a cache folder outside the clone, named by version, and are built
# only when missing. The folder is printed on stdout: use it as KUBEBUILDER_ASSETS.
#
#   export KUBEBUILDER_ASSETS=$(hack/envtest-assets.sh)
set -euo pipefail

K8S_VERSION=v1.37.2
here=$(cd "$(dirname "$0")" && pwd)
dir=${CHATR_ENVTEST_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/chatr/k8s-${K8S_VERSION}}

if [[ -x "$dir/kube-apiserver" && -x "$dir/etcd" ]]; then
  echo "$dir"
  exit 0
fi

mkdir -p "$dir"
minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
ver="-X k8s.io/component-base/version.gitVersion=${K8S_VERSION} -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=${minor}"
ver="$ver -X k8s.io/client-go/pkg/version.gitVersion=${K8S_VERSION} -X k8s.io/client-go/pkg/version.gitMajor=1 -X k8s.io/client-go/pkg/version.gitMinor=${minor}"

cd "$here/tools"
if [[ ! -x "$dir/etcd" ]]; then
  echo "building etcd (about 2 minutes the first time)..." >&2
  go build -ldflags "-s -w" -o "$dir/etcd.tmp" go.etcd.io/etcd/server/v3 >&2
  mv "$dir/etcd.tmp" "$dir/etcd"
fi
if [[ ! -x "$dir/kube-apiserver" ]]; then
  echo "building kube-apiserver ${K8S_VERSION} (about 10 minutes the first time)..." >&2
  go build -ldflags "-s -w $ver" -o "$dir/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver >&2
  mv "$dir/kube-apiserver.tmp" "$dir/kube-apiserver"
fi
echo "$dir"
