"""Every ``examples/airflow_*.py`` runs as its header says, line by line, read from the file:
Airflow's database, a hub, SIGNOFF_URL and a workflow token minted on the hub's database,
and ``airflow dags test``; the task log shows each inbox URL."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ...example_header import HeaderHub, HeaderRun, header_commands
from .harness import EXAMPLES, compile_site_packages

# each example -> how the reviewer answers each question (by input kind), and a line its
# run's log must show at the end
PLAYS: dict[str, tuple[dict[str, Any], str]] = {
    "airflow_approval.py": ({"approval": True}, "loaded 1234 rows"),
    "airflow_branch.py": ({"choice": "Canary (5%)"}, "deploy_canary"),
    "airflow_input.py": ({"int": 5000, "form": {"max_cost_usd": 12.5, "reason": "Q3 restatement"}},
                         "5000 rows for at most $12.50 (Q3 restatement)"),
}


def test_every_airflow_example_is_played() -> None:
    assert sorted(PLAYS) == sorted(p.name for p in EXAMPLES.glob("airflow_*.py"))


def _answer_all(hub: HeaderHub, answers: dict[str, Any], timeout: float = 300) -> list[str]:
    """Answer each question as it comes, by its input kind; the ids answered."""
    import httpx

    answered: list[str] = []
    deadline = time.monotonic() + timeout
    while len(answered) < len(answers):
        assert time.monotonic() < deadline, f"only {len(answered)} questions were asked"
        page = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending"},
                         headers=hub.headers(), timeout=10).json()
        for event in page["events"]:
            if event["id"] not in answered and (event["key"] or "").startswith("airflow:"):
                hub.answer(event["id"], answers[event["input"]["kind"]])
                answered.append(event["id"])
        time.sleep(0.2)
    return answered


@pytest.mark.parametrize("example", sorted(PLAYS))
def test_example_runs_as_its_header_says(example: str, tmp_path: Path) -> None:
    compile_site_packages()
    home, migrate, hub_line, connection, run = header_commands(EXAMPLES / example)
    assert home.text.startswith("export AIRFLOW_HOME=") and migrate.text == "airflow db migrate"
    assert hub_line.background and connection.text.startswith("export SIGNOFF_URL=")
    assert run.text.startswith("airflow dags test ")
    answers, last = PLAYS[example]
    with HeaderRun(tmp_path) as shell:
        shell.run(home)
        shell.run(migrate)
        shell.start(hub_line)
        shell.run(connection)
        process = shell.start(run)
        hub = shell.hub()
        answered = _answer_all(hub, answers)
        out, _ = process.communicate(timeout=300)
    assert process.returncode == 0, out[-5000:]
    assert last in out, out[-5000:]
    for event_id in answered:
        assert f"signoff: waiting for an answer in the inbox: {hub.url}/events/{event_id}" \
            in out, out[-5000:]
