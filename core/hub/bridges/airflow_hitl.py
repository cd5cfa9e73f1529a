"""The Airflow HITL bridge: Airflow 3.3's own approvals in the inbox, answered from signoff.

For each deployment in ``[airflow_hitl.NAME]`` one background task looks at Airflow's pending
required actions every ``poll_interval`` seconds (:mod:`.airflow_api`) and:

- creates an event for each action it has not mirrored yet (:func:`.airflow_mapping.event_for`:
  options, params, assigned users, a link to the task's "required actions" page), in one store
  write, as the workflow identity ``airflow-hitl:NAME`` (no token has it: the events are the
  bridge's own), idempotent by deployment, DAG, run, task, map index and try;
- reads again, one by one, the actions of its pending events that are no longer in Airflow's
  pending list, and closes those events:

  - answered in Airflow's own UI or API: the event is decided with that answer, recorded as
    given by ``airflow-hitl:<the Airflow user>`` through channel ``airflow-hitl``, unverified
    (signoff did not authenticate the person), rule ``answered in Airflow``. Airflow has
    already acted on it, so no policy can refuse it and quorum does not apply; nothing is
    delivered back;
  - answered by Airflow's scheduler with the action's defaults when its ``response_timeout``
    passed: decided as ``timed_out`` with those defaults, by ``airflow-hitl:timeout``;
  - no longer waiting without an answer (``response_timeout`` passed without defaults, the
    task was marked or cleared, the run deleted): the event is cancelled by ``airflow-hitl``,
    saying why.

The bridge is also the resumer of its events: a decision made in signoff (a reviewer, a quorum,
an escalation fallback, a deadline's default) goes through the hub's delivery outbox, with its
retries and backoff, and is sent as ``PATCH .../hitlDetails``. A cancel or an expiry in signoff
sends nothing: the action keeps waiting in Airflow, where it can still be answered.

Calls to one deployment, polling and answering together, are at most ``concurrency`` at once,
each within its ``timeout``; a look that fails is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from typing import Any

from anyio import to_thread

from ..._channels import relay_by
from ..._egress import EgressRefused
from ..._errors import AlreadyDecided, HubError, InvalidInput
from ..._model import Decision, Event, Outcome
from ..._rules import Identity, cancel_decision, response_decision
from ...resumers import DeliveryFailed, RetryDelivery, target_name
from .airflow_api import AirflowApi, AirflowFailed
from .airflow_mapping import (
    ORCHESTRATOR,
    HitlDetail,
    answer_for,
    event_for,
    event_key,
    value_of_response,
)

__all__ = ["AirflowHitlBridge"]

log = logging.getLogger("signoff.hub.airflow_hitl")

_ALIVE = frozenset({"awaiting_input", "deferred", "running", "queued", "scheduled",
                    "up_for_reschedule", "restarting"})
"""Task states in which an unanswered action may still be answered (about to wait, waiting)."""

ANSWERED_IN_AIRFLOW = "answered in Airflow"
TIMED_OUT_IN_AIRFLOW = "Airflow's response_timeout"


class AirflowHitlBridge:
    """Polls the configured deployments and delivers signoff's decisions to them.

    Args:
        hub: the :class:`~signoff.hub.service.Hub` it runs in.

    Raises:
        ValueError: a deployment's ``url`` is outside the hub's egress settings (the message
            names the field).
    """

    name = ORCHESTRATOR

    def __init__(self, hub: Any) -> None:
        self.hub = hub
        self.apis: dict[str, AirflowApi] = {}
        for name, config in hub.settings.airflow_hitl.items():
            try:
                hub.egress.check_url(config.url)
            except EgressRefused as exc:
                raise ValueError(f"airflow_hitl.{name}.url: {exc} (add it to egress_allow, "
                                 "and a private address to egress_allow_private)") from exc
            self.apis[name] = AirflowApi(name, config, hub.egress)
        # keys this process created or found already: a cache (the store has them all), so a
        # look does not ask the store again for every action still waiting in Airflow
        self._known: dict[str, collections.OrderedDict[str, None]] = {
            name: collections.OrderedDict() for name in self.apis}
        self._skipped: set[str] = set()
        self._last_error: dict[str, str] = {}

    @staticmethod
    def identity(deployment: str) -> Identity:
        """The workflow identity a deployment's events are requested by."""
        return Identity(user=f"{ORCHESTRATOR}:{deployment}", role="workflow")

    def start(self) -> list[asyncio.Task[None]]:
        """One polling task per deployment (the hub cancels them when it stops)."""
        return [asyncio.create_task(self._loop(name), name=f"signoff-airflow-hitl:{name}")
                for name in self.apis]

    async def aclose(self) -> None:
        """Close every deployment's HTTP client."""
        for api in self.apis.values():
            await api.aclose()

    # polling -----------------------------------------------------------------------------
    async def _loop(self, name: str) -> None:
        interval = self.apis[name].config.poll_interval
        while True:
            began = time.monotonic()
            try:
                await self.poll(name)
                if self._last_error.pop(name, None) is not None:
                    log.info("airflow_hitl.%s: Airflow answers again", name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                reason = str(exc) if isinstance(exc, (AirflowFailed, HubError)) \
                    else f"{type(exc).__name__}: {exc}"
                if self._last_error.get(name) != reason:  # once per new reason, not per look
                    log.warning("airflow_hitl.%s: looking at Airflow's pending actions failed "
                                "(trying again every %g s): %s", name, interval, reason)
                self._last_error[name] = reason
            await asyncio.sleep(max(interval - (time.monotonic() - began), 0.05))

    async def poll(self, name: str) -> dict[str, int]:
        """One look at a deployment: mirror new actions, close events Airflow no longer asks
        about; returns how many were created and closed.
        """
        api = self.apis[name]
        async with self._slot(name):
            actions = await api.pending()
        mirrored = await self._pending_events(name)
        waiting = {event_key(name, a.task_instance) for a in actions}
        created = await self._mirror(name, [a for a in actions
                                            if event_key(name, a.task_instance) not in mirrored])
        gone = [event for key, event in mirrored.items() if key not in waiting]
        closed = await asyncio.gather(*(self._close_if_done(name, e) for e in gone))
        return {"created": created, "closed": sum(closed)}

    def _slot(self, name: str) -> Any:
        return self.hub.work.slot(f"airflow-hitl:{name}", self.apis[name].config.concurrency)

    async def _pending_events(self, name: str) -> dict[str, Event]:
        """The deployment's events still pending in signoff, by key."""
        found: dict[str, Event] = {}
        cursor: str | None = None
        while True:
            page = await self.hub.list(self.identity(name), status="pending", limit=500,
                                       cursor=cursor)
            found.update((e.key, e) for e in page.events if e.key is not None)
            cursor = page.next_cursor
            if not cursor or not page.events:
                return found

    async def _mirror(self, name: str, actions: list[HitlDetail]) -> int:
        """Create the events of actions not seen before; returns how many were new."""
        config, known = self.apis[name].config, self._known[name]
        fresh = [a for a in actions if event_key(name, a.task_instance) not in known
                 and event_key(name, a.task_instance) not in self._skipped]
        if not fresh:
            return 0
        # in a worker thread: a form's JSON schema check imports jsonschema the first time,
        # and hundreds of actions are milliseconds of validation each
        built = await to_thread.run_sync(self._bodies, name, fresh)
        keys = [key for key, _ in built]
        bodies = [body for _, body in built]
        if not bodies:
            return 0
        results = await self.hub.create_many(self.identity(name), bodies, ORCHESTRATOR)
        new = 0
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, HubError):  # e.g. the rate limit: the next look tries again
                log.info("airflow_hitl.%s: %s not mirrored yet: %s", name, key, result)
                continue
            known[key] = None
            new += result[1]
        while len(known) > 10 * config.max_actions:
            known.popitem(last=False)
        return new

    def _bodies(self, name: str, actions: list[HitlDetail]) -> list[tuple[str, Any]]:
        """The events of ``actions`` by key, leaving out (and logging once) those that cannot
        be shown.
        """
        config = self.apis[name].config
        built: list[tuple[str, Any]] = []
        for action in actions:
            key = event_key(name, action.task_instance)
            try:
                built.append((key, event_for(name, config, action)))
            except ValueError as exc:  # pydantic's too: a param schema signoff cannot show
                if len(self._skipped) >= 10_000:
                    self._skipped.clear()  # logged once more each: bounded memory
                self._skipped.add(key)
                ti = action.task_instance
                log.warning("airflow_hitl.%s: the action of %s/%s/%s cannot be shown in the "
                            "inbox; answer it in Airflow: %s", name, ti.dag_id, ti.dag_run_id,
                            ti.task_id, exc)
        return built

    async def _close_if_done(self, name: str, event: Event) -> bool:
        """Close ``event`` when Airflow no longer waits on its action; returns whether it did."""
        params = event.source.params
        try:
            async with self._slot(name):
                detail = await self.apis[name].detail(*_action_of(event))
        except AirflowFailed as exc:
            log.info("airflow_hitl.%s: could not read the action of event %s: %s", name,
                     event.id, exc)
            return False
        now = self.hub.clock()
        if detail is None:
            decision = cancel_decision(ORCHESTRATOR, "the task instance or its action is gone "
                                       "from Airflow", ORCHESTRATOR, now)
        elif detail.task_instance.try_number != params.get("try_number"):
            decision = cancel_decision(ORCHESTRATOR, f"the Airflow task was cleared or retried "
                                       f"(try {detail.task_instance.try_number}), which asks "
                                       "again", ORCHESTRATOR, now)
        elif detail.response_received and detail.responded_by_user is None:
            # Airflow's response_timeout passed and its scheduler answered with the defaults
            decision = Decision(value=value_of_response(event, detail),
                                outcome=Outcome.timed_out, by=_relay_by("timeout"),
                                comment="Airflow's response_timeout passed: its defaults were "
                                "used", channel=ORCHESTRATOR, at=detail.responded_at or now,
                                rule=TIMED_OUT_IN_AIRFLOW, relayed_from=ORCHESTRATOR,
                                verified=False)
        elif detail.response_received:
            user = detail.responded_by_user
            try:
                by = _relay_by(user.name if user else None)
            except InvalidInput:
                by = _relay_by(None)
            decision = response_decision(
                event, value_of_response(event, detail), by, ANSWERED_IN_AIRFLOW, ORCHESTRATOR,
                detail.responded_at or now, relayed_from=ORCHESTRATOR, verified=False,
            ).model_copy(update={"rule": ANSWERED_IN_AIRFLOW})
        elif detail.task_instance.state in _ALIVE or detail.task_instance.state is None:
            return False  # waiting, or about to (listed again at the next look)
        else:
            decision = cancel_decision(ORCHESTRATOR, f"the Airflow task is "
                                       f"{detail.task_instance.state} and no longer waits for "
                                       "an answer", ORCHESTRATOR, now)
        try:
            await self.hub.decide(event, decision, deliver=False)
        except AlreadyDecided:
            return False  # decided in signoff meanwhile (and delivered: that answer)
        return True

    # the resumer -------------------------------------------------------------------------
    def _deployment(self, event: Event) -> str:
        name = event.source.params.get("deployment")
        if not isinstance(name, str) or name not in self.apis \
                or event.requested_by != self.identity(name).user:
            raise ValueError("airflow-hitl events come from the hub's Airflow HITL bridge "
                             "only")
        return name

    def target(self, event: Event) -> str:
        """The Airflow action the event answers (refusing events the bridge did not make)."""
        name = self._deployment(event)
        p = event.source.params
        return target_name(name, str(p.get("dag_id")), str(p.get("run_id")),
                           str(p.get("task_id")), str(p.get("map_index")),
                           str(p.get("try_number")))

    async def deliver(self, event: Event) -> None:
        """Send the decision to Airflow as the action's answer."""
        try:
            name = self._deployment(event)
        except ValueError as exc:
            raise DeliveryFailed(str(exc)) from exc
        decision = event.decision
        assert decision is not None
        if not decision.verified:
            raise DeliveryFailed("an unverified relayed answer is not passed on to Airflow")
        try:
            answer = answer_for(event)
        except ValueError as exc:
            raise DeliveryFailed(str(exc)) from exc
        if answer is None:
            log.info("airflow_hitl.%s: event %s was %s in signoff; its action still waits in "
                     "Airflow", name, event.id, decision.outcome.value)
            return
        settle = self.apis[name].config.settle_seconds
        early = settle - (self.hub.clock() - event.created_at).total_seconds()
        if early > 0:  # see AirflowDeployment.settle_seconds: Airflow's own race
            await asyncio.sleep(early)
        try:
            async with self._slot(name):
                await self.apis[name].answer(*_action_of(event), *answer)
        except AirflowFailed as exc:
            if exc.status == 409:
                raise DeliveryFailed("Airflow already had an answer for this action (given in "
                                     "Airflow); signoff's decision was not applied") from exc
            if exc.retry:
                raise RetryDelivery(str(exc)) from exc
            raise DeliveryFailed(str(exc)) from exc


def _action_of(event: Event) -> tuple[str, str, str, int]:
    """DAG, run, task and map index of the action an event mirrors (from its params)."""
    p = event.source.params
    index = p.get("map_index")
    return (str(p.get("dag_id")), str(p.get("run_id")), str(p.get("task_id")),
            index if isinstance(index, int) else -1)


def _relay_by(name: str | None) -> str:
    return relay_by(ORCHESTRATOR, name)
