"""Flyte 2 local runs against a real hub: the shared scenarios, the plugin's call shape, the
ported seed example, a restart that finds its event again."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import flyte
import httpx
import pytest

from signoff.testing import HubProcess

from ...example_header import HeaderRun, header_commands
from ..scenarios import SCENARIOS, Outcome, Scenario, find_event, play
from . import tasks

ROOT = Path(__file__).resolve().parents[3]
ERRORS = {"Rejected": "rejected", "EventTimeout": "expired", "Cancelled": "cancelled"}


class LocalRun:
    """``flyte.with_runcontext(mode="local").run(...)`` in a background thread."""

    def __init__(self, task: Any, run_name: str, decode: bool = False, **inputs: Any) -> None:
        self.key_prefix = f"flyte2:local:local:{run_name}:"
        self.decode = decode
        self.box: dict[str, Any] = {}

        def go() -> None:
            try:
                run = flyte.with_runcontext(mode="local", name=run_name).run(task, **inputs)
                self.box["value"] = run.outputs()[0]
            except BaseException as exc:
                self.box["error"] = exc

        self.thread = threading.Thread(target=go, daemon=True)
        self.thread.start()

    def result(self, timeout: float) -> Outcome:
        self.thread.join(timeout)
        assert not self.thread.is_alive(), f"the run still goes after {timeout} s"
        if "error" in self.box:
            error = self.box["error"]
            # a local run re-raises a task's error as RuntimeUserError(code=<class name>)
            kind = ERRORS.get(getattr(error, "code", ""))
            if kind is None:
                raise error
            return Outcome(error=kind)
        value = self.box["value"]
        return Outcome(value=json.loads(value) if self.decode else value)


class Flyte2Driver:
    def start(self, scenario: Scenario, hub: HubProcess) -> LocalRun:
        run_name = f"scn-{scenario.name.replace('_', '-')}-{uuid.uuid4().hex[:6]}"
        return LocalRun(tasks.ask_step, run_name, decode=True, name=scenario.name,
                        spec=json.dumps(scenario.input), timeout=scenario.timeout or 0.0,
                        on_timeout=scenario.on_timeout)


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, module_flow: HubProcess) -> None:
    play(scenario, Flyte2Driver(), module_flow)


def _pending(hub: HubProcess, suffix: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        events = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending"},
                           headers=hub.headers()).json()["events"]
        found = [e for e in events if e["key"].endswith(suffix)]
        if found:
            return found[0]
        time.sleep(0.05)
    raise AssertionError(f"no pending event *{suffix}")


def _respond(hub: HubProcess, event: dict[str, Any], value: Any) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": value},
                      headers=hub.headers())


def test_the_plugins_call_shape_and_nested_tasks(flow: HubProcess) -> None:
    run = LocalRun(tasks.pipeline, "nightly-7", rows=4)
    threshold = _pending(flow, ":threshold")
    assert threshold["input"]["kind"] == "float"
    assert threshold["key"].startswith("flyte2:local:local:nightly-7:")
    refused = _respond(flow, threshold, "high")  # the plugin took any text; the hub does not
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "value"
    assert _respond(flow, threshold, 2).status_code == 200  # an int is a fine float
    go = _pending(flow, ":go")
    assert go["assignees"] == ["group:ops"] and go["prompt"] == "Ship with 8.0?"
    assert _respond(flow, go, True).status_code == 200
    assert run.result(60) == Outcome(value="shipped at 8.0")


def test_a_killed_and_restarted_run_finds_its_event(flow: HubProcess, tmp_path: Path) -> None:
    script = ("import flyte, sys; from tests.adapters.flyte2 import tasks; flyte.init(); "
              "r = flyte.with_runcontext(mode='local', name='restart-me').run("
              "tasks.ask_step, name='size', spec='{\"kind\": \"int\"}', timeout=0.0, "
              "on_timeout='fail'); print('OUT', r.outputs()[0])")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    event = _pending(flow, ":size")
    first.kill()  # the pod dies while it waits
    first.communicate()
    assert _respond(flow, event, 12).status_code == 200
    second = subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    assert "OUT 12" in second.stdout, second.stdout + second.stderr
    events = httpx.get(f"{flow.url}/api/v1/events", headers=flow.headers()).json()["events"]
    assert [e["id"] for e in events] == [event["id"]]  # nobody was asked twice


def test_the_ported_seed_example_runs_locally(flow: HubProcess) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    example = subprocess.Popen([sys.executable, str(ROOT / "examples/flyte_v2_hitl.py")],
                               cwd=ROOT, env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    event = _pending(flow, ":review_decision", timeout=120)
    assert event["input"]["kind"] == "bool"
    assert event["prompt"].startswith("Analysis found 3 anomalies with 87% confidence.")
    assert _respond(flow, event, False).status_code == 200
    out, _ = example.communicate(timeout=120)
    assert "Processing rejected by reviewer — pipeline halted." in out, out


def test_the_ported_seed_example_runs_as_its_header_says(tmp_path: Path) -> None:
    """The header's lines, read from the example and run as written: a hub, a workflow token,
    the example; the run's log shows the review's inbox URL."""
    hub_line, token, run = header_commands(ROOT / "examples/flyte_v2_hitl.py")
    assert hub_line.background and hub_line.text.startswith("signoff serve")
    assert run.text == "python examples/flyte_v2_hitl.py"
    with HeaderRun(tmp_path) as shell:
        shell.start(hub_line)
        shell.run(token)
        process = shell.start(run)
        hub = shell.hub()
        event = find_event(hub, "flyte2:", timeout=120)  # type: ignore[arg-type]
        assert event["input"]["kind"] == "bool"
        hub.answer(event["id"], True)
        out, _ = process.communicate(timeout=120)
    assert process.returncode == 0, out
    assert "Processing approved — continuing pipeline." in out, out
    unwrapped = "".join(out.split())  # a rich log wraps long lines when there is no terminal
    assert f"signoff:waitingforananswerintheinbox:{hub.url}/events/{event['id']}" \
        in unwrapped, out


def test_new_event_refuses_what_the_plugin_would_not_know() -> None:
    with pytest.raises(ValueError, match="scope: expected 'run'"):
        tasks.hitl.new_event("x", data_type=int, scope="task")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="give data_type or input"):
        tasks.hitl.new_event("x")


WAITING = "signoff: waiting for an answer in the inbox: "


class _Lines(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def test_the_task_log_shows_the_inbox_url_once(flow: HubProcess) -> None:
    # listen on the logger itself: Flyte's user logger may stop before the root logger
    logger, lines = logging.getLogger("flyte.user.signoff"), _Lines()
    logger.addHandler(lines)
    try:
        run = LocalRun(tasks.ask_step, f"visible-{uuid.uuid4().hex[:6]}", decode=True,
                       name="vis", spec=json.dumps({"kind": "approval"}), timeout=0.0,
                       on_timeout="reject")
        event = _pending(flow, ":vis")
        assert _respond(flow, event, True).status_code == 200
        assert run.result(60) == Outcome(value=True)
    finally:
        logger.removeHandler(lines)
    assert [line for line in lines.lines if WAITING in line] == [
        f"{WAITING}{flow.url}/events/{event['id']}"]


def test_the_event_links_the_run_in_the_flyte_console(monkeypatch: pytest.MonkeyPatch) -> None:
    from signoff.adapters.flyte.v2._event import run_link

    monkeypatch.setenv("SIGNOFF_FLYTE_CONSOLE_URL", "https://flyte.example/")
    assert run_link("ml", "development", "r1") == \
        "https://flyte.example/v2/domain/development/project/ml/runs/r1"
    assert run_link("local", "local", "r1") is None  # a local run has no console page


def test_no_hub_configured_fails_at_once_naming_the_setting(
        flow: HubProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNOFF_URL")
    started = time.monotonic()
    run = LocalRun(tasks.ask_step, f"nohub-{uuid.uuid4().hex[:6]}", decode=True, name="nohub",
                   spec=json.dumps({"kind": "approval"}), timeout=0.0, on_timeout="reject")
    run.thread.join(30)
    assert time.monotonic() - started < 30
    error = run.box.get("error")
    assert error is not None and "no signoff hub configured: set SIGNOFF_URL" in str(error), \
        repr(error)
