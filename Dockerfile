# rlimitd as a sidecar container (Debian bookworm).
#
#   docker build -t rlimitd .
#   docker run --rm -v rlimitd-socket:/run/rlimitd -p 7380:7380 rlimitd
#
# The daemon is PID 1, in the foreground, as the unprivileged user rlimitd (uid 10001).
# It reads /etc/rlimitd/rlimitd.json (conf/sidecar/rlimitd.json: mount your own over
# it) and listens on
#   unix:/run/rlimitd/rlimitd.sock    decisions; /run/rlimitd is the volume shared with
#                                     the app container (socket mode 0666)
#   unix:/var/lib/rlimitd/admin.sock  admin (reset, reload): docker exec ... rlimitctl
#   tcp:127.0.0.1:7379                decisions over TCP (same pod only)
#   http:0.0.0.0:7380                 /metrics, /healthz only ("ops": ["stats"])
# SIGTERM stops it cleanly (answers in flight are written); SIGHUP reloads the config.
# See conf/sidecar/ for a compose file and a Kubernetes pod, and conf/README.md.

FROM debian:bookworm-slim AS build
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config libevent-dev libhiredis-dev libjansson-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY Makefile ./
COPY proto/ proto/
COPY daemon/ daemon/
COPY clients/c/ clients/c/
RUN make -j"$(nproc)" BUILD=build build/rlimitd build/rlimitctl \
    && strip build/rlimitd build/rlimitctl \
    && build/rlimitd --help >/dev/null

FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libevent-2.1-7 libjansson4 libhiredis0.14 \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 rlimitd \
    && useradd --system --uid 10001 --gid rlimitd --home-dir /var/lib/rlimitd \
        --no-create-home --shell /usr/sbin/nologin rlimitd \
    && install -d -o rlimitd -g rlimitd -m 0755 /run/rlimitd \
    && install -d -o rlimitd -g rlimitd -m 0700 /var/lib/rlimitd
COPY --from=build /src/build/rlimitd /src/build/rlimitctl /usr/local/bin/
COPY conf/sidecar/rlimitd.json /etc/rlimitd/rlimitd.json
USER rlimitd:rlimitd
# rlimitctl in this container talks to the admin socket by default.
ENV RLIMITD_ADDRESS=unix:/var/lib/rlimitd/admin.sock
VOLUME ["/run/rlimitd"]
EXPOSE 7379 7380
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
    CMD ["/usr/local/bin/rlimitctl", "-t", "2000", "ping"]
STOPSIGNAL SIGTERM
ENTRYPOINT ["/usr/local/bin/rlimitd", "-f", "-c", "/etc/rlimitd/rlimitd.json"]
