# Warren, an AMQP 0-9-1 broker, in a small Debian image.
#
# This Dockerfile packages a binary built on the host (no Rust toolchain in the
# image, no registry needed beyond the base image):
#
#   cargo build --release -p warren
#   mkdir -p docker/bin && strip --strip-debug -o docker/bin/warren "${CARGO_TARGET_DIR:-target}/release/warren"
#   (the release profile keeps debug info for profiling: ~470 MB; the image needs none of it)
#   docker build -t warren .          # or: docker-compose up -d --build
#   docker run -d -p 5672:5672 -v warren-data:/var/lib/warren warren
#
# The binary must be built for a glibc no newer than Debian 12's (build it on
# Debian 12, or use Dockerfile.multistage, which compiles inside Docker).
# scripts/docker-check.sh does all of the above and tests the result.
#
# Configuration: /etc/warren/warren.toml (docker/warren.toml) lets the default
# user guest/guest log in from any address, like RabbitMQ's official image
# (`loopback_users.guest = false`): in a container, clients never arrive from
# loopback. Change the credentials there, or mount your own file over it.
# Flags and WARREN_* environment variables override the file
# (e.g. WARREN_LOG_LEVEL=debug, or `docker run warren --log-level debug`:
# arguments after the image name are appended to the entrypoint).

FROM debian:bookworm-slim

# A fixed system uid/gid, so that bind-mounted data directories can be chowned
# on the host (chown 999:999 DIR).
RUN groupadd --system --gid 999 warren \
    && useradd --system --uid 999 --gid warren --home-dir /var/lib/warren \
        --no-create-home --shell /usr/sbin/nologin warren \
    && mkdir -p /var/lib/warren /etc/warren \
    && chown warren:warren /var/lib/warren \
    && chmod 0750 /var/lib/warren

# (COPY keeps the modes from the build context: 0755 binary, 0644 config;
# no --chmod, which the classic builder used by docker-compose v1 rejects.)
COPY docker/bin/warren /usr/local/bin/warren
COPY docker/warren.toml /etc/warren/warren.toml

# Owned by warren in the image, so a new named volume starts out owned by it too.
VOLUME /var/lib/warren
WORKDIR /var/lib/warren
# Numeric, so that runtimes can tell it is not root (runAsNonRoot) without /etc/passwd.
USER 999:999

EXPOSE 5672 15672 15692

# Healthy while something listens on TCP port 5672 (IPv4 or IPv6). This reads
# /proc instead of connecting, so it adds no connection and no log line per
# probe; adjust the port (hex 1628 = 5672) if you change it in the config.
HEALTHCHECK --interval=30s --timeout=5s --start-period=10s --retries=3 \
    CMD ["grep", "-qsE", "^ *[0-9]+: [0-9A-F]+:1628 [0-9A-F]+:0000 0A ", "/proc/net/tcp", "/proc/net/tcp6"]

# warren runs as PID 1 and shuts down cleanly on SIGTERM (docker stop).
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/warren", "--config", "/etc/warren/warren.toml", "--data-dir", "/var/lib/warren"]
