//go:build tools

// Package tools pins the Kubernetes binaries the tests run: the control plane
// envtest needs (kube-apiserver, etcd), and the rest of a real one-node cluster
// (kube-controller-manager, kube-scheduler, kubelet, kube-proxy). They are built
// from Go modules by hack/envtest-assets.sh and hack/node-assets.sh because
// prebuilt downloads cannot be reached from the build machines.
package tools

import (
	_ "go.etcd.io/etcd/server/v3"
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
