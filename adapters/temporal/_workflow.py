"""The workflow side: ``approve`` and ``ask``, awaited inside ``@workflow.defn`` code.

One call is one step. It creates the event through an activity (so a replay reads the result
from history and the hub is asked once; the key is ``temporal:<namespace>:<workflow id>:<run
id>:<name>``), registers a handler for the step's own signal ``signoff:<name>`` (signals that
came earlier are buffered by Temporal and handed over at once), and waits with
``workflow.wait_condition``. The hub's resumer signals the decision; nothing polls.

Deadlines: the hub owns the deadline (its sweeper applies ``on_timeout`` and the resumer
signals that decision). The workflow also keeps a durable timer at the deadline plus
``timeout_grace``, a backstop for when no signal can come (the hub was unreachable, or the
workflow's clock ran ahead of the hub's, as in Temporal's time-skipping test server). When it
fires, an activity asks the hub: a decision the hub has is used as it is, and one due within
seconds is waited for; if the hub's deadline is still far ahead, the workflow withdraws the
event (cancel, channel ``temporal``, with the reason) and applies ``on_timeout`` itself, with
the rule the hub uses.

The module runs in Temporal's workflow sandbox with ``signoff`` passed through (see
:class:`~signoff.adapters.temporal.SignoffPlugin`): it imports no I/O library of its own, and
everything it does between awaits is deterministic.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import weakref
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any, Literal

import pydantic
import pydantic_core
from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError

import signoff
from signoff import Decision, EventCreate, InvalidInput, Priority, Source, input_spec, result_of

from ._common import (
    CANCEL_ACTIVITY,
    CREATE_ACTIVITY,
    RELAY_ACTIVITY,
    SETTLE_ACTIVITY,
    VERIFY_ACTIVITY,
    event_key,
    signal_name,
)
from ._errors import Cancelled, Expired, Rejected, error_type

__all__ = ["approve", "ask"]

OnTimeout = Literal["default", "reject", "fail"]
Duration = timedelta | float | int

# the hub refusing an event or an answer will not change on a retry; anything else
# (the hub down, a token being fixed) is retried by Temporal until it works
_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30),
                     non_retryable_error_types=[error_type("InvalidInput")])
_RELAY_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1),
                           maximum_interval=timedelta(seconds=30),
                           non_retryable_error_types=[error_type("InvalidInput"),
                                                      error_type("Forbidden")])
_ACTIVITY_TIMEOUT = timedelta(minutes=2)


@dataclasses.dataclass
class _Step:
    """One waiting step: its event, and what its signal brought."""

    name: str
    event_id: str
    decision: Decision | None = None
    answers: list[dict[str, Any]] = dataclasses.field(default_factory=list)
    accept_answers: bool = True
    signalled: list[Decision] = dataclasses.field(default_factory=list)
    """Decisions that arrived as signals, not yet verified (a forged one is refused)."""


@dataclasses.dataclass
class _RunState:
    """Per workflow run (per instance, so a replay starts afresh): the step names used."""

    names: set[str] = dataclasses.field(default_factory=set)


_STATES: weakref.WeakKeyDictionary[Any, _RunState] = weakref.WeakKeyDictionary()


def _run_state() -> _RunState:
    instance = workflow.instance()
    try:
        return _STATES.setdefault(instance, _RunState())
    except TypeError:  # an unhashable workflow class: keep the state on the instance
        state: _RunState = vars(instance).setdefault("_signoff_run_state", _RunState())
        return state


def _unique(name: str) -> str:
    """``name``, or ``name-2``, ``name-3`` ... when this run already has a step of that name.

    A loop of ``approve`` calls so asks a new question each time instead of getting the
    first answer back by key. The order of calls is deterministic, so a replay agrees.
    """
    state = _run_state()
    candidate, count = name, 1
    while candidate in state.names:
        count += 1
        candidate = f"{name}-{count}"
    state.names.add(candidate)
    return candidate


def _invalid(exc: Exception) -> ApplicationError:
    if isinstance(exc, pydantic.ValidationError):
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or "arguments"
        got = first.get("input")
        message = f"{field}: {first['msg'].removeprefix('Value error, ')}, got {got!r:.80}"
    else:
        message = str(exc)
    return ApplicationError(f"signoff: {message}", type=error_type("InvalidInput"),
                            non_retryable=True)


def _seconds(field: str, value: Duration | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    raise InvalidInput(field, "a timedelta or a number of seconds", value)


def _context(context: Any) -> dict[str, Any]:
    if context is None:
        return {}
    if isinstance(context, pydantic.BaseModel):
        context = context.model_dump(mode="json")
    elif dataclasses.is_dataclass(context) and not isinstance(context, type):
        context = dataclasses.asdict(context)
    if not isinstance(context, Mapping):
        raise InvalidInput("context", "a mapping, a dataclass or a pydantic model", context)
    try:
        jsonable: dict[str, Any] = pydantic_core.to_jsonable_python(dict(context))
    except pydantic_core.PydanticSerializationError as exc:
        raise InvalidInput("context", "JSON-serialisable values", context) from exc
    return jsonable


def _on_signal(step: _Step, payload: Any) -> None:
    """Take a decision from the hub, or queue an answer a person signalled; ignore the rest."""
    log = workflow.logger
    if not isinstance(payload, Mapping):
        log.warning("signoff %s: ignored a signal that is not an object: %r", step.name, payload)
        return
    if "decision" in payload:
        if step.decision is not None:
            return  # a redelivery: the resumer retries until Temporal accepted once
        if payload.get("event_id") != step.event_id:
            log.warning("signoff %s: ignored a decision for event %r, waiting for %r",
                        step.name, payload.get("event_id"), step.event_id)
            return
        try:  # verified before the workflow acts on it (a signal can be sent by anyone)
            step.signalled.append(Decision.model_validate(payload["decision"]))
        except pydantic.ValidationError as exc:
            log.warning("signoff %s: ignored a malformed decision: %s", step.name, exc)
    elif "value" in payload and step.accept_answers and step.decision is None:
        step.answers.append({"value": payload["value"], "comment": payload.get("comment")})
    elif "value" not in payload:
        log.warning("signoff %s: ignored a signal with neither decision nor value", step.name)


async def _activity(name: str, arg: dict[str, Any], options: dict[str, Any],
                    retry: RetryPolicy = _RETRY) -> dict[str, Any]:
    result: dict[str, Any] = await workflow.execute_activity(
        name, arg, start_to_close_timeout=_ACTIVITY_TIMEOUT, retry_policy=retry, **options)
    return result


_LOCAL_VERIFY = "signoff-verify-local"
"""The patch id under which a signalled decision is verified by a local activity (histories
recorded before it replay with the regular activity they scheduled)."""


async def _verify(step: _Step, arrived: Decision, options: dict[str, Any]) -> None:
    """Take a signalled decision only once the hub's signature and the event's digest verify
    (in an activity: the workflow does no I/O); a forged one is logged, and the step waits on.
    """
    arg = {"event_id": step.event_id, "decision": arrived.model_dump(mode="json")}
    summary = f"{step.name} verify"
    if options.get("task_queue") is None and workflow.patched(_LOCAL_VERIFY):
        # a local activity, on this worker (whose plugin has it): no trip through the server's
        # task queue between the signal and the workflow going on (62 ms p50 → 15 ms)
        checked: dict[str, Any] = await workflow.execute_local_activity(
            VERIFY_ACTIVITY, arg, start_to_close_timeout=_ACTIVITY_TIMEOUT,
            retry_policy=_RETRY, summary=summary)
    else:  # the activities run on another task queue's workers (or a history from before)
        checked = await _activity(VERIFY_ACTIVITY, arg, {**options, "summary": summary})
    if checked.get("ok"):
        if step.decision is None:
            step.decision = Decision.model_validate(checked["decision"])
        return
    workflow.logger.warning("signoff %s: refused a signalled decision that does not verify: %s",
                            step.name, checked.get("reason"))


async def _relay(step: _Step, answer: dict[str, Any], options: dict[str, Any]) -> None:
    try:
        result = await _activity(RELAY_ACTIVITY, {"event_id": step.event_id, **answer},
                                 options, _RELAY_RETRY)
    except ActivityError as exc:
        workflow.logger.warning("signoff %s: the hub refused the signalled answer %r: %s",
                                step.name, answer["value"], exc.cause or exc)
        return
    if step.decision is None and result.get("decision") is not None:
        step.decision = Decision.model_validate(result["decision"])


async def _request(prompt: str, spec: Any, *, name: str, context: Any, assignees: Sequence[str],
                   timeout: Duration | None, on_timeout: OnTimeout, priority: Priority | str,
                   labels: Mapping[str, str] | None, recommendation: Any,
                   confidence: float | None, link: str | None, timeout_grace: Duration,
                   task_queue: str | None, signal_answers: bool,
                   fields: dict[str, Any]) -> Decision:
    info = workflow.info()
    step_name = _unique(name)
    try:
        seconds = _seconds("timeout", timeout)
        grace = _seconds("timeout_grace", timeout_grace) or 0.0
        if grace < 0:
            raise InvalidInput("timeout_grace", "zero or more seconds", timeout_grace)
        event = EventCreate.model_validate({
            "name": step_name, "prompt": prompt, "input": input_spec(spec),
            "key": event_key(info.namespace, info.workflow_id, info.run_id, step_name),
            "context": _context(context), "assignees": list(assignees), "priority": priority,
            "timeout": seconds, "on_timeout": on_timeout, "labels": dict(labels or {}),
            "recommendation": recommendation, "confidence": confidence,
            "source": Source(orchestrator="temporal", run=info.workflow_id, step=step_name,
                             link=link,
                             params={"namespace": info.namespace,
                                     "workflow_id": info.workflow_id, "run_id": info.run_id,
                                     "signal": signal_name(step_name),
                                     "workflow_type": info.workflow_type,
                                     "task_queue": info.task_queue}),
            **fields})
    except (pydantic.ValidationError, signoff.SignoffError, TypeError, ValueError) as exc:
        raise _invalid(exc) from exc
    options: dict[str, Any] = {"task_queue": task_queue}
    body = event.model_dump(mode="json", by_alias=True, exclude_none=True)
    created = await _activity(CREATE_ACTIVITY, body, {**options, "summary": step_name})
    step = _Step(step_name, created["id"], accept_answers=signal_answers)
    if created.get("decision") is not None:  # decided at once (a policy, or a replayed key)
        step.decision = Decision.model_validate(created["decision"])
    workflow.set_signal_handler(signal_name(step_name), functools.partial(_on_signal, step))
    deadline = None if seconds is None else workflow.now() + timedelta(seconds=seconds + grace)
    try:
        while step.decision is None:
            left = None if deadline is None else (deadline - workflow.now()).total_seconds()
            try:
                if left is not None and left <= 0:
                    raise asyncio.TimeoutError
                await workflow.wait_condition(
                    lambda: step.decision is not None or bool(step.answers)
                    or bool(step.signalled), timeout=left)
            except asyncio.TimeoutError:
                settled = await _activity(SETTLE_ACTIVITY, {"event_id": step.event_id},
                                          {**options, "summary": f"{step_name} deadline"})
                if step.decision is None:
                    step.decision = Decision.model_validate(settled["decision"])
                break
            if step.decision is None and step.signalled:
                await _verify(step, step.signalled.pop(0), options)
            elif step.decision is None and step.answers:
                await _relay(step, step.answers.pop(0), options)
    except asyncio.CancelledError:
        # the workflow is being cancelled: withdraw the question so it leaves the inbox
        if step.decision is None:
            await _activity(CANCEL_ACTIVITY, {"event_id": step.event_id,
                                              "comment": "the Temporal workflow was cancelled"},
                            options)
        raise
    step.answers.clear()
    step.signalled.clear()
    return step.decision


def _result(decision: Decision, approval: bool) -> Any:
    try:
        return result_of(decision, approval=approval)
    except signoff.Rejected as exc:
        raise Rejected(str(exc), decision) from None
    except signoff.Expired as exc:
        raise Expired(str(exc), decision) from None
    except signoff.Cancelled as exc:
        raise Cancelled(str(exc), decision) from None


async def approve(
    prompt: str,
    *,
    name: str = "approve",
    context: Any = None,
    assignees: Sequence[str] = (),
    timeout: Duration | None = None,
    on_timeout: OnTimeout = "reject",
    default: bool | None = None,
    priority: Priority | str = Priority.normal,
    labels: Mapping[str, str] | None = None,
    recommendation: Any = None,
    confidence: float | None = None,
    link: str | None = None,
    timeout_grace: Duration = timedelta(minutes=1),
    task_queue: str | None = None,
    signal_answers: bool = True,
    **fields: Any,
) -> bool:
    """Ask for an approval and wait for it, durably; ``True`` when approved.

    Call it from ``@workflow.run`` code (or anything it awaits). A rejection, by a person, a
    policy or a timeout whose action is ``reject``, returns ``False``.

    Args:
        prompt: the question, as reviewers see it.
        name: the step's name, unique in the run (a repeated name gets ``-2``, ``-3`` ...);
            part of the event's key and of the signal's name (``signoff:<name>``).
        context: JSON shown beside the prompt: a mapping, a dataclass or a pydantic model.
        assignees: user names and ``group:NAME``; empty means anyone.
        timeout: how long until the deadline (a timedelta or seconds); none waits for ever.
        on_timeout: what the deadline does: ``reject`` (returns False), ``default`` (returns
            ``default``) or ``fail`` (raises :class:`Expired`).
        default: the value ``on_timeout="default"`` gives.
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        labels: free labels for filtering and policies.
        recommendation: what the automation before this step recommends (e.g. ``True``).
        confidence: the automation's confidence in it, 0 to 1.
        link: a URL shown to reviewers (default: the Temporal UI, when the worker knows it).
        timeout_grace: how long after the deadline the workflow's own timer waits for the
            hub's timeout decision before applying ``on_timeout`` itself.
        task_queue: where signoff's activities run (default: the workflow's task queue).
        signal_answers: accept answers signalled straight to the workflow
            (``{"value": ...}`` on ``signoff:<name>``), relayed to the hub as unverified
            from ``temporal``.
        **fields: further event fields the hub knows (for instance a ``policy``).

    Returns:
        True when approved (or the default is true), False when rejected.

    Raises:
        Expired: the deadline passed and ``on_timeout`` is ``fail``.
        Cancelled: the event was cancelled in the hub.
        temporalio.exceptions.ApplicationError: an argument is invalid (``type``
            ``signoff.InvalidInput``, naming the field); it fails the workflow.
    """
    decision = await _request(
        prompt, {"kind": "approval", "default": default}, name=name, context=context,
        assignees=assignees, timeout=timeout, on_timeout=on_timeout, priority=priority,
        labels=labels, recommendation=recommendation, confidence=confidence, link=link,
        timeout_grace=timeout_grace, task_queue=task_queue, signal_answers=signal_answers,
        fields=fields)
    return bool(_result(decision, approval=True))


async def ask(
    prompt: str,
    input: Any,
    *,
    name: str = "ask",
    context: Any = None,
    assignees: Sequence[str] = (),
    timeout: Duration | None = None,
    on_timeout: OnTimeout = "reject",
    priority: Priority | str = Priority.normal,
    labels: Mapping[str, str] | None = None,
    recommendation: Any = None,
    confidence: float | None = None,
    link: str | None = None,
    timeout_grace: Duration = timedelta(minutes=1),
    task_queue: str | None = None,
    signal_answers: bool = True,
    **fields: Any,
) -> Any:
    """Ask for a typed answer and wait for it, durably; returns the answer.

    Args:
        prompt: the question, as reviewers see it.
        input: what answer is expected: a type (``int``, ``float``, ``str``, ``bool``), a
            pydantic model (a form; the answer comes back as an instance of it), a spec dict
            such as ``{"kind": "choice", "options": ["a", "b"]}``, or a spec object
            (:class:`signoff.IntInput` ...). Give a ``default`` in the spec for
            ``on_timeout="default"``.
        name: the step's name, unique in the run (see :func:`approve`).
        context: JSON shown beside the prompt: a mapping, a dataclass or a pydantic model.
        assignees: user names and ``group:NAME``; empty means anyone.
        timeout: how long until the deadline (a timedelta or seconds); none waits for ever.
        on_timeout: ``reject`` (raises :class:`Rejected`), ``default`` (returns the spec's
            default) or ``fail`` (raises :class:`Expired`).
        priority: ``low``, ``normal``, ``high`` or ``urgent``.
        labels: free labels for filtering and policies.
        recommendation: what the automation before this step suggests as the answer.
        confidence: the automation's confidence in it, 0 to 1.
        link: a URL shown to reviewers.
        timeout_grace: see :func:`approve`.
        task_queue: where signoff's activities run (default: the workflow's task queue).
        signal_answers: accept answers signalled straight to the workflow (see
            :func:`approve`).
        **fields: further event fields the hub knows.

    Returns:
        The answer, checked against ``input`` by the hub.

    Raises:
        Rejected: the event was rejected (a timeout whose action is ``reject``).
        Expired: the deadline passed and ``on_timeout`` is ``fail``.
        Cancelled: the event was cancelled in the hub.
        temporalio.exceptions.ApplicationError: an argument is invalid (``type``
            ``signoff.InvalidInput``, naming the field).
    """
    decision = await _request(
        prompt, input, name=name, context=context, assignees=assignees, timeout=timeout,
        on_timeout=on_timeout, priority=priority, labels=labels, recommendation=recommendation,
        confidence=confidence, link=link, timeout_grace=timeout_grace, task_queue=task_queue,
        signal_answers=signal_answers, fields=fields)
    value = _result(decision, approval=False)
    if isinstance(input, type) and issubclass(input, pydantic.BaseModel) and value is not None:
        return input.model_validate(value)
    return value
