"""The hub's behaviour, shared by the JSON API and the web inbox.

:class:`Hub` checks rights and input, writes through the store, wakes long-poll waiters the
moment a decision is written, and runs two background loops: the deadline sweeper and the
delivery dispatcher. Both read their schedule from the store, so a restarted hub catches up.

Neither loop waits on the outside world: each escalation, timeout, decider call, notification
and delivery they find due runs as its own task (:mod:`signoff.hub.tasks`), keyed so it is not
started twice, bounded per integration and timed out. What is slow to load (apprise, the
configured resumers) loads at start in worker threads.

The event loop never waits on a commit. With a store that batches (SQLite), a write is queued
for the store's writer thread and shares a commit with the writes queued alongside it, an
answer's checks run inside the transaction that writes it, and a read of one event by id runs
on the loop (tens of microseconds). Lists, counts and everything a plain store does run in
worker threads. A store on a database server that can drive its calls on the loop
(PostgreSQL, :meth:`~signoff.store.postgres.PostgresStore.drive`) runs them there instead: its
waits for the server are awaited, and no thread hands the GIL back and forth.
"""

from __future__ import annotations

import asyncio
import builtins
import logging
import secrets
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar

import anyio
from anyio import to_thread

from .._channels import RelayRefused, channel_kind, check_claim, claim_channel, relay_by
from .._errors import (
    AlreadyDecided,
    Forbidden,
    HubError,
    InvalidInput,
    KeyReused,
    NotFound,
    StoreUnavailable,
)
from .._evidence import digest_parts, parts_digest
from .._ids import new_id, well_formed
from .._inputs import InputSpec, validate_value
from .._limits import check_text
from .._model import Decision, Event, EventCreate, EventPage, Outcome, Response
from .._policy import RelayPolicy, relay_refusal, route, settle, tighten
from .._rules import (
    Identity,
    can_answer,
    can_cancel,
    can_read,
    cancel_decision,
    response_decision,
)
from .._shadow import shadow_of
from ..deciders import Decider, DeciderFailed, Verdict, load_decider
from ..resumers import target_of
from ..store import AuditEntry, AuditNote, Batching, DeliveryRecord, Store
from .access import Access
from .balance import Balancer, Plan
from .delegation import Delegations, delegated
from .dispatch import Dispatcher, StartRefused
from .egress import check_event_egress
from .evidence import check_answer_digest
from .evidence import same_payload as _same_payload
from .limits import Limits
from .links import LinkSigner
from .live import Changes
from .logs import state_change
from .masking import may_reveal, shown
from .metrics import Metrics
from .notify import Notifier
from .settings import Settings
from .slack import Slack
from .sweeper import Sweeper
from .tasks import LoopLag, Tasks

__all__ = ["Hub", "StartRefused", "check_channel"]

_COUNT_REPLICAS_EVERY = 5.0  # seconds between counts of the hubs sharing the database
log = logging.getLogger("signoff.hub")
T = TypeVar("T")
Clock = Callable[[], datetime]


def _utcnow() -> datetime:
    return datetime.now(timezone.utc)


_CREATE_FIELDS = tuple(EventCreate.model_fields)
# pydantic's model_construct inspects a default factory's signature on every call (slower than
# validating): _draft gives every field, these defaults the ones it does not set itself
_EVENT_DEFAULTS = {name: (f.default_factory, f.default) for name, f in Event.model_fields.items()
                   if not f.is_required()}


_DRAFT_SETS = frozenset({"id", "requested_by", "status", "created_at", "deadline",
                         "escalation_level", "decision", "responses", "deliveries", "digest",
                         "digest_parts"})


def _defaults_except(fields: dict[str, Any], also: frozenset[str]) -> dict[str, Any]:
    """Event's defaults for the fields neither ``fields`` nor ``also`` name."""
    return {name: factory() if factory is not None else default  # type: ignore[call-arg]
            for name, (factory, default) in _EVENT_DEFAULTS.items()
            if name not in fields and name not in also}


@dataclass
class _Draft:
    """An event ready to be stored, with what its creation writes beside it."""

    event: Event
    channel: str
    decision: Decision | None
    notes: builtins.list[str | AuditNote]
    target: str | None = None  # the run its resumer would push into (see _resume_target)
    balance: Plan | None = None  # whom it may be given to, when its group is balanced


class Hub:
    """One hub process: the store, the waiters, the sweeper and the dispatcher."""

    def __init__(self, settings: Settings, store: Store, clock: Clock = _utcnow,
                 link_key: bytes | None = None) -> None:
        self.settings = settings
        self.store = store
        self._batching = store if isinstance(store, Batching) else None  # checked once: slow
        # a store on a database server: how long a request waits for one call (see _run)
        self._store_bound = settings.database_timeout if getattr(store, "remote", False) else None
        # a store on a database server may run store code on the loop instead of in a thread
        self._drive: Callable[..., Awaitable[Any]] | None = (
            getattr(store, "drive", None) if self._store_bound is not None else None)
        self._driving: set[asyncio.Future[Any]] = set()  # held: a call left behind runs on
        self.clock = clock
        self._waiters: dict[str, set[asyncio.Future[Decision | None]]] = {}
        self._closing = False  # shutting down: long-polls answer at once
        self._specs: dict[str, InputSpec] = {}  # event id -> its input spec, which never changes
        self.dispatcher = Dispatcher(self)
        self.sweeper = Sweeper(self)
        self._tasks: list[asyncio.Task[None]] = []
        # issue 21: one-click answer links; a random key (links die with the process) only
        # where the caller has no audit key to derive one from
        self.links = LinkSigner(link_key or secrets.token_bytes(32), settings.base_url,
                                settings.answer_link_seconds)
        self.notifier = Notifier(settings, self.links)
        self._background: set[asyncio.Task[None]] = set()  # re-reads after other hubs' news
        self._unlisten: Callable[[], None] | None = None
        self.egress = settings.egress_guard()
        self.limits = Limits(settings, self._count_pending_by)
        self.access = Access(self)
        self.work = Tasks()
        self._deciders: dict[str, Decider] = {}
        self._asking: dict[str, asyncio.Task[Any]] = {}
        self.loop_lag = LoopLag(settings.loop_lag_warning)
        self.metrics = (Metrics(settings, store, lambda: self.waiting, clock)
                        if settings.metrics else None)
        if self.metrics is not None:  # the lag monitor feeds signoff_event_loop_lag_seconds
            self.loop_lag.on_sample = self.metrics.loop_lag.set
        self.changes = Changes()  # issue 19: wakes the live inbox streams
        self.delegations = Delegations(self)  # issue 21
        self.balancer = Balancer(self)  # issue 21: one member of a group gets the event
        self.slack = Slack(self, settings.slack) if settings.slack is not None else None

    # lifecycle ---------------------------------------------------------------------------
    async def start(self) -> None:
        """Load apprise (in the background, when notifications are configured) and the
        configured resumers (before serving), make deliveries that failed for want of a
        resumer pending again, start the loops.

        Raises:
            StartRefused: a resumer configured in ``settings.resumers`` cannot load.
        """
        await self.dispatcher.load_all()
        bridges = self._start_bridges()
        if self.notifier.configured():  # a hub that notifies nobody never imports apprise
            self.notifier.load()  # sender processes; a send waits for them, off the loop
        await self.dispatcher.requeue_unavailable()
        self._tasks = [asyncio.create_task(self.sweeper.loop(), name="signoff-sweeper"),
                       asyncio.create_task(self.dispatcher.loop(), name="signoff-dispatcher"),
                       asyncio.create_task(self.loop_lag.run(), name="signoff-loop-lag"),
                       *(task for bridge in bridges for task in bridge.start())]
        self._listen()

    def _start_bridges(self) -> builtins.list[Any]:
        """The bridges the settings configure (issue 20), each registered as the resumer of
        its events; imported only when configured.

        Raises:
            StartRefused: a bridge's settings cannot work (an address egress does not allow).
        """
        if not self.settings.airflow_hitl:
            return []
        from .bridges.airflow_hitl import AirflowHitlBridge

        try:
            bridge = AirflowHitlBridge(self)
        except ValueError as exc:
            log.critical("refusing to start: %s", exc)
            raise StartRefused(str(exc)) from exc
        self.dispatcher.resumers[bridge.name] = bridge
        return [bridge]

    async def stop(self) -> None:
        """Stop the loops and the work in flight, release waiters and resumers."""
        if self._unlisten is not None:
            await self._run(self._unlisten)
            self._unlisten = None
        for task in [*self._tasks, *self._background]:
            task.cancel()
        await asyncio.gather(*self._tasks, *self._background, return_exceptions=True)
        await self.work.aclose(drain=("notify",))
        await self.dispatcher.release_unfinished()
        await self.sweeper.give_back()
        await self.notifier.aclose()
        if self.slack is not None:
            await self.slack.aclose()
        for decider in self._deciders.values():
            close = getattr(decider, "aclose", None)
            if callable(close):
                await close()
        for resumer in self.dispatcher.resumers.values():
            if resumer is not None:
                await resumer.aclose()
        release = getattr(self.store, "release_loop", None)
        if self._drive is not None and release is not None:
            if self._driving:  # calls left behind: a moment to finish, then their pool closes
                await asyncio.wait(set(self._driving), timeout=_DRIVEN_GRACE)
            await release()

    async def _run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """A store call in a worker thread (scans, and everything a plain store does); on a
        store that drives its calls, store code (:meth:`_store_code`) runs on the loop.

        A store on a database server bounds how long a request waits for it
        (``database_timeout``): a server that stops answering without closing its connections (a
        hung host, a frozen process) answers 503 after that long instead of never. The call
        (thread or task) is left to finish on its own, and its outcome is unknown to the caller
        (the error says so: a retry with the same idempotency key, or of the same answer, is
        safe).
        """
        if self._store_bound is None:
            return await to_thread.run_sync(lambda: fn(*args, **kwargs))
        if self._drive is not None and self._store_code(fn):
            return await self._within_bound(asyncio.shield(self._driven(fn, *args, **kwargs)))
        return await self._within_bound(to_thread.run_sync(lambda: fn(*args, **kwargs),
                                                           abandon_on_cancel=True))

    async def _within_bound(self, call: Awaitable[T]) -> T:
        """``call`` awaited for at most ``database_timeout``; then a 503 (see :meth:`_run`)."""
        bound = self._store_bound
        try:
            with anyio.fail_after(bound):
                return await call
        except TimeoutError:
            raise StoreUnavailable(
                f"the database did not answer within {bound:g} s; what this request asked may "
                "or may not be done (retrying it is safe: an event with its idempotency key, "
                "an answer to the same event)") from None

    def _store_code(self, fn: Callable[..., Any]) -> bool:
        """Whether ``fn`` only computes and calls the store (a store method, or a hub job of
        :data:`_STORE_JOBS`): what :meth:`~signoff.store.postgres.PostgresStore.drive` may run
        on the loop. Anything else (loading a plugin, joining a thread) waits in a thread.
        """
        return (getattr(fn, "__self__", None) is self.store
                or getattr(fn, "__func__", None) in _STORE_JOBS)

    def _driven(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Store code on the loop (see :meth:`_run`), as a task of its own: like a worker
        thread, a call its caller stopped waiting for (``database_timeout``, a client gone)
        runs on to its end, and gives its connection back.
        """
        assert self._drive is not None
        call: asyncio.Future[T] = asyncio.ensure_future(self._drive(fn, *args, **kwargs))
        self._driving.add(call)
        call.add_done_callback(_left_behind)
        call.add_done_callback(self._driving.discard)
        return call

    def _submit(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """Start a store write: queued for a group commit when the store batches, else a
        worker thread (or a task on the loop, see :meth:`_run`). The returned future resolves
        once the write is durable.
        """
        return self._started(None, fn, *args, **kwargs)

    def _started(self, then: Callable[[asyncio.Future[T]], None] | None, fn: Callable[..., T],
                 *args: Any, **kwargs: Any) -> asyncio.Future[T]:
        """:meth:`_submit`, calling ``then`` with the write's own outcome: for a call on the
        loop, even one whose request stopped waiting for it (``database_timeout``) and was
        answered 503, since the write may commit afterwards.
        """
        if self._batching is not None:
            write = outcome = asyncio.wrap_future(self._batching.submit(fn, *args, **kwargs))
        elif self._drive is not None and self._store_code(fn):
            outcome = self._driven(fn, *args, **kwargs)
            write = asyncio.ensure_future(self._within_bound(asyncio.shield(outcome)))
        else:
            write = outcome = asyncio.ensure_future(self._run(fn, *args, **kwargs))
        if then is not None:
            outcome.add_done_callback(then)
        if self.metrics is not None:
            write.add_done_callback(self._count_failure)
        return write

    def _count_failure(self, write: asyncio.Future[Any]) -> None:
        """A write that failed (not a refusal) lost the audit entry it carried."""
        if not write.cancelled() and self.metrics is not None:
            failed = write.exception()
            if failed is not None and not isinstance(failed, (HubError, RelayRefused,
                                                              _ResumerNotLoaded)):
                self.metrics.audit_failures_total.inc()

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
        writes wakes the waiters and the dispatcher even if the caller is cancelled meanwhile,
        or was answered 503 because the database was slower than ``database_timeout``.
        """
        def announce(done: asyncio.Future[Event]) -> None:
            if done.cancelled() or done.exception() is not None:
                return
            if done.result().decision is not None:
                self._decided(done.result())

        return await asyncio.shield(self._started(announce, fn, *args, **kwargs))

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
        draft = await self._delegated(self._draft(who, body, channel))
        async with self.limits.creating(who.user):  # 429 past the rate or the pending quota
            draft.target = await self._resume_target(draft.event)  # 409 if another's run
            stored, created = await self._write(self._store_draft, draft)
        _same_payload(draft.event, stored)
        self._created(stored, created)
        return stored, created

    async def create_many(self, who: Identity, bodies: builtins.list[EventCreate | HubError],
                          channel: str | None) -> builtins.list[tuple[Event, bool] | HubError]:
        """Create many events, each checked, rate-limited and keyed on its own, in one store
        job (see :meth:`_create_drafts`), durable before this returns; one result per body, in
        order. A body given as an error (it did not validate) stays that error.
        """
        results: builtins.list[tuple[Event, bool] | HubError | None] = []
        drafts: builtins.list[tuple[int, _Draft]] = []
        async with AsyncExitStack() as admitted:
            for body in bodies:
                if isinstance(body, HubError):
                    results.append(body)
                    continue
                try:
                    draft = await self._delegated(self._draft(who, body, channel))
                    await admitted.enter_async_context(self.limits.creating(who.user))
                    draft.target = await self._resume_target(draft.event)
                except HubError as refused:
                    results.append(refused)
                    continue
                drafts.append((len(results), draft))
                results.append(None)
            if drafts:
                stored = await self._write(self._create_drafts, [d for _, d in drafts])
                for (index, draft), made in zip(drafts, stored, strict=True):
                    results[index] = made  # an item the store refused too
                    if isinstance(made, tuple):
                        try:
                            _same_payload(draft.event, made[0])
                        except KeyReused as refused:
                            results[index] = refused
        for result in results:
            if isinstance(result, tuple):
                self._created(*result)
        return [r for r in results if r is not None]

    async def _delegated(self, draft: _Draft) -> _Draft:
        """The draft with the delegates in force among its assignees, and whom it may be
        given to if its group is balanced (issue 21).
        """
        if draft.decision is None:
            draft.event, notes = await self.delegations.apply(draft.event)
            draft.notes += notes
            draft.balance = await self.balancer.plan(draft.event)
        return draft

    def _store_draft(self, draft: _Draft) -> tuple[Event, bool]:
        """Create the draft's event and, if balanced, give it to a member: one store call, one
        transaction (both written or neither, on every store).
        """
        stored, created = self.store.create_event(
            draft.event, channel=draft.channel, decision=draft.decision, notes=draft.notes,
            resume_target=draft.target, balance=draft.balance)
        if created and draft.balance is not None and stored.status == "pending":
            self.balancer.logged(stored, draft.balance, stored.assignee is not None)
        return stored, created

    def _create_drafts(self, drafts: builtins.list[_Draft]
                       ) -> builtins.list[tuple[Event, bool] | HubError]:
        """One store job, one result per draft. A store that batches writes runs them all in
        one transaction; PostgreSQL commits each creation on its own. Either way a creation
        the store refuses (a resume target taken, a value the database cannot hold) wrote
        nothing and is that draft's result: the others go on. The store unreachable fails
        the whole job while nothing is written yet; once something is, the written keep their
        results and the rest get the 503 untried, so no answer calls a written event refused
        or an unwritten one made.
        """
        made: builtins.list[tuple[Event, bool] | HubError] = []
        for d in drafts:
            if made and isinstance(made[-1], StoreUnavailable):
                made.append(made[-1])
                continue
            try:
                made.append(self._store_draft(d))  # given to its member, if balanced, with it
            except StoreUnavailable as lost:
                if not any(isinstance(m, tuple) and m[1] for m in made):
                    raise
                made.append(lost)
            except HubError as refused:
                made.append(refused)
        return made

    def _draft(self, who: Identity, body: EventCreate, channel: str | None) -> _Draft:
        """The event to store for ``body``: rights, channel and egress checked, the policy file
        applied and the policy routed (no I/O).
        """
        if who.role == "reviewer":
            raise Forbidden("reviewer tokens answer events; creating them needs a workflow token")
        channel = self._channel(who, channel, body.source.orchestrator, who.user)
        check_event_egress(self.settings, self.egress, body)
        now = self.clock()
        policy, assignees, notes = tighten(body.policy, list(body.assignees),
                                           self.settings.policies, body)
        on_timeout = body.on_timeout
        if policy is not None and policy.on_timeout is not None:
            on_timeout = policy.on_timeout
        deadline = now + timedelta(seconds=body.timeout) if body.timeout else None
        # body is a validated EventCreate and every other field is set here: no second pass
        # through the validators (Event has none of its own)
        fields = {name: getattr(body, name) for name in _CREATE_FIELDS}
        fields.update(policy=policy, assignees=assignees, on_timeout=on_timeout)
        parts = digest_parts(body)  # what a reviewer will be shown, bound at creation
        event = Event.model_construct(**fields, id=new_id("ev"), requested_by=who.user,
                                      status="pending", created_at=now, deadline=deadline,
                                      escalation_level=0, decision=None, responses=[],
                                      deliveries=[], digest=parts_digest(parts),
                                      digest_parts=parts,
                                      **_defaults_except(fields, _DRAFT_SETS))
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
        noted: builtins.list[str | AuditNote] = list(notes)
        shadow = shadow_of(event)  # issue 21: what its shadow rules would do, never done
        if shadow is not None:
            event = event.model_copy(update={"shadow": shadow})
            noted.append(("shadow", "policy", shadow.model_dump(mode="json")))
        return _Draft(event, channel, decision, noted)

    def _created(self, stored: Event, created: bool) -> None:
        """What follows a stored creation: the spec kept, metrics and logs, the sweeper and
        notifications told.
        """
        self._remember_spec(stored)
        if created:
            if self.metrics is not None:
                self.metrics.created(stored)
            state_change("created", stored)
            if stored.decision is not None:
                state_change("decided", stored, decided_by=stored.decision.by)
            policy = stored.policy
            if stored.deadline is not None or (policy and policy.escalate):
                self.sweeper.wake.set()
            self._notify(stored, "decided" if stored.decision else "created")
            if self.slack is not None:
                self.slack.created(stored)

    def _notify(self, event: Event, what: str, extra: list[str] | None = None, *,
                only: list[str] | None = None, step: int | None = None) -> None:
        """Send a notification in its own task: bounded, timed out, its outcome audited.
        ``only`` names the assignees a reminder (``step``) goes to.
        """
        if only is None:
            self.changes.bump()  # the live inbox (live.py): created, decided, escalated
        if not self.notifier.targets(event, extra, only):
            return
        settings = self.settings
        limiter = self.work.limiter("notify", settings.notify_concurrency)
        level = event.escalation_level

        async def send() -> None:
            try:
                with anyio.fail_after(settings.notify_timeout):
                    result = await self.notifier.send(event, what, extra, limiter=limiter,
                                                      only=only, now=self.clock())
            except TimeoutError:
                result = {"what": what, "ok": False,
                          "error": f"timed out after {settings.notify_timeout:g} s"}
            except Exception as exc:  # a notification never breaks the hub
                result = {"what": what, "ok": False, "error": type(exc).__name__}
            if not result.get("ok"):
                log.warning("notification %r for event %s failed: %s", what, event.id,
                            result.get("error", "a target refused it"))
            await self._write(self.store.record, "notified", actor="hub", channel="apprise",
                              event_id=event.id, data=result)

        self.work.start(("notify", event.id, what, level if step is None else step), send)

    async def _load(self, event_id: str) -> Event:
        if not well_formed(event_id, "ev"):  # e.g. a ticked id from a form: never a query
            raise NotFound(f"no event {event_id!r}")
        event = await self._read_one(self.store.get_event, event_id)
        if event is None:
            raise NotFound(f"no event {event_id}")
        return event

    async def get(self, who: Identity, event_id: str) -> Event:
        """One event the caller may read, its sensitive context masked (:mod:`.masking`)."""
        return self.shown(await self._readable(who, event_id))

    async def _readable(self, who: Identity, event_id: str) -> Event:
        event = await self._load(event_id)
        if not can_read(who, event):
            raise Forbidden(f"{who.user} may not read event {event_id}")
        return event

    def shown(self, event: Event) -> Event:
        """An event as any reader gets it: sensitive context fields masked."""
        return shown(event, tuple(self.settings.sensitive_fields))

    async def reveal(self, who: Identity, event_id: str, channel: str) -> Event:
        """The event unmasked, for a caller named in ``reveal_allowed``; the reveal is written
        to the audit log (who, when, channel, which paths) before the event is answered.

        Raises:
            Forbidden: the caller may not read the event, or may not reveal.
        """
        event = await self._readable(who, event_id)
        if not may_reveal(who, self.settings.reveal_allowed):
            raise Forbidden(f"{who.user} may not reveal masked fields: the hub's "
                            "reveal_allowed does not name them or their groups")
        paths = self.shown(event).masked
        if paths:
            await self._write(self.store.record, "revealed", actor=who.user, channel=channel,
                              event_id=event_id, data={"paths": paths})
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
        page = await self._run(self.store.list_events, status=status, assignee=assignee,
                               limit=limit, cursor=cursor, **scope)
        if not page.events:
            return page
        return page.model_copy(update={"events": [self.shown(e) for e in page.events]})

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
                      channel: str | None, relayed_by: str | None = None,
                      digest: str | None = None) -> Event:
        """Answer an event; the first valid answer decides it.

        ``channel`` is the caller's checked claim (``web`` from the inbox); an engine channel
        makes the answer a relay, recorded in the name of ``relayed_by`` (the person the
        engine names) or as unverified, never in the caller's. ``digest``, when given, is the
        event's digest as the responder was shown it: another one now is a 409.

        Raises:
            NotFound, Forbidden, AlreadyDecided, InvalidInput, RateLimited, DigestChanged:
                and nothing is
            written; a refused relay (:class:`RelayRefused`) is written to the audit trail only.
        """
        # every channel's answer comes here (the API's model checked these already; a form,
        # a link or a batch page did not)
        check_text("comment", comment)
        check_text("relayed_by", relayed_by)
        self.limits.answer(who.user)
        spec = self._specs.get(event_id)
        if spec is None:
            spec = (await self._load(event_id)).input
        checked = await self._checked(spec, value)
        while True:
            try:
                event = await self._write_deciding(self._respond_now, who, event_id, checked,
                                                   comment, channel, relayed_by, digest)
            except _ResumerNotLoaded as missing:  # the first answer for this orchestrator
                await self._run(self.dispatcher.resumer_exists, missing.name)
            except RelayRefused as refused:  # audited, and shown in the event's history
                await self._write(self.store.record, "relay_refused", actor=refused.by,
                                  channel=refused.engine, event_id=event_id,
                                  data={"reason": refused.reason, "relayed_by": refused.by})
                raise
            else:
                state_change("answered", event, by=event.responses[-1].by
                             if event.responses else None)
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
                     claim: str | None, relayed_by: str | None = None,
                     digest: str | None = None) -> Event:
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
            check_answer_digest(event, digest)  # against the event as the store reads it
            if relayed:
                reason = relay_refusal(event, self.settings.relays)
                if reason is not None:
                    raise RelayRefused(f"event {event_id}: {reason}", engine=channel, by=by)
            return Response(id=new_id("rs"), event_id=event_id, by=by,
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
        check_text("comment", comment)
        event = await self._load(event_id)
        if not can_cancel(who, event):
            raise Forbidden(f"{who.user} may not cancel event {event_id}")
        channel = self._channel(who, channel, event.source.orchestrator, event.requested_by)
        decision = cancel_decision(who.user, comment, channel, self.clock())
        return await self._decide(event, decision, None)

    async def _via(self, event: Event) -> str | None:
        """The resumer that delivers this event's decision, loaded on first use."""
        orchestrator = event.source.orchestrator
        if orchestrator not in self.dispatcher.resumers:  # first use: an SDK import may take seconds
            await self._run(self.dispatcher.resumer_exists, orchestrator)
        return self._route(event)

    async def _resume_target(self, event: Event) -> str | None:
        """``resumer:target``, the run this event's decision would be pushed into (see
        :mod:`signoff.resumers`), with the resumer loaded off the loop on first use.

        Raises:
            InvalidInput: the resumer's ``target`` refused the event's params (naming the
                param itself when it raised InvalidInput).
        """
        name = event.source.orchestrator
        if name not in self.dispatcher.resumers:
            await self._run(self.dispatcher.resumer_exists, name)
        try:
            found = target_of(self.dispatcher.resumers.get(name), event)
        except InvalidInput:
            raise
        except Exception as exc:  # a third-party resumer that cannot read the params
            raise InvalidInput("source.params", f"params the {name} resumer can deliver to",
                               type(exc).__name__) from exc
        check_text("source.params", found)  # kept in a column, as a Text field is
        return None if found is None else f"{name}:{found}"

    def _route(self, event: Event) -> str | None:
        """The resumer for this event, from those already loaded."""
        orchestrator = event.source.orchestrator
        if orchestrator not in self.dispatcher.resumers:
            raise _ResumerNotLoaded(orchestrator)
        return orchestrator if self.dispatcher.resumers[orchestrator] is not None else None

    async def _decide(self, event: Event, decision: Decision,
                      response: Response | None) -> Event:
        via = await self._via(event)
        return await self._write_deciding(self.store.decide, event.id, decision,
                                          response=response, deliver_via=via)

    def _decided(self, event: Event) -> None:
        assert event.decision is not None
        asking = self._asking.get(event.id)
        if asking is not None:  # a decider still thinking about it has nothing left to decide
            asking.cancel()
        self._wake(event.id, event.decision)
        if self.metrics is not None:
            self.metrics.decided(event)
        state_change("decided", event, decided_by=event.decision.by)
        if any(d.state == "pending" for d in event.deliveries):
            self.dispatcher.wake.set()
        self._notify(event, "deadline" if event.decision.by == "timeout" else "decided")

    async def audit(self, who: Identity, event_id: str) -> builtins.list[AuditEntry]:
        """The audit trail of an event the caller may read."""
        await self.get(who, event_id)
        return await self._run(self.store.audit, event_id)

    # long-poll ---------------------------------------------------------------------------
    async def wait_decision(self, who: Identity, event_id: str, wait: float) -> Decision | None:
        """The decision, waiting up to ``wait`` seconds; woken by the decision itself."""
        future: asyncio.Future[Decision | None] = asyncio.get_running_loop().create_future()
        waiters = self._waiters.setdefault(event_id, set())
        waiters.add(future)
        try:
            event = await self.get(who, event_id)  # registered first: no decision slips by
            if event.decision is not None:
                return event.decision
            if wait <= 0 or self._closing:
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

    def closing(self) -> None:
        """The server is shutting down: every parked long-poll answers now as if its wait ran
        out (204: the client asks again, of this hub once it is back or of another replica),
        new ones do not park, and the live inbox streams end. The server waits for requests in
        flight before it stops; without this, for the longest wait.
        """
        self._closing = True
        for waiters in self._waiters.values():
            for future in waiters:
                if not future.done():
                    future.set_result(None)
        self.changes.close()

    # other hubs on the same database ------------------------------------------------------
    def _listen(self) -> None:
        """Hear what other hubs on a shared database create, decide and escalate, where the
        store can tell (PostgreSQL's LISTEN/NOTIFY: :meth:`PostgresStore.listen`).
        """
        listen = getattr(self.store, "listen", None)
        if not callable(listen):
            return  # SQLite: this process is the only hub on its database
        loop = asyncio.get_running_loop()

        def heard(event_id: str | None, decision: str | None) -> None:  # listener's thread
            try:
                loop.call_soon_threadsafe(self._heard, event_id, decision)
            except RuntimeError:
                pass  # the loop closed: the hub is stopping

        self._unlisten = listen(heard)
        self._tasks.append(asyncio.create_task(self._count_replicas(), name="signoff-replicas"))

    async def _count_replicas(self) -> None:
        """Keep :attr:`Limits.replicas` up to date: each replica allows its share of a token's
        rates and long-polls.
        """
        count = getattr(self.store, "count_hubs", None)
        while callable(count):
            try:
                self.limits.replicas = await self._run(count)
            except Exception as exc:  # the store is down: keep the last count
                log.debug("counting the hubs on the database failed: %s", exc)
            await asyncio.sleep(_COUNT_REPLICAS_EVERY)

    def _heard(self, event_id: str | None, decision: str | None = None) -> None:
        """Another hub changed ``event_id`` (``None``: the news may have gaps, after a lost
        connection): wake this hub's long-polls on it with the ``decision`` the notice carried,
        or re-read what they wait on; and move the live inboxes.
        """
        self.changes.bump()
        if event_id is not None and decision is not None and event_id in self._waiters:
            try:
                self._wake(event_id, Decision.model_validate_json(decision))
                return
            except ValueError:
                log.warning("a notice about event %s carried a decision that does not "
                            "parse; reading the event instead", event_id)
        ids = list(self._waiters) if event_id is None else \
            [event_id] if event_id in self._waiters else []
        for one in ids:
            task = asyncio.create_task(self._wake_from_store(one), name=f"signoff:heard:{one}")
            self._background.add(task)
            task.add_done_callback(self._background.discard)

    async def _wake_from_store(self, event_id: str) -> None:
        try:
            event = await self._run(self.store.get_event, event_id)
        except Exception as exc:  # the store is down: the waiters' own timeouts still end
            log.warning("re-reading event %s after another hub's change failed: %s",
                        event_id, exc)
            return
        if event is not None and event.decision is not None:
            self._wake(event_id, event.decision)

    def _wake(self, event_id: str, decision: Decision) -> None:
        for future in self._waiters.get(event_id, ()):
            if not future.done():
                future.set_result(decision)

    @property
    def waiting(self) -> int:
        """How many long-poll requests are parked right now."""
        return sum(len(w) for w in self._waiters.values())

    # what escalation, deadlines and deciders need (public, so each reads on its own) ----
    async def record_refusal(self, who: Identity, event_id: str, reason: str) -> None:
        """Log and audit that ``who``'s waiting workflow refused the event's decision (its
        signature or digest did not verify): someone changed it, or the keys are wrong.

        Raises:
            NotFound, Forbidden: the caller may not see this event.
        """
        await self.get(who, event_id)
        log.warning("a decision was refused by its waiting workflow", extra={
            "event_id": event_id, "by": who.user, "reason": reason})
        await self._write(self.store.record, "decision_refused", actor=who.user,
                          channel="api", event_id=event_id, data={"reason": reason})

    async def record_escalation(self, event: Event, level: int, assignees: builtins.list[str],
                                data: dict[str, Any]) -> Event:
        """Record that ``event`` passed escalation tier ``level``, now assigned to ``assignees``.

        Raises:
            AlreadyDecided: the event was decided (or escalated) meanwhile.
        """
        if assignees != event.assignees:  # a tier's new assignees: their delegates too
            now = self.clock()
            assignees, notes = delegated(event.model_copy(update={"assignees": assignees}), now,
                                         await self.delegations.current(now))
            if notes:
                data = {**data, "delegations": [{"action": a, **d} for a, _, d in notes]}
        moved = await self._write(self.store.escalate, event.id, level=level,
                                  assignees=assignees, data=data)
        moved = await self.balancer.after_tier(moved, level)  # its member did not answer
        if self.metrics is not None:
            self.metrics.escalated(level)
        state_change("escalated", moved, tier=level)
        return moved

    def notify(self, event: Event, what: str, extra: builtins.list[str] | None = None, *,
               only: builtins.list[str] | None = None, step: int | None = None) -> None:
        """Send ``event``'s notifications about ``what`` in the background; never raises."""
        self._notify(event, what, extra, only=only, step=step)

    async def add_system_response(self, event: Event, response: Response, rule: str) -> Event:
        """Add a response the hub gathered itself (an automated decider's); it decides the
        event when the policy's quorum says so, recorded with ``rule``.
        """
        return await self._add_response(event, response, rule=rule)

    async def decide(self, event: Event, decision: Decision, *, deliver: bool = True) -> Event:
        """Write a decision the hub reached itself (a deadline); wakes waiters and deliveries.
        ``deliver=False``: nothing to deliver, the engine itself made it (a bridge closing an
        event answered in the engine).

        Raises:
            AlreadyDecided: a racing answer decided the event first.
        """
        if not deliver:
            return await self._write_deciding(self.store.decide, event.id, decision,
                                              response=None, deliver_via=None)
        return await self._decide(event, decision, None)

    async def check_store(self) -> None:
        """Ask the store a cheap question: raises if it cannot answer (`/readyz`), or, on a
        database server, if it would refuse a write (a failover that landed on a standby).
        """
        writable = getattr(self.store, "check_writable", None)
        await self._run(writable if writable is not None else self.store.next_deadline)

    async def ask_decider(self, name: str, event: Event) -> Verdict:
        """The verdict of decider ``name`` on ``event``: loaded once (in a worker thread), at
        most ``decider_concurrency`` calls in flight to it, each within ``decider_timeout``;
        cancelled when the event is decided meanwhile.

        Raises:
            DeciderFailed: not configured, unreachable, too slow, or answered nonsense.
        """
        try:
            decider = self._deciders.get(name)
            if decider is None:
                decider = await self._run(load_decider, name, self.settings.deciders.get(name, {}),
                                          self.egress)
                self._deciders[name] = decider
            async with self.work.slot(f"decider:{name}", self.settings.decider_concurrency):
                me = asyncio.current_task()
                if me is not None:
                    self._asking[event.id] = me
                try:
                    with anyio.fail_after(self.settings.decider_timeout):
                        # a decider is a reader like any other: sensitive fields stay masked
                        return await decider.decide(self.shown(event))
                except TimeoutError:
                    raise DeciderFailed(f"decider {name!r} did not answer within "
                                        f"{self.settings.decider_timeout:g} s") from None
                finally:
                    self._asking.pop(event.id, None)
        except DeciderFailed as exc:
            log.warning("decider %r failed on event %s: %s", name, event.id, exc)
            raise

    async def list_deliveries(self, who: Identity, *, state: str | None = None,
                              limit: int = 100) -> builtins.list[DeliveryRecord]:
        """Deliveries, most recently changed first (admins)."""
        if who.role != "admin":
            raise Forbidden(f"{who.user} may not list deliveries (admins only)")
        return await self._run(self.store.list_deliveries, state=state, limit=limit)

    async def retry_delivery(self, who: Identity, delivery_id: str,
                             channel: str) -> DeliveryRecord:
        """Redeliver a failed delivery now (admins).

        Raises:
            Forbidden, NotFound, Conflict (it has not failed): and nothing is written.
        """
        if who.role != "admin":
            raise Forbidden(f"{who.user} may not retry deliveries (admins only)")
        record = await self._write(self.store.retry_delivery, delivery_id, actor=who.user,
                                   channel=channel)
        if self.dispatcher.broken(record.resumer):
            del self.dispatcher.resumers[record.resumer]  # try loading it again
        self.dispatcher.wake.set()
        return record

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


_STORE_JOBS = frozenset({Hub._store_draft, Hub._create_drafts, Hub._respond_now, Balancer.assign})
"""Hub functions that only compute and call the store (see :meth:`Hub._store_code`)."""
_DRIVEN_GRACE = 2.0  # seconds a stopping hub waits for store calls left behind on the loop


def _left_behind(call: asyncio.Future[Any]) -> None:
    """Retrieve the outcome of a store call on the loop that nobody may await any more (its
    caller timed out or left), so asyncio does not report it as never retrieved.
    """
    if not call.cancelled():
        call.exception()
