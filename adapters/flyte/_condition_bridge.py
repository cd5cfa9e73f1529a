"""The bridge that raises a signoff event for each native Flyte 2 condition waiting.

It runs beside the hub (``signoff flyte2 bridge``, or :meth:`ConditionBridge.run` in a process
of your own) with a workflow token, and talks to the hub only through the client, like any
adapter: the hub applies its policies, quorum, escalation and audit to the events it raises,
and the hub's ``flyte2`` resumer answers the condition when the event is decided.

Each round (``interval`` seconds) it lists the waiting condition actions of its projects and
creates one event per condition, idempotent by the key
``flyte2-condition:<org>:<project>:<domain>:<run>:<action>`` (a restarted bridge finds its
events again). It also looks again at the conditions whose events are still pending:

- answered in Flyte (``flyte signal``, the UI): the answer is relayed to the hub on the
  ``flyte2`` channel, in the name of the person Flyte names (``flyte2:<email>``) or
  ``flyte2:unverified``; if the hub's ``[relays]`` policy refuses it, or it does not decide
  the event alone (a quorum), the event is cancelled with the reason (the run has moved on
  either way);
- timed out, aborted or failed in Flyte: the event is cancelled, saying so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from signoff import AsyncClient, EventCreate, Forbidden, SignoffError, Source

from ._common import event_name
from ._runservice import RunServiceCalls, action_id_of, condition_value, payload_type, phase_name

__all__ = ["ConditionBridge", "event_for"]

log = logging.getLogger(__name__)
ENGINE = "flyte2"
_INPUT = {"bool": {"kind": "approval"}, "int": {"kind": "int"}, "float": {"kind": "float"},
          "str": {"kind": "text"}}


def _key(action_id: Any) -> str:
    run = action_id.run
    return ":".join(("flyte2-condition", run.org, run.project, run.domain, run.name,
                     action_id.name))


def event_for(details: Any, *, assignees: Sequence[str] = (), priority: str = "normal",
              console: str | None = None) -> EventCreate:
    """The signoff event for one waiting condition action (``GetActionDetails``' answer).

    Raises:
        ValueError: the condition declares no type signoff knows (the SDK allows only bool,
            int, float and str).
    """
    kind = payload_type(details)
    if kind is None:
        raise ValueError(f"condition {details.id.name!r}: no bool, int, float or str type")
    condition = details.condition
    run = details.id.run
    context: dict[str, Any] = {}
    if condition.description:
        context["description"] = condition.description[:4000]
    if condition.HasField("timeout"):
        context["flyte_timeout_seconds"] = condition.timeout.ToTimedelta().total_seconds()
    link = None
    if console and run.project:
        link = (f"{console.rstrip('/')}/v2/domain/{run.domain}/project/{run.project}/runs/"
                f"{run.name}")
    name = condition.name or details.metadata.condition.name or details.id.name
    return EventCreate(
        name=event_name(name), prompt=(condition.prompt or "Approve?")[:4000], input=_INPUT[kind],
        key=_key(details.id), context=context, assignees=list(assignees),
        priority=priority,  # type: ignore[arg-type]
        labels={"flyte2": "condition"},
        source=Source(orchestrator=ENGINE, run=f"{run.project}/{run.domain}/{run.name}",
                      step=f"{details.metadata.parent}/{name}", link=link,
                      params={"mode": "condition", "org": run.org, "project": run.project,
                              "domain": run.domain, "run": run.name, "action": details.id.name,
                              "parent": details.metadata.parent, "condition": name,
                              "type": kind}))


class ConditionBridge:
    """Raise signoff events for a control plane's waiting conditions; close them when Flyte
    resolves a condition first.

    Args:
        flyte: the control plane's settings (as ``[resumers.flyte2]``: endpoint, token ...).
        projects: ``(project, domain)`` pairs to watch.
        hub_url, hub_token: the hub and a workflow token (default ``SIGNOFF_URL``,
            ``SIGNOFF_TOKEN``).
        interval: seconds between rounds.
        assignees, priority: given to every event the bridge raises.
        console: the Flyte console's base URL, to link each event to its run.
    """

    def __init__(self, flyte: Mapping[str, Any], projects: Sequence[tuple[str, str]], *,
                 hub_url: str | None = None, hub_token: str | None = None,
                 interval: float = 5.0, assignees: Sequence[str] = (),
                 priority: str = "normal", console: str | None = None) -> None:
        if not projects:
            raise ValueError("projects: expected at least one (project, domain), got none")
        if not 0.05 <= interval <= 3600:
            raise ValueError(f"interval: expected 0.05 to 3600 seconds, got {interval!r}")
        self.flyte = RunServiceCalls(flyte, "flyte2 bridge")
        self.projects = list(projects)
        self.hub = AsyncClient(hub_url, hub_token, channel=ENGINE)
        self.interval = interval
        self.assignees, self.priority, self.console = list(assignees), priority, console
        self.open: dict[str, tuple[str, Any]] = {}  # event key -> (event id, action id)
        self._resumed = False

    async def sync_once(self) -> None:
        """One round: raise events for new conditions, close those Flyte resolved."""
        if not self._resumed:  # after a restart: the events this bridge left pending
            await self._reopen()
        seen: set[str] = set()
        for project, domain in self.projects:
            for action in await self.flyte.pending_conditions(project, domain):
                key = _key(action.id)
                seen.add(key)
                if key not in self.open:
                    await self._raise(key, action.id)
        for key in [k for k in self.open if k not in seen]:
            await self._settle(key)

    async def _raise(self, key: str, action_id: Any) -> None:
        """The event for one new condition; a refusal (a target another token holds, a type
        signoff cannot ask for) is logged and skipped, so one bad condition stops no other.
        """
        details = await self.flyte.details(action_id)
        try:
            event = await self.hub.create(event_for(details, assignees=self.assignees,
                                                    priority=self.priority,
                                                    console=self.console))
        except (SignoffError, ValueError) as exc:
            log.warning("flyte2 bridge: condition %s of run %s not raised: %s: %s",
                        action_id.name, action_id.run.name, type(exc).__name__, exc)
            return
        self.open[key] = (event.id, details.id)
        log.info("flyte2 bridge: condition %s of run %s -> event %s", action_id.name,
                 action_id.run.name, event.id)

    async def _reopen(self) -> None:
        async for event in self.hub.iter_events(status="pending"):
            params = event.source.params
            if event.source.orchestrator == ENGINE and params.get("mode") == "condition":
                self.open[event.key or event.id] = (event.id, action_id_of(params))
        self._resumed = True

    async def _settle(self, key: str) -> None:
        """A condition no longer waiting in Flyte: its event follows, unless already decided."""
        event_id, action_id = self.open[key]
        event = await self.hub.get(event_id)
        if event.decision is not None:
            del self.open[key]
            return
        details = await self.flyte.details(action_id)
        phase = phase_name(details)
        if phase == "ACTION_PHASE_SUCCEEDED":
            who = details.signal_info.signalled_by.user.spec.email or None
            value = condition_value(details)
            answered = f"answered in Flyte with {value!r} by {who or 'someone unnamed'}"
            try:
                relayed = await self.hub.relay(event_id, value, "answered in Flyte",
                                               engine=ENGINE, actor=who)
            except Forbidden as refused:
                await self.hub.cancel(event_id, f"{answered}; the hub refused the relay: "
                                                f"{refused}")
            else:  # a relayed answer may not decide alone (a quorum): the run went on anyway
                if relayed.decision is None:
                    await self.hub.cancel(event_id, f"{answered}; the relayed answer did not "
                                                    "decide the event alone (a quorum)")
        elif phase in ("ACTION_PHASE_ABORTED", "ACTION_PHASE_TIMED_OUT", "ACTION_PHASE_FAILED"):
            reason = details.abort_info.reason if details.HasField("abort_info") else ""
            ended = phase.removeprefix("ACTION_PHASE_").lower().replace("_", " ")
            await self.hub.cancel(event_id, f"the condition {ended} in Flyte"
                                  + (f": {reason}" if reason else ""))
        else:
            return  # still waiting (a paused run no longer listed): look again next round
        del self.open[key]

    async def run(self) -> None:
        """Rounds until cancelled; a failed round is logged and the next one tries again."""
        while True:
            try:
                await self.sync_once()
            except (SignoffError, ValueError) as exc:
                log.warning("flyte2 bridge round failed: %s: %s", type(exc).__name__, exc)
            except Exception:
                log.exception("flyte2 bridge round failed")
            await asyncio.sleep(self.interval)

    async def aclose(self) -> None:
        """Close both clients."""
        await self.flyte.aclose()
        await self.hub.aclose()
