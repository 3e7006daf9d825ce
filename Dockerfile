# Sluice as a container image: a static binary on an empty base, run as an
# unprivileged user, with a health check that needs no shell or curl.
#
#   docker build -t sluice .
#   docker build -t sluice --build-arg CONFIG=deploy/ecs/sluice.conf .   # seed 000's aggregator
#   docker buildx build --platform linux/amd64,linux/arm64 -t sluice .   # both (or podman build --platform ... --manifest)
#
# The configuration is /etc/fluent/fluent.conf (Fluentd's path); mount your
# own there, or bake one in with CONFIG. File buffers and backups belong
# under /var/lib/sluice, the one writable volume.

# The build stage runs on the builder's own platform and cross-compiles for
# the target's (Go needs no emulator for that), so that a multi-platform
# build of amd64 and arm64 (Graviton, Fargate ARM) runs no foreign code.
FROM --platform=$BUILDPLATFORM golang:1.26-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=devel
ARG CONFIG=deploy/docker/fluent.conf
# Set by the builder for each target platform; empty (a plain build): this one.
ARG TARGETOS
ARG TARGETARCH
# CGO off: a static binary that runs on an empty base. timetzdata: the zone
# database is inside the binary, for timekey_zone and %z placeholders. The
# configuration is checked with a build for this platform, which can run.
RUN CGO_ENABLED=0 GOOS=${TARGETOS} GOARCH=${TARGETARCH} go build -trimpath -tags timetzdata \
      -ldflags "-s -w -X github.com/sluice-log/sluice/internal/cli.Version=${VERSION}" \
      -o /out/sluice ./cmd/sluice \
 && mkdir -p /out/etc/fluent /out/var/lib/sluice /out/tmp \
 && cp "${CONFIG}" /out/etc/fluent/fluent.conf \
 && go run ./cmd/sluice check -c /out/etc/fluent/fluent.conf

FROM scratch
# TLS roots, for S3, Firehose and TLS forward destinations.
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build --chown=65532:65532 /out/ /
USER 65532:65532
# The admin listener (/healthz, /readyz, /metrics) whatever the
# configuration holds, so that the health check works with any of them;
# set SLUICE_ADMIN_ADDR empty to turn it off.
ENV SLUICE_ADMIN_ADDR=0.0.0.0:24232
# forward (TCP, and UDP for heartbeats), prometheus (/metrics), admin
EXPOSE 24224/tcp 24224/udp 24231/tcp 24232/tcp
VOLUME /var/lib/sluice
HEALTHCHECK --interval=10s --timeout=5s --start-period=10s --retries=3 \
  CMD ["/sluice", "probe", "http://127.0.0.1:24232/healthz"]
# SIGTERM drains within <system> shutdown_timeout (25 s by default); give
# the container more than that before SIGKILL (docker stop -t 35).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/sluice"]
CMD ["-c", "/etc/fluent/fluent.conf"]
