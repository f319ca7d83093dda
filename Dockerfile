# Two images from one build (no Docker engine runs on our build machines, so
# this file is not exercised by CI; `make build` builds the same binaries):
#
#   docker build --target chatr          -t ghcr.io/chatr-ai/chatr .           # /chatrd: api, streamer, verifier, migrate
#   docker build --target chatr-operator -t ghcr.io/chatr-ai/chatr-operator .  # /chatr-operator
#
# Both run as the distroless non-root user with nothing but the binary, so the
# operator's Deployments can set readOnlyRootFilesystem and drop every capability.
FROM golang:1.26 AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/chatrd ./cmd/chatrd \
 && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o /out/chatr-operator ./cmd/chatr-operator

FROM gcr.io/distroless/static-debian12:nonroot AS chatr
COPY --from=build /out/chatrd /chatrd
USER 65532:65532
ENTRYPOINT ["/chatrd"]

FROM gcr.io/distroless/static-debian12:nonroot AS chatr-operator
COPY --from=build /out/chatr-operator /chatr-operator
USER 65532:65532
ENTRYPOINT ["/chatr-operator"]
