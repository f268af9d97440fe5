# syntax=docker/dockerfile:1
# The runtime image: gatehouse-host with the services' components and
# migrations, gatehouse-setup (the migration Job) and gatehouse-mailer.
#
#   docker build -f deploy/docker/host.Dockerfile -t gatehouse/host:0.1.0 .
#
# Built from the repository root. The final image has no shell and runs as
# an unprivileged user; its manifest is mounted at /etc/gatehouse/host.toml
# (the Helm chart renders it from deploy/host.toml).

FROM rust:1.95-bookworm@sha256:6258907abe69656e41cd992e0b705cdcfabcbbe3db374f92ed2d47121282d4a1 AS build
RUN apt-get update \
    && apt-get install -y --no-install-recommends cmake=3.25.1-1 \
    && rm -rf /var/lib/apt/lists/* \
    && rustup target add wasm32-wasip2
WORKDIR /src
COPY . .
RUN cargo build --locked --release -p host -p setup -p mailer
WORKDIR /src/plugins
RUN cargo build --locked --release -p auth -p users -p items
WORKDIR /src
RUN rustc --edition 2024 -O -o target/release/gatehouse-healthcheck deploy/docker/healthcheck.rs

FROM gcr.io/distroless/cc-debian12:nonroot@sha256:9dac0a79194e45a7da0158a9c6da57b217585af0786db3845d1f0ec1a0dd182f
LABEL org.opencontainers.image.title="gatehouse-host" \
      org.opencontainers.image.description="Gatehouse runtime host: the auth, users and items services as WebAssembly components, with gatehouse-setup and gatehouse-mailer" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.version="0.1.0"
COPY --from=build /src/target/release/gatehouse-host /src/target/release/gatehouse-setup /src/target/release/gatehouse-mailer /src/target/release/gatehouse-healthcheck /usr/local/bin/
COPY --from=build /src/target/wasm32-wasip2/release/auth.wasm /src/target/wasm32-wasip2/release/users.wasm /src/target/wasm32-wasip2/release/items.wasm /opt/gatehouse/components/
COPY plugins/migrations /opt/gatehouse/migrations
USER 65532:65532
ENV GATEHOUSE_HOST_MANIFEST=/etc/gatehouse/host.toml \
    GATEHOUSE_LOG_FORMAT=json
EXPOSE 8081 9081
HEALTHCHECK --interval=10s --timeout=3s --start-period=60s CMD ["/usr/local/bin/gatehouse-healthcheck", "127.0.0.1:9081", "/healthz"]
ENTRYPOINT ["/usr/local/bin/gatehouse-host"]
