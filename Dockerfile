# viber-publisher as a container: one process, state in /data, config read-only.
#
#   docker build -t viber-publisher .
#   docker run -v publisher-data:/data -v ./sources.toml:/config/sources.toml:ro \
#       -e VIBER_AUTH_TOKEN -p 127.0.0.1:8080:8080 viber-publisher
#
# The container's sources.toml must set  [server] listen = "0.0.0.0:8080"  and
# keep its state under /data:  [storage] path = "/data/publisher.sqlite3",
# media_dir = "/data/media"  (docker/sources.toml is such a file; relative paths
# would land next to the read-only config). docker/compose.yml puts Caddy in
# front for HTTPS, which Viber requires for the webhook and for media.
#
# scripts/check_docker.sh builds the same venv with the same script
# (docker/build-venv.sh) where no Docker engine is available, and lints this file.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS builder

ENV PYTHONDONTWRITEBYTECODE=1
COPY docker/build-venv.sh docker/constraints.txt docker/build-constraints.txt /build/
# Pinned runtime dependencies first: this layer is rebuilt only when the pins change.
RUN sh /build/build-venv.sh deps /opt/venv
# .dockerignore lets in only pyproject.toml, README.md and publisher/.
COPY . /src
RUN sh /build/build-venv.sh app /opt/venv /src \
    && /opt/venv/bin/python -m compileall -q /opt/venv/lib

# ---------------------------------------------------------------------------
FROM ${PYTHON_IMAGE}

ARG UID=10001
RUN groupadd --system --gid "${UID}" publisher \
    && useradd --system --uid "${UID}" --gid publisher --home-dir /data --no-create-home \
        --shell /usr/sbin/nologin publisher \
    && mkdir -p /data /config \
    && chown publisher:publisher /data

# Only the venv (which holds the app); no compilers, no pip, no sources.
COPY --from=builder /opt/venv /opt/venv

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PUBLISHER_CONFIG=/config/sources.toml

LABEL org.opencontainers.image.title="viber-publisher" \
      org.opencontainers.image.description="Publish feeds and folders to a Viber Channel" \
      org.opencontainers.image.licenses="MIT"

VOLUME ["/data"]
WORKDIR /data
USER ${UID}:${UID}
EXPOSE 8080
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=10s --start-period=30s --retries=3 \
    CMD ["viber-publisher", "health"]
ENTRYPOINT ["viber-publisher"]
CMD ["run"]
