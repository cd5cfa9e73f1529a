"""The greenlet bridge that runs synchronous store code on the event loop (no database)."""

from __future__ import annotations

import asyncio
import contextvars
from typing import Any

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


class _Pending:
    """An awaitable that never completes (a server that does not answer)."""

    def __await__(self) -> Any:
        yield self


def test_a_driver_closed_mid_call_lets_the_code_unwind() -> None:
    """A coroutine is closed, not cancelled, when its task is destroyed with its loop. The code
    driven then gets GeneratorExit where it waited, and its handlers (a rollback) may ask for
    another wait: nothing will serve it, so that wait fails at once too, the code unwinds to
    its end, and the close succeeds instead of failing with "coroutine ignored GeneratorExit"
    and leaving the greenlet suspended for ever."""
    seen: list[str] = []

    def fn() -> None:
        try:
            wait_for(_Pending())
        except BaseException as exc:
            seen.append(f"waiting: {type(exc).__name__}")
            try:
                wait_for(_Pending())  # a rollback
            except BaseException as again:
                seen.append(f"rolling back: {type(again).__name__}")
                raise
            raise
        finally:
            seen.append("unwound")

    call = drive(fn)
    call.send(None)  # runs to the first wait
    call.close()
    assert seen == ["waiting: GeneratorExit", "rolling back: GeneratorExit", "unwound"]
