"""``new_condition``: Flyte 2's built-in condition, with the question asked in the signoff hub.

Same call shape and the same results as ``flyte.new_condition``, so switching is one import::

    from signoff.adapters.flyte.v2 import new_condition   # was: from flyte import new_condition

    condition = await new_condition.aio("deploy", prompt="Ship it?", data_type=bool)
    if await condition.wait.aio(): ...

The waiting task shows as an event in the hub's inbox (a ``bool`` condition as an approval, so
four-eyes, auto-approve and other policies apply; ``int``, ``float`` and ``str`` as typed
inputs); the answer is checked against the type; the task wakes on the hub's long-poll. The
errors are Flyte's own: ``ConditionTimedoutError`` past the timeout,
``ConditionFailedError`` when a typed condition is rejected, ``ActionAbortedError`` when its
event is cancelled. Like Flyte, calling it twice with one name in one task makes two
conditions (the second's key ends ``-2``), and a restarted task finds each one again.
"""

from __future__ import annotations

import collections
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Generic, Literal, TypeVar

import flyte
import flyte.errors
from flyte.syncify import syncify

from signoff import Cancelled, Rejected

from .._common import event_name
from ._event import Event, EventTimeout, new_event

__all__ = ["Condition", "new_condition"]

T = TypeVar("T", bool, int, float, str)
PromptType = Literal["text", "markdown"]
_INPUTS: dict[type, dict[str, str]] = {bool: {"kind": "approval"}, int: {"kind": "int"},
                                       float: {"kind": "float"}, str: {"kind": "text"}}
_calls: dict[tuple[str, str, str], int] = collections.Counter()
_calls_lock = threading.Lock()


def _sequence(name: str) -> str:
    """``name`` for the first condition of that name in this task, ``name-N`` for the Nth (as
    Flyte's controller numbers repeated names within one action).
    """
    ctx = flyte.ctx()
    action = getattr(ctx, "action", None) if ctx is not None else None
    if action is None or not action.run_name:
        return event_name(name)
    with _calls_lock:
        _calls[(action.run_name, action.name, name)] += 1
        seq = _calls[(action.run_name, action.name, name)]
    return event_name(name) if seq == 1 else f"{event_name(name)}-{seq}"


@dataclass
class Condition(Generic[T]):
    """A condition waiting in the hub (what :func:`new_condition` returns)."""

    name: str
    prompt: str
    prompt_type: PromptType
    data_type: type[T]
    description: str
    timeout: timedelta | int | float | None
    event: Event[Any] = field(repr=False)

    @property
    def form_url(self) -> str:
        """The hub's page where a reviewer answers it."""
        return self.event.form_url

    @syncify
    async def wait(self) -> T:
        """Wait for the decision on the hub's long-poll; return the value as ``data_type``.

        Raises:
            flyte.errors.ConditionTimedoutError: no answer before the timeout.
            flyte.errors.ConditionFailedError: a reviewer rejected an int, float or str
                condition (a bool condition returns ``False``).
            flyte.errors.ActionAbortedError: the event was cancelled.
        """
        try:
            value = await self.event.wait.aio()
        except EventTimeout as exc:
            raise flyte.errors.ConditionTimedoutError(
                f"Condition '{self.name}' was not signaled within the timeout period: {exc}"
            ) from None
        except Rejected as exc:
            raise flyte.errors.ConditionFailedError(
                f"Condition '{self.name}' was rejected: {exc}") from None
        except Cancelled as exc:
            raise flyte.errors.ActionAbortedError(
                f"Condition '{self.name}' was cancelled: {exc}") from None
        return self.data_type(value)  # type: ignore[return-value]


@syncify
async def new_condition(name: str, /, prompt: str = "Approve?", prompt_type: PromptType = "text",
                        data_type: type[T] = bool,  # type: ignore[assignment]
                        description: str = "",
                        timeout: timedelta | int | float | None = None,
                        webhook: Any = None, *, assignees: list[str] | None = None,
                        context: Mapping[str, Any] | None = None, priority: str = "normal",
                        on_timeout: Literal["default", "reject", "fail"] = "fail",
                        labels: dict[str, str] | None = None, recommendation: Any = None,
                        confidence: float | None = None) -> Condition[T]:
    """Create a condition in the hub (or find it again after a restart).

    Args:
        name: the condition's name (with the run and action, its key).
        prompt: the question the reviewer sees.
        prompt_type: ``text`` or ``markdown``; the hub shows either as plain text.
        data_type: ``bool`` (an approval: approve → ``True``, reject → ``False``), ``int``,
            ``float`` or ``str``.
        description: shown beside the prompt (in the event's context).
        timeout: seconds or a ``timedelta``; past it ``wait()`` raises
            ``ConditionTimedoutError`` (or see ``on_timeout``).
        webhook: refused: the hub notifies reviewers through its own channels.
        assignees: user names and ``group:NAME`` (signoff's, as for ``new_event``).
        context: JSON shown beside the prompt.
        priority: low, normal, high or urgent.
        on_timeout: ``fail`` (default: ``ConditionTimedoutError``), ``reject`` or ``default``.
        labels: free labels on the event.
        recommendation: what the automation before this step recommends.
        confidence: the automation's confidence, 0..1 (for routing policies).

    Raises:
        TypeError: ``data_type`` is not bool, int, float or str (as Flyte's).
        ValueError: a non-positive ``timeout``, an unknown ``prompt_type``, or a ``webhook``.
    """
    if data_type not in _INPUTS:
        raise TypeError(f"Invalid data_type {data_type}. Must be one of (bool, int, float, str).")
    if prompt_type not in ("text", "markdown"):
        raise ValueError(f"prompt_type: expected 'text' or 'markdown', got {prompt_type!r}")
    if webhook is not None:
        raise ValueError(f"webhook: not supported by signoff's new_condition (the hub notifies "
                         f"reviewers through its own channels), got {webhook!r}")
    seconds = timeout.total_seconds() if isinstance(timeout, timedelta) else timeout
    if seconds is not None and seconds <= 0:
        raise ValueError(f"timeout: expected a positive duration, got {timeout!r}")
    extra = dict(context or {})
    if description:
        extra.setdefault("description", description)
    event = await new_event.aio(
        _sequence(name), prompt=prompt, timeout_seconds=seconds, input=_INPUTS[data_type],
        assignees=assignees, context=extra, priority=priority, on_timeout=on_timeout,
        labels=labels, recommendation=recommendation, confidence=confidence)
    return Condition(name=name, prompt=prompt, prompt_type=prompt_type, data_type=data_type,
                     description=description, timeout=timeout, event=event)
