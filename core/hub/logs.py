"""Structured logs (issue 18): one line per request and per state change.

A line's own fields travel in ``extra={"fields": {...}}`` (one attribute, so formatting does
not sift through every attribute of the record).

Lines go to the ``signoff.requests`` and ``signoff.events`` loggers; :func:`configure`
(called by ``signoff serve``) writes them to stderr as JSON objects, or as text on a terminal
(``log_format``). Every request gets an id (:class:`~signoff.hub.edge.Edge` takes it from a
sane incoming ``X-Request-Id`` or makes one, and writes the request's line), returned in the
``X-Request-Id`` response header and carried by the state-change lines it causes.
"""

from __future__ import annotations

import json
import logging
import queue
import sys
import threading
from collections.abc import Callable
from contextvars import ContextVar
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from .._model import Event
    from .settings import Settings

__all__ = ["configure", "request_id", "requests_log", "state_change"]

requests_log = logging.getLogger("signoff.requests")
events_log = logging.getLogger("signoff.events")
_QUEUED_LINES = 10_000  # log lines waiting for the writer at most (about 5 MB)
_WRITE_EVERY = 0.05  # seconds between the writer's rounds
request_id: ContextVar[str | None] = ContextVar("signoff_request_id", default=None)


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


class _Handoff(logging.Handler):
    """Hands each record, as it is, to the log writer thread (:class:`_Writer`): formatting and
    the write to stderr (which blocks when the reader is slow) happen there, never on the event
    loop. When too many lines wait, a line is dropped and counted, and the count is logged once
    there is room again.
    """

    def __init__(self, lines: queue.SimpleQueue[logging.LogRecord],
                 urgent: threading.Event) -> None:
        super().__init__()
        self.lines = lines
        self.urgent = urgent  # set for a warning or worse: the writer writes it at once
        self.dropped = 0

    def emit(self, record: logging.LogRecord) -> None:
        if self.lines.qsize() >= _QUEUED_LINES:
            self.dropped += 1
            return
        if self.dropped:
            self.lines.put(logging.LogRecord("signoff.hub", logging.WARNING, __file__, 0,
                                             "%d log lines dropped: stderr was too slow",
                                             (self.dropped,), None))
            self.dropped = 0
        self.lines.put(record)
        if record.levelno >= logging.WARNING:
            self.urgent.set()


class _Writer:
    """The thread that writes the queued lines: it wakes every ``_WRITE_EVERY`` seconds and
    writes what came meanwhile in one go (a wake-up per line would hand the GIL back and forth
    with the event loop on every request).
    """

    def __init__(self, lines: queue.SimpleQueue[logging.LogRecord],
                 formatter: logging.Formatter, stream: TextIO) -> None:
        self.lines = lines
        self.formatter = formatter
        self.stream = stream
        self.urgent = threading.Event()  # a warning waits for no round
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True, name="signoff-log")

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop:
            self.urgent.wait(_WRITE_EVERY)
            self.urgent.clear()
            self._write()
        self._write()

    def _write(self) -> None:
        text: list[str] = []
        while True:
            try:
                record = self.lines.get_nowait()
            except queue.Empty:
                break
            try:
                text.append(self.formatter.format(record) + "\n")
            except Exception as exc:  # a line that cannot be formatted still says so
                text.append(f"unformattable log line {record.msg!r}: {exc}\n")
        if text:
            try:
                self.stream.write("".join(text))
                self.stream.flush()
            except (OSError, ValueError):
                pass  # stderr closed: nowhere left to say it

    def stop(self) -> None:
        """Write what is queued and stop."""
        self._stop = True
        self.urgent.set()
        self._thread.join(timeout=5)


def configure(settings: Settings) -> Callable[[], None]:
    """Send the hub's logs to stderr in ``settings.log_format`` (``auto``: text on a tty),
    through a writer thread; returns what stops it once every queued line is written.
    """
    fmt = settings.log_format
    if fmt in ("auto", "off"):
        fmt = "text" if sys.stderr.isatty() else "json"
    lines: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    writer = _Writer(lines, JsonFormatter() if fmt == "json" else TextFormatter(), sys.stderr)
    # neither format shows where a line was logged from, nor the thread or process: the
    # logging HOWTO's "Optimization" switches, so each record costs the event loop less
    logging._srcfile = None
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger("signoff")
    root.handlers[:] = [_Handoff(lines, writer.urgent)]
    root.setLevel(logging.INFO)
    root.propagate = False
    # the database driver's warnings (psycopg_pool: "error connecting ...") in the same
    # format, one record a line, instead of Python's bare last-resort lines on stderr
    driver = logging.getLogger("psycopg")
    driver.handlers[:] = [_Handoff(lines, writer.urgent)]
    driver.setLevel(logging.WARNING)
    driver.propagate = False
    quiet = logging.WARNING if settings.log_format == "off" else logging.NOTSET
    requests_log.setLevel(quiet)
    events_log.setLevel(quiet)
    writer.start()
    return writer.stop


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
