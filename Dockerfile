# syntax=docker/dockerfile:1
# The mcpgate image: one static binary that is both the operator
# (`mcpgate manager`) and the gateway (`mcpgate gateway`).
#
#   make docker-build IMG=registry.example/mcpgate:v0.1.0

ARG GO_VERSION=1.26

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION} AS build
WORKDIR /src
# Modules first, so that a source change does not download them again.
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS TARGETARCH
ARG VERSION=dev COMMIT="" DATE=""
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -ldflags "-s -w -X github.com/mcpgate/mcpgate/internal/version.Version=${VERSION} -X github.com/mcpgate/mcpgate/internal/version.Commit=${COMMIT} -X github.com/mcpgate/mcpgate/internal/version.Date=${DATE}" -o /out/mcpgate ./cmd/mcpgate

# distroless/static: CA certificates, /etc/passwd and tzdata, no shell, no
# package manager; the nonroot variant runs as UID 65532.
FROM gcr.io/distroless/static-debian12:nonroot
COPY --from=build /out/mcpgate /usr/local/bin/mcpgate
USER 65532:65532
ENTRYPOINT ["/usr/local/bin/mcpgate"]
CMD ["manager"]
