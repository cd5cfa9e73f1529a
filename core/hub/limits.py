"""Per-token limits: creations and answers per second, pending events, parked long-polls.

One token must not be able to fill the store, the event loop or the open-file table for
everyone else. Each limit is a setting (``0`` lifts it) and a refusal is a
:class:`~signoff.RateLimited` (429 with ``Retry-After``) that names the setting and its value;
nothing is written when a request is refused.

- **Rates** are token buckets: ``rate`` per second sustained, ``burst`` at once.
- **Pending events** per workflow token are counted by the store, bounded
  (``count_events(..., limit=quota + 1)``), but not on every creation: the count is kept here
  as an *over*-estimate (the last count plus every creation admitted since, including those
  still being written), so the store is asked again only when the estimate reaches the quota,
  and then at most once a second per token.
- **Long-polls** are counted while they are parked.

The state lives in this process's memory, keyed by the token's identity (the user it names).
Behind several replicas (:attr:`Limits.replicas`, counted from the database) each one allows
its share: ``rate``, ``burst`` and the long-polls divided by the number of replicas (at least
one each), so a token spread over the replicas gets about its limit in all, never more; one
that sticks to a single replica gets that replica's share. The pending quota is counted by the
store, which every replica shares.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field

from .._errors import RateLimited
from .settings import Settings

__all__ = ["Limits", "TokenBucket"]

RECOUNT_EVERY = 1.0
"""Seconds between two store counts of one token's pending events while it is at its quota."""


class TokenBucket:
    """``rate`` tokens a second up to ``burst``; a request takes one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = max(burst, 1)
        self.tokens = float(self.burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take one token: 0.0 when there was one, else the seconds until there will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return 0.0
        return (1.0 - self.tokens) / self.rate


@dataclass
class _Pending:
    """What this process knows about one token's pending events."""

    counted: int = 0
    """Pending events the store counted last time."""
    since: int = 0
    """Creations admitted since (or while) the store counted: the estimate is the sum."""
    in_flight: int = 0
    """Admitted creations whose write has not finished."""
    admitted: int = 0
    """Every creation ever admitted (to tell which were admitted during a count)."""
    checked: float = -math.inf
    """When the store last counted (monotonic seconds); never yet at -inf."""
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class Limits:
    """The per-token limits of one hub process.

    Args:
        settings: the hub's settings (``create_rate``, ``create_burst``, ``answer_rate``,
            ``answer_burst``, ``pending_per_token``, ``long_polls_per_token``).
        count_pending: counts a token's pending events in the store, at most the given number.
        clock: monotonic seconds (a test may move it).
    """

    def __init__(self, settings: Settings,
                 count_pending: Callable[[str, int], Awaitable[int]],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self._count_pending = count_pending
        self._clock = clock
        self._creates: dict[str, TokenBucket] = {}
        self._answers: dict[str, TokenBucket] = {}
        self._pending: dict[str, _Pending] = {}
        self._parked: dict[str, int] = {}
        self.replicas = 1
        """Hubs sharing the store (the hub keeps it up to date; 1 on SQLite)."""

    # rates -------------------------------------------------------------------------------
    def _take(self, buckets: dict[str, TokenBucket], key: str, rate: float, burst: int,
              name: str) -> None:
        if rate <= 0:
            return
        now = self._clock()
        share, share_burst = rate / self.replicas, max(1, burst // self.replicas)
        bucket = buckets.get(key)
        if bucket is None:
            bucket = buckets[key] = TokenBucket(share, share_burst, now)
        elif bucket.rate != share:  # the number of replicas changed
            bucket.rate, bucket.burst = share, share_burst
        wait = bucket.take(now)
        if wait > 0:
            among = f", shared by {self.replicas} hubs" if self.replicas > 1 else ""
            raise RateLimited(name, rate, math.ceil(wait),
                              f"{name}: at most {rate:g} a second per token (burst "
                              f"{burst}{among}); retry after {max(1, math.ceil(wait))} s")

    def creation(self, key: str) -> None:
        """Count one creation against the token's rate.

        Raises:
            RateLimited: the token creates faster than ``create_rate`` allows.
        """
        self._take(self._creates, key, self.settings.create_rate, self.settings.create_burst,
                   "create_rate")

    def answer(self, key: str) -> None:
        """Count one answer against the token's rate.

        Raises:
            RateLimited: the token answers faster than ``answer_rate`` allows.
        """
        self._take(self._answers, key, self.settings.answer_rate, self.settings.answer_burst,
                   "answer_rate")

    @asynccontextmanager
    async def creating(self, key: str) -> AsyncIterator[None]:
        """Admit one creation (its rate, then the pending quota) for the time of its write.

        Raises:
            RateLimited: over ``create_rate`` or ``pending_per_token``.
        """
        self.creation(key)
        async with self.pending_slot(key):
            yield

    # pending events ----------------------------------------------------------------------
    @asynccontextmanager
    async def pending_slot(self, key: str) -> AsyncIterator[None]:
        """Admit one creation under the token's pending-events quota, for the time of its write.

        Raises:
            RateLimited: the token already has ``pending_per_token`` pending events.
        """
        quota = self.settings.pending_per_token
        if quota <= 0:
            yield
            return
        state = self._pending.get(key)
        if state is None:
            state = self._pending[key] = _Pending()
        if state.counted + state.since >= quota or state.checked == -math.inf:
            await self._recount(state, key, quota)
            if state.counted + state.since >= quota:
                raise RateLimited("pending_per_token", quota, 1,
                                  f"pending_per_token: this token has {quota} pending events "
                                  "already; decide or cancel some, or retry later")
        state.since += 1
        state.admitted += 1
        state.in_flight += 1
        try:
            yield
        finally:
            state.in_flight -= 1

    async def _recount(self, state: _Pending, key: str, quota: int) -> None:
        async with state.lock:  # one count at a time per token; the others use its result
            if state.counted + state.since < quota and state.checked != -math.inf:
                return  # counted meanwhile, and there is room
            if self._clock() - state.checked < RECOUNT_EVERY:
                return  # counted a moment ago: the answer stands
            carried, admitted = state.in_flight, state.admitted
            counted = await self._count_pending(key, quota + 1)
            # writes in flight when the count began may or may not be in it: count them
            # again (an over-estimate only refuses a little early, never admits too many)
            state.counted = counted
            state.since = carried + (state.admitted - admitted)
            state.checked = self._clock()

    # long-polls --------------------------------------------------------------------------
    @contextmanager
    def long_poll(self, key: str) -> Iterator[None]:
        """Hold one parked long-poll for the token while inside.

        Raises:
            RateLimited: the token already holds ``long_polls_per_token`` parked long-polls.
        """
        most = self.settings.long_polls_per_token
        if most <= 0:
            yield
            return
        parked = self._parked.get(key, 0)
        if parked >= max(1, most // self.replicas):
            raise RateLimited("long_polls_per_token", most, 1,
                              f"long_polls_per_token: this token already waits on {most} "
                              "decisions at once; retry after 1 s")
        self._parked[key] = parked + 1
        try:
            yield
        finally:
            left = self._parked[key] - 1
            if left:
                self._parked[key] = left
            else:
                del self._parked[key]
