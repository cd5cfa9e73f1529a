"""``signoff.adapters.flyte.v2.new_condition`` in Flyte 2 local runs against a real hub: the
call shape and results of ``flyte.new_condition``, answered in signoff."""

from __future__ import annotations

import uuid

import httpx
import pytest

from signoff.testing import HubProcess

from ..scenarios import Outcome
from . import tasks
from .test_flyte2 import LocalRun, _pending, _respond


def _run(kind: str, timeout: float = 0.0, on_timeout: str = "fail") -> tuple[LocalRun, str]:
    name = f"c{uuid.uuid4().hex[:6]}"
    return LocalRun(tasks.condition_step, f"cond-{name}", decode=True, name=name, kind=kind,
                    timeout=timeout, on_timeout=on_timeout), name


def _error_code(run: LocalRun) -> str:
    run.thread.join(60)
    assert not run.thread.is_alive() and "error" in run.box, run.box
    return str(getattr(run.box["error"], "code", run.box["error"]))


def test_a_bool_condition_is_an_approval(module_flow: HubProcess) -> None:
    run, name = _run("bool")
    event = _pending(module_flow, f":{name}")
    assert event["input"]["kind"] == "approval" and event["prompt"] == f"Condition {name}?"
    assert event["context"]["description"] == "from the tests"
    assert _respond(module_flow, event, False).status_code == 200
    assert run.result(60) == Outcome(value=False)  # rejected: wait() returns False


def test_an_int_condition_takes_only_an_int(module_flow: HubProcess) -> None:
    run, name = _run("int")
    event = _pending(module_flow, f":{name}")
    refused = _respond(module_flow, event, "seven")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "value"
    assert _respond(module_flow, event, 7).status_code == 200
    assert run.result(60) == Outcome(value=7)


def test_a_float_condition_receives_a_float(module_flow: HubProcess) -> None:
    run, name = _run("float")
    assert _respond(module_flow, _pending(module_flow, f":{name}"), 2).status_code == 200
    run.thread.join(60)
    assert run.box["value"] == "2.0"  # int 2 from the reviewer, float 2.0 in the task


def test_the_timeout_raises_flytes_own_error(module_flow: HubProcess) -> None:
    run, name = _run("str", timeout=0.5)
    _pending(module_flow, f":{name}")
    assert _error_code(run) == "ConditionTimedoutError"


def test_a_rejected_typed_condition_fails_as_in_flyte(module_flow: HubProcess) -> None:
    run, name = _run("int", timeout=0.5, on_timeout="reject")  # the deadline rejects it
    _pending(module_flow, f":{name}")
    assert _error_code(run) == "ConditionFailedError"


def test_a_cancelled_condition_aborts_as_in_flyte(module_flow: HubProcess) -> None:
    run, name = _run("str")
    event = _pending(module_flow, f":{name}")
    cancelled = httpx.post(f"{module_flow.url}/api/v1/events/{event['id']}/cancel",
                           json={"comment": "not needed"}, headers=module_flow.headers())
    assert cancelled.status_code == 200, cancelled.text
    assert _error_code(run) == "ActionAbortedError"


def test_one_name_twice_in_a_task_makes_two_conditions(flow: HubProcess) -> None:
    run = LocalRun(tasks.two_conditions_one_name, f"twice-{uuid.uuid4().hex[:6]}")
    first = _pending(flow, ":count")
    assert _respond(flow, first, 1).status_code == 200
    second = _pending(flow, ":count-2")
    assert second["prompt"] == "Second count?" and second["id"] != first["id"]
    assert _respond(flow, second, 2).status_code == 200
    assert run.result(60) == Outcome(value="1+2")


def test_new_condition_refuses_what_flyte_refuses_and_webhooks() -> None:
    with pytest.raises(TypeError, match="Invalid data_type"):
        tasks.hitl.new_condition("x", data_type=list)  # type: ignore[type-var]
    with pytest.raises(ValueError, match="timeout: expected a positive duration"):
        tasks.hitl.new_condition("x", timeout=0)
    with pytest.raises(ValueError, match="webhook: not supported"):
        tasks.hitl.new_condition("x", webhook={"url": "https://example.com"})
    with pytest.raises(ValueError, match="prompt_type: expected"):
        tasks.hitl.new_condition("x", prompt_type="html")  # type: ignore[arg-type]
