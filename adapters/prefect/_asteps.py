"""The asynchronous surface: ``aapprove`` and ``aask`` wait in an async Prefect flow run.

A line-by-line twin of :mod:`._steps`; keep the two in step.
"""

from __future__ import annotations

from typing import Any, cast
from uuid import UUID

from prefect import get_client, get_run_logger
from prefect.exceptions import FlowPauseTimeout
from prefect.flow_runs import asuspend_flow_run
from prefect.input import acreate_flow_run_input, adelete_flow_run_input, afilter_flow_run_input

from signoff import AlreadyDecided, AsyncClient, Decision, Event, Forbidden, InvalidInput
from signoff.adapters import _hub

from ._common import CHANNEL, SETTING, from_prefect, input_key, taken_key
from ._forms import run_input_class
from ._place import PauseSlot
from ._plan import FIRED, FOREIGN, Step, delivered_for, disagreement, relay_comment
from ._watch import apause, as_answer

__all__ = ["decide"]


async def decide(step: Step, hub_url: str | None, hub_token: str | None) -> Decision:
    """Create the step's event and return its decision, pausing the flow run until it exists."""
    url = _hub.hub_url(hub_url, SETTING)
    async with AsyncClient(url, hub_token) as hub:
        event = await hub.create(step.event)
        if event.decision is not None:
            await _taken(step, event)
            return await hub.verified(event.id, event.decision)
        get_run_logger().info(_hub.WAITING, _hub.inbox_url(url, event.id))
        earlier, fired = await _earlier_answer(step)
        if earlier is not None:
            return await _resumed_with(step, event, earlier, hub)
        if fired:
            get_run_logger().warning(FIRED, step.place.pause_key, event.id)
            await _taken(step, event)
            return await hub.wait(event.id)
        slot = PauseSlot.of(step.place.flow_run_id)
        while not slot.lock.acquire(blocking=False):
            # another step of this run holds Prefect's pause; watch the hub meanwhile
            decision = await hub.decision(event.id, wait=step.poll_interval)
            if decision is not None:
                await _taken(step, event)
                return decision
        try:
            got = await _pause(step, event, hub)
        finally:
            slot.lock.release()
        if isinstance(got, Decision):  # the hub decided first; the flow resumed its run
            return got
        return await _resumed_with(step, event, got, hub)


async def _pause(step: Step, event: Event, hub: AsyncClient) -> dict[str, Any] | Decision:
    place = step.place
    logger = get_run_logger()
    if place.mode == "suspend":
        form = run_input_class(event.input, step.prompt)
        got = await asuspend_flow_run(wait_for_input=form, timeout=step.suspend_seconds(event),
                                      key=place.pause_key)
        return as_answer(got)
    try:
        return await apause(step, event, hub)
    except FlowPauseTimeout:
        logger.error("no decision for signoff event %s reached this flow run within %s s; "
                     "the event stays in the hub", event.id, step.pause_seconds(event))
        raise


async def _resumed_with(step: Step, event: Event, answer: dict[str, Any],
                        hub: AsyncClient) -> Decision:
    """The decision after Prefect resumed the run with ``answer``."""
    logger = get_run_logger()
    ours = delivered_for(answer, event)
    if ours:
        return await hub.wait(event.id)  # the hub's resumer: the decision is in the hub
    if ours is False:
        # a decision the hub made for another event, aimed at this run: never an answer here
        logger.warning(FOREIGN, event.id, step.place.flow_run_id, step.place.pause_key,
                       repr(answer["signoff"])[:200])
        await _taken(step, event)  # nothing waits in Prefect any more: the resumer need not try
        return await hub.wait(event.id)
    given = answer.get("value")
    try:
        # Prefect names nobody for a resume: the hub records it as unverified from Prefect
        relayed = await hub.relay(event.id, given, relay_comment(step.place, answer.get("comment")),
                            engine=CHANNEL)
    except AlreadyDecided:
        decision = await hub.wait(event.id)
        warning = disagreement(step.place, event, given, decision)
        if warning:
            logger.warning(warning)
        return decision
    except (InvalidInput, Forbidden) as exc:
        # a bad value, or an unverified answer the hub's relay policy refuses (four-eyes,
        # high impact): the refusal is in the event's audit trail; a person answers in the hub
        logger.error("event %s: the answer given in Prefect was refused by the hub (%s); "
                     "waiting for an answer in the hub", event.id, exc)
        await _taken(step, event)  # nothing waits in Prefect any more: the resumer need not try
        return await hub.wait(event.id)
    if relayed.decision is None:  # recorded, but an unverified answer cannot make a quorum
        logger.warning("event %s: the answer given in Prefect was recorded in the hub as "
                       "unverified and does not decide it alone; waiting for the hub's "
                       "decision", event.id)
        await _taken(step, event)
        return await hub.wait(event.id)
    logger.info("event %s: the answer given in Prefect was recorded in the hub", event.id)
    return await hub.verified(event.id, relayed.decision)


async def _earlier_answer(step: Step) -> tuple[dict[str, Any] | None, bool]:
    """See :func:`._steps._earlier_answer`."""
    place = step.place
    run_id = UUID(place.flow_run_id)
    prefix = input_key(place.mode, place.pause_key, "")
    inputs = cast(list[Any], await afilter_flow_run_input(key_prefix=prefix, limit=10,
                                                          flow_run_id=run_id))
    found = {i.key: i for i in inputs}
    response = found.get(prefix + "response")
    if response is not None:
        value = response.decoded_value
        return (value if isinstance(value, dict) else {"value": value}), True
    for part in ("schema", "description"):
        if prefix + part in found:
            await adelete_flow_run_input(prefix + part, flow_run_id=run_id)
    async with get_client() as client:
        run = await client.read_flow_run(run_id)
    return None, place.pause_key in (run.empirical_policy.pause_keys or ())


async def _taken(step: Step, event: Event) -> None:
    """Tell the hub's resumer that this run took the decision from the hub itself."""
    decision = event.decision
    if decision is not None and from_prefect(decision):
        return
    try:
        await acreate_flow_run_input(taken_key(step.place.pause_key), {"event_id": event.id},
                                     flow_run_id=UUID(step.place.flow_run_id))
    except Exception as exc:
        if getattr(getattr(exc, "response", None), "status_code", None) != 409:
            get_run_logger().warning("event %s: could not mark the decision as taken in "
                                     "Prefect (%s); its delivery may be reported failed",
                                     event.id, exc)
