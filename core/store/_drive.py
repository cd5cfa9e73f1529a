"""Synchronous store code driven by the event loop, without a worker thread (``greenlet``).

The store's SQL is written once, synchronously, and shared by SQLite and PostgreSQL. In a
worker thread every round trip to a database server hands the GIL and a futex between the
thread and the event loop twice; on the PostgreSQL hub that cost more CPU than the SQL.
:func:`drive` runs the same synchronous code in a greenlet on the loop's own thread instead:
where it would wait for the server (:func:`wait_for`), the greenlet hands the awaitable to
the loop and resumes with its result. Between two such waits the code runs to completion,
as it would in a thread, so it must not block on anything else (a lock another greenlet
holds, a socket of its own, a sleep): only what the store does qualifies.

The pattern is SQLAlchemy's ``greenlet_spawn``/``await_only``; this is the part of it the
store needs.
"""

from __future__ import annotations

import contextvars
import sys
from collections.abc import Awaitable, Callable, Iterator
from contextlib import AbstractAsyncContextManager, contextmanager
from typing import Any, TypeVar

import greenlet

__all__ = ["drive", "driven", "in_context", "wait_for"]

T = TypeVar("T")


class _Driven(greenlet.greenlet):  # type: ignore[misc]
    """A greenlet whose waits the event loop serves (see :func:`drive`)."""


def driven() -> bool:
    """Whether the caller runs inside :func:`drive` (and so may :func:`wait_for`)."""
    return isinstance(greenlet.getcurrent(), _Driven)


def wait_for(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` on the event loop driving this greenlet, and return its result
    (or raise its exception) here.

    Raises:
        RuntimeError: not inside :func:`drive`.
    """
    current = greenlet.getcurrent()
    if not isinstance(current, _Driven) or current.parent is None:
        raise RuntimeError("wait_for() outside drive(): nothing would serve the wait")
    result: T = current.parent.switch(awaitable)
    return result


async def drive(fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``fn(*args, **kwargs)`` in a greenlet, awaiting each awaitable it waits for.

    An exception from an awaitable is raised inside ``fn`` where it waited, so its handlers
    run (a rollback, a connection given back) before it reaches the caller. ``fn`` sees the
    caller's context variables (a copy, as in a worker thread).
    """
    worker = _Driven(lambda: fn(*args, **kwargs), parent=greenlet.getcurrent())
    # a new greenlet starts in an empty context: give it a copy of the caller's, as a worker
    # thread gets one (anyio), so what the code logs carries the request's id
    worker.gr_context = contextvars.copy_context()
    asked = worker.switch()
    while not worker.dead:
        try:
            answer = await asked
        except GeneratorExit:
            _unwind(worker)
            raise
        except BaseException:  # noqa: BLE001 - handed to fn, which decides
            asked = worker.throw(*sys.exc_info())
        else:
            asked = worker.switch(answer)
    result: T = asked
    return result


def _unwind(worker: _Driven) -> None:
    """:func:`drive` is being closed, not cancelled (its task destroyed with its loop): no wait
    will be served any more. The code gets the GeneratorExit where it waits, and so does every
    wait its handlers ask for (a rollback) until it has unwound; a coroutine that awaited
    again instead would fail the close and leave the greenlet suspended for ever.
    """
    exc_info = sys.exc_info()
    asked = worker.throw(*exc_info)
    while not worker.dead:
        close = getattr(asked, "close", None)
        if close is not None:  # a coroutine never to be awaited: no "never awaited" warning
            close()
        asked = worker.throw(*exc_info)


@contextmanager
def in_context(manager: AbstractAsyncContextManager[T]) -> Iterator[T]:
    """An async context manager entered and left from driven code, as a sync one."""
    entered = wait_for(manager.__aenter__())
    try:
        yield entered
    except BaseException:
        if not wait_for(manager.__aexit__(*sys.exc_info())):
            raise
    else:
        wait_for(manager.__aexit__(None, None, None))

