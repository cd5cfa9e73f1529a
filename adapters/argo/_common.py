"""What the workflow side and the hub side of the Argo adapter agree on, without hera.

The suspend node a gate renders and the hub's :class:`~signoff.adapters.argo.resumer.ArgoResumer`
meet only through the names and values below, so both import them from here; this module loads
nothing but the core.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from signoff import Outcome
from signoff.adapters import MissingExtra

__all__ = [
    "EVENT_PARAM",
    "INBOX_PARAM",
    "KEY_PARAM",
    "NODE_PARAM",
    "OUTPUTS",
    "UNANSWERED",
    "ArgoExtraMissing",
    "argo_value",
    "default_value",
    "escape_selector_value",
    "phase_for",
]

KEY_PARAM = "signoff-key"
"""Input of the register template: the event's idempotency key, ``argo:<uid>:<node>``."""

NODE_PARAM = "signoff-node"
"""Input of the register template: the full node name of the gate's step."""

EVENT_PARAM = "signoff-event"
"""Input of the suspend template: the hub's event id; the resumer selects the node by it."""

INBOX_PARAM = "signoff-inbox"
"""Input of the suspend template: the event's inbox URL, shown on the waiting node in Argo's UI
and by ``argo get`` (the engineer's view of a waiting step)."""

OUTPUTS = ("value", "outcome")
"""The suspend node's supplied outputs; the resumer sets every one of them."""

UNANSWERED = "unanswered"
"""The ``outcome`` a suspend node gets when it ends without the hub (Argo's ``duration``)."""

OnReject = Literal["fail", "continue"]


class ArgoExtraMissing(MissingExtra):
    """hera (the ``argo`` extra) is not installed."""

    def __init__(self, missing: str) -> None:
        super().__init__(f"the Argo adapter needs {missing}: pip install 'signoff[argo]'")


def argo_value(value: Any) -> str:
    """A decision value as an Argo parameter string.

    ``true``/``false``, numbers as JSON, text as it is, lists and objects as compact JSON,
    nothing as an empty string.
    """
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def default_value(spec: Any) -> str:
    """The value a suspend node keeps when nobody sets it.

    An approval's is ``false``, so a timeout on Argo's side never reads as an approval; other
    kinds use their input's default.
    """
    if spec.kind == "approval":
        return "false"
    return argo_value(spec.default)


def phase_for(outcome: Outcome, on_reject: str = "fail") -> Literal["Succeeded", "Failed"]:
    """The node phase a decision sets: the workflow goes on for an answer, stops otherwise.

    A rejection fails the node unless the gate was rendered with ``on_reject="continue"``
    (then downstream steps branch on ``value``). Expiry and cancellation always fail it.
    """
    if outcome in (Outcome.approved, Outcome.answered, Outcome.timed_out):
        return "Succeeded"
    if outcome == Outcome.rejected and on_reject == "continue":
        return "Succeeded"
    return "Failed"


def escape_selector_value(value: str) -> str:
    """Escape a value for a Kubernetes field selector (``fields.EscapeValue``)."""
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=")


_DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def check_gate_name(name: str, field: str = "name") -> str:
    """A gate name must be a DNS label short enough for ``<name>-register``.

    Raises:
        ValueError: naming the field, what was expected and what came.
    """
    if not isinstance(name, str) or not _DNS.match(name) or len(name) > 54:
        raise ValueError(f"{field}: expected lower-case letters, digits and '-' (at most 54, "
                         f"starting and ending alphanumeric), got {name!r}")
    return name
