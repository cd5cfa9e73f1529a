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
