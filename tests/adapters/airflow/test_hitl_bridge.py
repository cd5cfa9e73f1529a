"""The hub's Airflow HITL bridge against a real Airflow 3.3 (api-server, scheduler,
dag-processor, triggerer) whose DAGs use Airflow's own ``ApprovalOperator`` and
``HITLOperator``, and no signoff at all.

Airflow runs its simple auth manager with two users and known passwords (no all-admins
mode): ``signoff``, the user the bridge logs in as with ``POST /auth/token``, and ``alice``,
who answers one action in Airflow's own API. The hub is configured with a TOML file, as an
operator would.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from signoff.resumers import target_name
from signoff.testing import HubProcess, until
from tests.adapters.scenarios import find_event

from .harness import compile_site_packages
from .services import AirflowServices

DAGS = Path(__file__).resolve().parent / "hitl_dags"
PASSWORDS = {"signoff": "bridge-password-1", "alice": "alice-password-1"}


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[AirflowServices, HubProcess]]:
    compile_site_packages()
    home = tmp_path_factory.mktemp("airflow-hitl")
    (home / "passwords.json").write_text(json.dumps(PASSWORDS))
    env = {"AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "signoff:admin,alice:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json")}
    (home / "bridge-password").write_text(PASSWORDS["signoff"] + "\n")
    with AirflowServices(home, env=env, extra_dags=(DAGS / "signoff_native_hitl.py",),
                         login=("signoff", PASSWORDS["signoff"])) as services:
        config = home / "signoff.toml"
        config.write_text(
            f'egress_allow = ["http://127.0.0.1:{services.port}"]\n'
            'egress_allow_private = ["127.0.0.1/32"]\n'
            "sweep_interval = 0.2\n"
            "[airflow_hitl.local]\n"
            f'url = "{services.url}"\n'
            'username = "signoff"\n'
            f'password_file = "{home / "bridge-password"}"\n'
            "poll_interval = 0.5\n"
            '[airflow_hitl.local.labels]\nteam = "data"\n')
        with HubProcess(home / "hub.db", config=config) as hub:
            services.wait_for_dag("native_approval")
            services.wait_for_dag("native_input")
            services.wait_for_dag("native_timeout")
            yield services, hub


def _key_prefix(dag_id: str, run_id: str, task_id: str) -> str:
    return "airflow-hitl:" + target_name("local", dag_id, run_id, task_id) + "/"


def _event(hub: HubProcess, event_id: str) -> dict[str, Any]:
    answer = httpx.get(f"{hub.url}/api/v1/events/{event_id}", headers=hub.headers())
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


def _wait_task_ended(services: AirflowServices, dag_id: str, run_id: str,
                     task_id: str) -> dict[str, Any]:
    ti: dict[str, Any] = {}

    def ended() -> bool:
        ti.update(services.task_instance(dag_id, run_id, task_id))
        return ti["state"] in ("success", "failed", "skipped")

    until(ended, timeout=240, what=f"{task_id} to end")
    return ti


def _settled(event: dict[str, Any]) -> None:
    """Wait until ``settle_seconds`` (10 s) passed since the event's creation: then Airflow's
    scheduler has seen the exit of the worker that parked the task, and an answer, from signoff
    or from Airflow's own API, cannot race it (see docs/airflow.md)."""
    created = datetime.fromisoformat(event["created_at"])
    until(lambda: (datetime.now(timezone.utc) - created).total_seconds() > 10.2, timeout=30,
          what="the settle window to pass")


def _xcom(services: AirflowServices, dag_id: str, run_id: str, task_id: str) -> Any:
    answer = services.api("GET", f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
                                 f"/taskInstances/{task_id}/xcomEntries/return_value",
                          params={"deserialize": "true"})
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def test_an_approval_decided_in_signoff_continues_the_dag_run(
        deployment: tuple[AirflowServices, HubProcess]) -> None:
    services, hub = deployment
    run_id = services.trigger("native_approval")
    event = find_event(hub, _key_prefix("native_approval", run_id, "approve"), timeout=240)

    assert event["input"] == {"kind": "approval", "default": None}
    assert event["prompt"].startswith("Ship the ") and event["prompt"].endswith("Rows: 1,204")
    assert event["assignees"] == ["signoff", "alice"]
    assert event["requested_by"] == "airflow-hitl:local"
    assert event["labels"] == {"team": "data", "airflow_deployment": "local",
                               "airflow_dag": "native_approval", "airflow_task": "approve"}
    assert event["source"]["orchestrator"] == "airflow-hitl"
    assert event["source"]["link"] == (
        f"{services.url}/dags/native_approval/runs/{quote(run_id, safe='')}/tasks/approve"
        "/required_actions?map_index=-1")
    assert event["key"].endswith("/approve/-1/1")

    # alice answers in the inbox, with her signoff token
    alice = hub.token("alice")
    sent = time.monotonic()
    answered = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                          json={"value": True, "comment": "looks right"},
                          headers=hub.headers(alice))
    assert answered.status_code == 200, answered.text
    approve = _wait_task_ended(services, "native_approval", run_id, "approve")
    took = time.monotonic() - sent
    print(f"answered in signoff -> ApprovalOperator ended: {took:.2f} s")

    assert approve["state"] == "success"
    run = services.wait_run("native_approval", run_id, timeout=240)
    assert run["state"] == "success"
    assert services.task_instance("native_approval", run_id, "ship")["state"] == "success"
    result = _xcom(services, "native_approval", run_id, "approve")
    assert result["chosen_options"] == ["Approve"]
    assert result["responded_by_user"]["name"] == "signoff"  # the bridge's Airflow user
    decided = _event(hub, event["id"])
    assert decided["status"] == "decided"
    assert (decided["decision"]["outcome"], decided["decision"]["by"]) == ("approved", "alice")
    assert [d["state"] for d in decided["deliveries"]] == ["delivered"]


def test_an_input_answered_in_signoff_reaches_the_task(
        deployment: tuple[AirflowServices, HubProcess]) -> None:
    services, hub = deployment
    run_id = services.trigger("native_input")
    event = find_event(hub, _key_prefix("native_input", run_id, "pick"), timeout=240)

    assert event["input"]["kind"] == "form"
    schema = event["input"]["schema"]
    assert schema["properties"]["chosen_options"] == {"title": "Option",
                                                       "enum": ["small", "large"]}
    rows = schema["properties"]["rows"]
    assert (rows["type"], rows["minimum"], rows["default"]) == ("integer", 1, 100)
    assert rows["description"] == "rows to sample"
    assert schema["required"] == ["chosen_options"]
    assert event["assignees"] == []

    # a value outside the param's schema is refused by the hub, and nothing reaches Airflow
    refused = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                         json={"value": {"chosen_options": "large", "rows": 0}},
                         headers=hub.headers())
    assert refused.status_code == 422, refused.text
    assert "rows" in refused.text
    # answered once the settle window is over, as a person would: the answer goes out at once
    _settled(event)
    sent = time.monotonic()
    answered = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                          json={"value": {"chosen_options": "large", "rows": 500}},
                          headers=hub.headers())
    assert answered.status_code == 200, answered.text
    pick = _wait_task_ended(services, "native_input", run_id, "pick")
    print(f"answered in signoff after the settle window -> HITLOperator ended: "
          f"{time.monotonic() - sent:.2f} s")
    assert pick["state"] == "success"

    run = services.wait_run("native_input", run_id, timeout=240)
    assert run["state"] == "success"
    assert _xcom(services, "native_input", run_id, "use") == {"options": ["large"],
                                                              "rows": 500}


def test_an_answer_given_in_airflow_closes_the_event(
        deployment: tuple[AirflowServices, HubProcess]) -> None:
    services, hub = deployment
    run_id = services.trigger("native_approval")
    event = find_event(hub, _key_prefix("native_approval", run_id, "approve"), timeout=240)

    alice = services.token_of("alice", PASSWORDS["alice"])
    _settled(event)  # Airflow's own answer path races the parked worker's exit just the same
    sent = time.monotonic()
    rejected = services.api(
        "PATCH", f"/dags/native_approval/dagRuns/{quote(run_id, safe='')}/taskInstances/approve"
                 "/-1/hitlDetails", token=alice,
        json={"chosen_options": ["Reject"], "params_input": {}})
    assert rejected.status_code == 200, rejected.text

    until(lambda: _event(hub, event["id"])["status"] != "pending", timeout=60,
          what="the event to close")
    print(f"answered in Airflow -> signoff event closed: {time.monotonic() - sent:.2f} s")
    closed = _event(hub, event["id"])
    assert closed["status"] == "decided"
    decision = closed["decision"]
    assert decision["outcome"] == "rejected"
    assert (decision["value"], decision["by"], decision["channel"]) == (
        False, "airflow-hitl:alice", "airflow-hitl")
    assert (decision["verified"], decision["rule"], decision["relayed_from"]) == (
        False, "answered in Airflow", "airflow-hitl")
    assert closed["deliveries"] == []  # nothing goes back to Airflow

    # a late answer in signoff is refused: the event is decided
    late = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                      json={"value": True}, headers=hub.headers())
    assert late.status_code == 409, late.text
    run = services.wait_run("native_approval", run_id, timeout=240)
    assert services.task_instance("native_approval", run_id, "ship")["state"] == "skipped"
    assert run["state"] == "success"


def test_airflows_own_timeout_closes_the_event_with_its_defaults(
        deployment: tuple[AirflowServices, HubProcess]) -> None:
    services, hub = deployment
    run_id = services.trigger("native_timeout")
    event = find_event(hub, _key_prefix("native_timeout", run_id, "wait"), timeout=240)
    assert (event["input"]["kind"], event["input"]["default"]) == ("choice", "no")

    until(lambda: _event(hub, event["id"])["status"] != "pending", timeout=120,
          what="the event to close")
    decision = _event(hub, event["id"])["decision"]
    assert (decision["outcome"], decision["value"], decision["by"]) == (
        "timed_out", "no", "airflow-hitl:timeout")
    assert services.wait_run("native_timeout", run_id, timeout=240)["state"] == "success"


def test_a_task_marked_failed_in_airflow_cancels_the_event(
        deployment: tuple[AirflowServices, HubProcess]) -> None:
    services, hub = deployment
    run_id = services.trigger("native_input")
    event = find_event(hub, _key_prefix("native_input", run_id, "pick"), timeout=240)

    marked = services.api("PATCH", f"/dags/native_input/dagRuns/{quote(run_id, safe='')}"
                                   "/taskInstances/pick", json={"new_state": "failed"})
    assert marked.status_code == 200, marked.text
    until(lambda: _event(hub, event["id"])["status"] != "pending", timeout=60,
          what="the event to close")
    closed = _event(hub, event["id"])
    assert closed["status"] == "cancelled"
    assert (closed["decision"]["by"], closed["decision"]["channel"]) == ("airflow-hitl",
                                                                         "airflow-hitl")
    assert closed["decision"]["comment"] == ("the Airflow task is failed and no longer waits "
                                             "for an answer")
