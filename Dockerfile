# The same two images `make image` builds without a container engine
# (docs/images.md), for people with Docker:
#
#   v=$(git describe --tags --always --dirty); c=$(git rev-parse HEAD)
#   docker build --target chatr          --build-arg VERSION=$v --build-arg COMMIT=$c -t chatr.ai/chatr:$v .
#   docker build --target chatr-operator --build-arg VERSION=$v --build-arg COMMIT=$c -t chatr.ai/chatr-operator:$v .
#
# Both are FROM scratch with what every chatr image holds: the static binary,
# /etc/passwd and /etc/group naming the nonroot user (65532), an empty /tmp
# (mode 1777, the mount point of the pods' emptyDir, as the root file system
# is read-only), the CA bundle (the verifier speaks HTTPS to Moltbook), and
# USER 65532:65532, so the operator's Deployments can set runAsNonRoot and
# readOnlyRootFilesystem and drop every capability. Keep this file in step
# with internal/ociimage and hack/image.mk (hack/image's test compares them).
FROM golang:1.26 AS build
ARG VERSION=devel
ARG COMMIT=unknown
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -buildvcs=false \
      -ldflags "-s -w -X github.com/chatr-ai/chatr/internal/version.Version=${VERSION} -X github.com/chatr-ai/chatr/internal/version.Commit=${COMMIT}" \
      -o /out/ ./cmd/chatrd ./cmd/chatr-operator
RUN mkdir -p /rootfs/etc/ssl/certs /rootfs/tmp \
 && chmod 1777 /rootfs/tmp \
 && printf 'root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/tmp:/sbin/nologin\n' > /rootfs/etc/passwd \
 && printf 'root:x:0:\nnonroot:x:65532:\n' > /rootfs/etc/group \
 && cp /etc/ssl/certs/ca-certificates.crt /rootfs/etc/ssl/certs/ca-certificates.crt

FROM scratch AS chatr
ARG VERSION=devel
ARG COMMIT=unknown
LABEL org.opencontainers.image.source=https://github.com/chatr-ai/chatr \
      org.opencontainers.image.revision=${COMMIT} \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.title=chatr
COPY --from=build /rootfs/ /
COPY --from=build /out/chatrd /chatrd
USER 65532:65532
ENTRYPOINT ["/chatrd"]

FROM scratch AS chatr-operator
ARG VERSION=devel
ARG COMMIT=unknown
LABEL org.opencontainers.image.source=https://github.com/chatr-ai/chatr \
      org.opencontainers.image.revision=${COMMIT} \
      org.opencontainers.image.version=${VERSION} \
      org.opencontainers.image.title=chatr-operator
COPY --from=build /rootfs/ /
COPY --from=build /out/chatr-operator /chatr-operator
USER 65532:65532
ENTRYPOINT ["/chatr-operator"]
