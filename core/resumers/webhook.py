"""The ``webhook`` resumer: POST the decision as JSON to the URL in ``source.params["url"]``.

The body is ``{"event_id", "key", "name", "source", "decision"}``. Two headers let the
receiver trust it: ``X-Signoff-Signature: sha256=<hex>`` (HMAC-SHA256 of the raw body with the
shared secret, the GitHub convention) and ``X-Signoff-Event: <event id>``. A 2xx answer is a
delivery; 408, 429, 5xx and connection errors are retried; any other 4xx fails the delivery.

Settings (``[resumers.webhook]``): ``secret`` (required to sign; without it the header is
left out), ``timeout`` (seconds, default 10). Where it may post is the hub's ``egress_allow``
and ``egress_allow_private`` (see :mod:`signoff._egress`), handed to it as ``egress``: a URL
outside them, or a name that resolves to a non-public address when the connection is made,
fails the delivery with the reason. Redirects are not followed. A failure records the status
code or the exception's class, never what the receiver answered.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Mapping
from typing import Any

import httpx

from .._egress import EgressGuard, EgressRefused, origin_of
from .._model import Event
from . import DeliveryFailed, RetryDelivery

__all__ = ["WebhookResumer", "sign"]


def sign(secret: str, body: bytes) -> str:
    """The signature header value for ``body``: ``sha256=`` and the hex HMAC."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class WebhookResumer:
    """Deliver decisions to HTTP receivers."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        if "allowed_hosts" in settings:
            raise ValueError("[resumers.webhook] allowed_hosts: replaced by the hub's "
                             "egress_allow (scheme://host[:port] entries)")
        self.secret: str | None = settings.get("secret")
        egress = settings.get("egress")
        self.egress = egress if isinstance(egress, EgressGuard) else EgressGuard()
        self._client = self.egress.client(timeout=float(settings.get("timeout", 10)))

    def target(self, event: Event) -> None:
        """None: a webhook names no engine run (where it may post is ``egress_allow``'s)."""
        return None

    async def deliver(self, event: Event) -> None:
        """POST the decision; raise on anything but a 2xx."""
        url = event.source.params.get("url")
        if not isinstance(url, str):
            raise DeliveryFailed(f"source.params.url: expected an http(s) URL, got {url!r}")
        try:
            self.egress.check_url(url)
        except EgressRefused as exc:
            raise DeliveryFailed(str(exc)) from exc
        assert event.decision is not None
        body = json.dumps({
            "event_id": event.id, "key": event.key, "name": event.name,
            "source": event.source.model_dump(mode="json"),
            "decision": event.decision.model_dump(mode="json"),
        }).encode()
        headers = {"Content-Type": "application/json", "X-Signoff-Event": event.id}
        if self.secret:
            headers["X-Signoff-Signature"] = sign(self.secret, body)
        where = origin_of(url)
        try:  # streamed and never read: the receiver's body is neither needed nor kept
            async with self._client.stream("POST", url, content=body, headers=headers) as answer:
                status = answer.status_code
        except EgressRefused as exc:  # the resolved address, at connect time
            raise DeliveryFailed(str(exc)) from exc
        except httpx.HTTPError as exc:  # the class only: a message may quote the receiver
            raise RetryDelivery(f"{where}: {type(exc).__name__}") from exc
        if 200 <= status < 300:
            return
        reason = f"{where} answered {status}"
        if 300 <= status < 400:
            raise DeliveryFailed(f"{reason} (redirects are not followed)")
        if status in (408, 429) or status >= 500:
            raise RetryDelivery(reason)
        raise DeliveryFailed(reason)

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()
