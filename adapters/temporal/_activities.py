"""The activities behind ``approve`` and ``ask``: every call to the hub happens here.

They run on the worker, outside the workflow sandbox, with :class:`signoff.AsyncClient`. A hub
that cannot be reached raises :class:`signoff.HubUnavailable`, and Temporal retries the activity
until it answers; an event or an answer the hub refuses becomes a non-retryable
``ApplicationError`` (``type`` ``signoff.InvalidInput`` or ``signoff.Forbidden``) naming the
field, what was expected and what came.
"""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator, Callable
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote

from temporalio import activity
from temporalio.exceptions import ApplicationError

from signoff import (
    AlreadyAnswered,
    AlreadyDecided,
    AsyncClient,
    Decision,
    DecisionUnverified,
    EventCreate,
    Forbidden,
    InvalidInput,
    timeout_decision,  # the hub's own rule, so both sides agree
)
from signoff.adapters import _hub

from ._common import (
    CANCEL_ACTIVITY,
    CHANNEL,
    CREATE_ACTIVITY,
    RELAY_ACTIVITY,
    SETTLE_ACTIVITY,
    VERIFY_ACTIVITY,
)
from ._errors import error_type

__all__ = ["SignoffActivities", "activities"]

SETTING = "SIGNOFF_URL (or SignoffPlugin(url=) / activities(url=))"
"""Where a worker is told its hub, named when none is set."""


def _unverified(exc: DecisionUnverified) -> ApplicationError:
    return ApplicationError(str(exc), {"event_id": exc.event_id, "reason": exc.reason},
                            type=error_type("DecisionUnverified"), non_retryable=True)


async def _checked(client: AsyncClient, event_id: str, decision: Decision | None
                   ) -> dict[str, Any] | None:
    """A decision the hub gave, verified (signature and digest) before the workflow sees it.

    Raises:
        ApplicationError: non-retryable ``signoff.DecisionUnverified``: it does not verify.
    """
    if decision is None:
        return None
    try:
        checked = await client.verified(event_id, decision)
    except DecisionUnverified as exc:
        raise _unverified(exc) from exc
    return checked.model_dump(mode="json")


def _refused(exc: InvalidInput | Forbidden) -> ApplicationError:
    if isinstance(exc, InvalidInput):
        return ApplicationError(str(exc), {"field": exc.field, "expected": exc.expected},
                                type=error_type("InvalidInput"), non_retryable=True)
    return ApplicationError(str(exc), type=error_type("Forbidden"), non_retryable=True)


class SignoffActivities:
    """The five activities, bound to one hub. Every decision they hand the workflow has been
    verified (the hub's signature and the event's digest, :meth:`signoff.Client.verified`).

    Args:
        url: the hub's URL (default ``SIGNOFF_URL``).
        token: a workflow token (default ``SIGNOFF_TOKEN``).
        ui_url: the Temporal UI's base URL; when given, events link to their workflow there.
        settle_wait: when the workflow's timer fires and the hub's deadline is at most this
            many seconds away (or past), how long, in seconds, after that deadline to wait
            for the hub's own decision before applying ``on_timeout`` in the workflow.
    """

    def __init__(self, url: str | None = None, token: str | None = None, *,
                 ui_url: str | None = None, settle_wait: float = 5.0) -> None:
        self.url = _hub.hub_url(url, SETTING)
        self.token = token
        self.ui_url = ui_url.rstrip("/") if ui_url else None
        self.settle_wait = settle_wait
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop,
                                                 dict[str | None, AsyncClient]] = \
            weakref.WeakKeyDictionary()

    @contextlib.asynccontextmanager
    async def _client(self, channel: str | None = None) -> AsyncIterator[AsyncClient]:
        """The running event loop's client for ``channel``, kept from call to call.

        Its connections and the hub's public keys are reused (a new client per call paid a
        connection and a ``/api/v1/keys`` read on every check). A worker may run activities on
        more than one event loop: each has its own.
        """
        per_loop = self._clients.setdefault(asyncio.get_running_loop(), {})
        client = per_loop.get(channel)
        if client is None:
            client = per_loop[channel] = AsyncClient(self.url, self.token, channel=channel)
        yield client

    def _link(self, event: EventCreate) -> EventCreate:
        params = event.source.params
        if self.ui_url is None or event.source.link is not None:
            return event
        link = (f"{self.ui_url}/namespaces/{quote(str(params['namespace']), safe='')}/workflows/"
                f"{quote(str(params['workflow_id']), safe='')}/"
                f"{quote(str(params['run_id']), safe='')}/history")
        return event.model_copy(update={"source": event.source.model_copy(update={"link": link})})

    @activity.defn(name=CREATE_ACTIVITY)
    async def create_event(self, body: dict[str, Any]) -> dict[str, Any]:
        """Create the event (or get the one with the same key back); its id and any decision."""
        event = self._link(EventCreate.model_validate(body))
        async with self._client() as client:
            try:
                created = await client.create(event)
            except InvalidInput as exc:
                raise _refused(exc) from exc
            if created.decision is None:  # once per wait: a replay does not run the activity
                activity.logger.info(_hub.WAITING, _hub.inbox_url(self.url, created.id))
            decision = await _checked(client, created.id, created.decision)
        return {"id": created.id, "status": created.status, "decision": decision}

    @activity.defn(name=SETTLE_ACTIVITY)
    async def settle_deadline(self, args: dict[str, Any]) -> dict[str, Any]:
        """The workflow's timer passed the deadline: the hub's decision, or on_timeout applied.

        The hub's decision wins whenever it has one (its sweeper, or an answer racing the
        timer). Only when the hub still waits (its clock is behind the workflow's) is the
        event withdrawn, with the reason, and the timeout rule applied here.
        """
        try:
            return await self._settle(args["event_id"])
        except DecisionUnverified as exc:  # the hub's decision does not verify: fail the step
            raise _unverified(exc) from exc

    async def _settle(self, event_id: str) -> dict[str, Any]:
        async with self._client(channel=CHANNEL) as client:
            event = await client.get(event_id)
            decision = event.decision
            if decision is None and event.deadline is not None:
                # the hub's own deadline is near (clocks agree, the sweeper is due): give it
                # the chance to decide; one far ahead means the clocks disagree, so don't
                left = (event.deadline - datetime.now(timezone.utc)).total_seconds()
                if left <= self.settle_wait:
                    decision = await client.decision(event_id,
                                                     wait=max(left, 0.0) + self.settle_wait)
            if decision is not None:
                checked = await client.verified(event_id, decision)
                return {"decision": checked.model_dump(mode="json"), "by": "hub"}
            info = activity.info()
            try:
                event = await client.cancel(
                    event_id,
                    comment=f"deadline passed in Temporal workflow {info.workflow_id} "
                            f"(its durable timer) before the hub's clock reached it; the "
                            f"workflow applied on_timeout itself")
            except AlreadyDecided:
                decision = await client.decision(event_id)  # verified by the client
                if decision is None:  # pragma: no cover - decided means a decision exists
                    raise
                return {"decision": decision.model_dump(mode="json"), "by": "hub"}
        local: Decision = timeout_decision(event, datetime.now(timezone.utc))
        local = local.model_copy(update={"channel": CHANNEL})
        return {"decision": local.model_dump(mode="json"), "by": "workflow"}

    @activity.defn(name=RELAY_ACTIVITY)
    async def relay_answer(self, args: dict[str, Any]) -> dict[str, Any]:
        """Relay an answer signalled to the workflow (channel ``temporal``). A signal names
        nobody, so the hub records it as unverified from Temporal, never as this worker's token;
        its relay policy may refuse it (a non-retryable ``signoff.Forbidden`` the workflow logs).
        """
        event_id = args["event_id"]
        async with self._client() as client:
            try:
                event = await client.relay(event_id, args.get("value"), args.get("comment"),
                                           engine=CHANNEL)
            except (InvalidInput, Forbidden) as exc:
                raise _refused(exc) from exc
            except (AlreadyDecided, AlreadyAnswered):  # decided, or this relay was recorded
                event = await client.get(event_id)
            return {"decision": await _checked(client, event_id, event.decision)}

    @activity.defn(name=VERIFY_ACTIVITY)
    async def verify_decision(self, args: dict[str, Any]) -> dict[str, Any]:
        """Check a decision that arrived as a signal: ``{"ok": True, "decision"}`` when the
        hub signed it for this event and the event still shows what was approved, else
        ``{"ok": False, "reason"}`` (the hub is told; the workflow keeps waiting).
        """
        event_id = args["event_id"]
        async with self._client() as client:
            try:
                arrived = Decision.model_validate(args["decision"])
                checked = await client.verified(event_id, arrived)
            except DecisionUnverified as exc:
                return {"ok": False, "reason": exc.reason}
        return {"ok": True, "decision": checked.model_dump(mode="json")}

    @activity.defn(name=CANCEL_ACTIVITY)
    async def cancel_event(self, args: dict[str, Any]) -> None:
        """Withdraw the event of a cancelled workflow (nothing to do if already decided)."""
        async with self._client(channel=CHANNEL) as client:
            try:
                await client.cancel(args["event_id"], comment=args.get("comment"))
            except AlreadyDecided:
                pass

    def all(self) -> list[Callable[..., Any]]:
        """The activities, ready for ``Worker(activities=[...])``."""
        return [self.create_event, self.settle_deadline, self.relay_answer, self.cancel_event,
                self.verify_decision]


def activities(url: str | None = None, token: str | None = None, *,
               ui_url: str | None = None) -> list[Callable[..., Any]]:
    """The activities ``approve`` and ``ask`` run, to register on the worker.

    ``Worker(client, task_queue=..., workflows=[...], activities=[*activities(), ...])``.
    The hub is ``url``/``token`` or ``SIGNOFF_URL``/``SIGNOFF_TOKEN`` (a workflow token).
    """
    return SignoffActivities(url, token, ui_url=ui_url).all()
