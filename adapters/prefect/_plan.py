"""The parts of a step that do no I/O: the event to create, the form, the waits, the messages.

The sync (:mod:`._steps`) and async (:mod:`._asteps`) surfaces share these, so the two can
only differ in how they wait.
"""

from __future__ import annotations

import enum
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from pydantic import BaseModel

from signoff import Decision, Event, EventCreate, input_spec

from ._common import from_prefect
from ._place import Place, locate

__all__ = [
    "DEFAULT_PAUSE_TIMEOUT",
    "FIRED",
    "FOREIGN",
    "DEFAULT_POLL_INTERVAL",
    "TIMEOUT_MARGIN",
    "Step",
    "delivered_for",
    "disagreement",
    "plan",
    "relay_comment",
]

DEFAULT_POLL_INTERVAL = 2.0
"""Seconds between a paused flow's looks at its Prefect state (Prefect's own default is 10).

A paused flow process notices a resume on its next look, so the mean resume latency is about
half of this; each look is one small read on the Prefect API. Override it per call
(``poll_interval=``) or for every flow with ``SIGNOFF_PREFECT_POLL_INTERVAL``.
"""

TIMEOUT_MARGIN = 60.0
"""Seconds Prefect's pause outlives the event's deadline, so the hub applies ``on_timeout``
(and its resumer delivers it) before Prefect gives up on the pause and fails the run."""

DEFAULT_PAUSE_TIMEOUT = 7 * 86_400
"""How long a *paused* flow waits for an event without a deadline (Prefect's pause needs
one). A suspended flow has no such limit; pass ``pause_timeout=`` to choose another."""


FIRED = ("Prefect already used pause key %s in this flow run (a run retried with a forced "
         "state keeps its pause keys), so it would not pause again; waiting for event %s in the "
         "hub instead")

FOREIGN = ("event %s: flow run %s was resumed at pause %s with the signoff decision of another "
           "event (%s); ignored, not taken as an answer given in Prefect: waiting for this "
           "event's decision in the hub")


def delivered_for(answer: Mapping[str, Any], event: Event) -> bool | None:
    """Whose decision a resume's run input carries: ``True`` for ``event``'s (the hub's
    resumer), ``False`` for another event's (or a signoff marker naming none: never ``event``'s
    answer), ``None`` for no marker at all (an answer given in Prefect's UI or API).
    """
    if "signoff" not in answer:
        return None
    marker = answer["signoff"]
    return isinstance(marker, dict) and marker.get("event_id") == event.id


@dataclass(frozen=True)
class Step:
    """One ``approve``/``ask`` call, ready to run."""

    place: Place
    event: EventCreate
    prompt: str
    poll_interval: float
    pause_timeout: float | None

    @property
    def approval(self) -> bool:
        """An approval returns ``False`` on rejection instead of raising."""
        return bool(self.event.input.kind == "approval")

    def pause_seconds(self, event: Event, now: datetime | None = None) -> int:
        """How long Prefect keeps a paused flow waiting: the deadline plus a margin."""
        if self.pause_timeout is not None:
            return math.ceil(self.pause_timeout)
        left = _left(event, now)
        return DEFAULT_PAUSE_TIMEOUT if left is None else math.ceil(left + TIMEOUT_MARGIN)

    def suspend_seconds(self, event: Event, now: datetime | None = None) -> int | None:
        """How long Prefect keeps a suspended flow waiting; no limit without a deadline."""
        if self.pause_timeout is not None:
            return math.ceil(self.pause_timeout)
        left = _left(event, now)
        return None if left is None else math.ceil(left + TIMEOUT_MARGIN)


def _left(event: Event, now: datetime | None) -> float | None:
    if event.deadline is None:
        return None
    now = now or datetime.now(timezone.utc)
    return max((event.deadline - now).total_seconds(), 0.0)


def plan(function: str, prompt: str, input: Any, *, default: Any, is_async: bool,
         key: str | None, suspend: bool, poll_interval: float | None,
         pause_timeout: float | None, name: str | None, context: Any,
         fields: dict[str, Any]) -> Step:
    """Check the arguments and place the step in its flow run.

    Raises:
        NotInFlowRun: not inside a flow run (see :func:`._place.locate`).
        TypeError, ValueError: an argument that does not fit, naming it.
    """
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"prompt: expected the question as non-empty text, got {prompt!r}")
    spec = input_spec(input)
    if default is not None:
        spec = type(spec).model_validate({**spec.model_dump(by_alias=True),
                                          "default": _json_default(default)})
    interval = _poll_interval(poll_interval)
    if pause_timeout is not None and not pause_timeout > 0:
        raise ValueError(f"pause_timeout: expected seconds above 0, got {pause_timeout!r}")
    place = locate(function, key=key, suspend=suspend, is_async=is_async)
    event = EventCreate(
        name=name or place.event_name, prompt=prompt, input=spec, key=place.event_key,
        context=_json_context(context), source=place.source(), **fields)
    return Step(place=place, event=event, prompt=prompt, poll_interval=interval,
                pause_timeout=pause_timeout)


def _poll_interval(value: float | None) -> float:
    where = "poll_interval"
    if value is None:
        text = os.environ.get("SIGNOFF_PREFECT_POLL_INTERVAL")
        if not text:
            return DEFAULT_POLL_INTERVAL
        where = "SIGNOFF_PREFECT_POLL_INTERVAL"
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"{where}: expected seconds, got {text!r}") from None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{where}: expected seconds above 0, got {value!r}")
    return float(value)


def _json_default(default: Any) -> Any:
    if isinstance(default, BaseModel):
        return default.model_dump(mode="json")
    if isinstance(default, enum.Enum):
        return str(default.value)
    if isinstance(default, (list, tuple)):
        return [str(d.value) if isinstance(d, enum.Enum) else d for d in default]
    return default


def _json_context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if isinstance(context, BaseModel):
        dumped: dict[str, Any] = context.model_dump(mode="json")
        return dumped
    if isinstance(context, Mapping):
        return dict(context)
    raise TypeError(f"context: expected a dict or a pydantic model, got {type(context).__name__}")


def relay_comment(place: Place, comment: Any) -> str:
    """The comment recorded with an answer given in Prefect."""
    text = f"answered in Prefect (flow run {place.flow_run_id}, pause {place.pause_key})"
    return f"{text}: {comment}" if comment else text


def disagreement(place: Place, event: Event, given: Any, decision: Decision) -> str | None:
    """The warning to log when Prefect and the hub disagree, or ``None`` when they agree."""
    if from_prefect(decision) and decision.value == given:
        return None
    if decision.ok and decision.value == given:
        return None
    return (f"event {event.id}: the answer {given!r} given in Prefect for flow run "
            f"{place.flow_run_id} (pause {place.pause_key}) came after the hub's decision "
            f"({decision.outcome.value}, {decision.value!r} by {decision.by} via "
            f"{decision.channel}); the hub decided first, so the flow continues with the "
            f"hub's decision")
