# syntax=docker/dockerfile:1
#
# The relay image. One container per merchant.
#
#   docker build -t relay:0.1.0 .
#   docker run -d --name relay-acme -p 8000:8000 -v relay-acme-data:/data \
#       --env-file acme.env relay:0.1.0
#
# The default command is `relay run`: web server, delivery worker(s) and, while
# RELAY_REDIS_URL is unset, an embedded Redis that keeps its data in the /data volume.
# Another relay command runs one part alone (`docker run relay:0.1.0 worker`) or a one-off
# (`docker exec relay-acme relay dlq list`).
# Every setting is an environment variable (README.md, "Configuration"); each secret may be a
# file instead: RELAY_COMMERCE_API_KEY_FILE=/run/secrets/commerce_api_key.
#
# The install and start steps live in deploy/image/install.sh and deploy/image/start.sh, so
# CI, which cannot build images, runs the very same steps (tests/test_deploy_image.py).
# deploy/README.md is the operator's guide.

# Pin a digest (python:3.11-slim@sha256:...) for reproducible production builds.
ARG PYTHON_IMAGE=python:3.11-slim

# --- build: a virtualenv with the relay and its runtime dependencies only -----------------
FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
# .dockerignore lets in only what deploy/image/install.sh needs.
COPY . .
RUN --mount=type=cache,target=/root/.cache/pip \
    sh deploy/image/install.sh /opt/relay

# --- runtime: that virtualenv on a clean base, run by an unprivileged user ----------------
FROM ${PYTHON_IMAGE}

LABEL org.opencontainers.image.title="relay" \
      org.opencontainers.image.description="Self-hosted commerce webhook gateway (one container per merchant)"

# tini runs as PID 1: it passes SIGTERM on to the relay and reaps orphaned processes.
# (Debian package versions are not pinned: the base image's release decides them.)
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it and volume and secret
# file ownership can be planned (deploy/README.md, "Secrets").
# (--no-log-init: a high uid would otherwise grow /var/log/lastlog to gigabytes.)
RUN groupadd --gid 10001 relay \
    && useradd --uid 10001 --gid relay --no-log-init --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin relay \
    && mkdir /data \
    && chown relay:relay /data \
    && chmod 700 /data

COPY --from=build /opt/relay /opt/relay
COPY --chmod=755 deploy/image/start.sh /usr/local/bin/relay-start

# The same defaults as deploy/image/start.sh, set here too so that `docker exec ... relay`
# one-off commands find the running embedded Redis in /data.
ENV PATH=/opt/relay/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RELAY_BIND=0.0.0.0:8000 \
    RELAY_DATA_DIR=/data

USER 10001:10001
# The embedded Redis' data: the append-only file (relay.aof) and RDB snapshots (dump.rdb);
# also `relay run`'s metrics files (metrics/, recreated at every start).
VOLUME ["/data"]
EXPOSE 8000

# Process up, and Redis not unreachable for longer than RELAY_HEALTHZ_GRACE_SECONDS (GET
# /healthz; `relay run` restarts a crashed embedded Redis itself). The slim image has no
# curl: python's urllib does it, on the port of RELAY_BIND. `relay worker` alone serves no HTTP: compose and
# Kubernetes override or ignore this check for it.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; port = os.environ.get('RELAY_BIND', '0.0.0.0:8000').rpartition(':')[2]; urllib.request.urlopen(f'http://127.0.0.1:{port}/healthz', timeout=4)"]

ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/relay-start"]
CMD ["run"]
