# netraven-worker image: a build stage with the toolchain and -dev packages,
# and a slim runtime stage with only the shared libraries the binary needs.
#
#   docker build -t netraven/worker .
#   docker run --rm netraven/worker migrate     # apply the schema
#   docker run netraven/worker                  # the daemon (CMD run)
#
# Each stage removes apt's package lists and downloaded .debs in the RUN that
# made them (`apt-get clean` and the folders): a base image may not be set up
# to do it (Debian's official images are; a debootstrap base is not).

# ---------------------------------------------------------------- build
FROM debian:12 AS build

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      build-essential meson ninja-build pkg-config python3 \
      libpq-dev libhiredis-dev libyaml-dev libssh-dev libssl-dev \
      libjansson-dev zlib1g-dev libmicrohttpd-dev \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

WORKDIR /src
COPY . .
RUN meson setup build --buildtype=release -Dtests=disabled -Dsanitize=false \
 && ninja -C build netraven-worker \
 && install -D -m 0755 build/netraven-worker /staging/usr/local/bin/netraven-worker \
 && strip /staging/usr/local/bin/netraven-worker

# ---------------------------------------------------------------- runtime
FROM debian:12-slim

ARG DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends \
      libpq5 libhiredis0.14 libyaml-0-2 libssh-4 libssl3 libjansson4 zlib1g \
      libmicrohttpd12 \
      ca-certificates \
 && apt-get clean \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*

# A non-root user; the log folder (a host volume in docker-compose.yaml) and
# the spool of log rows kept while PostgreSQL is away belong to it.
RUN groupadd --system --gid 10001 netraven \
 && useradd --system --uid 10001 --gid netraven --home-dir /var/lib/netraven \
      --no-create-home --shell /usr/sbin/nologin netraven \
 && mkdir -p /var/log/netraven /var/lib/netraven/spool \
 && chown -R netraven:netraven /var/log/netraven /var/lib/netraven

COPY --from=build /staging/usr/local/bin/netraven-worker /usr/local/bin/netraven-worker
COPY config/ /etc/netraven/config/

ENV NETRAVEN_CONFIG_DIR=/etc/netraven/config
# Prometheus metrics at http://<container>:9108/metrics (README, Metrics)
ENV NETRAVEN_METRICS__LISTEN=:9108
EXPOSE 9108

USER netraven
WORKDIR /var/lib/netraven
VOLUME ["/var/lib/netraven/spool"]

# Healthy while the daemon's heartbeat (<spool_dir>/heartbeat, written by its
# intake loop) is less than 60 s old.
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
  CMD ["/usr/local/bin/netraven-worker", "health"]

# SIGTERM: stop taking jobs, finish what is in flight within
# worker.shutdown_grace_seconds (then hand it back), flush logs, exit 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/netraven-worker"]
CMD ["run"]
