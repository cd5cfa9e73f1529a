"""Every ``examples/prefect_*.py`` runs here, as a user runs it: a script against a real
Prefect server and a real hub, answered through the hub's API."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess

from ...example_header import HeaderRun, header_commands
from ..scenarios import find_event
from .conftest import ENV
from .helpers import respond

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted(p.name for p in (ROOT / "examples").glob("prefect_*.py"))

# name of each example -> what the reviewer answers, step by step, and the last line it prints
PLAYS: dict[str, tuple[list[tuple[str, Any]], str]] = {
    "prefect_release.py": (
        [("release/signoff-1", True),
         ("release/signoff-2", {"title": "Churn v3 GA", "traffic": "25%", "replicas": 3})],
        "deployed churn-v3 to 25% of traffic on 3 replicas (Churn v3 GA)"),
    "prefect_async.py": (
        [("backfill/signoff-1", 3), ("backfill/signoff-2", True)],
        "backfilled 3 days of sales.orders"),
}


def test_every_example_is_played() -> None:
    assert sorted(PLAYS) == EXAMPLES


def _pending(hub: HubProcess, name: str, timeout: float = 180.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending"},
                         headers=hub.headers(), timeout=10).json()
        for event in page["events"]:
            if event["name"] == name:
                return event  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"no pending event {name} in {timeout} s")


@pytest.mark.parametrize("example", EXAMPLES)
def test_example(example: str, prefect_hub: HubProcess, flow_token: str) -> None:
    steps, last_line = PLAYS[example]
    env = {**os.environ, **ENV, "SIGNOFF_URL": prefect_hub.url, "SIGNOFF_TOKEN": flow_token}
    process = subprocess.Popen([sys.executable, f"examples/{example}"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        for name, answer in steps:
            event = _pending(prefect_hub, name)
            assert event["source"]["orchestrator"] == "prefect"
            assert respond(prefect_hub, event["id"], answer).status_code == 200
        out, err = process.communicate(timeout=180)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0, err[-3000:]
    assert out.strip().splitlines()[-1] == last_line


# the example's own environment: a Prefect home of its own, and none of the session's settings
_HEADER_ENV = {k: v for k, v in ENV.items()
               if k not in ("PREFECT_HOME", "PREFECT_API_URL", "PREFECT_UI_URL",
                            "PREFECT_LOGGING_LEVEL")}


@pytest.mark.parametrize("example", EXAMPLES)
def test_example_runs_as_its_header_says(example: str, tmp_path: Path) -> None:
    """The header's lines, read from the example and run as written: a Prefect server, a hub
    with the Prefect resumer, a workflow token, the example; the flow's log shows each inbox
    URL, and each event links back to its flow run in Prefect's UI."""
    server, api, hub_line, token, run = header_commands(ROOT / "examples" / example)
    assert server.background and server.text.startswith("prefect server start")
    assert hub_line.background and "SIGNOFF_RESUMERS__PREFECT__API_URL" in hub_line.text
    assert run.text.startswith(f"python examples/{example}")
    steps, last_line = PLAYS[example]
    env = {**_HEADER_ENV, "PREFECT_HOME": str(tmp_path / "prefect-home")}
    with HeaderRun(tmp_path, ports=(4200, 8765), env=env) as shell:
        shell.start(server, timeout=180)
        shell.run(api)
        shell.start(hub_line)
        shell.run(token)
        process = shell.start(run)
        hub = shell.hub()
        seen = []
        for name, answer in steps:
            event = find_event(hub, "prefect:", timeout=180)  # type: ignore[arg-type]
            deadline = time.monotonic() + 120
            while event["name"] != name or event["status"] != "pending":
                assert time.monotonic() < deadline, f"{name} was never asked"
                time.sleep(0.2)
                event = find_event(hub, "prefect:")  # type: ignore[arg-type]
            assert event["source"]["link"].startswith(f"http://127.0.0.1:{shell.port(4200)}/")
            hub.answer(event["id"], answer)
            seen.append(event)
        out, _ = process.communicate(timeout=180)
    assert process.returncode == 0, out
    assert last_line in out.splitlines(), out
    for event in seen:  # the flow run's log names each question's inbox page
        assert f"signoff: waiting for an answer in the inbox: {hub.url}/events/{event['id']}" \
            in out, out
