"""Structured logs (issue 18): one line per request and per state change.

A line's own fields travel in ``extra={"fields": {...}}`` (one attribute, so formatting does
not sift through every attribute of the record).

Lines go to the ``signoff.requests`` and ``signoff.events`` loggers; :func:`configure`
(called by ``signoff serve``) writes them to stderr as JSON objects, or as text on a terminal
(``log_format``). Every request gets an id, taken from a sane incoming ``X-Request-Id`` or
made here, returned in the ``X-Request-Id`` response header and carried by the state-change
lines it causes.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .._model import Event
    from .metrics import Metrics
    from .settings import Settings

__all__ = ["RequestLog", "configure", "request_id", "state_change"]

requests_log = logging.getLogger("signoff.requests")
events_log = logging.getLogger("signoff.events")
request_id: ContextVar[str | None] = ContextVar("signoff_request_id", default=None)
_SANE_ID = re.compile(rb"[A-Za-z0-9._:-]{1,128}")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message, and the line's fields."""

    def __init__(self) -> None:
        super().__init__()
        self._second = -1
        self._stamp = ""

    def _ts(self, created: float) -> str:
        second = int(created)
        if second != self._second:  # formatting a time costs more than the rest of a line
            self._second = second
            self._stamp = datetime.fromtimestamp(second, timezone.utc).strftime(
                "%Y-%m-%dT%H:%M:%S")
        return f"{self._stamp}.{int((created - second) * 1000):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {"ts": self._ts(record.created),
                                "level": record.levelname.lower(), "logger": record.name,
                                "msg": record.getMessage()}
        fields = getattr(record, "fields", None)
        if fields is not None:
            line.update(fields)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


class TextFormatter(logging.Formatter):
    """For a person at a terminal: time, level, message, then ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(f"{k}={v}" for k, v in (getattr(record, "fields", None) or {}).items())
        at = datetime.fromtimestamp(record.created, timezone.utc).strftime("%H:%M:%S")
        text = f"{at} {record.levelname.lower():7} {record.getMessage()} {fields}".rstrip()
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return text


def configure(settings: Settings) -> None:
    """Send the hub's logs to stderr in ``settings.log_format`` (``auto``: text on a tty)."""
    fmt = settings.log_format
    if fmt in ("auto", "off"):
        fmt = "text" if sys.stderr.isatty() else "json"
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("signoff")
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    root.propagate = False
    quiet = logging.WARNING if settings.log_format == "off" else logging.NOTSET
    requests_log.setLevel(quiet)
    events_log.setLevel(quiet)


def state_change(what: str, event: Event, **fields: Any) -> None:
    """Log that ``event`` was ``what`` (created, answered, decided, escalated, delivered,
    failed), with its id, key, source and outcome, and the request that caused it.
    """
    if not events_log.isEnabledFor(logging.INFO):
        return
    decision = event.decision
    extra = {"event_id": event.id, "key": event.key, "event_name": event.name,
             "source": event.source.orchestrator, "priority": event.priority.value,
             "outcome": decision.outcome.value if decision is not None else None,
             "request_id": request_id.get(), **fields}
    events_log.info(what, extra={"fields": extra})


class RequestLog:
    """Outermost ASGI wrapper: the request id, the request's log line and its metrics."""

    def __init__(self, app: ASGIApp, metrics: Callable[[], Metrics | None]) -> None:
        self.app = app
        self.metrics = metrics  # the hub's, once its lifespan has started

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Answer as the app does, with the request id, one log line and the metrics."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = next((v for k, v in scope["headers"] if k == b"x-request-id"), None)
        rid = given.decode() if given is not None and _SANE_ID.fullmatch(given) else \
            uuid.uuid4().hex
        token = request_id.set(rid)
        started = time.perf_counter()
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", []),
                                      (b"x-request-id", rid.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        finally:
            took = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            metrics = self.metrics()
            if metrics is not None:
                metrics.request(scope["method"], template, status, took)
            if requests_log.isEnabledFor(logging.INFO):
                params = scope.get("path_params") or {}
                requests_log.info("request", extra={"fields": {
                    "request_id": rid, "method": scope["method"], "route": template,
                    "status": status, "ms": round(took * 1000, 3),
                    "event_id": params.get("event_id")}})
            request_id.reset(token)
