"""The hub's outermost ASGI layer: what every answer carries, whatever produced it.

One wrapper, not a stack of them (each layer costs a coroutine and a closure per request, on
the path every decision takes):

- a **request id**, taken from a sane incoming ``X-Request-Id`` or made here, returned in the
  ``X-Request-Id`` header and carried by the log lines the request causes;
- the **security headers**: the Content-Security-Policy (scripts, styles and images only from
  the hub, no inline code, no framing), ``X-Frame-Options: DENY``, ``Referrer-Policy:
  no-referrer``, ``X-Content-Type-Options: nosniff`` and ``Cache-Control: no-store`` on every
  answer that does not set its own: pages, API JSON, errors (the 500 too), redirects, files;
- **HEAD** wherever GET answers, with GET's status and headers and no body;
- the **body limit**: a body over ``max_body_bytes`` is a 413 whether or not it declares its
  size (a chunked body is read here, up to the limit, before the app sees it: FastAPI would
  turn an error raised while it reads into a 400);
- one **log line** per request (``signoff.requests``) and the request **metrics**.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from fastapi.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._errors import PayloadTooLarge
from .._ids import random_hex
from .logs import request_id, requests_log

if TYPE_CHECKING:
    from .metrics import Metrics

__all__ = ["CSP", "Edge"]

CSP = ("default-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; "
       "form-action 'self'; frame-ancestors 'none'")
"""Scripts, styles and images only from the hub's own routes (one small script, no inline
code); the pages work with scripts off."""

_HEADERS = (
    (b"content-security-policy", CSP.encode()),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-store"),
)
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class _ClientGone(Exception):
    """The client disconnected while its body was being read."""


class Edge:
    """Outermost ASGI wrapper; see the module docstring."""

    def __init__(self, app: ASGIApp, limit: int, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.limit = limit
        self.metrics = metrics  # the hub's, once its lifespan has started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer as the app does, with the request id, the headers, one log line and the
        metrics; a HEAD as its GET without the body; a body over the limit as 413.
        """
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = declared = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"x-request-id":
                given = value
            elif name == b"transfer-encoding":
                chunked = b"chunked" in value.lower()
        rid = given.decode() if given is not None and _SANE_ID.fullmatch(given) else \
            random_hex()
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500
        head = scope["method"] == "HEAD"
        inner = {**scope, "method": "GET"} if head else scope  # the router notes its route here

        async def edge_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k, v) for k, v in _HEADERS if k not in present]
                headers.append((b"x-request-id", rid.encode()))
                message = {**message, "headers": headers}
            elif head and message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        try:
            if declared is not None:
                if declared.isdigit() and int(declared) > self.limit:
                    await _too_large(self.limit, edge_send)
                    return
            elif chunked:
                try:
                    replay = await self._read_limited(receive)
                except _ClientGone:
                    return  # the client went away before its body ended
                if replay is None:
                    await _too_large(self.limit, edge_send)
                    return
                receive = replay
            await self.app(inner, receive, edge_send)
        finally:
            self._done(inner, scope["method"], rid, status, time.perf_counter() - started)
            request_id.reset(token)

    async def _read_limited(self, receive: Receive) -> Receive | None:
        """Read a body of undeclared size up to the limit: a ``receive`` that replays it, or
        None when it is over the limit.

        Raises:
            _ClientGone: the client left before its body ended.
        """
        chunks: list[bytes] = []
        seen = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                raise _ClientGone
            chunk = message.get("body", b"")
            seen += len(chunk)
            if seen > self.limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def buffered() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        return buffered

    def _done(self, scope: Scope, method: str, rid: str, status: int, took: float) -> None:
        route = scope.get("route")
        template = getattr(route, "path", None) or "unmatched"
        metrics = self.metrics()
        if metrics is not None:
            metrics.request(method, template, status, took)
        if requests_log.isEnabledFor(logging.INFO):
            params = scope.get("path_params") or {}
            requests_log.info("request", extra={"fields": {
                "request_id": rid, "method": method, "route": template,
                "status": status, "ms": round(took * 1000, 3),
                "event_id": params.get("event_id")}})


async def _too_large(limit: int, send: Send) -> None:
    body = JSONResponse(PayloadTooLarge(f"request body over {limit} bytes").to_dict(), 413).body
    await send({"type": "http.response.start", "status": 413,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})
