# syntax=docker/dockerfile:1
# VibeXP image: the API (`vibexp serve`), the operator (`vibexp operator`) and `vibexp db upgrade`, one image.
# Build:  docker build -t ghcr.io/vibexp/vibexp:0.1.0 .
# Try:    docker run --rm -p 8000:8000 ghcr.io/vibexp/vibexp:0.1.0      (embedded SQLite in /data)
#
# Two stages: `build` installs the package and exactly the dependencies uv.lock pins (hashes checked) into a
# virtualenv (every dependency ships manylinux wheels, so no compiler is needed even there); the final stage copies
# only that virtualenv onto a fresh slim base and runs as an unprivileged user. The chart runs it with a read-only
# root filesystem.

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    UV_NO_CACHE=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/vibexp
# uv at the version the Makefile pins, in a virtualenv of its own: it never reaches the final stage.
RUN python -m venv /opt/uv \
    && /opt/uv/bin/pip install "uv==0.13.9"
WORKDIR /src
COPY pyproject.toml uv.lock README.md ./
COPY api/ api/
COPY operator/ operator/
# --frozen: install uv.lock as it is (fail rather than re-resolve); the runtime dependencies only, no dev extra.
RUN /opt/uv/bin/uv sync --frozen --no-editable --python /usr/local/bin/python \
    && /opt/vibexp/bin/vibexp --help > /dev/null

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="VibeXP" \
      org.opencontainers.image.description="Prompts, artifacts and memories for AI tools over REST and MCP" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/vibexp/vibexp"
ENV PATH=/opt/vibexp/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1
# A fixed numeric uid/gid (10001) so Kubernetes' runAsNonRoot can verify it; /data holds the SQLite file when the
# image runs without an external database.
RUN groupadd --system --gid 10001 vibexp \
    && useradd --system --uid 10001 --gid 10001 --home-dir /data --no-create-home --shell /usr/sbin/nologin vibexp \
    && mkdir /data \
    && chown 10001:10001 /data
COPY --from=build /opt/vibexp /opt/vibexp
WORKDIR /data
USER 10001:10001
# 8000: HTTP API (REST, MCP, dashboard, health); 9090: /metrics (VIBEXP_METRICS_PORT, the operator's too); 8080: operator health.
EXPOSE 8000 9090
ENTRYPOINT ["vibexp"]
CMD ["serve", "--host", "0.0.0.0", "--port", "8000"]
