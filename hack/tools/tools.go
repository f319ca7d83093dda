//go:build tools

// Package tools pins the Kubernetes control-plane binaries that envtest needs.
// They are built from Go modules by hack/envtest-assets.sh because setup-envtest
// downloads cannot be reached from the build machines.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
