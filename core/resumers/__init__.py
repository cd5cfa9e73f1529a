"""Resumers: how the hub delivers a decision back to the workflow that waits for it.

A resumer is chosen by the event's ``source.orchestrator``. Built-ins are listed in
:data:`BUILTIN`; third parties register a factory in the ``signoff.resumers`` entry-point
group. A factory takes the resumer's settings (a mapping from the hub's configuration,
``[resumers.NAME]`` in the TOML file or ``SIGNOFF_RESUMERS__NAME__KEY`` in the environment)
and returns an object with an async ``deliver(event)`` method.

``deliver`` returns when the orchestrator has accepted the decision. It raises
:class:`RetryDelivery` for a failure worth retrying (the receiver is down, a 5xx) and
:class:`DeliveryFailed` for one that will not get better (a 4xx, a run that cannot resume).
Any other exception is treated as retryable.

A resumer may also have ``target(event) -> str | None``: a canonical string naming the run
(and step, where the engine has one) that ``deliver`` would push into, computed from
``event.source.params`` without I/O, or ``None`` when it pushes into no run (a webhook, a step
that reads the hub itself, params that no delivery would accept). The hub records it with the
event and refuses (409 :class:`~signoff.TargetTaken`) an event naming a target that another
identity's events already name, so one workflow token cannot aim a decision at another
workflow's run. Build it with :func:`target_name` so that no two runs share a string. ``target``
may raise :class:`~signoff.InvalidInput` naming the param that no run could have (a name
longer than the engine allows): the event is refused with that 422. Any other exception is a
422 naming ``source.params``, and so is a target over
:data:`~signoff._limits.MAX_RESUME_TARGET` bytes (the store refuses it).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib import import_module
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote

from .._errors import SignoffError
from .._model import Event

__all__ = ["BUILTIN", "DeliveryFailed", "Resumer", "ResumerFactory", "RetryDelivery",
           "load_resumer", "target_name", "target_of"]


@runtime_checkable
class Resumer(Protocol):
    """Delivers one decided event to its orchestrator.

    Optionally also ``target(event) -> str | None``, the run it would push into (see the
    module's docstring and :func:`target_of`); a resumer without it is never checked.
    """

    async def deliver(self, event: Event) -> None:
        """Deliver ``event.decision``; return once the orchestrator accepted it."""

    async def aclose(self) -> None:
        """Release clients and connections."""


ResumerFactory = Callable[[Mapping[str, Any]], Resumer]


def target_name(*parts: str) -> str:
    """A canonical target string from its parts (e.g. namespace, workflow): each part
    percent-encoded, joined by ``/``, so ``("a/b", "c")`` and ``("a", "b/c")`` differ.
    """
    return "/".join(quote(part, safe="") for part in parts)


def target_of(resumer: Resumer | None, event: Event) -> str | None:
    """What ``resumer.target(event)`` says, or ``None`` for a resumer without ``target``."""
    target = getattr(resumer, "target", None)
    if target is None:
        return None
    found = target(event)
    if found is not None and not isinstance(found, str):
        raise TypeError(f"{type(resumer).__name__}.target returned {type(found).__name__}, "
                        "expected a string or None")
    return found


class RetryDelivery(SignoffError):
    """The delivery failed for now; try again later."""


class DeliveryFailed(SignoffError):
    """The delivery can never succeed; stop retrying and record the reason."""


BUILTIN: dict[str, str] = {
    "webhook": "signoff.resumers.webhook:WebhookResumer",
}
"""Resumers that ship with signoff's core, by orchestrator name (``module:attribute``)."""


def load_resumer(name: str) -> ResumerFactory | None:
    """The factory for ``name``: a built-in first, then the ``signoff.resumers`` entry points."""
    target = BUILTIN.get(name)
    if target is not None:
        module, _, attribute = target.partition(":")
        factory: ResumerFactory = getattr(import_module(module), attribute)
        return factory
    for entry in entry_points(group="signoff.resumers"):
        if entry.name == name:
            loaded: ResumerFactory = entry.load()
            return loaded
    return None
