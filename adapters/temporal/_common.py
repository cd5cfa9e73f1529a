"""Names shared by the workflow side, the activities and the hub's resumer.

Nothing here imports an SDK, so the resumer, the activities and the workflow code agree on the
wire format by construction: an event's idempotency key, the signal that carries its decision,
the activity names, and the shape of the signal's argument.
"""

from __future__ import annotations

import hashlib

__all__ = [
    "CANCEL_ACTIVITY",
    "CHANNEL",
    "CREATE_ACTIVITY",
    "RELAY_ACTIVITY",
    "SETTLE_ACTIVITY",
    "SIGNAL_PREFIX",
    "VERIFY_ACTIVITY",
    "event_key",
    "signal_name",
]

CREATE_ACTIVITY = "signoff.create_event"
"""Creates the event in the hub (or gets the one with the same key back)."""

SETTLE_ACTIVITY = "signoff.settle_deadline"
"""Runs when the workflow's own timer passed the deadline before a decision came."""

RELAY_ACTIVITY = "signoff.relay_answer"
"""Relays an answer given as a Temporal signal (UI, CLI) to the hub, channel ``temporal``."""

CANCEL_ACTIVITY = "signoff.cancel_event"
"""Withdraws the event when the workflow itself is cancelled while it waits."""

VERIFY_ACTIVITY = "signoff.verify_decision"
"""Checks a decision that arrived as a signal against the hub's signature and the event's
digest before the workflow acts on it (a forged signal is refused)."""

SIGNAL_PREFIX = "signoff:"
"""Each event's decision arrives on its own signal, ``signoff:<step name>``."""

CHANNEL = "temporal"
"""The engine channel: decisions the workflow made itself (its timer, its cancel) and answers a
person gave by signalling the workflow in Temporal's UI or CLI, relayed to the hub (recorded
there as ``by="temporal:unverified"``: a signal names nobody). The workflow already has these,
so the resumer has nothing to deliver."""

_MAX_KEY = 500  # EventCreate.key's limit


def event_key(namespace: str, workflow_id: str, run_id: str, name: str) -> str:
    """The idempotency key of one step: ``temporal:<namespace>:<workflow id>:<run id>:<name>``.

    A key longer than the hub accepts (workflow ids may have 1000 characters) is replaced by
    ``temporal:sha256:<hex>`` of the same text, still one key per step.
    """
    key = f"temporal:{namespace}:{workflow_id}:{run_id}:{name}"
    if len(key) <= _MAX_KEY:
        return key
    return "temporal:sha256:" + hashlib.sha256(key.encode()).hexdigest()


def signal_name(step: str) -> str:
    """The signal that carries the decision of step ``step``."""
    return SIGNAL_PREFIX + step
