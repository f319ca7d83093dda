# Container images without a container engine (docs/images.md). The main
# Makefile includes hack/*.mk; VERSION, COMMIT and VERSION_LDFLAGS come from it.
#
#   make image   ->  bin/images/chatr.tar, bin/images/chatr-operator.tar (OCI archives), bin/images/tags.env
GO                   ?= go
BIN                  ?= bin
IMAGE_DIR            ?= $(BIN)/images
IMAGE_REGISTRY       ?= chatr.ai
CHATR_IMAGE          ?= $(IMAGE_REGISTRY)/chatr:$(VERSION)
CHATR_OPERATOR_IMAGE ?= $(IMAGE_REGISTRY)/chatr-operator:$(VERSION)
IMAGE_SOURCE         ?= https://github.com/chatr-ai/chatr
# The CA bundle of the build machine: the verifier speaks HTTPS to Moltbook.
CA_CERTS             ?= /etc/ssl/certs/ca-certificates.crt
IMAGE_ARCH           ?= $(shell $(GO) env GOARCH)
# Every file's time and the config's created: the commit's, so the same commit
# gives the same digests.
ifeq ($(origin SOURCE_DATE_EPOCH),undefined)
SOURCE_DATE_EPOCH := $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
endif

IMAGE_LABELS = -label org.opencontainers.image.source=$(IMAGE_SOURCE) \
               -label org.opencontainers.image.revision=$(COMMIT) \
               -label org.opencontainers.image.version=$(VERSION)
IMAGE_FLAGS  = -ca-certs $(CA_CERTS) -arch $(IMAGE_ARCH) -created $(SOURCE_DATE_EPOCH) $(IMAGE_LABELS)

.PHONY: image
image: ## build the chatr and chatr-operator images as OCI archives in bin/images (no container engine needed)
	@test -r $(CA_CERTS) || { echo "no CA bundle at $(CA_CERTS) (apt-get install ca-certificates, or CA_CERTS=...)"; exit 1; }
	@mkdir -p $(IMAGE_DIR)/rootfs
	CGO_ENABLED=0 GOOS=linux GOARCH=$(IMAGE_ARCH) $(GO) build -trimpath -buildvcs=false \
		-ldflags "-s -w $(VERSION_LDFLAGS)" -o $(IMAGE_DIR)/rootfs/ ./cmd/chatrd ./cmd/chatr-operator
	$(GO) build -o $(IMAGE_DIR)/oci-image ./hack/image
	@set -e; \
	chatr=$$($(IMAGE_DIR)/oci-image -name $(CHATR_IMAGE) -out $(IMAGE_DIR)/chatr.tar $(IMAGE_FLAGS) \
		-label org.opencontainers.image.title=chatr \
		-file $(IMAGE_DIR)/rootfs/chatrd:/chatrd:0755 -entrypoint /chatrd); \
	operator=$$($(IMAGE_DIR)/oci-image -name $(CHATR_OPERATOR_IMAGE) -out $(IMAGE_DIR)/chatr-operator.tar $(IMAGE_FLAGS) \
		-label org.opencontainers.image.title=chatr-operator \
		-file $(IMAGE_DIR)/rootfs/chatr-operator:/chatr-operator:0755 -entrypoint /chatr-operator); \
	printf 'CHATR_IMAGE=%s\nCHATR_IMAGE_DIGEST=%s\nCHATR_OPERATOR_IMAGE=%s\nCHATR_OPERATOR_IMAGE_DIGEST=%s\n' \
		"$${chatr% *}" "$${chatr#* }" "$${operator% *}" "$${operator#* }" > $(IMAGE_DIR)/tags.env; \
	echo "$(IMAGE_DIR)/chatr.tar          $$chatr"; \
	echo "$(IMAGE_DIR)/chatr-operator.tar $$operator"; \
	echo "$(IMAGE_DIR)/tags.env"
