"""``approve``, ``ask`` and their async twins ``aapprove``, ``aask``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

from signoff import ApprovalInput, result_of

from . import _asteps, _steps
from ._forms import python_value
from ._plan import plan

__all__ = ["aapprove", "aask", "approve", "ask"]

OnTimeout = Literal["default", "reject", "fail"]
Priority = Literal["low", "normal", "high", "urgent"]


def approve(
    prompt: str,
    *,
    context: Mapping[str, Any] | Any = None,
    assignees: list[str] | None = None,
    priority: Priority = "normal",
    timeout: float | None = None,
    on_timeout: OnTimeout = "reject",
    default: bool | None = None,
    labels: Mapping[str, str] | None = None,
    name: str | None = None,
    key: str | None = None,
    suspend: bool = False,
    poll_interval: float | None = None,
    pause_timeout: float | None = None,
    hub_url: str | None = None,
    hub_token: str | None = None,
    **fields: Any,
) -> bool:
    """Ask the hub for an approval and wait for it in this Prefect flow run.

    The event's key is ``prefect:<flow run id>:<pause key>``, so a retried flow or task, or a
    flow re-run after a suspension, gets the same event back: if it is decided, this returns
    at once; otherwise the run waits in Prefect's ``pause_flow_run`` (or
    ``suspend_flow_run``) until the hub's Prefect resumer delivers the decision, or until
    someone answers the form in Prefect's own UI (that answer is recorded in the hub).

    Args:
        prompt: the question, as reviewers see it (Markdown in Prefect's form).
        context: JSON (a dict or a pydantic model) shown beside the prompt.
        assignees: user names and ``group:NAME``; empty means anyone may answer.
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        timeout: seconds until the hub applies ``on_timeout``; ``None`` waits without end.
        on_timeout: ``reject`` (the default: returns ``False``), ``fail`` (raises
            :class:`signoff.Expired`) or ``default`` (returns ``default``).
        default: the answer ``on_timeout="default"`` gives.
        labels: string labels for filtering in the hub.
        name: the event's short name (default ``<flow name>/<pause key>``).
        key: the pause key (lower-case letters, digits, dashes), unique in the flow run;
            default: the step's position (``signoff-1``, ``signoff-2``, ... in the flow body).
        suspend: suspend the run instead of pausing it: the flow process exits and nothing is
            held while waiting; Prefect re-runs the flow from the top on resume, and this call
            then returns the stored decision. Needs a deployment (``flow.serve()`` is enough);
            only in the flow body.
        poll_interval: seconds between a paused flow's looks at its state (default
            ``SIGNOFF_PREFECT_POLL_INTERVAL`` or 2; Prefect's own default is 10).
        pause_timeout: how long Prefect keeps the run waiting (default: the event's deadline
            plus 60 s; without a deadline 7 days when paused, no limit when suspended).
        hub_url: the hub (default ``SIGNOFF_URL``).
        hub_token: a workflow token (default ``SIGNOFF_TOKEN``).
        **fields: further event fields, e.g. ``recommendation``, ``confidence``.

    Returns:
        ``True`` when approved; ``False`` when rejected by a person, a policy or a timeout.

    Raises:
        signoff.Expired: the deadline passed and ``on_timeout`` is ``fail``.
        signoff.Cancelled: the event was cancelled.
        NotInFlowRun: not inside a Prefect flow run (or ``suspend`` where Prefect cannot).
    """
    step = plan("approve", prompt, ApprovalInput(), default=default, is_async=False, key=key,
                suspend=suspend, poll_interval=poll_interval, pause_timeout=pause_timeout,
                name=name, context=context,
                fields=_fields(assignees, priority, timeout, on_timeout, labels, fields))
    return bool(result_of(_steps.decide(step, hub_url, hub_token), approval=True))


def ask(
    prompt: str,
    input: Any = str,
    *,
    context: Mapping[str, Any] | Any = None,
    assignees: list[str] | None = None,
    priority: Priority = "normal",
    timeout: float | None = None,
    on_timeout: OnTimeout = "reject",
    default: Any = None,
    labels: Mapping[str, str] | None = None,
    name: str | None = None,
    key: str | None = None,
    suspend: bool = False,
    poll_interval: float | None = None,
    pause_timeout: float | None = None,
    hub_url: str | None = None,
    hub_token: str | None = None,
    **fields: Any,
) -> Any:
    """Ask the hub for a typed answer and wait for it in this Prefect flow run.

    Works like :func:`approve` (same arguments, same waiting), for any input.

    Args:
        prompt: the question.
        input: what answer is expected: ``bool``, ``int``, ``float``, ``str``, an ``Enum``, a
            ``Literal[...]``, ``list[Literal[...]]`` (several choices), a pydantic model (a
            form), or a signoff input spec (``signoff.IntInput(min=1, max=10)``, or the same
            as a dict).
        context: JSON (a dict or a pydantic model) shown beside the prompt.
        assignees: user names and ``group:NAME``; empty means anyone may answer.
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        timeout: seconds until the hub applies ``on_timeout``; ``None`` waits without end.
        on_timeout: ``reject`` (the default: raises :class:`signoff.Rejected`), ``fail``
            (raises :class:`signoff.Expired`) or ``default`` (returns ``default``).
        default: the answer ``on_timeout="default"`` gives (and Prefect's form shows first).
        labels: string labels for filtering in the hub.
        name: the event's short name (default ``<flow name>/<pause key>``).
        key: the pause key; see :func:`approve`.
        suspend: suspend instead of pause; see :func:`approve`.
        poll_interval: seconds between a paused flow's looks at its state; see :func:`approve`.
        pause_timeout: how long Prefect keeps the run waiting; see :func:`approve`.
        hub_url: the hub (default ``SIGNOFF_URL``).
        hub_token: a workflow token (default ``SIGNOFF_TOKEN``).
        **fields: further event fields, e.g. ``recommendation``, ``confidence``.

    Returns:
        The answer as ``input`` describes it: an instance of the pydantic model, an ``Enum``
        member, a number, text, a list of choices. With ``on_timeout="default"``, the default.

    Raises:
        signoff.Rejected: rejected by a person, a policy, or a timeout (``on_timeout="reject"``).
        signoff.Expired: the deadline passed and ``on_timeout`` is ``fail``.
        signoff.Cancelled: the event was cancelled.
        signoff.InvalidInput: the answer fits the model's JSON schema but not its validators.
        NotInFlowRun: not inside a Prefect flow run (or ``suspend`` where Prefect cannot).
    """
    step = plan("ask", prompt, input, default=default, is_async=False, key=key,
                suspend=suspend, poll_interval=poll_interval, pause_timeout=pause_timeout,
                name=name, context=context,
                fields=_fields(assignees, priority, timeout, on_timeout, labels, fields))
    decision = _steps.decide(step, hub_url, hub_token)
    return python_value(input, result_of(decision, approval=step.approval))


async def aapprove(
    prompt: str,
    *,
    context: Mapping[str, Any] | Any = None,
    assignees: list[str] | None = None,
    priority: Priority = "normal",
    timeout: float | None = None,
    on_timeout: OnTimeout = "reject",
    default: bool | None = None,
    labels: Mapping[str, str] | None = None,
    name: str | None = None,
    key: str | None = None,
    suspend: bool = False,
    poll_interval: float | None = None,
    pause_timeout: float | None = None,
    hub_url: str | None = None,
    hub_token: str | None = None,
    **fields: Any,
) -> bool:
    """The async twin of :func:`approve`, for ``async def`` flows and tasks."""
    step = plan("aapprove", prompt, ApprovalInput(), default=default, is_async=True, key=key,
                suspend=suspend, poll_interval=poll_interval, pause_timeout=pause_timeout,
                name=name, context=context,
                fields=_fields(assignees, priority, timeout, on_timeout, labels, fields))
    return bool(result_of(await _asteps.decide(step, hub_url, hub_token), approval=True))


async def aask(
    prompt: str,
    input: Any = str,
    *,
    context: Mapping[str, Any] | Any = None,
    assignees: list[str] | None = None,
    priority: Priority = "normal",
    timeout: float | None = None,
    on_timeout: OnTimeout = "reject",
    default: Any = None,
    labels: Mapping[str, str] | None = None,
    name: str | None = None,
    key: str | None = None,
    suspend: bool = False,
    poll_interval: float | None = None,
    pause_timeout: float | None = None,
    hub_url: str | None = None,
    hub_token: str | None = None,
    **fields: Any,
) -> Any:
    """The async twin of :func:`ask`, for ``async def`` flows and tasks."""
    step = plan("aask", prompt, input, default=default, is_async=True, key=key,
                suspend=suspend, poll_interval=poll_interval, pause_timeout=pause_timeout,
                name=name, context=context,
                fields=_fields(assignees, priority, timeout, on_timeout, labels, fields))
    decision = await _asteps.decide(step, hub_url, hub_token)
    return python_value(input, result_of(decision, approval=step.approval))


def _fields(assignees: list[str] | None, priority: str, timeout: float | None,
            on_timeout: str, labels: Mapping[str, str] | None,
            more: dict[str, Any]) -> dict[str, Any]:
    return {"assignees": list(assignees or []), "priority": priority, "timeout": timeout,
            "on_timeout": on_timeout, "labels": dict(labels or {}), **more}
