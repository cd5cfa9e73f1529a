"""A bearer token read from a file at every request (``SIGNOFF_TOKEN_FILE``).

A Kubernetes projected service-account token (or a CI OIDC token written to disk) is short-lived
and replaced in place by the kubelet before it expires; read once at start, a long wait would
outlive it. Read per request, the client always sends the current one, and the pod holds no
signoff secret at all: the hub checks the token against the cluster's issuer (workload identity,
see ``docs/identity.md``).
"""

from __future__ import annotations

from collections.abc import Generator
from pathlib import Path

import httpx

from ._errors import SignoffError

__all__ = ["TokenFile"]


class TokenFile(httpx.Auth):
    """``Authorization: Bearer <the file's text>``, the file read again for every request."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        """Set the header from the file as it is now."""
        try:
            token = self.path.read_text().strip()
        except OSError as exc:
            raise SignoffError(f"SIGNOFF_TOKEN_FILE {self.path}: {exc.strerror or exc}") from exc
        if not token:
            raise SignoffError(f"SIGNOFF_TOKEN_FILE {self.path}: the file is empty")
        request.headers["Authorization"] = f"Bearer {token}"
        yield request
