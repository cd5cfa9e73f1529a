"""The token generation read shared by requests that wait at once (``access.FreshReads``): a
caller is never given a read sent before it asked, so a revocation committed before a request
came always counts, yet requests arriving together share one read.
"""

from __future__ import annotations

import asyncio

import pytest

from signoff.hub.access import FreshReads


class _Database:
    """A value that changes, and reads of it that answer when the test says."""

    def __init__(self) -> None:
        self.value = 1
        self.sent: list[int] = []  # the value each read saw, in the order they were sent
        self.answer: list[asyncio.Event] = []
        self.fail: Exception | None = None

    async def read(self) -> int:
        seen, failing = self.value, self.fail
        self.sent.append(seen)
        gate = asyncio.Event()
        self.answer.append(gate)
        await gate.wait()
        if failing is not None:
            raise failing
        return seen


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


def test_a_caller_that_comes_while_a_read_is_on_its_way_waits_for_the_next() -> None:
    async def scenario() -> None:
        db = _Database()
        fresh = FreshReads(db.read)
        first = asyncio.ensure_future(fresh.get())
        await _settle()
        db.value = 2  # e.g. a token revoked after the first read was sent
        later = [asyncio.ensure_future(fresh.get()) for _ in range(15)]
        await _settle()
        assert db.sent == [1]  # the later callers did not take the read on its way...
        db.answer[0].set()
        assert await first == 1
        await _settle()
        assert db.sent == [1, 2]  # ...they share one read, sent after they came
        db.answer[1].set()
        assert await asyncio.gather(*later) == [2] * 15
        alone = asyncio.ensure_future(fresh.get())  # nothing on its way: a read of its own
        await _settle()
        assert db.sent == [1, 2, 2]
        db.answer[2].set()
        assert await alone == 2

    asyncio.run(scenario())


def test_a_failed_read_fails_its_callers_only_and_a_cancelled_caller_leaves_it_to_the_rest() -> None:
    async def scenario() -> None:
        db = _Database()
        fresh = FreshReads(db.read)
        db.fail = RuntimeError("the database cannot be reached")
        first = asyncio.ensure_future(fresh.get())
        await _settle()
        db.fail = None
        waiting = [asyncio.ensure_future(fresh.get()) for _ in range(2)]
        await _settle()
        db.answer[0].set()
        with pytest.raises(RuntimeError, match="cannot be reached"):
            await first
        await _settle()
        waiting[0].cancel()
        db.answer[1].set()
        assert await waiting[1] == 1  # the second read answered, though one caller left
        with pytest.raises(asyncio.CancelledError):
            await waiting[0]
        assert len(db.sent) == 2

    asyncio.run(scenario())
