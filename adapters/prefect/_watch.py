"""Pause a flow run in Prefect and watch the hub and Prefect at once.

Prefect's ``pause_flow_run`` notices a resume only when it next reads the run's state (every
``poll_interval`` s), and only once someone resumes the run in Prefect: the hub's resumer
(which needs Prefect's address) or a person in Prefect's UI. Here the flow pauses the same
way Prefect does (the same ``Paused`` state, pause key and run input form, so Prefect's UI
shows the pause and can answer it), but waits on the hub's long-poll in between its looks at
Prefect. When the hub's decision exists, the flow resumes its own run with it at once
(``POST /flow_runs/{id}/resume``, the run input the hub's resumer would send) and goes on.

Whoever resumes first wins; the others find the run no longer paused, and the stored run
input (with its ``signoff`` marker) says whose answer it was, as :mod:`.resumer` and
:func:`._plan.delivered_for` already read it. A hub that cannot be reached just now leaves
the flow waiting on Prefect alone until it comes back.

The steps mirror ``prefect.flow_runs.pause_flow_run`` (Prefect 3.x), built from the same
public pieces: ``Paused``, ``propose_state``, ``keyset_from_paused_state`` and the run input
class's ``save``/``load``.
"""

from __future__ import annotations

import time
from typing import Any
from uuid import UUID

import anyio
import httpx
from prefect import get_client, get_run_logger
from prefect.client.schemas import OrchestrationResult
from prefect.client.schemas.responses import SetStateStatus
from prefect.context import FlowRunContext
from prefect.exceptions import Abort, FlowPauseTimeout
from prefect.input import keyset_from_paused_state
from prefect.states import Paused, State
from prefect.utilities.engine import propose_state, propose_state_sync

from signoff import AsyncClient, Client, Decision, Event, HubUnavailable, StoreUnavailable

from ._common import run_input_for
from ._forms import run_input_class
from ._plan import Step

__all__ = ["apause", "as_answer", "pause"]

_UNREACHABLE = (HubUnavailable, StoreUnavailable)

NOT_RESUMED = ("event %s: the hub decided, but Prefect refused to resume flow run %s with the "
               "decision (%s %s); the flow goes on with the hub's decision")


def _prepare(step: Step, event: Event) -> tuple[Any, State[Any], Any]:
    """The form class, the ``Paused`` state to propose, and its run input keys."""
    form: Any = run_input_class(event.input, step.prompt)
    context = FlowRunContext.get()
    if context is not None:  # as pause_flow_run counts every pause of the run attempt
        pauses = context.observed_flow_pauses
        pauses["counter"] = pauses.get("counter", 0) + 1
    proposed: State[Any] = Paused(timeout_seconds=step.pause_seconds(event), reschedule=False,
                      pause_key=step.place.pause_key)
    keyset: Any = keyset_from_paused_state(proposed)
    proposed.state_details.run_input_keyset = keyset
    return form, proposed, keyset


def _checked(state: State[Any]) -> bool:
    """True when the run is paused now; False when Prefect says it was resumed already."""
    if state.is_running():
        return False  # this pause happened before and was answered (as in pause_flow_run)
    if not state.is_paused():
        raise RuntimeError(f"Flow run cannot be paused. Received non-paused state from API: "
                           f"{state}")
    return True


def as_answer(got: Any) -> dict[str, Any]:
    """A run input Prefect returned, as the plain answer :func:`._plan.delivered_for` reads."""
    return {"value": got.value, "comment": got.comment, **(got.model_extra or {})}


def _accepted(result: Any, event: Event, run_id: UUID) -> bool:
    if result.status == SetStateStatus.ACCEPT:
        return True
    if result.status == SetStateStatus.REJECT:
        # Prefect will not take the hub's answer (the form refused it, or the pause timed
        # out): log it and go on with the decision rather than spin on it
        reason = getattr(result.details, "reason", None) or ""
        get_run_logger().error(NOT_RESUMED, event.id, run_id, result.status.value, reason)
        raise _Undeliverable
    return False  # ABORT/WAIT: someone else resumed it; its state says with what


class _Undeliverable(Exception):
    pass


QUICK_TRIES = 20
"""Resume attempts 0.1 s apart while Prefect's database is busy (503), before one through
Prefect's client. Prefect on SQLite answers 503 when another writer holds the database, and
its client then sleeps 2 s or more before trying again (even with retries turned off): time
the flow need not lose on its own resume."""


def _quick(client: Any, run_id: UUID, body: dict[str, Any]) -> Any:
    """The request, and the plain httpx ``send`` of Prefect's own HTTP client (its base URL,
    auth, TLS and transport, without its retrying ``send``); ``None`` if it has none.
    """
    http = getattr(client, "_client", None)
    if not isinstance(http, (httpx.Client, httpx.AsyncClient)):
        return None
    request = http.build_request("POST", f"/flow_runs/{run_id}/resume",
                                 json={"run_input": body})
    base = httpx.Client if isinstance(http, httpx.Client) else httpx.AsyncClient
    return request, lambda: base.send(http, request)  # type: ignore[arg-type]


def _result(answer: httpx.Response) -> Any:
    """Prefect's orchestration result, or ``None`` to try again (busy, or not understood)."""
    if answer.status_code != 200 and answer.status_code != 201:
        return None
    try:
        return OrchestrationResult.model_validate(answer.json())
    except ValueError:
        return None


def _resume(client: Any, run_id: UUID, body: dict[str, Any]) -> Any:
    quick = _quick(client, run_id, body)
    for _ in range(QUICK_TRIES if quick else 0):
        answer = quick[1]()
        result = _result(answer)
        if result is not None:
            return result
        if answer.status_code != 503:
            break  # not a busy database: let Prefect's client handle it
        time.sleep(0.1)
    return client.resume_flow_run(run_id, run_input=body)


async def _aresume(client: Any, run_id: UUID, body: dict[str, Any]) -> Any:
    quick = _quick(client, run_id, body)
    for _ in range(QUICK_TRIES if quick else 0):
        answer = await quick[1]()
        result = _result(answer)
        if result is not None:
            return result
        if answer.status_code != 503:
            break
        await anyio.sleep(0.1)
    return await client.resume_flow_run(run_id, run_input=body)


def pause(step: Step, event: Event, hub: Client) -> dict[str, Any] | Decision:
    """Pause the flow run until the hub decides or Prefect resumes it.

    Returns:
        The hub's decision when the hub decided first (the run was resumed with it, or
        Prefect refused to take it: the run is left to the hub's resumer, which reports why),
        or the run input Prefect was resumed with by someone else (as ``pause_flow_run``
        returns it).

    Raises:
        FlowPauseTimeout: neither came within the pause's timeout.
    """
    form, proposed, keyset = _prepare(step, event)
    run_id = UUID(step.place.flow_run_id)
    timeout = step.pause_seconds(event)
    reachable = True
    with get_client(sync_client=True) as client:
        try:
            state = propose_state_sync(client=client, state=proposed, flow_run_id=run_id)
        except Abort as exc:
            raise RuntimeError(f"Flow run cannot be paused: {exc}") from exc
        if not _checked(state):
            return as_answer(form.load(keyset))
        form.save(keyset)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            wait = max(min(step.poll_interval, left), 0.0)
            decision = None
            try:
                decision = hub.decision(event.id, wait=wait)
                reachable = True
            except _UNREACHABLE as exc:
                if reachable:
                    get_run_logger().warning("event %s: the hub cannot be reached (%s); "
                                             "waiting on Prefect", event.id, exc)
                reachable = False
                time.sleep(wait)
            if decision is not None:
                body = run_input_for(event.model_copy(update={"decision": decision}))
                try:
                    if _accepted(_resume(client, run_id, body), event, run_id):
                        return decision
                except _Undeliverable:
                    return decision
            run = client.read_flow_run(run_id)
            if run.state is not None and run.state.is_running():
                return as_answer(form.load(keyset))
            if decision is not None:  # Prefect answered WAIT: look again after a poll
                time.sleep(step.poll_interval)
            if left <= 0:
                raise FlowPauseTimeout("Flow run was paused and never resumed.")


async def apause(step: Step, event: Event, hub: AsyncClient) -> dict[str, Any] | Decision:
    """The async twin of :func:`pause`; keep the two in step."""
    form, proposed, keyset = _prepare(step, event)
    run_id = UUID(step.place.flow_run_id)
    timeout = step.pause_seconds(event)
    reachable = True
    async with get_client() as client:
        try:
            state = await propose_state(client=client, state=proposed, flow_run_id=run_id)
        except Abort as exc:
            raise RuntimeError(f"Flow run cannot be paused: {exc}") from exc
        if not _checked(state):
            return as_answer(await form.aload(keyset))
        await form.asave(keyset)
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            wait = max(min(step.poll_interval, left), 0.0)
            decision = None
            try:
                decision = await hub.decision(event.id, wait=wait)
                reachable = True
            except _UNREACHABLE as exc:
                if reachable:
                    get_run_logger().warning("event %s: the hub cannot be reached (%s); "
                                             "waiting on Prefect", event.id, exc)
                reachable = False
                await anyio.sleep(wait)
            if decision is not None:
                body = run_input_for(event.model_copy(update={"decision": decision}))
                try:
                    if _accepted(await _aresume(client, run_id, body), event, run_id):
                        return decision
                except _Undeliverable:
                    return decision
            run = await client.read_flow_run(run_id)
            if run.state is not None and run.state.is_running():
                return as_answer(await form.aload(keyset))
            if decision is not None:  # Prefect answered WAIT: look again after a poll
                await anyio.sleep(step.poll_interval)
            if left <= 0:
                raise FlowPauseTimeout("Flow run was paused and never resumed.")
