"""Fixtures of the identity tests: the test OpenID Connect provider as its own process, and
hubs configured to trust it (through the environment, as an operator would).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from signoff.testing import free_port, until

from .provider import CLIENT_ID, CLIENT_SECRET

ROOT = Path(__file__).parents[2]


class Provider:
    """A running test provider (:mod:`.provider`) and its test controls."""

    def __init__(self, log: Path) -> None:
        self.port = free_port()
        self.issuer = f"http://127.0.0.1:{self.port}"
        with log.open("a") as out:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "tests.identity.provider", str(self.port)], cwd=ROOT,
                stdout=out, stderr=subprocess.STDOUT)
        until(self._up, timeout=30, what=f"the test provider on port {self.port}")

    def _up(self) -> bool:
        assert self.process.poll() is None, "the test provider exited"
        try:
            return httpx.get(f"{self.issuer}/.well-known/openid-configuration").is_success
        except httpx.TransportError:
            return False

    def control(self, what: str, body: Any = None) -> dict[str, Any]:
        """Call one of the provider's ``/test`` controls."""
        if body is None and what == "stats":
            answer = httpx.get(f"{self.issuer}/test/stats")
        else:
            answer = httpx.post(f"{self.issuer}/test/{what}", json=body)
        answer.raise_for_status()
        found: dict[str, Any] = answer.json()
        return found

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture(scope="module")
def provider(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Provider]:
    """The test provider with three users: alice (ops), bob (finance), eve (no groups)."""
    running = Provider(tmp_path_factory.mktemp("provider") / "provider.log")
    running.control("users", {
        "alice": {"groups": ["ops"], "email": "alice@example.com", "email_verified": True},
        "bob": {"groups": ["finance"], "email": "bob@example.com", "email_verified": True},
        "eve": {"groups": [], "email": "eve@elsewhere.test", "email_verified": True}})
    try:
        yield running
    finally:
        running.stop()


def oidc_env(provider: Provider, **oidc: Any) -> dict[str, str]:
    """The hub's environment for sign-in with the test provider."""
    settings = {"issuer": provider.issuer, "client_id": CLIENT_ID,
                "client_secret": CLIENT_SECRET, "jwks_min_refresh": 0, **oidc}
    return {"SIGNOFF_OIDC": json.dumps(settings),
            "SIGNOFF_EGRESS_ALLOW_PRIVATE": json.dumps(["127.0.0.1/32"])}


def http_sign_in(client: httpx.Client, hub_url: str, user: str) -> httpx.Response:
    """The sign-in flow without a browser (same requests, cookies in ``client``): start at the
    hub, sign in at the provider, and return the hub's answer to the callback.
    """
    start = client.get(f"{hub_url}/login/oidc")
    assert start.status_code == 303, start.text
    authorize = start.headers["location"]
    assert client.get(authorize).status_code == 200
    asked = dict(parse_qsl(urlsplit(authorize).query))
    back = client.post(authorize.split("?", 1)[0], data={**asked, "username": user})
    assert back.status_code == 302, back.text
    return client.get(back.headers["location"])
