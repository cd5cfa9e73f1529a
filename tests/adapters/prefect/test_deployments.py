"""Flows of a deployment served by a real runner: suspension, and a run retried from Prefect."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .conftest import ENV, PREFECT_API, PREFECT_HOME
from .helpers import (
    events_with,
    hub_event,
    logged,
    prefect_input,
    prefect_post,
    respond,
    resume_in_prefect,
    wait_delivery,
    wait_for_state,
)

ROOT = Path(__file__).resolve().parents[3]
SERVED = Path(__file__).with_name("served_flows.py").relative_to(ROOT)


@pytest.fixture(scope="module")
def runner(prefect_hub: HubProcess, flow_token: str) -> Iterator[subprocess.Popen[bytes]]:
    """``serve()`` of the test flows in a subprocess, answering to the module's hub."""
    log = (PREFECT_HOME / "runner.log").open("a")
    env = {**os.environ, **ENV, "SIGNOFF_URL": prefect_hub.url, "SIGNOFF_TOKEN": flow_token}
    process = subprocess.Popen([sys.executable, str(SERVED)], cwd=ROOT, env=env, stdout=log,
                               stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for name in ("signoff-suspend", "signoff-short-pause"):
            _deployment(name, process)
        yield process
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        log.close()


def _deployment(flow_name: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the runner exited: {(PREFECT_HOME / 'runner.log').read_text()}")
        found = httpx.get(f"{PREFECT_API}/deployments/name/{flow_name}/test", timeout=10)
        if found.status_code == 200:
            return str(found.json()["id"])
        time.sleep(0.5)
    raise RuntimeError(f"deployment {flow_name}/test did not appear")


def _start(flow_name: str, out: Path) -> str:
    deployment = httpx.get(f"{PREFECT_API}/deployments/name/{flow_name}/test", timeout=10).json()
    created = prefect_post(f"/deployments/{deployment['id']}/create_flow_run",
                           {"parameters": {"out": str(out)}})
    return str(created["id"])


def _lines(out: Path) -> list[dict[str, Any]]:
    if not out.exists():
        return []
    return [json.loads(line) for line in out.read_text().splitlines()]


def _wait_final(flow_run_id: str, timeout: float = 180.0) -> str:
    deadline = time.monotonic() + timeout
    state: dict[str, Any] = {}
    while time.monotonic() < deadline:
        state = httpx.get(f"{PREFECT_API}/flow_runs/{flow_run_id}", timeout=10).json()["state"]
        if state and state["type"] in ("COMPLETED", "FAILED", "CRASHED", "CANCELLED"):
            return str(state["type"])
        time.sleep(0.3)
    raise AssertionError(f"flow run {flow_run_id} not finished in {timeout} s: {state}")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def test_suspended_flow_reruns_and_gets_the_same_event(runner: Any, prefect_hub: HubProcess,
                                                       tmp_path: Path) -> None:
    out = tmp_path / "suspend.jsonl"
    run_id = _start("signoff-suspend", out)
    event = find_event(prefect_hub, f"prefect:{run_id}:", timeout=180)
    assert event["source"]["params"]["mode"] == "suspend"
    suspended = wait_for_state(run_id, "PAUSED", timeout=120)
    assert suspended["state"]["name"] == "Suspended"
    # nothing holds the wait: the flow's process is gone
    (first,) = _lines(out)
    deadline = time.monotonic() + 30
    while _pid_alive(first["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _pid_alive(first["pid"])
    assert respond(prefect_hub, event["id"], 5).status_code == 200
    assert _wait_final(run_id) == "COMPLETED"
    lines = _lines(out)
    assert [line.get("start", line.get("value")) for line in lines] == [True, True, 5]
    assert [e["id"] for e in events_with(prefect_hub, f"prefect:{run_id}:")] == [event["id"]]
    # delivered at least once (a busy Prefect server may need the dispatcher's retry)
    assert wait_delivery(prefect_hub, event["id"], "delivered")["attempts"] >= 1
    # the re-run found the decision in the hub and marked it taken
    assert prefect_input(run_id, "signoff-signoff-1-taken") == {"event_id": event["id"]}


def test_suspended_flow_answered_in_prefect(runner: Any, prefect_hub: HubProcess,
                                            tmp_path: Path) -> None:
    out = tmp_path / "suspend-ui.jsonl"
    run_id = _start("signoff-suspend", out)
    event = find_event(prefect_hub, f"prefect:{run_id}:", timeout=180)
    wait_for_state(run_id, "PAUSED", timeout=120)
    assert resume_in_prefect(run_id, {"value": 8, "comment": "via Prefect"})["status"] == "ACCEPT"
    assert _wait_final(run_id) == "COMPLETED"
    assert _lines(out)[-1]["value"] == 8
    decision = hub_event(prefect_hub, event["id"])["decision"]
    assert (decision["value"], decision["channel"]) == (8, "prefect")
    assert decision["comment"].endswith(": via Prefect")


def test_run_retried_from_prefect_after_its_pause_timed_out(
        runner: Any, prefect_hub: HubProcess, tmp_path: Path) -> None:
    """Prefect fails a run whose pause timed out; retried from Prefect (as its CLI and UI do,
    with a forced Scheduled state) it asks the hub again and finds the same pending event.
    A forced state keeps the run's used pause keys, so Prefect would not pause it there
    again: the step waits for the hub directly, and says so in the run's log."""
    out = tmp_path / "retry.jsonl"
    run_id = _start("signoff-short-pause", out)
    event = find_event(prefect_hub, f"prefect:{run_id}:", timeout=180)
    assert _wait_final(run_id) == "FAILED"
    assert hub_event(prefect_hub, event["id"])["status"] == "pending"
    # the runner takes a run again only once it is done with the first attempt's process
    first = _lines(out)[0]
    deadline = time.monotonic() + 60
    while _pid_alive(first["pid"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    time.sleep(3)
    retried = prefect_post(f"/flow_runs/{run_id}/set_state", {
        "state": {"type": "SCHEDULED", "name": "AwaitingRetry"}, "force": True})
    assert retried["status"] == "ACCEPT", retried
    assert logged(run_id, "would not pause again; waiting for event", timeout=120)
    assert respond(prefect_hub, event["id"], True).status_code == 200
    assert _wait_final(run_id) == "COMPLETED"
    assert [line.get("start", line.get("value")) for line in _lines(out)] == [True, True, True]
    assert [e["id"] for e in events_with(prefect_hub, f"prefect:{run_id}:")] == [event["id"]]
    assert wait_delivery(prefect_hub, event["id"], "delivered")
