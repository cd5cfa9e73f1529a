"""The ``webhook`` resumer: POST the decision as JSON to the URL in ``source.params["url"]``.

The body is ``{"event_id", "key", "name", "source", "decision"}``. Two headers let the
receiver trust it: ``X-Signoff-Signature: sha256=<hex>`` (HMAC-SHA256 of the raw body with the
shared secret, the GitHub convention) and ``X-Signoff-Event: <event id>``. A 2xx answer is a
delivery; 408, 429, 5xx and connection errors are retried; any other 4xx fails the delivery.

Settings (``[resumers.webhook]``): ``secret`` (required to sign; without it the header is
left out), ``timeout`` (seconds, default 10), ``allowed_hosts`` (a list; when set, URLs to
other hosts are refused, so a workflow token cannot make the hub call arbitrary hosts).
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

import httpx

from .._model import Event
from . import DeliveryFailed, RetryDelivery

__all__ = ["WebhookResumer", "sign"]


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookResumer:
    """Deliver decisions to HTTP receivers."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.secret: str | None = settings.get("secret")
        self.allowed_hosts: list[str] | None = settings.get("allowed_hosts")
        self._client = httpx.AsyncClient(timeout=float(settings.get("timeout", 10)))

    async def deliver(self, event: Event) -> None:
        """POST the decision; raise on anything but a 2xx."""
        url = event.source.params.get("url")
        if not isinstance(url, str) or not url.startswith(("http://", "https://")):
            raise DeliveryFailed(f"source.params.url: expected an http(s) URL, got {url!r}")
        host = urlsplit(url).hostname
        if self.allowed_hosts is not None and host not in self.allowed_hosts:
            raise DeliveryFailed(f"source.params.url: host {host!r} is not in allowed_hosts")
        assert event.decision is not None
        body = json.dumps({
            "event_id": event.id, "key": event.key, "name": event.name,
            "source": event.source.model_dump(mode="json"),
            "decision": event.decision.model_dump(mode="json"),
        }).encode()
        headers = {"Content-Type": "application/json", "X-Signoff-Event": event.id}
        if self.secret:
            headers["X-Signoff-Signature"] = sign(self.secret, body)
        try:
            answer = await self._client.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise RetryDelivery(f"{url}: {type(exc).__name__}: {exc}") from exc
        if answer.is_success:
            return
        reason = f"{url} answered {answer.status_code}: {answer.text[:200]}"
        if answer.status_code in (408, 429) or answer.status_code >= 500:
            raise RetryDelivery(reason)
        raise DeliveryFailed(reason)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
