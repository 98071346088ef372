# syntax=docker/dockerfile:1
#
# firetower: one image for every role (serve, gateway, topicmanager).
#
#   docker build -t firetower:local --build-arg VERSION=$(git describe --always) .
#   docker run --rm -p 9999:9999 -e FIRETOWER_API_KEY=change-me firetower:local
#
# Multi-stage: the binary is built static (CGO_ENABLED=0) and copied into a
# small Alpine image, run as an unprivileged user. Alpine rather than
# scratch/distroless only for busybox wget, which the HEALTHCHECK uses.
# The development machines cannot run Docker: this file is kept correct by
# reading (docs/operations.md, "Containers").

FROM golang:1.26-alpine AS build
WORKDIR /src
# Modules first: this layer stays cached while only the sources change.
COPY go.mod go.sum ./
RUN go mod download
COPY . .
ARG VERSION=dev
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath \
      -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/firetower ./cmd/firetower

FROM alpine:3.22
RUN addgroup -S -g 10001 firetower \
 && adduser -S -D -H -u 10001 -G firetower -s /sbin/nologin firetower \
 && mkdir -p /etc/firetower
COPY --from=build /out/firetower /usr/local/bin/firetower
# A fireTower.toml mounted here is read (the working directory).
WORKDIR /etc/firetower
USER 10001:10001
# 9999: HTTP (websocket /ws, /dashboard, /metrics, /healthz, /readyz, the
# push API under /api/); 9998: the gRPC push API; 6666: a topic manager's
# cluster port (its /healthz and /metrics with --http-addr).
EXPOSE 9999 9998 6666
ENV FIRETOWER_ADDR=0.0.0.0:9999
# For `serve` and `gateway` (the default port). A topic manager started
# from this image overrides it (see deploy/compose.yaml).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD wget -q -O /dev/null http://127.0.0.1:9999/healthz || exit 1
ENTRYPOINT ["firetower"]
CMD ["serve"]
