"""``examples/temporal_*.py`` run for real: against the dev server and a hub, answered through
the hub's API; the worker is killed (SIGKILL) while the workflow waits."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from temporalio.api.enums.v1 import EventType

from ...example_header import HeaderRun, header_commands
from ..scenarios import find_event
from .harness import Stack, address_of

ROOT = Path(__file__).resolve().parents[3]
EXAMPLE = ROOT / "examples" / "temporal_document_approval.py"


def example(stack: Stack, *args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "TEMPORAL_ADDRESS": address_of(stack.client),
           "TEMPORAL_TASK_QUEUE": stack.task_queue, "SIGNOFF_URL": stack.hub.url,
           "SIGNOFF_TOKEN": stack.token}
    return subprocess.Popen([sys.executable, str(EXAMPLE), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT)


def answer(stack: Stack, event: dict[str, object], value: object) -> None:
    answered = stack.api("POST", f"/events/{event['id']}/responses", json={"value": value})
    assert answered.status_code == 200, answered.text


@pytest.fixture
def idle(dev_shared: Stack) -> Iterator[Stack]:
    """The dev stack without the test's own worker: the example brings its own."""
    dev_shared.stop_worker()
    yield dev_shared


def test_example_runs_end_to_end(idle: Stack) -> None:
    workflow_id = f"example-{uuid.uuid4().hex[:8]}"
    process = example(idle, "run", "--doc", "DOC-7", "--approver", "alice", "--id", workflow_id)
    try:
        first = find_event(idle.hub, f"temporal:default:{workflow_id}:", timeout=60)
        assert first["name"] == "approve"
        assert first["assignees"] == ["alice"]
        assert first["context"]["risk"] == "low"
        assert first["recommendation"] is True
        assert first["source"]["params"]["signal"] == "signoff:approve"
        answer(idle, first, True)
        second = find_event(idle.hub, f"temporal:default:{workflow_id}:", timeout=60)
        while second["id"] == first["id"]:
            time.sleep(0.1)
            second = find_event(idle.hub, f"temporal:default:{workflow_id}:")
        assert second["name"] == "publish-to"
        answer(idle, second, "website")
        out, err = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == 0, err
    assert out.splitlines()[-1] == "DOC-7: approved, published to website"


def wait_until_waiting(stack: Stack, workflow_id: str, timeout: float = 30.0) -> None:
    """Until the workflow's history holds the completion of the activity that created its
    event: from then on it waits for the signal. The event is in the hub a moment earlier (the
    activity posts it, then reports to Temporal); a worker killed in between leaves the
    activity to its start-to-close timeout (2 minutes) before Temporal runs it again.
    """
    async def completed() -> bool:
        history = await stack.client.get_workflow_handle(workflow_id).fetch_history()
        return any(e.event_type == EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED
                   for e in history.events)

    deadline = time.monotonic() + timeout
    while not stack.loop.run(completed()):
        assert time.monotonic() < deadline, f"{workflow_id}: its create activity never completed"
        time.sleep(0.1)


def test_worker_killed_while_waiting(idle: Stack) -> None:
    """SIGKILL the only worker while the workflow waits; decide while no worker runs; a new
    worker replays the history and the workflow goes on to its next step."""
    workflow_id = f"killed-{uuid.uuid4().hex[:8]}"
    first_worker = example(idle, "worker")
    try:
        started = example(idle, "start", "--doc", "DOC-9", "--id", workflow_id)
        assert started.wait(60) == 0, started.stderr.read() if started.stderr else ""
        event = find_event(idle.hub, f"temporal:default:{workflow_id}:", timeout=60)
        wait_until_waiting(idle, workflow_id)
    finally:
        first_worker.send_signal(signal.SIGKILL)
        first_worker.wait(10)
    answer(idle, event, True)
    delivered = idle.wait_delivered(event["id"])
    assert [d["state"] for d in delivered["deliveries"]] == ["delivered"]
    second_worker = example(idle, "worker")
    try:
        follow_up = find_event(idle.hub, f"temporal:default:{workflow_id}:", timeout=60)
        deadline = time.monotonic() + 60
        while follow_up["id"] == event["id"] and time.monotonic() < deadline:
            time.sleep(0.1)
            follow_up = find_event(idle.hub, f"temporal:default:{workflow_id}:")
        assert follow_up["name"] == "publish-to"
        answer(idle, follow_up, "intranet")
        handle = idle.client.get_workflow_handle(workflow_id)
        assert idle.result(handle) == "DOC-9: approved, published to intranet"
    finally:
        second_worker.send_signal(signal.SIGTERM)
        second_worker.wait(20)


def test_example_runs_as_its_header_says(tmp_path: Path) -> None:
    """The header's lines, read from the example and run as written: a dev server, a hub with
    the Temporal resumer, a workflow token, the example; its log shows each inbox URL."""
    server, hub_line, token, run = header_commands(EXAMPLE)
    assert server.background and server.text.startswith("temporal server start-dev")
    assert hub_line.background and "SIGNOFF_RESUMERS__TEMPORAL__ADDRESS" in hub_line.text
    assert run.text.startswith("python examples/temporal_document_approval.py run")
    with HeaderRun(tmp_path, ports=(7233, 8233, 8765)) as shell:
        shell.start(server)
        shell.start(hub_line)
        shell.run(token)
        process = shell.start(run)
        hub = shell.hub()
        first = find_event(hub, "temporal:default:approve-DOC-7:", timeout=90)  # type: ignore[arg-type]
        assert first["name"] == "approve" and first["assignees"] == ["alice"]
        hub.answer(first["id"], True)
        deadline = time.monotonic() + 60
        second = first
        while second["id"] == first["id"]:
            assert time.monotonic() < deadline, "the follow-up question never came"
            time.sleep(0.1)
            second = find_event(hub, "temporal:default:approve-DOC-7:")  # type: ignore[arg-type]
        assert second["name"] == "publish-to"
        hub.answer(second["id"], "website")
        out, _ = process.communicate(timeout=90)
    assert process.returncode == 0, out
    assert "DOC-7: approved, published to website" in out.splitlines(), out
    for event in (first, second):  # the worker's log names each question's inbox page
        assert f"signoff: waiting for an answer in the inbox: {hub.url}/events/{event['id']}" \
            in out, out
