"""Where in a flow run a step waits: the flow run, its pause key, and the event's source.

The pause key is deterministic, like Prefect's own automatic pause keys, so a retried flow,
a retried task or a flow re-run after a suspension asks the hub for the *same* event:

- in the flow body: ``signoff-<n>``, the n-th signoff step of this flow run attempt;
- in a task: ``<task key>-<k>-<n>``, the n-th step in the current attempt of the k-th run of
  that task in this flow run attempt (a task retry keeps k and starts n again);
- or the ``key`` the caller gives (lower-case letters, digits and dashes; unique in the run).

Counters live in the flow run context's ``observed_flow_pauses`` (Prefect's own per-attempt
pause counters), so they start again exactly when Prefect's do. Steps running concurrently in
tasks take their numbers in the order they reach the adapter: give them explicit keys.
"""

from __future__ import annotations

import re
import threading
import weakref
from dataclasses import dataclass
from typing import Any

from prefect.context import FlowRunContext, TaskRunContext

from signoff import Source

from ._common import Mode, NotInFlowRun, check_pause_key

__all__ = ["Place", "PauseSlot", "locate"]

_COUNTERS = threading.Lock()


@dataclass(frozen=True)
class Place:
    """One step's position: the flow run it belongs to and how it waits."""

    flow_run_id: str
    flow_name: str
    flow_run_name: str
    pause_key: str
    mode: Mode
    task_run_id: str | None
    link: str | None

    @property
    def event_key(self) -> str:
        """The hub's idempotency key: ``prefect:<flow run id>:<pause key>``."""
        return f"prefect:{self.flow_run_id}:{self.pause_key}"

    @property
    def event_name(self) -> str:
        """A default event name: the flow's name and the pause key."""
        flow = re.sub(r"[^A-Za-z0-9_.:@+-]+", "-", self.flow_name).strip("-") or "flow"
        return f"{flow[:150]}/{self.pause_key}"

    def source(self) -> Source:
        """The event's source: what the hub's Prefect resumer needs, and what people see."""
        params: dict[str, Any] = {
            "flow_run_id": self.flow_run_id, "pause_key": self.pause_key, "mode": self.mode,
            "flow_name": self.flow_name, "flow_run_name": self.flow_run_name,
        }
        if self.task_run_id is not None:
            params["task_run_id"] = self.task_run_id
        return Source(orchestrator="prefect", run=self.flow_run_id, step=self.pause_key,
                      link=self.link, params=params)


def locate(function: str, *, key: str | None, suspend: bool, is_async: bool) -> Place:
    """The calling step's place, with a fresh pause key.

    Raises:
        NotInFlowRun: outside a flow run, a sync call in an async flow or task (or the other
            way round), or ``suspend`` where Prefect cannot suspend.
    """
    flow_ctx = FlowRunContext.get()
    if flow_ctx is None or flow_ctx.flow_run is None:
        raise NotInFlowRun(f"{function}() must be called inside a Prefect flow run (in the "
                           f"flow or in one of its tasks); there is no flow run here")
    task_ctx = TaskRunContext.get()
    runner: Any = task_ctx.task if task_ctx is not None else flow_ctx.flow
    if not is_async and runner is not None and getattr(runner, "isasync", False):
        raise NotInFlowRun(f"{function}() in an async {'task' if task_ctx else 'flow'} would "
                           f"block its event loop: use await a{function}()")
    run = flow_ctx.flow_run
    if suspend:
        if task_ctx is not None:
            raise NotInFlowRun(f"{function}(suspend=True) in a task: Prefect suspends only "
                               f"from the flow body; pause instead (suspend=False)")
        if run.deployment_id is None:
            raise NotInFlowRun(f"{function}(suspend=True) needs a flow run of a deployment "
                               f"(flow.serve() or flow.deploy()): Prefect re-runs a suspended "
                               f"flow from its deployment")
        if run.parent_task_run_id is not None:
            raise NotInFlowRun(f"{function}(suspend=True) in a subflow: Prefect cannot "
                               f"suspend subflows; pause instead (suspend=False)")
    pause_key = check_pause_key(key) if key is not None else _next_key(flow_ctx, task_ctx)
    return Place(
        flow_run_id=str(run.id), flow_name=flow_ctx.flow.name if flow_ctx.flow else run.name,
        flow_run_name=run.name, pause_key=pause_key, mode="suspend" if suspend else "pause",
        task_run_id=str(task_ctx.task_run.id) if task_ctx is not None else None,
        link=_link(str(run.id)),
    )


def _next_key(flow_ctx: Any, task_ctx: Any) -> str:
    counters: dict[str, int] = flow_ctx.observed_flow_pauses
    with _COUNTERS:
        if task_ctx is None:
            counters["signoff"] = counters.get("signoff", 0) + 1
            return f"signoff-{counters['signoff']}"
        run = task_ctx.task_run
        slot = f"signoff-task-{run.id}"
        if slot not in counters:
            seen = f"signoff-taskkey-{run.task_key}"
            counters[seen] = counters.get(seen, 0) + 1
            counters[slot] = counters[seen]
        attempt = f"signoff-call-{run.id}-{run.run_count}"
        counters[attempt] = counters.get(attempt, 0) + 1
        task = re.sub(r"[^a-z0-9]+", "-", run.task_key.lower()).strip("-")[:60] or "task"
        return f"{task}-{counters[slot]}-{counters[attempt]}"


def _link(flow_run_id: str) -> str | None:
    from prefect.utilities.urls import url_for

    try:
        url = url_for("flow-run", obj_id=flow_run_id)
    except Exception:  # a link is a courtesy; never fail the step for it
        return None
    return url if url and url.startswith(("http://", "https://")) else None


class PauseSlot:
    """One flow run pauses for one step at a time: Prefect's pause is a state of the run.

    Steps in concurrent tasks take turns; while one waits for its turn it watches the hub, so
    a decision reaching it early is not held up by another step's pause.
    """

    _slots: weakref.WeakValueDictionary[str, PauseSlot] = weakref.WeakValueDictionary()
    _guard = threading.Lock()

    def __init__(self) -> None:
        self.lock = threading.Lock()

    @classmethod
    def of(cls, flow_run_id: str) -> PauseSlot:
        """The slot of one flow run in this process."""
        with cls._guard:
            slot = cls._slots.get(flow_run_id)
            if slot is None:
                slot = cls._slots[flow_run_id] = cls()
            return slot
