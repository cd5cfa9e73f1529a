"""The hub's behaviour, shared by the JSON API and the web inbox.

:class:`Hub` checks rights and input, writes through the store, wakes long-poll waiters the
moment a decision is written, and runs two background loops: the deadline sweeper and the
delivery dispatcher. Both read their schedule from the store, so a restarted hub catches up.

The event loop never waits on a commit. With a store that batches (SQLite), a write is queued
for the store's writer thread and shares a commit with the writes queued alongside it, an
answer's checks run inside the transaction that writes it, and a read of one event by id runs
on the loop (tens of microseconds). Lists, counts and everything a plain store does run in
worker threads.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

from anyio import to_thread

from .._channels import RelayRefused, channel_kind, check_claim, claim_channel, relay_by
from .._errors import AlreadyDecided, Forbidden, InvalidInput, NotFound
from .._inputs import InputSpec, validate_value
from .._model import Decision, Event, EventCreate, EventPage, Outcome, Response
from .._policy import RelayPolicy, relay_refusal, route, settle, tighten
from .._rules import (
    Identity,
    can_answer,
    can_cancel,
    can_read,
    cancel_decision,
    response_decision,
    timeout_decision,
)
from ..deciders import Decider, load_decider
from ..resumers import BUILTIN, DeliveryFailed, Resumer, load_resumer
from ..store import AuditEntry, Batching, DueDelivery, Store
from .access import Access
from .egress import check_event_egress
from .escalation import escalate
from .limits import Limits
from .live import Changes
from .notify import Notifier
from .settings import Settings

__all__ = ["Hub", "check_channel"]

log = logging.getLogger("signoff.hub")
T = TypeVar("T")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


class Hub:
    """One hub process: the store, the waiters, the sweeper and the dispatcher."""

    def __init__(self, settings: Settings, store: Store, clock: Clock = _utcnow) -> None:
        self.settings = settings
        self.store = store
        self._batching = store if isinstance(store, Batching) else None  # checked once: slow
        self.clock = clock
        self._waiters: dict[str, set[asyncio.Future[Decision]]] = {}
        self._specs: dict[str, InputSpec] = {}  # event id -> its input spec, which never changes
        self._resumers: dict[str, Resumer | None] = {}
        self._in_flight: set[str] = set()
        self._sweep_wake = asyncio.Event()
        self._dispatch_wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []
        self.notifier = Notifier(settings)
        self._background: set[asyncio.Task[None]] = set()
        self.egress = settings.egress_guard()
        self._deciders: dict[str, Decider] = {}
        self.limits = Limits(settings, self._count_pending_by)
        self.access = Access(self)
        self.changes = Changes()  # issue 19: wakes the live inbox streams

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Start the sweeper and the dispatcher."""
        self._tasks = [asyncio.create_task(self._sweep_loop(), name="signoff-sweeper"),
                       asyncio.create_task(self._dispatch_loop(), name="signoff-dispatcher")]

    async def stop(self) -> None:
        """Stop the loops, release waiters and resumers."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for resumer in self._resumers.values():
            if resumer is not None:
                await resumer.aclose()
        for decider in self._deciders.values():
            close = getattr(decider, "aclose", None)
            if close is not None:
                await close()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store call in a worker thread (scans, and everything a plain store does)."""
        return await to_thread.run_sync(lambda: fn(*args, **kwargs))

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Start a store write: queued for a group commit when the store batches, else a
        worker thread. The returned future resolves once the write is durable.
        """
        if self._batching is not None:
            return asyncio.wrap_future(self._batching.submit(fn, *args, **kwargs))
        return asyncio.ensure_future(self._run(fn, *args, **kwargs))

    async def _write(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store write (see :meth:`_submit`)."""
        return await self._submit(fn, *args, **kwargs)

    async def _read_one(self, fn: Callable[..., T], *args: Any) -> T:
        """A read of one row by key: on the loop when the store says that is cheap."""
        if self._batching is not None and self._batching.inline_reads:
            return fn(*args)
        return await self._run(fn, *args)

    async def _write_deciding(self, fn: Callable[..., Event], *args: Any,
                              **kwargs: Any) -> Event:
        """A write that may decide an event. Once queued it runs to the end, and a decision it
        writes wakes the waiters and the dispatcher even if the caller is cancelled meanwhile.
        """
        write = self._submit(fn, *args, **kwargs)

        def announce(done: asyncio.Future[Event]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            if done.result().decision is not None:
                self._decided(done.result())

        write.add_done_callback(announce)
        return await asyncio.shield(write)

    # identity ----------------------------------------------------------------------------
    async def authenticate(self, token: str | None) -> Identity:
        """The identity behind an active bearer token (see :class:`~.access.Access`).

        Raises:
            Unauthenticated: no token, an unknown one, or one revoked or expired.
        """
        return (await self.access.token(token)).identity

    # events ------------------------------------------------------------------------------
    async def create(self, who: Identity, body: EventCreate,
                     channel: str | None) -> tuple[Event, bool]:
        """Create an event (idempotent by key), apply the policy file, route by the policy."""
        if who.role == "reviewer":
            raise Forbidden("reviewer tokens answer events; creating them needs a workflow token")
        channel = self._channel(who, channel, body.source.orchestrator, who.user)
        check_event_egress(self.settings, self.egress, body)
        now = self.clock()
        fields = body.model_dump()
        draft = body.model_copy()
        policy, assignees, notes = tighten(body.policy, list(body.assignees),
                                           self.settings.policies, draft)
        fields.update(policy=policy, assignees=assignees)
        if policy is not None and policy.on_timeout is not None:
            fields["on_timeout"] = policy.on_timeout
        deadline = now + timedelta(seconds=body.timeout) if body.timeout else None
        event = Event(**fields, id=f"ev_{uuid.uuid4().hex}", requested_by=who.user,
                      status="pending", created_at=now, deadline=deadline)
        routed = route(event)
        decision = None
        if routed.action == "approve":
            decision = response_decision(event, routed.value, "policy", routed.rule, "policy", now)
            decision = decision.model_copy(update={"rule": routed.rule})
        elif routed.action == "block":
            decision = Decision(value=False if event.input.kind == "approval" else None,
                                outcome=Outcome.rejected, by="policy", comment=routed.rule,
                                channel="policy", at=now, rule=routed.rule)
        elif routed.rule:
            notes.append(routed.rule)
        async with self.limits.creating(who.user):  # 429 past the rate or the pending quota
            stored, created = await self._write(self.store.create_event, event,
                                                channel=channel, decision=decision, notes=notes)
        self._remember_spec(stored)
        if created:
            if deadline is not None or (policy and policy.escalate):
                self._sweep_wake.set()
            self._notify(stored, "decided" if stored.decision else "created")
        return stored, created

    def _notify(self, event: Event, what: str, extra: list[str] | None = None) -> None:
        self.changes.bump()  # the live inbox (live.py): created, decided, escalated
        if not self.notifier.targets(event, extra):
            return

        async def send() -> None:
            try:
                result = await self.notifier.send(event, what, extra)
            except Exception as exc:  # a notification never breaks the hub
                log.warning("notifying about %s failed", event.id, exc_info=True)
                result = {"what": what, "ok": False, "error": type(exc).__name__}
            await self._write(self.store.record, "notified", actor="hub", channel="apprise",
                              event_id=event.id, data=result)

        task = asyncio.create_task(send())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _load(self, event_id: str) -> Event:
        event = await self._read_one(self.store.get_event, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}")
        return event

    async def get(self, who: Identity, event_id: str) -> Event:
        """One event the caller may read."""
        event = await self._load(event_id)
        if not can_read(who, event):
            raise Forbidden(f"{who.user} may not read event {event_id}")
        return event

    async def list(self, who: Identity, *, status: str | None = None,
                   assignee: str | None = None, limit: int = 50,
                   cursor: str | None = None) -> EventPage:
        """The events the caller may read, urgent and oldest first."""
        scope: dict[str, Any] = {}
        if who.role == "workflow":
            scope["requested_by"] = who.user
        elif who.role == "reviewer":
            scope["visible_to"] = who.principals
        return await self._run(self.store.list_events, status=status, assignee=assignee,
                               limit=limit, cursor=cursor, **scope)

    async def count_pending(self, who: Identity, limit: int | None = None) -> int:
        """How many pending events the caller's inbox holds (what :meth:`list` shows).

        With ``limit``, at most that many.
        """
        scope: dict[str, Any] = {}
        if who.role == "workflow":
            scope["requested_by"] = who.user
        elif who.role == "reviewer":
            scope["visible_to"] = who.principals
        return await self._run(self.store.count_events, status="pending", limit=limit, **scope)

    async def _count_pending_by(self, user: str, limit: int) -> int:
        """How many pending events ``user`` requested, at most ``limit`` (for the quota)."""
        return await self._run(self.store.count_events, status="pending", requested_by=user,
                               limit=limit)

    async def respond(self, who: Identity, event_id: str, value: Any, comment: str | None,
                      channel: str | None, relayed_by: str | None = None) -> Event:
        """Answer an event; the first valid answer decides it.

        ``channel`` is the caller's checked claim (``web`` from the inbox); an engine channel
        makes the answer a relay, recorded in the name of ``relayed_by`` (the person the
        engine names) or as unverified, never in the caller's.

        Raises:
            NotFound, Forbidden, AlreadyDecided, InvalidInput, RateLimited: and nothing is
            written; a refused relay (:class:`RelayRefused`) is written to the audit trail only.
        """
        self.limits.answer(who.user)
        spec = self._specs.get(event_id)
        if spec is None:
            spec = (await self._load(event_id)).input
        checked = await self._checked(spec, value)
        while True:
            try:
                event = await self._write_deciding(self._respond_now, who, event_id, checked,
                                                   comment, channel, relayed_by)
            except _ResumerNotLoaded as missing:  # the first answer for this orchestrator
                await self._run(self._resumer_exists, missing.name)
            except RelayRefused as refused:  # audited, and shown in the event's history
                await self._write(self.store.record, "relay_refused", actor=refused.by,
                                  channel=refused.engine, event_id=event_id,
                                  data={"reason": refused.reason, "relayed_by": refused.by})
                raise
            else:
                await self._note_uncounted(event)
                return event

    def _channel(self, who: Identity, claim: str | None, orchestrator: str,
                 owner: str | None) -> str:
        """The channel recorded for ``who``'s claim on an event of ``orchestrator``."""
        return claim_channel(who.role, who.user, claim,
                             bound=self.settings.bound_channels(who.user),
                             orchestrator=orchestrator, owner=owner)

    def _remember_spec(self, event: Event) -> None:
        """Keep a small input spec (of a fixed size) so an answer is checked without a read."""
        if event.input.kind in ("approval", "bool", "int", "float") and event.status == "pending":
            if len(self._specs) >= 10_000:
                self._specs.clear()
            self._specs[event.id] = event.input

    async def _checked(self, spec: InputSpec, value: Any) -> Any | InvalidInput:
        """The value checked against the event's input spec, before any write is queued: the
        spec never changes, so it stays valid. A form's JSON schema runs in a worker thread.
        A refusal is returned, not raised, so the rights and state checks still speak first.
        """
        def check() -> Any | InvalidInput:
            try:
                return validate_value(spec, value)
            except InvalidInput as refused:
                return refused

        if spec.kind == "form":
            return await to_thread.run_sync(check)
        return check()

    def _respond_now(self, who: Identity, event_id: str, value: Any, comment: str | None,
                     claim: str | None, relayed_by: str | None = None) -> Event:
        """Check and store an answer (``value`` already checked by :meth:`_checked`). The rights
        and state checks run inside the store's transaction, on the event as it reads it: what
        they saw is what the answer is written against.
        """
        def answer(event: Event) -> Response:
            # part 3: the channel is a fact the hub sets; an engine channel is a relay
            channel = self._channel(who, claim, event.source.orchestrator, event.requested_by)
            relayed = channel_kind(channel) == "engine"
            if relayed_by is not None and not relayed:
                raise InvalidInput("relayed_by", "only with an engine channel (an engine "
                                   "relaying an answer given in its own UI)", relayed_by)
            by = relay_by(channel, relayed_by) if relayed else who.user
            if not can_answer(who, event, channel):
                why = (f"; a workflow answers only by relaying, on its own event, an answer "
                       f"given in {event.source.orchestrator!r}"
                       if who.role == "workflow" else "")
                raise Forbidden(f"{who.user} may not answer event {event_id} through channel "
                                f"{channel!r}{why}")
            if event.status != "pending":
                raise AlreadyDecided(f"event {event_id} is already {event.status}")
            policy = event.policy
            if (policy is not None and policy.forbid_self_approval
                    and who.user == event.requested_by and not relayed):
                raise Forbidden(f"{who.user} requested event {event_id}; the policy forbids "
                                "self-approval")
            if isinstance(value, InvalidInput):
                raise value
            if relayed:
                reason = relay_refusal(event, self.settings.relays)
                if reason is not None:
                    raise RelayRefused(f"event {event_id}: {reason}", engine=channel, by=by)
            return Response(id=f"rs_{uuid.uuid4().hex}", event_id=event_id, by=by,
                            value=value, comment=comment, channel=channel, at=self.clock(),
                            relayed_from=channel if relayed else None, verified=not relayed)

        return self.store.add_response(event_id, answer,
                                       settle=_settler(None, self.settings.relays),
                                       deliver_via=self._route)

    async def _note_uncounted(self, event: Event) -> None:
        """A relayed approval that left a quorum event pending did not count: say so."""
        policy = event.policy
        last = event.responses[-1] if event.responses else None
        if (event.status != "pending" or policy is None or policy.quorum < 2 or last is None
                or last.verified or last.value is not True
                or self.settings.relays.counts_toward_quorum):
            return
        await self._write(self.store.record, "policy", actor="policy", channel="hub",
                          event_id=event.id,
                          data={"note": f"the unverified approval relayed from "
                                        f"{last.relayed_from} does not count towards the quorum "
                                        f"of {policy.quorum}"})

    async def _add_response(self, event: Event, response: Response,
                            rule: str | None = None) -> Event:
        via = await self._via(event)
        return await self._write_deciding(self.store.add_response, event.id, response,
                                          settle=_settler(rule, self.settings.relays),
                                          deliver_via=via)

    async def cancel(self, who: Identity, event_id: str, comment: str | None,
                     channel: str | None) -> Event:
        """Cancel a pending event."""
        event = await self._load(event_id)
        if not can_cancel(who, event):
            raise Forbidden(f"{who.user} may not cancel event {event_id}")
        channel = self._channel(who, channel, event.source.orchestrator, event.requested_by)
        decision = cancel_decision(who.user, comment, channel, self.clock())
        return await self._decide(event, decision, None)

    async def _via(self, event: Event) -> str | None:
        """The resumer that delivers this event's decision, loaded on first use."""
        orchestrator = event.source.orchestrator
        if orchestrator not in self._resumers:  # first use: an SDK import may take seconds
            await self._run(self._resumer_exists, orchestrator)
        return self._route(event)

    def _route(self, event: Event) -> str | None:
        """The resumer for this event, from those already loaded."""
        orchestrator = event.source.orchestrator
        if orchestrator not in self._resumers:
            raise _ResumerNotLoaded(orchestrator)
        return orchestrator if self._resumers[orchestrator] is not None else None

    async def _decide(self, event: Event, decision: Decision,
                      response: Response | None) -> Event:
        via = await self._via(event)
        return await self._write_deciding(self.store.decide, event.id, decision,
                                          response=response, deliver_via=via)

    def _decided(self, event: Event) -> None:
        assert event.decision is not None
        self._wake(event.id, event.decision)
        if any(d.state == "pending" for d in event.deliveries):
            self._dispatch_wake.set()
        self._notify(event, "deadline" if event.decision.by == "timeout" else "decided")

    async def audit(self, who: Identity, event_id: str) -> builtins.list[AuditEntry]:
        """The audit trail of an event the caller may read."""
        await self.get(who, event_id)
        return await self._run(self.store.audit, event_id)

    # long-poll ---------------------------------------------------------------------------
    async def wait_decision(self, who: Identity, event_id: str, wait: float) -> Decision | None:
        """The decision, waiting up to ``wait`` seconds; woken by the decision itself."""
        future: asyncio.Future[Decision] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(event_id, set())
        waiters.add(future)
        try:
            event = await self.get(who, event_id)  # registered first: no decision slips by
            if event.decision is not None:
                return event.decision
            if wait <= 0:
                return None
            with self.limits.long_poll(who.user):  # 429 past long_polls_per_token
                try:
                    return await asyncio.wait_for(future, timeout=wait)
                except asyncio.TimeoutError:
                    return None
        finally:
            waiters.discard(future)
            if not waiters:
                self._waiters.pop(event_id, None)

    def _wake(self, event_id: str, decision: Decision) -> None:
        for future in self._waiters.get(event_id, ()):
            if not future.done():
                future.set_result(decision)

    @property
    def waiting(self) -> int:
        """How many long-poll requests are parked right now."""
        return sum(len(w) for w in self._waiters.values())

    # what escalation, deadlines and deciders need (public, so each reads on its own) ----
    async def record_escalation(self, event: Event, level: int, assignees: builtins.list[str],
                                data: dict[str, Any]) -> Event:
        """Record that ``event`` passed escalation tier ``level``, now assigned to ``assignees``.

        Raises:
            AlreadyDecided: the event was decided (or escalated) meanwhile.
        """
        return await self._write(self.store.escalate, event.id, level=level,
                                 assignees=assignees, data=data)

    def notify(self, event: Event, what: str, extra: builtins.list[str] | None = None) -> None:
        """Send ``event``'s notifications about ``what`` in the background; never raises."""
        self._notify(event, what, extra)

    async def add_system_response(self, event: Event, response: Response, rule: str) -> Event:
        """Add a response the hub gathered itself (an automated decider's); it decides the
        event when the policy's quorum says so, recorded with ``rule``.
        """
        return await self._add_response(event, response, rule=rule)

    async def decide(self, event: Event, decision: Decision) -> Event:
        """Write a decision the hub reached itself (a deadline); wakes waiters and deliveries.

        Raises:
            AlreadyDecided: a racing answer decided the event first.
        """
        return await self._decide(event, decision, None)

    async def check_store(self) -> None:
        """Ask the store a cheap question: raises if it cannot answer (liveness)."""
        await self._run(self.store.next_deadline)

    # deadlines ---------------------------------------------------------------------------
    async def sweep(self) -> int:
        """Apply due escalation tiers and ``on_timeout`` to events past their deadline."""
        now = self.clock()
        done = 0
        for event in await self._run(self.store.due_escalations, now):
            try:
                await escalate(self, event)
                done += 1
            except AlreadyDecided:
                pass  # answered or escalated meanwhile
            except Exception:
                log.exception("escalating %s failed", event.id)
        for event in await self._run(self.store.due_events, now):
            try:
                await self.decide(event, timeout_decision(event, now))
                done += 1
            except AlreadyDecided:
                pass  # a racing answer won: that is fine
        return done

    async def _sweep_loop(self) -> None:
        while True:
            try:
                await self.sweep()
                times = [await self._run(self.store.next_deadline),
                         await self._run(self.store.next_escalation)]
                upcoming = min((t for t in times if t is not None), default=None)
            except Exception:
                log.exception("deadline sweep failed; trying again")
                upcoming = None
            pause = self.settings.sweep_interval
            if upcoming is not None:
                pause = min(pause, max((upcoming - self.clock()).total_seconds(), 0.0))
            self._sweep_wake.clear()
            try:
                await asyncio.wait_for(self._sweep_wake.wait(), timeout=pause)
            except asyncio.TimeoutError:
                pass

    def decider(self, name: str) -> Decider:
        """The decider called ``name``, loaded once and kept (one HTTP client for its life).

        Raises:
            DeciderFailed: no decider of that name.
        """
        if name not in self._deciders:
            self._deciders[name] = load_decider(name, self.settings.deciders.get(name, {}),
                                                self.egress)
        return self._deciders[name]

    # deliveries --------------------------------------------------------------------------
    def _resumer_exists(self, name: str) -> bool:
        if name not in self._resumers:
            try:
                factory = load_resumer(name)
                config = dict(self.settings.resumers.get(name, {}))
                if name in BUILTIN:  # the built-ins call out through the hub's egress guard
                    config["egress"] = self.egress
                self._resumers[name] = None if factory is None else factory(config)
            except Exception as exc:  # installed but broken: deliveries fail with the reason
                log.exception("resumer %r could not be loaded", name)
                self._resumers[name] = _BrokenResumer(f"resumer {name!r} could not be loaded: "
                                                      f"{type(exc).__name__}: {exc}")
        return self._resumers[name] is not None

    async def dispatch(self) -> int:
        """Attempt every due delivery once, concurrently; returns how many were attempted."""
        due = [d for d in await self._run(self.store.due_deliveries, self.clock())
               if d.id not in self._in_flight]
        self._in_flight.update(d.id for d in due)
        try:
            await asyncio.gather(*(self._deliver(d) for d in due))
        finally:
            self._in_flight.difference_update(d.id for d in due)
        return len(due)

    async def _deliver(self, due: DueDelivery) -> None:
        event = await self._load(due.event_id)
        resumer = self._resumers.get(due.resumer) if self._resumer_exists(due.resumer) else None
        try:
            if resumer is None:
                raise DeliveryFailed(f"no resumer named {due.resumer!r} is installed")
            await resumer.deliver(event)
        except DeliveryFailed as exc:
            await self._write(self.store.delivery_attempted, due.id, state="failed",
                              error=str(exc))
        except Exception as exc:
            now = self.clock()
            error = str(exc) or type(exc).__name__
            if (now - due.created_at).total_seconds() > self.settings.delivery_give_up_after:
                await self._write(self.store.delivery_attempted, due.id, state="failed",
                                  error=f"gave up after {due.attempts + 1} attempts: {error}")
                return
            delay = min(self.settings.delivery_backoff * 2**due.attempts,
                        self.settings.delivery_backoff_max)
            await self._write(self.store.delivery_attempted, due.id, state="pending",
                              error=error, next_attempt_at=now + timedelta(seconds=delay))
        else:
            await self._write(self.store.delivery_attempted, due.id, state="delivered")

    async def _dispatch_loop(self) -> None:
        while True:
            self._dispatch_wake.clear()
            try:
                await self.dispatch()
                upcoming = await self._run(self.store.next_delivery_at)
            except Exception:
                log.exception("delivery dispatch failed; trying again")
                upcoming = None
            pause = self.settings.sweep_interval
            if upcoming is not None:
                pause = min(pause, max((upcoming - self.clock()).total_seconds(), 0.0))
            try:
                await asyncio.wait_for(self._dispatch_wake.wait(), timeout=pause)
            except asyncio.TimeoutError:
                pass


class _BrokenResumer:
    """Stands in for a resumer whose module failed to load, so deliveries say why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def deliver(self, event: Event) -> None:
        raise DeliveryFailed(self.reason)

    async def aclose(self) -> None:
        return None


class _ResumerNotLoaded(Exception):
    """An answer needs a resumer that is not loaded yet (loading may import an SDK: slow)."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name


def _settler(rule: str | None,
             relays: RelayPolicy) -> Callable[[Event, list[Response]], Decision | None]:
    """The store's question once a response is in: do the responses now decide the event."""

    def decide(current: Event, responses: list[Response]) -> Decision | None:
        settled = settle(current.input.kind, current.policy, responses,
                         requester=current.requested_by, relays=relays)
        if settled is None:
            return None
        value, settled_rule = settled
        last = responses[-1]
        decision = response_decision(current, value, last.by, last.comment, last.channel,
                                     last.at, relayed_from=last.relayed_from,
                                     verified=last.verified)
        return decision.model_copy(update={"rule": settled_rule or rule})

    return decide


def check_channel(channel: str | None, default: str | None) -> str | None:
    """The channel a caller claims (``X-Signoff-Channel``), checked for form and for the
    channels nobody may claim (see :mod:`signoff._channels`); ``default`` when absent. Whether
    this caller may claim it on this event is the hub's to decide (:meth:`Hub._channel`).
    """
    return check_claim(channel) or default
