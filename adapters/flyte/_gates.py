"""``approve`` and ``ask`` for flytekit workflows.

Called in a ``@workflow`` body they add nodes when the workflow is compiled:

- **gate** mode: ``signoff_register`` (creates the event) → flytekit's own ``approve`` or
  ``wait_for_input`` gate node (no pod waits; the hub's Flyte resumer sets the signal) →
  ``signoff_settle_*`` (the decided value, or a failed node with a clear message).
- **task** mode: one task that creates the event and waits on the hub's long-poll.

Run locally (calling the workflow in Python, ``pyflyte run`` without ``--remote``), inside a task,
or outside any workflow, they create the event and wait on the hub right there; nothing is asked
on stdin.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flytekit import approve as flyte_approve
from flytekit import wait_for_input
from flytekit.core import constants
from flytekit.core.context_manager import (
    ExecutionState,
    FlyteContext,
    FlyteContextManager,
    flyte_context_Var,
)
from flytekit.core.promise import Promise, VoidPromise
from flytekit.core.type_engine import TypeEngine
from google.protobuf.json_format import MessageToDict

from signoff import input_spec

from ._common import Kind, Mode, default_mode, make_request, python_type_for, seconds, signal_name
from ._passthrough import approve_task_for
from ._tasks import (
    SETTLE,
    WAIT,
    create_event,
    signoff_register,
    signoff_settle_approval,
    wait_event,
)

__all__ = ["approve", "ask"]

RUN_ENV = "SIGNOFF_FLYTE_RUN"
GATE_GRACE = timedelta(minutes=15)
GATE_DEFAULT = timedelta(days=7)
_TYPE_KEYS = {bool: "bool", int: "int", float: "float", str: "str", dict: "dict"}
_local_runs: dict[int, tuple[Any, str]] = {}


def _compiling(ctx: FlyteContext) -> bool:
    return ctx.compilation_state is not None and ctx.compilation_state.mode == 1


def _type_key(python_type: Any) -> str:
    return _TYPE_KEYS.get(python_type, "list")


def _literal_type(python_type: Any) -> dict[str, Any]:
    found: dict[str, Any] = MessageToDict(TypeEngine.to_literal_type(python_type).to_flyte_idl())
    return found


def _gate_timeout(timeout: float | None, gate_timeout: timedelta | float | None) -> timedelta:
    # the gate must outlive the hub's deadline, so a timeout decision still reaches it
    if gate_timeout is not None:
        return timedelta(seconds=seconds(gate_timeout, "gate_timeout") or 0)
    return timedelta(seconds=timeout) + GATE_GRACE if timeout else GATE_DEFAULT


def _local_root(ctx: FlyteContext) -> FlyteContext | None:
    return next((c for c in flyte_context_Var.get()
                 if c.execution_state is not None and c.execution_state.is_local_execution()),
                None)


def _in_workflow_body(ctx: FlyteContext) -> bool:
    """True in a locally executing workflow's body; False in a task body or outside any run."""
    state = ctx.execution_state
    root = _local_root(ctx)
    if state is None or root is None or state.mode != ExecutionState.Mode.LOCAL_WORKFLOW_EXECUTION:
        return False
    # a task body runs with user-space parameters of its own (a sandbox directory)
    here, top = ctx.user_space_params, root.user_space_params
    return here is None or top is None or here.working_directory == top.working_directory


def _local_ids(ctx: FlyteContext) -> tuple[str, str, str]:
    """The execution's ids; a local run gets one run id for the whole workflow call."""
    params = ctx.user_space_params
    ex = params.execution_id if params is not None else None
    if ex is not None and ex.name != "local":
        return ex.project, ex.domain, ex.name
    if os.environ.get(RUN_ENV):
        return "local", "local", os.environ[RUN_ENV]
    # the outermost local-execution context lives exactly as long as one local workflow run
    root = _local_root(ctx)
    if root is None:
        return "local", "local", f"local-{uuid.uuid4().hex[:12]}"
    found = _local_runs.get(id(root))
    if found is None or found[0] is not root:
        if len(_local_runs) > 1000:
            _local_runs.clear()
        found = (root, f"local-{uuid.uuid4().hex[:12]}")
        _local_runs[id(root)] = found
    return "local", "local", found[1]


def _inline(ctx: FlyteContext, request: str, gate: bool = False) -> Any:
    event = create_event(request, "task", _local_ids(ctx))
    return wait_event(event, gate=gate)


def approve(upstream: Any, prompt: str, *, name: str | None = None,
            timeout: timedelta | float | None = None, assignees: list[str] | None = None,
            context: Mapping[str, Any] | None = None, priority: str = "normal",
            on_timeout: str = "reject", labels: dict[str, str] | None = None,
            recommendation: Any = None, confidence: float | None = None,
            mode: Mode | None = None, gate_timeout: timedelta | float | None = None) -> Any:
    """Let ``upstream`` through only once a person approves it.

    Args:
        upstream: one output of an earlier task (a promise in a workflow).
        prompt: the question the reviewer sees.
        name: the gate's signal id and the step's name (default: a slug of the prompt).
        timeout: how long the reviewers have (a timedelta or seconds); none means no deadline.
        assignees: user names and ``group:NAME``; empty means anyone.
        context: JSON shown beside the prompt.
        priority: low, normal, high or urgent.
        on_timeout: what the deadline does: ``reject`` (default) or ``fail``.
        labels: free labels on the event.
        recommendation: what the automation before this step recommends.
        confidence: the automation's confidence, 0..1 (for routing policies).
        mode: ``gate`` or ``task``; default ``SIGNOFF_FLYTE_MODE`` or ``gate``.
        gate_timeout: the gate node's own timeout (default: ``timeout`` + 15 minutes, or 7 days).

    Returns:
        ``upstream``, unchanged, once approved.

    Raises:
        signoff.Rejected, signoff.Expired, signoff.Cancelled: locally; on a cluster the node fails.
    """
    signal = signal_name(prompt, name)
    limit = seconds(timeout)
    gated = (mode or default_mode()) == "gate"
    request = make_request(prompt=prompt, name=signal, input={"kind": "approval"},
                           kind="approve" if gated else "task", context=dict(context or {}), assignees=assignees,
                           priority=priority, timeout=limit, on_timeout=on_timeout,
                           labels=labels, recommendation=recommendation, confidence=confidence,
                           literal_type={"simple": "BOOLEAN"})
    ctx = FlyteContextManager.current_context()
    if not _compiling(ctx):
        _inline(ctx, request, gate=True)  # raises unless approved
        return upstream
    if not isinstance(upstream, Promise) or upstream.ref.node_id == constants.GLOBAL_INPUT_NODE_ID:
        raise ValueError("approve: upstream must be one output of a task in this workflow "
                         f"(not a workflow input or a task without outputs), got {upstream!r}")
    if not gated:
        python_type = upstream.ref.node.flyte_entity.python_interface.outputs[upstream.var]
        return approve_task_for(python_type)(request=request, value=upstream)
    event_id = signoff_register(request=request)
    upstream >> event_id
    gate = flyte_approve(upstream, signal, timeout=_gate_timeout(limit, gate_timeout))
    event_id >> gate
    gate >> signoff_settle_approval(event_id=event_id)
    return gate


def ask(prompt: str, *, input: Any = str, name: str | None = None,
        timeout: timedelta | float | None = None, upstream: Any = None,
        assignees: list[str] | None = None, context: Mapping[str, Any] | None = None,
        priority: str = "normal", on_timeout: str = "reject",
        labels: dict[str, str] | None = None, recommendation: Any = None,
        confidence: float | None = None, mode: Mode | None = None,
        gate_timeout: timedelta | float | None = None) -> Any:
    """Ask a person for a typed answer and continue with it.

    Args:
        prompt: the question the reviewer sees.
        input: what answer is expected: ``bool``, ``int``, ``float``, ``str``, an ``Enum`` or
            ``Literal`` (a choice), ``list[Literal[...]]``, a pydantic model (a form), a dict
            spec such as ``{"kind": "int", "min": 1}``, or a signoff input spec.
        upstream: a promise the question must wait for (ordering only).
        on_timeout: ``reject`` (default), ``default`` (the input's default) or ``fail``.
        name: the gate's signal id and the step's name (default: a slug of the prompt).
        timeout: how long the reviewers have (a timedelta or seconds); none means no deadline.
        assignees: user names and ``group:NAME``; empty means anyone.
        context: JSON shown beside the prompt.
        priority: low, normal, high or urgent.
        labels: free labels on the event.
        recommendation: what the automation before this step recommends.
        confidence: the automation's confidence, 0..1 (for routing policies).
        mode: ``gate`` or ``task``; default ``SIGNOFF_FLYTE_MODE`` or ``gate``.
        gate_timeout: the gate node's own timeout (default: ``timeout`` + 15 minutes, or 7 days).

    Returns:
        The answer (a promise in a workflow). An approval spec answers ``True``/``False``.

    Raises:
        signoff.Rejected, signoff.Expired, signoff.Cancelled: locally; on a cluster the node fails.
    """
    spec = input_spec(input)
    python_type = python_type_for(spec)
    signal = signal_name(prompt, name)
    limit = seconds(timeout)
    kind: Kind = "signal" if (mode or default_mode()) == "gate" else "task"
    request = make_request(prompt=prompt, name=signal, input=spec, kind=kind,
                           context=dict(context or {}), assignees=assignees, priority=priority,
                           timeout=limit, on_timeout=on_timeout, labels=labels,
                           recommendation=recommendation, confidence=confidence,
                           literal_type=_literal_type(python_type))
    ctx = FlyteContextManager.current_context()
    if not _compiling(ctx):
        value = _inline(ctx, request)
        if not _in_workflow_body(ctx):
            return value  # inside a task body, or outside any workflow: a plain value
        literal_type = TypeEngine.to_literal_type(python_type)
        return Promise(var="o0", val=TypeEngine.to_literal(ctx, value, python_type, literal_type))
    type_key = _type_key(python_type)
    if kind == "task":
        waited = WAIT[type_key](request=request)
        if isinstance(upstream, (Promise, VoidPromise)):
            upstream >> waited
        return waited
    event_id = signoff_register(request=request)
    if isinstance(upstream, (Promise, VoidPromise)):
        upstream >> event_id
    gate = wait_for_input(signal, timeout=_gate_timeout(limit, gate_timeout),
                          expected_type=python_type)
    event_id >> gate
    return SETTLE[type_key](event_id=event_id, value=gate)
