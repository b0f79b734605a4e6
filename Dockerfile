# syntax=docker/dockerfile:1
#
# qsysd's container image: wheels are built in a builder stage; the final stage holds the
# installed wheels only (no compiler, no build tools, no source tree) and runs as an
# unprivileged user. See docs/operations.md#container for how to run it.
#
# The base is pinned by digest so a rebuild starts from the same bytes. The digest is the
# python:3.13-slim (Debian bookworm) image index recorded in public build logs of 2026-09; it
# could not be pulled where this file was written. CI builds the image on every push, and
# Dependabot (.github/dependabot.yml) proposes new digests. To bump by hand, change both FROM
# lines to the output of:
#   docker buildx imagetools inspect python:3.13-slim --format '{{json .Manifest.Digest}}'

FROM python:3.13-slim@sha256:7c61056e61ac89e852de05f3dc6fa51a6dd2181797bceed46aa725dd7cb2cd3b AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY qsysd ./qsysd
# Binary wheels only: a dependency that would need a compiler fails the build here, loudly,
# instead of pulling a toolchain into the image. The redis extra makes shared rate limits and
# the Redis state backend available.
RUN pip wheel --wheel-dir /wheels --only-binary=:all: ".[redis]"

FROM python:3.13-slim@sha256:7c61056e61ac89e852de05f3dc6fa51a6dd2181797bceed46aa725dd7cb2cd3b
LABEL org.opencontainers.image.title="qsysd" \
      org.opencontainers.image.description="Discover and control QSC Q-SYS audio systems from AI agents (MCP) and integrators' software" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/qsysd/qsysd"
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    QSYSD_STATE__DIR=/var/lib/qsysd \
    QSYSD_HTTP__ENABLED=true \
    QSYSD_HTTP__LISTEN=0.0.0.0:8765 \
    QSYSD_AUTH__MODE=token \
    QSYSD_LOGGING__FORMAT=json
RUN groupadd --system --gid 10001 qsysd \
    && useradd --system --uid 10001 --gid qsysd --home-dir /var/lib/qsysd --no-create-home \
       --shell /usr/sbin/nologin qsysd \
    && install -d -o qsysd -g qsysd -m 0750 /var/lib/qsysd \
    && install -d -m 0755 /etc/qsysd
# Exactly the wheels the builder resolved, from no index; bind-mounted from the builder, so
# no layer of this image keeps them.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    pip install --no-index --no-deps /wheels/*.whl \
    && pip check
# Snapshots, the journal and (by default) the tokens file: keep them across restarts.
VOLUME ["/var/lib/qsysd"]
USER 10001:10001
WORKDIR /var/lib/qsysd
EXPOSE 8765
# /health needs no token and answers while the process serves HTTP. No curl in the image.
# During the start period it is asked every 2 s (Docker 25+), so `compose up --wait` and
# dependants see "healthy" soon after start; afterwards every 30 s.
HEALTHCHECK --interval=30s --timeout=5s --start-period=30s --start-interval=2s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8765/health', timeout=4).status != 200)"]
# SIGTERM starts the graceful stop: in-flight calls finish, the snapshot is saved.
STOPSIGNAL SIGTERM
ENTRYPOINT ["qsysd"]
CMD ["serve"]
