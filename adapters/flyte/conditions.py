"""Flyte 2's native conditions (``flyte.new_condition``) in the signoff inbox.

Two parts, each talking to Flyte's control plane through its ``RunService`` (see
:mod:`._runservice`):

- :class:`Flyte2Resumer`, the hub's resumer for ``source.orchestrator == "flyte2"``: when an
  event made from a condition is decided, it answers the condition as ``flyte signal`` does
  (``SignalEvent`` with the typed value) or, for an outcome the condition's type cannot carry
  (rejected text, expired, cancelled), aborts it (``AbortAction`` with the reason). Events of
  ``signoff.adapters.flyte.v2`` tasks read the hub themselves and need no push.
- :class:`ConditionBridge` (:mod:`._condition_bridge`), which lists the waiting conditions of
  configured projects and raises one signoff event per condition.

| decision | bool condition | int / float / str condition |
| --- | --- | --- |
| approved / answered / timed out with a default | ``True`` / the value | the value |
| rejected | ``False`` | aborted: ``wait()`` raises ``ActionAbortedError`` with the reason |
| expired (no default) / cancelled | aborted | aborted |

Only events raised by the workflow identities listed in ``bridge_users`` (the bridge's
tokens) may answer a condition: another workflow token cannot aim a decision of its own at
a condition by naming it in ``source.params``.

A condition already resolved in Flyte (answered with ``flyte signal`` or the UI, timed out,
aborted) is not signalled again: a decision that agrees with it is delivered; one that does not
fails the delivery with what Flyte holds.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from signoff import Event, Outcome
from signoff.resumers import DeliveryFailed, target_name

from ._condition_bridge import ConditionBridge
from ._runservice import RunServiceCalls, action_id_of, condition_value, payload_type, phase_name

__all__ = ["ConditionBridge", "Flyte2Resumer", "RequesterNotABridgeUser", "signal_value"]

_PY = {"bool": bool, "int": int, "float": float, "str": str}


class RequesterNotABridgeUser(DeliveryFailed):
    """The event's requester is not in ``[resumers.flyte2] bridge_users`` (the hub names this
    class when it refuses to create such an event).
    """


def signal_value(event: Event) -> bool | int | float | str | None:
    """The value to signal for the event's decision, or ``None`` to abort the condition.

    Raises:
        DeliveryFailed: the params name no condition type, or the value does not fit it.
    """
    decision = event.decision
    assert decision is not None
    kind = event.source.params.get("type")
    if kind not in _PY:
        raise DeliveryFailed(f"source.params.type: expected bool, int, float or str, got {kind!r}")
    if kind == "bool" and decision.outcome in (Outcome.approved, Outcome.rejected) \
            and event.input.kind == "approval":
        return decision.outcome == Outcome.approved
    if not decision.ok:
        return None
    value = decision.value
    try:
        if kind == "bool" and isinstance(value, bool):
            return value
        if kind == "int" and isinstance(value, int) and not isinstance(value, bool):
            return value
        if kind == "float" and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if kind == "str" and isinstance(value, str):
            return value
    except (TypeError, ValueError):
        pass
    raise DeliveryFailed(f"condition {event.source.params.get('condition')!r} takes a {kind}; "
                         f"the decision's value is {value!r}")


class Flyte2Resumer:
    """Deliver decisions on Flyte 2 conditions through the control plane's RunService."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        users = settings.get("bridge_users", [])
        if isinstance(users, str):
            users = [u.strip() for u in users.split(",") if u.strip()]
        if not isinstance(users, list) or not all(isinstance(u, str) for u in users):
            raise ValueError(f"[resumers.flyte2] bridge_users: expected a list of user names, "
                             f"got {users!r}")
        self.bridge_users = frozenset(users)
        self.flyte = RunServiceCalls({k: v for k, v in settings.items() if k != "bridge_users"},
                                     "[resumers.flyte2]")

    def _check_requester(self, event: Event) -> None:
        if event.requested_by not in self.bridge_users:
            raise RequesterNotABridgeUser(
                f"[resumers.flyte2] bridge_users does not list {event.requested_by!r}: only "
                f"the bridge's own workflow identities may raise events that answer native "
                f"conditions")

    def target(self, event: Event) -> str | None:
        """``org/project/domain/run`` of a condition's event (the run whose condition the
        decision is signalled to); ``None`` for events of waiting tasks, which push nowhere.

        Raises:
            RequesterNotABridgeUser: the event's requester is not one of ``bridge_users``
                (the hub refuses to create it).
        """
        params = event.source.params
        if params.get("mode") != "condition":
            return None
        self._check_requester(event)
        parts = [params.get(name) for name in ("project", "domain", "run")]
        if not all(isinstance(part, str) and part for part in parts):
            return None
        return target_name(str(params.get("org", "")), *(str(part) for part in parts))

    async def deliver(self, event: Event) -> None:
        """Signal (or abort) the condition; return once the control plane accepted it."""
        params = event.source.params
        if params.get("mode") != "condition":
            return  # a task of signoff.adapters.flyte.v2 waits on the hub itself
        self._check_requester(event)
        action_id = action_id_of(params)
        value = signal_value(event)
        details = await self.flyte.details(action_id)
        if payload_type(details) != params.get("type"):
            raise DeliveryFailed(f"condition {action_id.name!r} now takes "
                                 f"{payload_type(details)}, the event says {params.get('type')}")
        phase = phase_name(details)
        if phase == "ACTION_PHASE_SUCCEEDED":
            held = condition_value(details)
            if value is not None and held == value:
                return  # answered in Flyte with the same value (a relayed answer)
            raise DeliveryFailed(f"condition {action_id.name!r} was already answered in Flyte "
                                 f"with {held!r}")
        if phase in ("ACTION_PHASE_ABORTED", "ACTION_PHASE_TIMED_OUT", "ACTION_PHASE_FAILED"):
            if value is None:
                return  # ended in Flyte, and signoff's decision ends it too
            raise DeliveryFailed(f"condition {action_id.name!r} already ended in Flyte "
                                 f"({phase.removeprefix('ACTION_PHASE_').lower()})")
        if value is None:
            decision = event.decision
            assert decision is not None
            why = f"signoff: {decision.outcome.value} by {decision.by}"
            await self.flyte.abort(details, f"{why}: {decision.comment}" if decision.comment
                                   else why)
        else:
            await self.flyte.signal(details, value)

    async def aclose(self) -> None:
        """Close the control plane's client."""
        await self.flyte.aclose()
