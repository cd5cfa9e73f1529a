"""The live inbox: ``GET /live`` streams Server-Sent Events while an inbox page is open.

The hub bumps :class:`Changes` whenever it creates, decides or escalates an event (one line
in ``Hub._notify``, which all those paths pass). Each open stream then re-reads the reviewer's
first page of pending events and, when the set differs from what it last sent, sends one
``inbox`` event: the ids that came and went, and the pending count. The page's script fetches
the inbox again and swaps the list in place; with scripts off nothing streams and the page is
as it was. A stream also re-reads every ``live_recheck_seconds`` (changes made through
another replica reach it that way: replicas share only the database), ends after
``live_stream_seconds`` (the browser reconnects) and counts against ``long_polls_per_token``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import suppress

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

__all__ = ["Changes", "router"]

router = APIRouter(include_in_schema=False)
PAGE = 50
"""As many events as the inbox shows on its first page."""


class Changes:
    """A counter the hub bumps on every change; streams wait on it."""

    def __init__(self) -> None:
        self.version = 0
        self.closed = False  # the hub is shutting down: streams end
        self._bumped = asyncio.Event()

    def bump(self) -> None:
        """Something changed: wake every waiting stream."""
        self.version += 1
        bumped, self._bumped = self._bumped, asyncio.Event()
        bumped.set()

    def close(self) -> None:
        """The hub is shutting down: every stream ends now (the browser reconnects later)."""
        self.closed = True
        self.bump()

    async def wait(self, seen: int, timeout: float) -> int:
        """The version, once it moved past ``seen`` or ``timeout`` seconds passed."""
        if self.version == seen:
            with suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._bumped.wait(), timeout)
        return self.version


def _frame(name: str, data: object) -> bytes:
    return f"event: {name}\ndata: {json.dumps(data, separators=(',', ':'))}\n\n".encode()


@router.get("/live")
async def live(request: Request) -> StreamingResponse:
    """Server-Sent Events for the signed-in reviewer's inbox (see the module docstring).

    Signed in as the pages are (the session cookie; no token in the URL).
    """
    from .web import _session  # here: web imports service, which imports this module

    session = await _session(request)
    hub = request.app.state.hub
    settings = hub.settings
    changes: Changes = hub.changes

    async def stream() -> AsyncIterator[bytes]:
        with hub.limits.long_poll(session.who.user):
            loop = asyncio.get_running_loop()
            ends = loop.time() + settings.live_stream_seconds
            shown: set[str] | None = None
            seen = -1
            yield b"retry: 3000\n\n"
            while (not changes.closed and loop.time() < ends
                   and not await request.is_disconnected()):
                version = changes.version
                if version != seen or shown is None:
                    page = await hub.list(session.who, status="pending", limit=PAGE)
                    ids = {e.id for e in page.events}
                    if shown is not None and ids != shown:
                        count = await hub.count_pending(session.who, limit=1001)
                        yield _frame("inbox", {"added": sorted(ids - shown),
                                               "removed": sorted(shown - ids),
                                               "pending": count})
                    else:
                        yield b": still here\n\n"
                    shown, seen = ids, version
                left = ends - loop.time()
                moved = await changes.wait(seen, min(settings.live_recheck_seconds, left))
                if moved == seen:
                    seen = -1  # a timed recheck: read again (another replica may have written)

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
