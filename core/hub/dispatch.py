"""The delivery dispatcher: the hub's outbox, taken with a lease and sent by the resumers.

A decision that must reach an engine is written with a pending delivery in the same
transaction (:meth:`~signoff.store.Store.add_response`). :class:`Dispatcher` takes due
deliveries with a lease (:meth:`~signoff.store.Store.claim_deliveries`: a hub that dies while
holding one leaves it to another after the lease), sends each as its own task, at most
``delivery_concurrency`` per resumer, within ``delivery_timeout``, and records the attempt:
delivered, retried with backoff, or failed with a short reason. Resumers load in worker
threads (an SDK import may take seconds), at start for the configured ones.
"""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta
from functools import partial
from typing import TYPE_CHECKING

import anyio

from .._model import Event
from ..resumers import BUILTIN, DeliveryFailed, Resumer, load_resumer
from ..store import DueDelivery
from .logs import state_change
from .tasks import Leases, on_schedule

if TYPE_CHECKING:
    from .service import Hub

__all__ = ["UNAVAILABLE", "Dispatcher", "StartRefused"]

UNAVAILABLE = "resumer unavailable: "
"""How the error of a delivery that failed for want of its resumer begins: at start, those whose
resumer loads now are made pending again."""

_LEASE_MARGIN = 30.0
"""At most this many seconds a taken delivery stays with its hub beyond the time it may wait
for a slot and run (two ``delivery_timeout``): if that hub dies before it records the
attempt, another one retries the delivery after that long (``delivery_timeout`` beyond, when
that is shorter)."""
log = logging.getLogger("signoff.hub")


class StartRefused(RuntimeError):
    """The hub cannot start as configured (a configured resumer cannot load)."""


class Dispatcher:
    """The hub's delivery loop and its resumers (see the module docstring)."""

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.resumers: dict[str, Resumer | None] = {}
        """Loaded resumers by name (None: no resumer of that name is installed)."""
        self.wake = asyncio.Event()
        self.taken: Leases[DueDelivery] = Leases()
        """Deliveries this hub took and has not finished attempting: what a stop gives back."""

    def broken(self, name: str) -> bool:
        """Whether the resumer ``name`` was found but failed to load."""
        return isinstance(self.resumers.get(name), _BrokenResumer)

    def resumer_exists(self, name: str) -> bool:
        """Load the resumer ``name`` (a worker thread: an SDK import may take seconds)."""
        if name not in self.resumers:
            began = time.monotonic()
            try:
                factory = load_resumer(name)
                config = dict(self.hub.settings.resumers.get(name, {}))
                if name in BUILTIN:  # the built-ins call out through the hub's egress guard
                    config["egress"] = self.hub.egress
                self.resumers[name] = None if factory is None else factory(config)
            except Exception as exc:  # installed but broken: deliveries fail with the reason
                log.exception("resumer %r could not be loaded", name)
                self.resumers[name] = _BrokenResumer(
                    f"{UNAVAILABLE}{name!r} could not be loaded: {type(exc).__name__}: {exc}")
            else:
                if self.resumers[name] is not None:
                    log.info("resumer %r ready (loaded in %.2f s)", name,
                             time.monotonic() - began)
        return self.resumers[name] is not None

    async def load_all(self) -> None:
        """Load and warm every resumer named in ``settings.resumers``, in worker threads."""
        for name in self.hub.settings.resumers:
            await self.hub._run(self.resumer_exists, name)
            resumer = self.resumers[name]
            if resumer is None or isinstance(resumer, _BrokenResumer):
                reason = (resumer.reason if isinstance(resumer, _BrokenResumer)
                          else f"no resumer named {name!r} is installed")
                log.critical("refusing to start: [resumers.%s] is configured but %s; install "
                             "the extra that provides it (pip install 'signoff[%s]') or remove "
                             "[resumers.%s]", name, reason.removeprefix(UNAVAILABLE), name, name)
                raise StartRefused(f"[resumers.{name}] is configured but cannot load: {reason}")
            warm = getattr(resumer, "warm", None)
            if callable(warm):  # connect ahead of the first delivery, where the resumer can
                try:
                    with anyio.fail_after(self.hub.settings.delivery_timeout):
                        await warm()
                except Exception as exc:
                    log.warning("resumer %r could not warm up (its deliveries will retry): "
                                "%s: %s", name, type(exc).__name__, exc)

    async def requeue_unavailable(self) -> None:
        """Deliveries that failed because their resumer could not load: pending again where it
        loads now (after a restart with the extra installed).
        """
        skip: set[str] = set()
        while True:
            failed = [d for d in await self.hub._run(self.hub.store.list_deliveries, state="failed",
                                                 error_prefix=UNAVAILABLE, limit=500)
                      if d.resumer not in skip]
            if not failed:
                return
            for name in {d.resumer for d in failed}:
                if not (await self.hub._run(self.resumer_exists, name)
                        and not isinstance(self.resumers[name], _BrokenResumer)):
                    skip.add(name)
            again = [d for d in failed if d.resumer not in skip]
            for delivery in again:
                await self.hub._write(self.hub.store.retry_delivery, delivery.id, actor="hub",
                                  channel="hub")
            if again:
                log.info("%d delivery(ies) that failed for want of a resumer are pending again",
                         len(again))

    async def dispatch(self, now: datetime | None = None) -> int:
        """Start every delivery due by ``now`` as its own task (one at a time per delivery, at
        most ``delivery_concurrency`` per resumer); returns how many were started.
        """
        now = self.hub.clock() if now is None else now
        started = 0
        # taken for as long as the last of them may wait for a slot of its resumer and then
        # run: past that, another hub (or this one) takes it again
        take = 2 * self.hub.settings.delivery_concurrency - self.hub.work.count("deliver")
        if take <= 0:
            return 0  # a finished one sets _dispatch_wake, and the loop comes back
        timeout = self.hub.settings.delivery_timeout
        lease = 2 * timeout + min(timeout, _LEASE_MARGIN)
        claim = partial(self.hub.store.claim_deliveries, now, take, lease)
        for due in await self.taken.take(self.hub._run, claim, key=lambda due: due.id):
            started += self.hub.work.start(("deliver", due.id),
                                       partial(self._deliver, due),
                                       done=self.wake.set)
        return started

    async def _deliver(self, due: DueDelivery) -> None:
        async with self.taken.working_on(due.id):  # cancelled by a stop: given back
            await self._attempt(due)

    async def release_unfinished(self) -> None:
        """Give back the deliveries taken and not finished when the stop cancelled their
        attempts (or the wait for the claim itself), so that a hub (this one restarted, or
        another replica) takes them at once, not when their lease ends.
        """
        await self.taken.give_back(
            lambda taken: self.hub._write(self.hub.store.release_deliveries, taken,
                                          self.hub.clock()), "delivery(ies)")

    async def _attempt(self, due: DueDelivery) -> None:
        if due.resumer not in self.resumers:
            await self.hub._run(self.resumer_exists, due.resumer)
        resumer = self.resumers.get(due.resumer)
        timeout = self.hub.settings.delivery_timeout
        try:
            if resumer is None:
                raise DeliveryFailed(f"{UNAVAILABLE}no resumer named {due.resumer!r} is "
                                     "installed")
            async with self.hub.work.slot(f"resumer:{due.resumer}",
                                      self.hub.settings.delivery_concurrency):
                event = await self.hub._load(due.event_id)
                try:
                    with anyio.fail_after(timeout):
                        await resumer.deliver(event)
                except TimeoutError:
                    raise _TimedOut(f"{due.resumer}: no answer within {timeout:g} s") from None
        except DeliveryFailed as exc:
            log.warning("delivery %s of event %s failed: %s", due.id, due.event_id, exc)
            await self.hub._write(self.hub.store.delivery_attempted, due.id, state="failed",
                              error=str(exc))
            self._delivered(event, due, "failed", str(exc))
        except Exception as exc:
            now = self.hub.clock()
            error = str(exc) or type(exc).__name__
            if (now - due.created_at).total_seconds() > self.hub.settings.delivery_give_up_after:
                log.warning("delivery %s of event %s gave up: %s", due.id, due.event_id, error)
                await self.hub._write(self.hub.store.delivery_attempted, due.id, state="failed",
                                  error=f"gave up after {due.attempts + 1} attempts: {error}")
                self._delivered(event, due, "failed", error)
                return
            delay = min(self.hub.settings.delivery_backoff * 2**due.attempts,
                        self.hub.settings.delivery_backoff_max)
            log.warning("delivery %s of event %s failed (attempt %d, again in %.1f s): %s",
                        due.id, due.event_id, due.attempts + 1, delay, error)
            await self.hub._write(self.hub.store.delivery_attempted, due.id, state="pending",
                              error=error, next_attempt_at=now + timedelta(seconds=delay))
            self._delivered(event, due, "retry", error)
        else:
            await self.hub._write(self.hub.store.delivery_attempted, due.id, state="delivered")
            self._delivered(event, due, "delivered")

    def _delivered(self, event: Event, due: DueDelivery, result: str,
                   error: str | None = None) -> None:
        """Count and log one delivery attempt's result."""
        took = (self.hub.clock() - due.created_at).total_seconds()
        if self.hub.metrics is not None:
            self.hub.metrics.delivery(due.resumer, result, took if result == "delivered" else None)
        state_change("delivered" if result == "delivered" else "failed", event,
                     resumer=due.resumer, attempt=due.attempts + 1, result=result, error=error)

    async def loop(self) -> None:
        """Dispatch what is due, then sleep until the next delivery falls due or is woken."""
        await on_schedule("delivery dispatch", self._dispatch_due, wake=self.wake,
                          clock=self.hub.clock, interval=self.hub.settings.sweep_interval)

    async def _dispatch_due(self, now: datetime) -> datetime | None:
        await self.dispatch(now)
        # what was due by ``now`` is in flight: sleep until the next one after it
        return await self.hub._run(self.hub.store.next_delivery_at, now)


class _TimedOut(Exception):
    """A delivery attempt took longer than ``delivery_timeout``: retried with backoff."""


class _BrokenResumer:
    """Stands in for a resumer whose module failed to load, so deliveries say why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def deliver(self, event: Event) -> None:
        raise DeliveryFailed(self.reason)

    async def aclose(self) -> None:
        return None
