"""Clear errors for misuse, and an import path that loads Prefect only when needed."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest
from prefect import task
from pydantic import ValidationError

import signoff.adapters.prefect as adapter
from signoff.adapters.prefect import NotInFlowRun, aapprove, approve, ask
from signoff.testing import HubProcess

from .helpers import FlowThread, events_with

# flows here run against the session's Prefect server: start it even when this file runs alone
pytestmark = pytest.mark.usefixtures("prefect_api")


def _in_flow(step: Any, **options: Any) -> BaseException:
    run = FlowThread(step, name="misuse", **options).start()
    run.join(60)
    error = run.box.get("error")
    assert error is not None, f"no error; returned {run.box.get('value')!r}"
    return error  # type: ignore[no-any-return]


def test_outside_a_flow_run() -> None:
    with pytest.raises(NotInFlowRun, match=r"approve\(\) must be called inside a Prefect flow"):
        approve("Ship?")
    with pytest.raises(NotInFlowRun, match=r"ask\(\) must be called inside"):
        ask("Name?")


def test_sync_step_in_an_async_flow_points_to_the_twin() -> None:
    async def step() -> bool:
        return approve("Ship?")

    error = _in_flow(step)
    assert isinstance(error, NotInFlowRun)
    assert "use await aapprove()" in str(error)


def test_suspend_without_a_deployment_creates_no_event(prefect_hub: HubProcess,
                                                       flow_token: str) -> None:
    def step() -> bool:
        return approve("Ship?", suspend=True, hub_url=prefect_hub.url, hub_token=flow_token)

    run = FlowThread(step, name="misuse-suspend").start()
    run.join(60)
    assert isinstance(run.box["error"], NotInFlowRun)
    assert "needs a flow run of a deployment" in str(run.box["error"])
    assert events_with(prefect_hub, run.key_prefix) == []


def test_suspend_in_a_task() -> None:
    @task
    def gate() -> bool:
        return approve("Ship?", suspend=True)

    error = _in_flow(lambda: gate())
    assert isinstance(error, NotInFlowRun) and "Prefect suspends only from the flow body" in str(
        error)


@pytest.mark.parametrize("arguments, message", [
    ({"key": "Deploy_Prod"}, "key: expected 1-100 lower-case letters, digits or dashes"),
    ({"poll_interval": 0}, "poll_interval: expected seconds above 0, got 0"),
    ({"pause_timeout": -1}, "pause_timeout: expected seconds above 0, got -1"),
    ({"context": [1, 2]}, "context: expected a dict or a pydantic model, got list"),
])
def test_bad_arguments_name_the_field(arguments: dict[str, Any], message: str) -> None:
    error = _in_flow(lambda: approve("Ship?", **arguments))
    assert isinstance(error, (ValueError, TypeError)) and message in str(error), error


def test_bad_input_and_prompt() -> None:
    error = _in_flow(lambda: ask("Which?", input=object))
    assert isinstance(error, TypeError) and "input: expected bool, int" in str(error)
    error = _in_flow(lambda: ask("  ", input=int))
    assert isinstance(error, ValueError) and "prompt: expected the question" in str(error)
    error = _in_flow(lambda: ask("N?", input=int, on_timeout="default", timeout=5))
    assert isinstance(error, ValidationError) and "on_timeout 'default' needs input.default" in \
        str(error)


def test_poll_interval_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_PREFECT_POLL_INTERVAL", "soon")
    error = _in_flow(lambda: approve("Ship?"))
    assert "SIGNOFF_PREFECT_POLL_INTERVAL: expected seconds, got 'soon'" in str(error)


def test_async_twin_outside_a_flow() -> None:
    import asyncio

    with pytest.raises(NotInFlowRun, match=r"aapprove\(\) must be called inside"):
        asyncio.run(aapprove("Ship?"))


def test_all_is_honest() -> None:
    for name in adapter.__all__:
        assert getattr(adapter, name) is not None, name
    assert sorted(dir(adapter)) == sorted(adapter.__all__)
    with pytest.raises(AttributeError):
        adapter.no_such_name  # noqa: B018


def _fresh(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)


def test_signoff_and_the_resumer_load_no_prefect() -> None:
    done = _fresh(
        "import sys, signoff, signoff.adapters.prefect, signoff.adapters.prefect.resumer\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('prefect', 'fastapi')))")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_missing_prefect_names_the_extra() -> None:
    done = _fresh(
        "import sys\nsys.modules['prefect'] = None\n"
        "from signoff.adapters.prefect.resumer import PrefectResumer\n"
        "try:\n    from signoff.adapters.prefect import approve\n"
        "except ImportError as exc:\n    print(type(exc).__name__, exc)\n")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == ("MissingExtra signoff.adapters.prefect.approve needs Prefect: "
                                   "pip install 'signoff[prefect]'")
