# syntax=docker/dockerfile:1.7
#
# agentfleet container images: one Dockerfile, one target per image (docs/deployment.md).
#
#   target    image                          entry point
#   runtime   ghcr.io/agentfleet/runtime     agentfleet serve   (the agent pods the operator runs)
#   operator  ghcr.io/agentfleet/operator    agentfleet-operator
#   dev       (local only)                   agentfleet dev, restarted on every source change
#   mcp-bridge ghcr.io/agentfleet/mcp-bridge  copies a self-contained `mcp-bridge` into a pod
#
#   docker build --target runtime  -t ghcr.io/agentfleet/runtime:dev  .
#   docker build --target operator -t ghcr.io/agentfleet/operator:dev .
#   docker compose -f docker/compose.dev.yaml up     # the dev target, source mounted
#
# Two images rather than one with two entry points: the operator needs 33 MB of packages,
# the runtime 300 MB (LLM SDKs, LangGraph, cloud secret clients), so the operator's nodes
# pull and scan about a third of the bytes. Both share the base and the build stages.
#
# Layers: dependencies are installed from uv.lock and the pyproject files alone (cached
# until they change), the project's own packages afterwards. No HEALTHCHECK: Kubernetes
# probes (/healthz/live, /healthz/ready; the operator's /healthz, /readyz) own health.
# The images run as UID 10001 and write nothing outside /tmp (readOnlyRootFilesystem).

ARG PYTHON_IMAGE=python:3.12-slim-trixie
ARG UV_IMAGE=ghcr.io/astral-sh/uv:0.13.9

FROM ${UV_IMAGE} AS uv

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS build
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=uv /uv /usr/local/bin/uv
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_FROZEN=1 \
    UV_PYTHON_DOWNLOADS=never \
    UV_PYTHON=/usr/local/bin/python3.12 \
    UV_PROJECT_ENVIRONMENT=/opt/venv
WORKDIR /src

# ---------------------------------------------------------------------------------------
FROM build AS runtime-build
# Optional secret-provider clients (SecretBinding providers aws, azure, gcp, vault); an
# empty list makes a slimmer image (about 230 MB of packages instead of 300 MB).
ARG RUNTIME_EXTRAS="aws azure gcp vault"
# 1. dependencies only: lock + every workspace member's pyproject (tests/delivery checks
#    that this list matches [tool.uv.workspace] members).
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=crds/pyproject.toml,target=crds/pyproject.toml \
    --mount=type=bind,source=runtime/pyproject.toml,target=runtime/pyproject.toml \
    --mount=type=bind,source=operator/pyproject.toml,target=operator/pyproject.toml \
    --mount=type=bind,source=client/pyproject.toml,target=client/pyproject.toml \
    set --; for extra in ${RUNTIME_EXTRAS}; do set -- "$@" --extra "$extra"; done; \
    uv sync --no-dev --no-install-workspace --package agentfleet-runtime "$@"
# 2. the project's packages, installed as wheels (no source tree in the image).
COPY pyproject.toml uv.lock ./
COPY crds/ crds/
COPY runtime/ runtime/
COPY client/ client/
COPY operator/pyproject.toml operator/
RUN --mount=type=cache,target=/root/.cache/uv \
    set --; for extra in ${RUNTIME_EXTRAS}; do set -- "$@" --extra "$extra"; done; \
    uv sync --no-dev --no-editable --package agentfleet-runtime "$@"

# ---------------------------------------------------------------------------------------
FROM build AS operator-build
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=crds/pyproject.toml,target=crds/pyproject.toml \
    --mount=type=bind,source=runtime/pyproject.toml,target=runtime/pyproject.toml \
    --mount=type=bind,source=operator/pyproject.toml,target=operator/pyproject.toml \
    --mount=type=bind,source=client/pyproject.toml,target=client/pyproject.toml \
    uv sync --no-dev --no-install-workspace --package agentfleet-operator
COPY pyproject.toml uv.lock ./
COPY crds/ crds/
COPY operator/ operator/
COPY runtime/pyproject.toml runtime/
COPY client/pyproject.toml client/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --no-dev --no-editable --package agentfleet-operator

# ---------------------------------------------------------------------------------------
FROM ${PYTHON_IMAGE} AS base
ARG VERSION=0.0.0-dev
ARG REVISION=unknown
ARG CREATED=unknown
LABEL org.opencontainers.image.vendor="agentfleet" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.source="https://github.com/agentfleet/agentfleet" \
      org.opencontainers.image.documentation="https://github.com/agentfleet/agentfleet/blob/main/docs/deployment.md" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.created="${CREATED}"
RUN groupadd --system --gid 10001 agentfleet \
 && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
      --shell /usr/sbin/nologin agentfleet
# HOME=/tmp: the only writable place (an emptyDir in the pods); no bytecode written at run
# time (it was compiled at build time).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
WORKDIR /app

# ---------------------------------------------------------------------------------------
FROM base AS operator
LABEL org.opencontainers.image.title="agentfleet-operator" \
      org.opencontainers.image.description="agentfleet Kubernetes operator (kopf): Agent, MCPServer, ResiliencePolicy, SecretBinding"
COPY --from=operator-build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8080
ENTRYPOINT ["agentfleet-operator"]

# ---------------------------------------------------------------------------------------
FROM build AS dev
# Everything (all packages, dev tools), the workspace installed editable from /src, which
# docker/compose.dev.yaml mounts from the checkout: watchfiles restarts `agentfleet dev`
# on every change of a Python file.
RUN --mount=type=cache,target=/root/.cache/uv \
    --mount=type=bind,source=uv.lock,target=uv.lock \
    --mount=type=bind,source=pyproject.toml,target=pyproject.toml \
    --mount=type=bind,source=crds/pyproject.toml,target=crds/pyproject.toml \
    --mount=type=bind,source=runtime/pyproject.toml,target=runtime/pyproject.toml \
    --mount=type=bind,source=operator/pyproject.toml,target=operator/pyproject.toml \
    --mount=type=bind,source=client/pyproject.toml,target=client/pyproject.toml \
    uv sync --all-packages --no-install-workspace
COPY . .
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --all-packages
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp \
    AGENTFLEET_ENVIRONMENT=development
USER 10001:10001
EXPOSE 8000
CMD ["watchfiles", "--filter", "python", "agentfleet dev --host 0.0.0.0 --port 8000", \
     "crds/src", "runtime/src", "client/src"]

# ---------------------------------------------------------------------------------------
# mcp-bridge: serves a stdio-only MCP server over streamable HTTP (hosted MCPServers with
# `transport: stdio`). The operator runs this image as an init container with one argument,
# a folder, and the image copies a self-contained executable there (PyInstaller one-file:
# Python and the bridge inside; needs glibc >= 2.36 in the server's image: Debian 12+,
# Ubuntu 22.10+; not musl/Alpine). Built on bookworm for that reason. The bridge module
# imports only mcp, starlette and uvicorn (pinned to uv.lock's versions here).
FROM python:3.12-slim-bookworm AS bridge-build
COPY --from=uv /uv /usr/local/bin/uv
WORKDIR /build
COPY runtime/src/agentfleet_runtime/tools/mcp/bridge.py bridge.py
RUN --mount=type=cache,target=/root/.cache/uv \
    uv venv /opt/bridge \
    && uv pip install --python /opt/bridge/bin/python \
        "mcp==2.3.0" "uvicorn==0.54.0" "pyinstaller==6.22.3" \
    && /opt/bridge/bin/pyinstaller --onefile --noconfirm --name mcp-bridge --distpath /dist \
        --collect-submodules uvicorn --collect-submodules mcp.server \
        --collect-submodules mcp.client --collect-submodules mcp.shared \
        --collect-submodules mcp.types bridge.py

FROM busybox:1.37 AS mcp-bridge
LABEL org.opencontainers.image.title="agentfleet-mcp-bridge" \
      org.opencontainers.image.description="Self-contained mcp-bridge: stdio MCP servers over streamable HTTP" \
      org.opencontainers.image.source="https://github.com/agentfleet/agentfleet" \
      org.opencontainers.image.licenses="Apache-2.0"
COPY --from=bridge-build /dist/mcp-bridge /mcp-bridge
USER 10001:10001
# A folder argument: copy the executable there (the operator's init container); anything
# else: run the bridge with those arguments.
ENTRYPOINT ["/bin/sh", "-c", "if [ -d \"$0\" ]; then cp /mcp-bridge \"$0/mcp-bridge\" && chmod 0755 \"$0/mcp-bridge\"; else exec /mcp-bridge \"$0\" \"$@\"; fi"]

# ---------------------------------------------------------------------------------------
# Last, so that a plain `docker build .` builds the runtime image.
FROM base AS runtime
LABEL org.opencontainers.image.title="agentfleet-runtime" \
      org.opencontainers.image.description="agentfleet agent runtime: FastAPI + LangGraph agents calling LLMs and MCP tools"
COPY --from=runtime-build /opt/venv /opt/venv
USER 10001:10001
EXPOSE 8000
ENTRYPOINT ["agentfleet"]
CMD ["serve", "--config", "/etc/agentfleet/config.yaml"]
