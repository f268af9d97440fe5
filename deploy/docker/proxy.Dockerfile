# syntax=docker/dockerfile:1
# The edge image: gatehouse-proxy and the web frontend's static files.
#
#   docker build -f deploy/docker/proxy.Dockerfile -t gatehouse/proxy:0.1.0 .
#
# Built from the repository root. The final image has no shell and runs as
# an unprivileged user; its configuration is mounted at
# /etc/gatehouse/proxy.toml (the Helm chart renders it from deploy/proxy.toml).

FROM node:22-bookworm-slim@sha256:43ac6c60b8f89723f746e8a92ce91abd5017e627ce1ddfe4238355d3a30b772c AS frontend
WORKDIR /src/frontend
# The frontend is exported as static files (`npm run build` into out/). The
# wildcard keeps the image buildable while the repository has no frontend:
# /opt/gatehouse/frontend is then empty.
COPY frontend* ./
RUN mkdir -p out \
    && if [ -f package-lock.json ]; then npm ci --no-audit --no-fund && npm run build; fi

FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake=3.25.1-1 \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p proxy \
    && rustc --edition 2024 -O -o target/release/gatehouse-healthcheck deploy/docker/healthcheck.rs

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="gatehouse-proxy" \
      org.opencontainers.image.description="Gatehouse edge proxy (Pingora): verifies tokens and routes to the runtime host; serves the web frontend" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
COPY --from=build /src/target/release/gatehouse-proxy /src/target/release/gatehouse-healthcheck /usr/local/bin/
COPY --from=frontend /src/frontend/out /opt/gatehouse/frontend
USER 65532:65532
ENV GATEHOUSE_PROXY_CONFIG=/etc/gatehouse/proxy.toml
EXPOSE 8080 9091
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s CMD ["/usr/local/bin/gatehouse-healthcheck", "127.0.0.1:9091", "/healthz"]
ENTRYPOINT ["/usr/local/bin/gatehouse-proxy"]
