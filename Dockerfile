# syntax=docker/dockerfile:1
# The csi-thin image: a static build of cmd/csi-thin on a small Debian with
# the tools the driver runs. `make image` builds it.

ARG GO_VERSION=1.26
ARG DEBIAN_RELEASE=trixie

# Build: pure Go, no cgo, so the binary needs no libraries at run time.
FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-${DEBIAN_RELEASE} AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
COPY . .
ARG TARGETOS=linux
ARG TARGETARCH
ARG VERSION=dev
RUN --mount=type=cache,target=/go/pkg/mod \
    --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} \
    go build -trimpath \
      -ldflags "-s -w -X github.com/csi-thin/csi-thin/pkg/driver.Version=${VERSION}" \
      -o /out/csi-thin ./cmd/csi-thin

# Run: the filesystem and pool tools csi-thin and k8s.io/mount-utils call,
# from deploy/image-packages.txt (the cluster tests build their image from
# the same list).
FROM debian:${DEBIAN_RELEASE}-slim
COPY deploy/image-packages.txt /tmp/image-packages.txt
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      $(sed 's/#.*//' /tmp/image-packages.txt) \
 && rm -rf /var/lib/apt/lists/* /tmp/image-packages.txt
COPY --from=build /out/csi-thin /usr/local/bin/csi-thin
# The node DaemonSet runs it privileged, as root: see the README.
ENTRYPOINT ["/usr/local/bin/csi-thin"]
