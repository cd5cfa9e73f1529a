"""Airflow-specific behaviour under real ``dag.test()`` runs against a real hub."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from signoff.testing import HubProcess, until
from tests.adapters.scenarios import find_event

from .harness import EXAMPLES, TEST_DAGS, DagTestRunner, connection_env

CASES = TEST_DAGS / "signoff_cases.py"


def _answer(hub: HubProcess, event: dict[str, Any], value: Any, comment: str | None = None
            ) -> None:
    answered = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                          json={"value": value, "comment": comment}, headers=hub.headers())
    assert answered.status_code == 200, answered.text


def _events(hub: HubProcess, prefix: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{hub.url}/api/v1/events", params={"limit": 500},
                     headers=hub.headers()).json()
    return [e for e in page["events"] if (e["key"] or "").startswith(prefix)]


def _workflow_env(hub: HubProcess) -> dict[str, str]:
    return connection_env(hub, hub.token("airflow", role="workflow"))


def test_example_approval_renders_templates_and_runs_load(hub: HubProcess,
                                                           runner: DagTestRunner) -> None:
    run = runner.submit(EXAMPLES / "airflow_approval.py", "signoff_approve_load",
                        env=_workflow_env(hub))
    event = find_event(hub, "airflow:signoff_approve_load:")
    assert event["prompt"].startswith("Load 20") and event["prompt"].endswith(" into prod?")
    assert "{{" not in event["prompt"]
    assert event["context"] == {"rows": "1234", "table": "sales.orders"}
    assert event["assignees"] == ["group:data-owners"]
    assert event["timeout"] == 8 * 3600
    assert event["source"]["orchestrator"] == "airflow"
    assert event["source"]["step"] == "approve_load"
    _answer(hub, event, True, "numbers look right")
    report = run.wait()
    assert report["state"] == "success"
    assert report["tasks"]["load"]["xcom"]["return_value"] == "loaded 1234 rows"
    decision = report["tasks"]["approve_load"]["xcom"]["signoff_decision"]
    assert decision["outcome"] == "approved" and decision["comment"] == "numbers look right"


def test_example_approval_runs_when_triggered_by_hand(hub: HubProcess,
                                                     runner: DagTestRunner) -> None:
    """Airflow 3 triggers a manual run with no logical date, so ``{{ ds }}`` is undefined
    there; the example's prompt uses the run's ``run_after`` and renders either way."""
    run = runner.submit(EXAMPLES / "airflow_approval.py", "signoff_approve_load",
                        env=_workflow_env(hub), manual=True)
    event = find_event(hub, "airflow:signoff_approve_load:manual__")
    assert re.fullmatch(r"Load 20\d\d-\d\d-\d\d into prod\?", event["prompt"]), event["prompt"]
    _answer(hub, event, True)
    report = run.wait()
    assert report["state"] == "success", report
    assert report["tasks"]["load"]["xcom"]["return_value"] == "loaded 1234 rows"


def test_example_branch_follows_the_chosen_task(hub: HubProcess, runner: DagTestRunner) -> None:
    run = runner.submit(EXAMPLES / "airflow_branch.py", "signoff_rollout", env=_workflow_env(hub))
    event = find_event(hub, "airflow:signoff_rollout:")
    assert event["input"]["kind"] == "choice"
    assert event["input"]["options"] == ["Canary (5%)", "Everywhere", "Hold"]
    assert event["prompt"] == "How should model churn-v3 be rolled out?"
    refused = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                         json={"value": "deploy_canary"}, headers=hub.headers())
    assert refused.status_code == 422  # the task id is not an option a reviewer sees
    _answer(hub, event, "Canary (5%)")
    report = run.wait()
    states = {task: info["state"] for task, info in report["tasks"].items()}
    assert states == {"rollout": "success", "deploy_canary": "success", "deploy_all": "skipped",
                      "hold": "skipped"}
    assert report["tasks"]["rollout"]["xcom"]["return_value"] == "deploy_canary"


def test_example_inputs_feed_the_downstream_task(hub: HubProcess, runner: DagTestRunner) -> None:
    run = runner.submit(EXAMPLES / "airflow_input.py", "signoff_backfill_inputs",
                        env=_workflow_env(hub))
    # two independent sensors: dag.test asks them one after the other, in either order
    answered: set[str] = set()
    deadline = time.monotonic() + 120
    while len(answered) < 2:
        assert time.monotonic() < deadline, f"only {len(answered)} of 2 questions were asked"
        for event in _events(hub, "airflow:signoff_backfill_inputs:"):
            if event["id"] in answered or event["status"] != "pending":
                continue
            if event["input"]["kind"] == "int":
                assert event["input"]["default"] == 1000 and event["on_timeout"] == "default"
                _answer(hub, event, 5000)
            else:
                assert event["input"]["kind"] == "form"
                refused = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                                     json={"value": {"max_cost_usd": -5, "reason": "why"}},
                                     headers=hub.headers())
                assert refused.status_code == 422, refused.text
                _answer(hub, event, {"max_cost_usd": 12.5, "reason": "Q3 restatement"})
            answered.add(event["id"])
        time.sleep(0.1)
    report = run.wait()
    assert report["tasks"]["backfill"]["xcom"]["return_value"] == \
        "5000 rows for at most $12.50 (Q3 restatement)"


def test_reject_with_on_reject_fail_fails_with_a_clear_message(hub: HubProcess,
                                                                runner: DagTestRunner) -> None:
    run = runner.submit(CASES, "signoff_reject_fails", env=_workflow_env(hub))
    event = find_event(hub, "airflow:signoff_reject_fails:")
    _answer(hub, event, False, "not on a Friday")
    report = run.wait()
    assert report["tasks"]["ask"]["state"] == "failed"
    assert report["tasks"]["ask"]["try_number"] == 1
    assert report["tasks"]["after"]["state"] == "upstream_failed"
    (failure,) = report["failures"]
    assert failure["type"] == "SignoffRejected"
    assert {"AirflowFailException", "Rejected"} <= set(failure["mro"])
    assert failure["message"] == (f"signoff: 'Ship it?' (signoff event {event['id']}) was "
                                  f"rejected by admin: not on a Friday")


def _retry(hub: HubProcess, runner: DagTestRunner, crash: str) -> dict[str, Any]:
    dag_id = f"signoff_retry_{crash}"
    run = runner.submit(CASES, dag_id, env=_workflow_env(hub))
    event = find_event(hub, f"airflow:{dag_id}:")
    if crash == "after_ask":
        # the first try died after asking: the second must find the same, still pending event
        deadline = time.monotonic() + 60
        while "Pausing task as DEFERRED" not in runner.log_text().split(event["id"])[-1]:
            assert time.monotonic() < deadline, "the retry never deferred"
            time.sleep(0.1)
    _answer(hub, event, True)
    report = run.wait()
    assert report["tasks"]["ask"]["state"] == "success"
    assert report["tasks"]["ask"]["try_number"] == 2
    assert report["tasks"]["after"]["state"] == "success"
    (only,) = _events(hub, f"airflow:{dag_id}:")  # nobody was asked twice
    assert only["id"] == event["id"] and len(only["responses"]) == 1
    assert report["tasks"]["ask"]["xcom"]["signoff_event"]["id"] == event["id"]
    return report


def test_retry_after_asking_reuses_the_pending_event(hub: HubProcess,
                                                      runner: DagTestRunner) -> None:
    report = _retry(hub, runner, "after_ask")
    assert [f["message"] for f in report["failures"]] == []  # a retried try is not a failure


def test_retry_after_the_decision_reuses_it_without_waiting(hub: HubProcess,
                                                             runner: DagTestRunner) -> None:
    _retry(hub, runner, "after_decision")
    assert "is already decided (approved)" in runner.log_text()


def test_hub_restarted_while_deferred(hub: HubProcess, runner: DagTestRunner) -> None:
    run = runner.submit(CASES, "signoff_restart", env=_workflow_env(hub))
    event = find_event(hub, "airflow:signoff_restart:")
    time.sleep(0.5)  # let the trigger's long-poll reach the hub
    hub.stop(kill=True)
    time.sleep(2.0)  # the trigger backs off while nothing listens
    hub.start()
    _answer(hub, event, 12)
    report = run.wait()
    assert report["tasks"]["ask"]["state"] == "success"
    assert report["tasks"]["ask"]["xcom"]["return_value"] == 12
    log = runner.log_text()
    assert "signoff hub unreachable, retrying with backoff" in log
    assert "signoff hub reachable again" in log


def test_trigger_enforces_its_own_deadline_when_the_hub_is_gone(hub: HubProcess,
                                                                 runner: DagTestRunner) -> None:
    run = runner.submit(CASES, "signoff_hub_gone", env=_workflow_env(hub))
    event = find_event(hub, "airflow:signoff_hub_gone:")
    hub.stop(kill=True)  # the hub's sweeper can no longer decide at the deadline
    started = time.monotonic()
    report = run.wait(120)
    assert time.monotonic() - started < 30
    assert report["tasks"]["ask"]["state"] == "failed"
    (failure,) = report["failures"]
    assert failure["type"] == "AirflowSensorTimeout"
    assert failure["message"].startswith(f"signoff: no decision for event {event['id']} from "
                                         f"{hub.url} by ")
    assert "last error: HubUnavailable" in failure["message"]


def test_token_from_the_environment_without_a_connection(hub: HubProcess,
                                                          runner: DagTestRunner) -> None:
    env = {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.token("airflow", role="workflow")}
    run = runner.submit(CASES, "signoff_env_token", env=env)
    event = find_event(hub, "airflow:signoff_env_token:")
    assert event["requested_by"] == "airflow"
    _answer(hub, event, True)
    assert run.wait()["tasks"]["ask"]["xcom"]["return_value"] is True


def test_no_hub_configured_fails_naming_the_connection(runner: DagTestRunner) -> None:
    """Not Airflow's AirflowNotFoundException (retried): one clear failure, no retry."""
    report = runner.submit(CASES, "signoff_no_hub").wait()
    (failure,) = report["failures"]
    assert failure["type"] == "SignoffNotConfigured"
    assert {"HubNotConfigured", "AirflowFailException"} <= set(failure["mro"])
    assert failure["message"].startswith(
        "no signoff hub configured: the Airflow connection 'signoff_default' is not defined; "
        "create it with `airflow connections add signoff_default --conn-type signoff "
        "--conn-host http://HUB:8765 --conn-password WORKFLOW_TOKEN`")
    assert failure["message"].endswith("or set SIGNOFF_URL and SIGNOFF_TOKEN for the task")
    assert report["tasks"]["ask"]["state"] == "failed"
    assert (failure["try_number"], report["tasks"]["ask"]["try_number"]) == (1, 1)


def test_a_connection_stored_in_airflows_database(hub: HubProcess, runner: DagTestRunner,
                                                  airflow_home: tuple[Path, dict[str, str]]
                                                  ) -> None:
    """``airflow connections add`` (Airflow's database, not the environment): the task and its
    in-process trigger both read it, as under ``airflow dags test``."""
    _, env = airflow_home
    added = subprocess.run(
        [sys.executable, "-m", "airflow", "connections", "add", "signoff_stored",
         "--conn-type", "signoff", "--conn-host", hub.url,
         "--conn-password", hub.token("airflow", role="workflow")],
        env=env, capture_output=True, text=True, timeout=300)
    assert added.returncode == 0, added.stdout + added.stderr
    run = runner.submit(CASES, "signoff_stored_connection")
    event = find_event(hub, "airflow:signoff_stored_connection:")
    _answer(hub, event, True)
    report = run.wait()
    assert report["state"] == "success", report
    assert report["tasks"]["ask"]["xcom"]["return_value"] is True


def test_a_refused_token_fails_without_retrying(hub: HubProcess, runner: DagTestRunner) -> None:
    report = runner.submit(CASES, "signoff_reject_fails",
                           env=connection_env(hub, "not-a-token")).wait()
    (failure,) = report["failures"]
    assert failure["type"] == "AirflowFailException"
    assert f"the signoff hub at {hub.url} (from connection 'signoff_default') refused the " \
           f"token" in failure["message"]


def test_mapped_sensor_asks_once_per_map_index(hub: HubProcess, runner: DagTestRunner) -> None:
    run = runner.submit(CASES, "signoff_mapped", env=_workflow_env(hub))
    deadline = time.monotonic() + 90
    answered: set[str] = set()
    while len(answered) < 2:
        assert time.monotonic() < deadline, "the mapped sensors did not ask"
        for event in _events(hub, "airflow:signoff_mapped:"):
            if event["id"] not in answered and event["status"] == "pending":
                _answer(hub, event, "a" if event["prompt"] == "first?" else "b")
                answered.add(event["id"])
        time.sleep(0.1)
    run.wait()
    keys = sorted(e["key"].rsplit(":", 1)[1] for e in _events(hub, "airflow:signoff_mapped:"))
    assert keys == ["0", "1"]
    steps = sorted(e["source"]["step"] for e in _events(hub, "airflow:signoff_mapped:"))
    assert steps == ["ask[0]", "ask[1]"]


def test_link_labels_priority_and_templated_context(hub: HubProcess,
                                                    runner: DagTestRunner) -> None:
    env = {**_workflow_env(hub), "AIRFLOW__API__BASE_URL": "https://airflow.example.com/"}
    run = runner.submit(CASES, "signoff_linked", env=env)
    event = find_event(hub, "airflow:signoff_linked:")
    run_id = event["source"]["params"]["run_id"]
    assert event["prompt"] == f"Run {run_id} of signoff_linked?"
    assert event["context"] == {"try": "1"}
    assert event["labels"] == {"team": "signoff_linked"}
    assert event["priority"] == "high"
    assert event["name"] == "signoff_linked.ask"
    assert event["key"] == f"airflow:signoff_linked:{run_id}:ask:-1"
    assert event["source"]["link"] == (
        "https://airflow.example.com/dags/signoff_linked/runs/"
        + run_id.replace(":", "%3A").replace("+", "%2B") + "/tasks/ask")
    # the task log shows where to answer, once per wait
    waiting = f"signoff: waiting for an answer in the inbox: {hub.url}/events/{event['id']}"
    until(lambda: waiting in runner.log_text(), what="the waiting line in the task log")
    _answer(hub, event, True)
    run.wait()
    assert runner.log_text().count(waiting) == 1


def test_a_decision_tampered_in_the_database_is_refused_by_the_task(
        hub: HubProcess, runner: DagTestRunner) -> None:
    """Issue 22: the first try got the hub's signed rejection and died; the retry finds the
    event decided, but the row now says approved: the signature does not match, the task fails
    instead of acting on it, and the hub audits the refusal."""
    import sqlite3

    earlier = len(runner.log_text())  # the runner's log holds the other tests' runs too
    run = runner.submit(CASES, "signoff_tampered", env=_workflow_env(hub))
    event = find_event(hub, "airflow:signoff_tampered:")
    _answer(hub, event, False, "no")
    deadline = time.monotonic() + 60  # the first try has the decision and died
    while "worker lost after the decision" not in runner.log_text()[earlier:]:
        assert time.monotonic() < deadline, "the first try never got the decision"
        time.sleep(0.05)
    with sqlite3.connect(hub.database) as db:  # what someone with the database could do
        changed = db.execute("UPDATE decisions SET value = 'true', outcome = 'approved'"
                             " WHERE event_id = ?", (event["id"],)).rowcount
    assert changed == 1
    report = run.wait()
    assert report["tasks"]["ask"]["state"] == "failed"
    assert report["tasks"]["ask"]["try_number"] == 2
    assert report["tasks"]["after"]["state"] == "upstream_failed"
    assert any(f["type"] == "DecisionUnverified" for f in report["failures"]), report["failures"]
    audit = httpx.get(f"{hub.url}/api/v1/events/{event['id']}/audit",
                      headers=hub.headers()).json()["entries"]
    assert "decision_refused" in [e["action"] for e in audit]
