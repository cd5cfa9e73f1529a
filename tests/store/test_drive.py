"""The greenlet bridge that runs synchronous store code on the event loop (no database)."""

from __future__ import annotations

import asyncio
import contextvars

from signoff.store._drive import drive, wait_for

_request = contextvars.ContextVar("_request", default=None)


def test_driven_code_sees_the_callers_context_variables() -> None:
    """A worker thread (anyio) runs with a copy of the caller's context: the request id the
    hub's log lines carry. Driven code must too, before and after it waits; what it sets stays
    its own."""
    def fn() -> tuple[str | None, str | None]:
        before = _request.get()
        wait_for(asyncio.sleep(0))
        after = _request.get()
        _request.set("changed in the call")
        return before, after

    async def main() -> tuple[tuple[str | None, str | None], str | None]:
        _request.set("trace-42")
        seen = await drive(fn)
        return seen, _request.get()

    seen, afterwards = asyncio.run(main())
    assert seen == ("trace-42", "trace-42")
    assert afterwards == "trace-42"
