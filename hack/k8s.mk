# The verbs a Kubernetes engineer expects of a kubebuilder project: fmt, vet,
# install/uninstall (the CRD), deploy/undeploy (the operator), run-operator.
# They act on the cluster of the current kubeconfig (kubectl's: $KUBECONFIG,
# else ~/.kube/config; pick one with KUBECONFIG=... or kubectl config use-context).
# The main Makefile includes hack/*.mk; GO, BIN and VERSION_LDFLAGS come from it.
#
#   make install                    the ChatRoom CRD (config/crd)
#   make image && make deploy       the CRD, RBAC and the operator (config/default), image from bin/images/tags.env
#   make deploy IMG=reg/chatr-operator:v1
#   make run-operator               the operator on this machine, against the current kubeconfig
GO        ?= go
BIN       ?= bin
IMAGE_DIR ?= $(BIN)/images
KUBECTL   ?= kubectl
# The operator image deploy sets; empty: CHATR_OPERATOR_IMAGE of $(IMAGE_DIR)/tags.env (make image).
IMG       ?=
# undeploy / uninstall: true makes objects already gone not an error.
ignore-not-found ?= false
# run-operator's flags (go run ./cmd/chatr-operator -h lists them). Off the
# defaults :8080/:8081, which make run and chatrd fakemoltbook use; no leader
# election, so it acts at once (stop the in-cluster operator first, or pass
# --leader-elect and both take turns).
OPERATOR_ARGS ?= --metrics-bind-address=127.0.0.1:9080 --health-probe-bind-address=127.0.0.1:9081 --log-format=text --log-level=info

# The overlay deploy writes: config/default with the operator image replaced
# (a relative path to it: kustomize refuses absolute ones).
# It lives under $(BIN), so no tracked file changes (kubebuilder's
# `kustomize edit set image` would rewrite config/manager/kustomization.yaml).
K8S_DEPLOY_DIR = $(BIN)/k8s/deploy

# Fails with a way to get kubectl when it is missing.
define need-kubectl
@command -v $(KUBECTL) >/dev/null 2>&1 || { \
  echo "$(KUBECTL) not found. Get it from https://kubernetes.io/docs/tasks/tools/ (on Debian:" >&2; \
  echo "  apt-get install kubectl from the pkgs.k8s.io repository), or point KUBECTL=/path/to/kubectl at one." >&2; \
  exit 1; }
endef

.PHONY: fmt
fmt: ## gofmt -w every tracked Go file
	gofmt -w $$(git ls-files '*.go')

.PHONY: vet
vet: ## go vet ./... and the realnode-tagged test/realnode package
	$(GO) vet ./...
	$(GO) vet -tags realnode ./test/realnode/

.PHONY: install
install: ## apply the ChatRoom CRD (config/crd) to the cluster of the current kubeconfig
	$(need-kubectl)
	$(KUBECTL) apply --server-side -k config/crd

.PHONY: uninstall
uninstall: ## delete the ChatRoom CRD from the current cluster, and with it EVERY ChatRoom and the rooms' objects (ignore-not-found=true to tolerate absence)
	$(need-kubectl)
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/crd

.PHONY: deploy
deploy: ## apply config/default (CRD, RBAC, the operator in chatr-system) with the image of bin/images/tags.env (make image) or IMG=...
	$(need-kubectl)
	@set -e; img='$(IMG)'; \
	if [ -z "$$img" ]; then \
	  if [ ! -r $(IMAGE_DIR)/tags.env ]; then \
	    echo "make deploy: no operator image: run make image (writes $(IMAGE_DIR)/tags.env), or pass IMG=registry/chatr-operator:tag" >&2; exit 1; fi; \
	  img=$$(sed -n 's/^CHATR_OPERATOR_IMAGE=//p' $(IMAGE_DIR)/tags.env); \
	  [ -n "$$img" ] || { echo "make deploy: $(IMAGE_DIR)/tags.env has no CHATR_OPERATOR_IMAGE" >&2; exit 1; }; \
	fi; \
	case "$${img##*/}" in \
	  *@*) name=$${img%@*}; field="digest: $${img#*@}" ;; \
	  *:*) name=$${img%:*}; field="newTag: $${img##*:}" ;; \
	  *)   name=$$img; field="newTag: latest" ;; \
	esac; \
	mkdir -p $(K8S_DEPLOY_DIR); \
	base=$$(realpath --relative-to=$(K8S_DEPLOY_DIR) config/default); \
	{ echo "# Written by make deploy: config/default with the operator image $$img."; \
	  echo "resources:"; \
	  echo "- $$base"; \
	  echo "images:"; \
	  for from in chatr-operator $$(sed -n 's/^ *newName: *//p' config/manager/kustomization.yaml); do \
	    echo "- name: $$from"; echo "  newName: $$name"; echo "  $$field"; done; \
	} > $(K8S_DEPLOY_DIR)/kustomization.yaml; \
	echo "make deploy: operator image $$img ($(K8S_DEPLOY_DIR)/kustomization.yaml)"; \
	echo "$(KUBECTL) apply --server-side -k $(K8S_DEPLOY_DIR)"; \
	$(KUBECTL) apply --server-side -k $(K8S_DEPLOY_DIR)

.PHONY: undeploy
undeploy: ## delete what deploy applied (config/default: the operator, RBAC, chatr-system and the CRD with every ChatRoom)
	$(need-kubectl)
	$(KUBECTL) delete --ignore-not-found=$(ignore-not-found) -k config/default

.PHONY: run-operator
run-operator: ## run the operator on this machine against the current kubeconfig (make install first; OPERATOR_ARGS=... for its flags)
	$(need-kubectl)
	@$(KUBECTL) get crd chatrooms.chatr.ai >/dev/null 2>&1 || echo "run-operator: the ChatRoom CRD is not in the cluster (or the cluster is unreachable): make install" >&2
	$(GO) run -ldflags "$(VERSION_LDFLAGS)" ./cmd/chatr-operator $(OPERATOR_ARGS)
