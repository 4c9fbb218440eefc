# The example app of conf/sidecar/docker-compose.yml: clients/python/examples/app.py
# (FastAPI, rate-limited by the rlimit middleware), from Debian's packages.
# Built from the repository's top level: docker build -f conf/sidecar/app.Dockerfile .
FROM debian:bookworm-slim
RUN apt-get update \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        python3 python3-fastapi python3-uvicorn \
    && rm -rf /var/lib/apt/lists/* \
    && useradd --system --uid 10002 --no-create-home --shell /usr/sbin/nologin app
COPY clients/python/rlimit/ /app/rlimit/
COPY clients/python/examples/ /app/examples/
WORKDIR /app
USER app
# The daemon's socket, on the volume shared with the rlimitd container.
ENV RLIMITD_ADDRESS=unix:/run/rlimitd/rlimitd.sock
EXPOSE 8000
CMD ["python3", "-m", "uvicorn", "examples.app:app", "--host", "0.0.0.0", "--port", "8000", \
     "--no-proxy-headers"]
