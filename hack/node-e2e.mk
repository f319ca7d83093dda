.PHONY: node-e2e
node-e2e: ## the room on a real one-node cluster: kubelet, containerd, kube-proxy, kube-router, images, Helm and kustomize installs (root)
	@hack/node-e2e.sh

.PHONY: node-assets
node-assets: ## build (once) kubelet, kube-proxy, kube-controller-manager, kube-scheduler and kube-router; prints the folder
	@hack/node-assets.sh
