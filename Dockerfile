# previewer's container image: one image for `previewer serve` (the default
# command) and `previewer worker`. See docs/operations.md.
#
#   docker build -t previewer .
#   docker run -p 8080:8080 -v previewer-cache:/var/cache/previewer previewer
#
# Both stages use the same pinned base; pin it further by digest
# (python:3.11.13-slim-bookworm@sha256:...) where builds must be reproducible.

# --- build: a virtual environment holding previewer and its dependencies ----------
FROM python:3.11.13-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

WORKDIR /src
# Every dependency installs from a wheel (pyvips-binary carries libvips), so
# this stage needs no compiler either.
COPY pyproject.toml README.md ./
COPY src ./src
RUN python -m venv /opt/previewer \
    && /opt/previewer/bin/pip install . \
    && /opt/previewer/bin/previewer --help > /dev/null

# --- runtime: the venv, an unprivileged user, the cache volume ---------------------
FROM python:3.11.13-slim-bookworm AS runtime

LABEL org.opencontainers.image.title="previewer" \
      org.opencontainers.image.description="HTTP image preview service with a persistent LRU disk cache" \
      org.opencontainers.image.licenses="MIT"

# Settings are PREVIEWER_* variables (README, Configuration): listen on every
# interface inside the container, keep the cache in the volume below.
ENV PATH="/opt/previewer/bin:${PATH}" \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PREVIEWER_HOST=0.0.0.0 \
    PREVIEWER_PORT=8080 \
    PREVIEWER_CACHE_DIR=/var/cache/previewer

RUN groupadd --system --gid 10001 previewer \
    && useradd --system --uid 10001 --gid previewer --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin previewer \
    && mkdir -p /var/cache/previewer \
    && chown previewer:previewer /var/cache/previewer

COPY --from=build /opt/previewer /opt/previewer

USER 10001:10001
VOLUME ["/var/cache/previewer"]
# 8080: HTTP (--port); 9090: Prometheus metrics when --metrics-address is set
EXPOSE 8080 9090

# Liveness with the Python the image already has: no curl needed. urlopen
# raises on a refused connection or a non-2xx answer, so the exit code is 1.
HEALTHCHECK --interval=15s --timeout=5s --start-period=10s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('PREVIEWER_PORT', '8080') + '/health', timeout=4)"]

ENTRYPOINT ["previewer"]
CMD ["serve"]
