"""Work that talks to the outside, one task per piece, so nothing waits on anything else.

A decider call, a notification and a delivery each run as their own :class:`asyncio.Task`:

- keyed (``("decider", event_id, level)``, ``("deliver", delivery_id)``...): while a key is in
  flight the same work is not started again, so a sweep that looks at the same due event twice
  starts it once;
- bounded per integration (an :class:`anyio.CapacityLimiter` per decider, resumer or the
  notifier): the rest wait their turn in their own tasks, and the sweep that started them has
  long moved on;
- timed out (``anyio.fail_after``) by the caller, around the outside call itself, not around the
  wait for a slot.

The loop lag monitor lives here too: a task that sleeps 100 ms and measures how late it wakes.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Hashable, Iterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Generic, TypeVar

import anyio

__all__ = ["Leases", "LoopLag", "Tasks", "on_schedule"]

log = logging.getLogger("signoff.hub")


def _kind(key: Hashable) -> Hashable:
    """A key's kind: the first item of a tuple key."""
    return key[0] if isinstance(key, tuple) and key else None


class Tasks:
    """The hub's in-flight outside work, by key, with one capacity limiter per integration."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[None]] = {}
        self._kinds: collections.Counter[Hashable] = collections.Counter()  # in flight, by kind
        self._limiters: dict[str, anyio.CapacityLimiter] = {}

    def busy(self, key: Hashable) -> bool:
        """Whether work with this key is in flight."""
        return key in self._running

    def keys(self, kind: str) -> Iterator[Hashable]:
        """The in-flight keys of one kind (the first item of a tuple key)."""
        return (k for k in self._running if isinstance(k, tuple) and k and k[0] == kind)

    def count(self, kind: str) -> int:
        """How many pieces of work of one kind are in flight (kept as they start and end: a
        sweep with a thousand in flight asks this as each one ends).
        """
        return self._kinds[kind]

    def start(self, key: Hashable, work: Callable[[], Awaitable[None]],
              done: Callable[[], None] | None = None) -> bool:
        """Run ``work()`` as its own task unless ``key`` is in flight; returns whether it started.

        ``done`` is called when the task ends, however it ends. ``work`` handles its own
        errors; anything it lets escape is logged here.
        """
        if key in self._running:
            return False

        async def run() -> None:
            try:
                await work()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("background work %r failed", key)

        task = asyncio.create_task(run(), name=f"signoff:{key!r}")
        self._running[key] = task
        kind = _kind(key)
        self._kinds[kind] += 1

        def finished(_: asyncio.Task[None]) -> None:
            if self._running.get(key) is task:
                del self._running[key]
                self._kinds[kind] -= 1
            if done is not None:
                done()

        task.add_done_callback(finished)
        return True

    def cancel(self, match: Callable[[Hashable], bool]) -> int:
        """Cancel the in-flight work whose key matches; returns how many were cancelled."""
        found = [task for key, task in self._running.items() if match(key)]
        for task in found:
            task.cancel()
        return len(found)

    def limiter(self, name: str, size: int) -> anyio.CapacityLimiter:
        """The capacity limiter of one integration (made on first use)."""
        limiter = self._limiters.get(name)
        if limiter is None:
            limiter = self._limiters[name] = anyio.CapacityLimiter(size)
        return limiter

    @asynccontextmanager
    async def slot(self, name: str, size: int) -> AsyncIterator[None]:
        """Hold one of ``size`` places of integration ``name`` (waiting for one if all are
        taken).
        """
        async with self.limiter(name, size):
            yield

    async def aclose(self, drain: tuple[str, ...] = (), grace: float = 5.0) -> None:
        """Cancel everything in flight and wait for it to end; work of the ``drain`` kinds
        (notifications: nothing retries them) gets ``grace`` seconds to finish first.
        """
        finishing = [task for key, task in self._running.items()
                     if isinstance(key, tuple) and key and key[0] in drain]
        if finishing:
            await asyncio.wait(finishing, timeout=grace)
        tasks = list(self._running.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


T = TypeVar("T")


class Leases(Generic[T]):
    """What a loop took from the store with a lease and has not finished with, by key: what
    the hub gives back when it stops, so another hub (or this one restarted) takes it at once
    instead of when the lease ends.
    """

    def __init__(self) -> None:
        self._held: dict[Hashable, T] = {}
        self._taking: set[asyncio.Future[Sequence[T]]] = set()

    async def take(self, run: Callable[[Callable[[], Sequence[T]]], Awaitable[Sequence[T]]],
                   claim: Callable[[], Sequence[T]], key: Callable[[T], Hashable]) -> Sequence[T]:
        """``claim()`` through ``run`` (a worker thread), each taken item held under its key.

        Shielded: a stop that cancels this wait lets the claim finish (its thread commits it
        anyway), and :meth:`give_back` waits for it.
        """
        def claimed() -> Sequence[T]:
            items = claim()
            self._held.update((key(item), item) for item in items)
            return items

        taking = asyncio.ensure_future(run(claimed))
        self._taking.add(taking)
        taking.add_done_callback(self._taking.discard)
        return await asyncio.shield(taking)

    @asynccontextmanager
    async def working_on(self, key: Hashable) -> AsyncIterator[None]:
        """Around the work on the item held under ``key``: once the work ends, the item is no
        longer held, unless the stop cancelled it (then it is given back).
        """
        stopped = False
        try:
            yield
        except asyncio.CancelledError:
            stopped = True
            raise
        finally:
            if not stopped:
                self._held.pop(key, None)

    async def give_back(self, release: Callable[[list[T]], Awaitable[int]], what: str) -> None:
        """Once the claims in flight have finished, ``release`` every item still held (the
        store's compare-and-set on the lease taken), and log how many ``what`` it gave back;
        none is held afterwards. A failure is logged: the items then wait out their lease.
        """
        await asyncio.gather(*self._taking, return_exceptions=True)
        items = list(self._held.values())
        self._held.clear()
        if not items:
            return
        try:
            released = await release(items)
        except Exception:
            log.warning("could not give back %d %s in hand at stop; they are taken again when "
                        "their lease ends", len(items), what, exc_info=True)
        else:
            log.info("gave back %d %s in hand at stop", released, what)


class LoopLag:
    """How late the event loop runs: a task sleeps ``interval`` and measures its oversleep."""

    def __init__(self, warn_after: float, interval: float = 0.1) -> None:
        self.warn_after = warn_after
        self.interval = interval
        self.latest = 0.0
        self.max = 0.0
        self._warned_at = 0.0
        self.on_sample: Callable[[float], None] | None = None  # e.g. a metrics gauge's set

    def as_dict(self) -> dict[str, float]:
        """The latest and the largest lag seen (seconds), for ``/healthz``."""
        return {"latest": round(self.latest, 4), "max": round(self.max, 4)}

    async def run(self) -> None:
        """Measure until cancelled; log a warning past ``warn_after`` (at most once a second)."""
        while True:
            before = time.monotonic()
            await asyncio.sleep(self.interval)
            lag = max(time.monotonic() - before - self.interval, 0.0)
            self.latest = lag
            self.max = max(self.max, lag)
            if self.on_sample is not None:
                self.on_sample(lag)
            if lag > self.warn_after and time.monotonic() - self._warned_at > 1.0:
                self._warned_at = time.monotonic()
                log.warning("event loop lag %.0f ms (over %.0f ms): something blocked the loop",
                            lag * 1000, self.warn_after * 1000)


async def on_schedule(what: str, step: Callable[[datetime], Awaitable[datetime | None]], *,
                      wake: asyncio.Event, clock: Callable[[], datetime],
                      interval: float) -> None:
    """Run ``step(now)`` for ever: after each, sleep until the time it returns (at most
    ``interval`` seconds) or until ``wake`` is set. A step that raises is logged (``what``
    failed) and run again after ``interval``.
    """
    while True:
        wake.clear()
        try:
            upcoming = await step(clock())
        except Exception:
            log.exception("%s failed; trying again", what)
            upcoming = None
        pause = interval
        if upcoming is not None:
            pause = min(pause, max((upcoming - clock()).total_seconds(), 0.0))
        try:
            await asyncio.wait_for(wake.wait(), timeout=pause)
        except asyncio.TimeoutError:
            pass
