"""Flyte 2 tasks the tests run locally (module level, as Flyte wants its tasks)."""

from __future__ import annotations

import json

import flyte

import signoff.adapters.flyte.v2 as hitl

env = flyte.TaskEnvironment(name="signoff-tests", depends_on=[hitl.env])


@env.task
async def ask_step(name: str, spec: str, timeout: float, on_timeout: str) -> str:
    """One event with the scenario's input spec; the answer as JSON."""
    event = await hitl.new_event.aio(name, input=json.loads(spec), prompt=f"Scenario {name}?",
                                     timeout_seconds=timeout or None,
                                     on_timeout=on_timeout)  # type: ignore[arg-type]
    return json.dumps(await event.wait.aio())


@env.task
def typed_step(rows: int) -> float:
    """The plugin's call shape in a sync task: a data_type, ``new_event(...)``, ``wait()``."""
    event = hitl.new_event("threshold", data_type=float, prompt=f"{rows} rows: threshold?",
                           timeout_seconds=600)
    return event.wait() * rows


@env.task
async def pipeline(rows: int) -> str:
    threshold = await typed_step.aio(rows=rows)
    ok = await hitl.new_event.aio("go", input={"kind": "approval"},
                                  prompt=f"Ship with {threshold}?", assignees=["group:ops"])
    return f"shipped at {threshold}" if await ok.wait.aio() else "held back"


TYPES = {"bool": bool, "int": int, "float": float, "str": str}


@env.task
async def condition_step(name: str, kind: str, timeout: float, on_timeout: str = "fail") -> str:
    """Code written against ``flyte.new_condition``, with only the import changed."""
    condition = await hitl.new_condition.aio(name, prompt=f"Condition {name}?",
                                             data_type=TYPES[kind], timeout=timeout or None,
                                             description="from the tests",
                                             on_timeout=on_timeout)  # type: ignore[arg-type]
    return json.dumps(await condition.wait.aio())


@env.task
def two_conditions_one_name() -> str:
    """The sync shape; one name twice in one task makes two conditions, as in Flyte."""
    first = hitl.new_condition("count", data_type=int, prompt="First count?")
    second = hitl.new_condition("count", data_type=int, prompt="Second count?")
    return f"{first.wait()}+{second.wait()}"
