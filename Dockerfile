# syntax=docker/dockerfile:1
# The hub's image: `signoff serve` with the [hub,postgres] extras, as a non-root user.
#   docker build -t signoff:0.1.0 .
#   docker run -p 8765:8765 -e SIGNOFF_DATABASE=postgresql://... -e SIGNOFF_AUDIT_KEY=...
#     -e SIGNOFF_SIGNING_KEYS="$(signoff keys new)" signoff:0.1.0   (one command, two lines)
# No secret is baked in: the database URL, the audit key and the signing keys come from the
# environment or mounted files (Kubernetes Secrets, see deploy/kustomize and docs/deploy.md).

FROM python:3.12-slim-bookworm AS build
ENV PIP_NO_CACHE_DIR=1 PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
# only what the package is built from (.dockerignore keeps the rest out of the context)
COPY pyproject.toml README.md LICENSE ./
COPY core ./core
COPY adapters ./adapters
RUN python -m venv /opt/signoff \
    && /opt/signoff/bin/pip install ".[hub,postgres]"

FROM python:3.12-slim-bookworm
# a fixed numeric uid, so Kubernetes' runAsNonRoot can check it without a passwd lookup
RUN groupadd --system --gid 10001 signoff \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/signoff \
       --shell /usr/sbin/nologin signoff \
    && mkdir -p /var/lib/signoff \
    && chown 10001:10001 /var/lib/signoff
COPY --from=build /opt/signoff /opt/signoff
ENV PATH=/opt/signoff/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    SIGNOFF_PORT=8765 \
    SIGNOFF_DATABASE=/var/lib/signoff/signoff.db
WORKDIR /var/lib/signoff
USER 10001:10001
EXPOSE 8765
# liveness: the process answers (/readyz, which asks the database, is for load balancers)
HEALTHCHECK --interval=15s --timeout=3s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import os, sys, urllib.request; sys.exit(0 if urllib.request.urlopen('http://127.0.0.1:%s/healthz' % os.environ.get('SIGNOFF_PORT', '8765'), timeout=2).status == 200 else 1)"]
CMD ["signoff", "serve", "--host", "0.0.0.0"]
