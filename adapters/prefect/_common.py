"""What the flow side and the hub-side resumer agree on; no Prefect import here.

A paused (or suspended) flow run waits for a Prefect *run input* under keys derived from its
pause key: Prefect stores the form's JSON schema at ``<state>-<pause key>-schema`` and the
answer at ``<state>-<pause key>-response``, where ``<state>`` is ``paused`` or ``suspended``.
The adapter adds one key of its own, ``signoff-<pause key>-taken``, written when a flow run
got its decision straight from the hub without Prefect resuming it, so the resumer knows
there is nothing left to deliver.

The run input the resumer sends is ``{"value": ..., "comment": ..., "signoff": {...}}``:
``value`` and ``comment`` are the two fields of the form a person sees in Prefect's UI, and
``signoff`` (an extra field the form allows) says which event and decision it carries.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from signoff import Decision, Event, SignoffError
from signoff.adapters import MissingExtra

__all__ = [
    "CHANNEL",
    "MODES",
    "SETTING",
    "MissingExtra",
    "NotInFlowRun",
    "check_pause_key",
    "from_prefect",
    "input_key",
    "run_input_for",
    "taken_key",
]

CHANNEL = "prefect"
"""The engine channel an answer given in Prefect's own UI or API is relayed to the hub on. The
hub records it as relayed from Prefect and unverified (``by="prefect:unverified"``): Prefect
does not say who resumed a run, and the relaying token is the workflow's own."""

SETTING = "SIGNOFF_URL (or hub_url= on approve/ask)"
"""Where a Prefect flow is told its hub, named when none is set."""

_LEGACY_CHANNEL = "prefect-ui"  # what decisions relayed before channels were facts carry


def from_prefect(decision: Decision) -> bool:
    """True when ``decision`` is an answer given in Prefect itself, relayed to the hub."""
    return decision.relayed_from == CHANNEL or decision.channel in (CHANNEL, _LEGACY_CHANNEL)

Mode = Literal["pause", "suspend"]

MODES: dict[str, str] = {"pause": "paused", "suspend": "suspended"}
"""How the flow waits, and the name of the Prefect state it waits in (lower case)."""

_PAUSE_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,99}$")


class NotInFlowRun(SignoffError, RuntimeError):
    """``approve``/``ask`` was called outside a Prefect flow run, or where it cannot wait."""


def check_pause_key(key: str) -> str:
    """Check a pause key given by the user; Prefect allows lower-case letters, digits, dashes.

    Raises:
        ValueError: naming the field, what was expected and what came.
    """
    if not isinstance(key, str) or not _PAUSE_KEY.match(key):
        raise ValueError(f"key: expected 1-100 lower-case letters, digits or dashes "
                         f"(Prefect's rule for run input keys), got {key!r}")
    return key


def input_key(mode: str, pause_key: str, part: str) -> str:
    """The key Prefect stores a pause's ``schema``, ``description`` or ``response`` under."""
    return f"{MODES[mode]}-{pause_key}-{part}"


def taken_key(pause_key: str) -> str:
    """The key the adapter writes when the flow took its decision from the hub directly."""
    return f"signoff-{pause_key}-taken"


def run_input_for(event: Event) -> dict[str, Any]:
    """The run input that resumes a flow run with ``event``'s decision."""
    decision = event.decision
    assert decision is not None, "only decided events are delivered"
    body: dict[str, Any] = {
        "signoff": {"event_id": event.id, "outcome": decision.outcome.value,
                    "by": decision.by, "at": decision.at.isoformat()},
    }
    # a cancelled or expired event has no value; the form's ``value`` is optional for that
    if decision.value is not None:
        body["value"] = decision.value
    if decision.comment is not None:
        body["comment"] = decision.comment
    return body
