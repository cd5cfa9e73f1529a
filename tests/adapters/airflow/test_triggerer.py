"""Under a real scheduler and triggerer: the triggerer imports the trigger by its classpath.

One Airflow deployment for the module (api-server, scheduler, dag-processor, triggerer; see
:mod:`.services`), two DAG runs side by side: the approval example (the token travels in the
trigger's kwargs, encrypted by Airflow) and a sensor that leaves the token in the triggerer's
environment, which a person then marks failed in Airflow (the trigger cancels the event).
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .harness import compile_site_packages, connection_env
from .services import AirflowServices


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory
               ) -> Iterator[tuple[AirflowServices, HubProcess, str]]:
    compile_site_packages()
    home = tmp_path_factory.mktemp("airflow-services")
    with HubProcess(home / "hub.db", env={"SIGNOFF_SWEEP_INTERVAL": "0.2"}) as hub:
        token = hub.token("airflow", role="workflow")
        env = {**connection_env(hub, token), "SIGNOFF_TOKEN": token}
        with AirflowServices(home, env=env) as services:
            yield services, hub, token


def _trigger_row(services: AirflowServices, ti_id: str) -> tuple[str, dict[str, Any], str]:
    """The trigger of a deferred task instance, from Airflow's own database: the classpath,
    the kwargs, and the text as stored."""
    with sqlite3.connect(services.home / "airflow.db") as db:
        classpath, stored = db.execute(
            "SELECT t.classpath, t.kwargs FROM trigger t JOIN task_instance ti "
            "ON ti.trigger_id = t.id WHERE ti.id = ?", (ti_id.replace("-", ""),)).fetchone() \
            or db.execute("SELECT t.classpath, t.kwargs FROM trigger t JOIN task_instance ti "
                          "ON ti.trigger_id = t.id WHERE ti.id = ?", (ti_id,)).fetchone()
    if stored.startswith("{"):  # Airflow 3.3 stores task deferrals' kwargs unencrypted
        kwargs = json.loads(stored)
    else:
        from cryptography.fernet import Fernet

        key = next(line.split("=", 1)[1].strip()
                   for line in (services.home / "airflow.cfg").read_text().splitlines()
                   if line.startswith("fernet_key"))
        kwargs = json.loads(Fernet(key.encode()).decrypt(stored.encode()))
    return classpath, kwargs, stored


def _wait_state(services: AirflowServices, dag_id: str, run_id: str, task_id: str,
                states: set[str], timeout: float = 240.0) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while True:
        ti = services.task_instance(dag_id, run_id, task_id)
        if ti["state"] in states:
            return ti
        assert time.monotonic() < deadline, f"{task_id} stayed {ti['state']}"
        time.sleep(0.5)


def _value(hub: HubProcess, event: dict[str, Any]) -> Any:
    return httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers()).json()


def test_the_triggerer_runs_the_trigger_from_its_classpath(
        deployment: tuple[AirflowServices, HubProcess, str]) -> None:
    services, hub, token = deployment
    services.wait_for_dag("signoff_approve_load")
    services.wait_for_dag("signoff_env_token")
    approval_run = services.trigger("signoff_approve_load")
    env_run = services.trigger("signoff_env_token")

    # the approval example: the trigger reads the connection itself; its stored arguments,
    # which Airflow keeps in clear, name the connection and hold no token
    event = find_event(hub, "airflow:signoff_approve_load:", timeout=240)
    ti = _wait_state(services, "signoff_approve_load", approval_run, "approve_load", {"deferred"})
    classpath, kwargs, stored = _trigger_row(services, ti["id"])
    assert classpath == "signoff.adapters.airflow.triggers.SignoffTrigger"
    assert kwargs["event_id"] == event["id"] and kwargs["hub_url"] == hub.url
    assert kwargs["conn_id"] == "signoff_default"
    assert kwargs["token"] is None and kwargs["token_env"] is None
    assert token not in stored
    # an approval ends the task in the triggerer; no pause before firing
    assert (kwargs["finish"], kwargs["settle_seconds"]) == ("approved", 0.0)
    assert event["source"]["link"] == (f"{services.url}/dags/signoff_approve_load/runs/"
                                       + approval_run.replace(":", "%3A").replace("+", "%2B")
                                       + "/tasks/approve_load")
    # answered as fast as a reviewer with the inbox open could
    answered = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                          json={"value": True, "comment": "go"}, headers=hub.headers())
    assert answered.status_code == 200, answered.text

    # the other run: only the variable's name rides along; the triggerer reads its own
    env_event = find_event(hub, "airflow:signoff_env_token:", timeout=240)
    env_ti = _wait_state(services, "signoff_env_token", env_run, "ask", {"deferred"})
    _, env_kwargs, env_stored = _trigger_row(services, env_ti["id"])
    assert env_kwargs["token_env"] == "SIGNOFF_TOKEN" and env_kwargs["conn_id"] is None
    assert token not in env_stored

    run = services.wait_run("signoff_approve_load", approval_run, timeout=240)
    assert run["state"] == "success"
    load = services.task_instance("signoff_approve_load", approval_run, "load")
    assert load["state"] == "success"
    # the task's own log, as the Airflow UI shows it, says where to answer, once
    task_log = _task_log(services, "signoff_approve_load", approval_run, "approve_load")
    assert task_log.count(f"signoff: waiting for an answer in the inbox: {hub.url}/events/"
                          f"{event['id']}") == 1, task_log[-3000:]
    log = _trigger_log(services, "signoff_approve_load", approval_run, "approve_load")
    assert "Trigger fired event" in log and "trigger completed" in log
    # ended by the trigger itself (TaskSuccessEvent), with the XComs the sensor would push
    assert "the task ends here" in log
    approve = services.task_instance("signoff_approve_load", approval_run, "approve_load")
    assert (approve["state"], approve["try_number"]) == ("success", 1)
    assert _xcom(services, "signoff_approve_load", approval_run, "approve_load",
                 "return_value") is True
    decided = _xcom(services, "signoff_approve_load", approval_run, "approve_load",
                    "signoff_decision")
    assert (decided["event_id"], decided["value"], decided["comment"]) == (event["id"], True,
                                                                           "go")

    # a person marks the waiting task failed in Airflow: the trigger cancels the event
    time.sleep(2)  # the trigger has started its long-poll
    marked = services.api("PATCH", f"/dags/signoff_env_token/dagRuns/{env_run}/taskInstances/ask",
                          json={"new_state": "failed"})
    assert marked.status_code == 200, marked.text
    deadline = time.monotonic() + 60
    while (found := _value(hub, env_event))["status"] == "pending":
        assert time.monotonic() < deadline, "the event was not cancelled"
        time.sleep(0.5)
    assert found["status"] == "cancelled"
    assert found["decision"]["comment"] == ("the Airflow task was cleared or marked by hand "
                                            "while waiting")


def _xcom(services: AirflowServices, dag_id: str, run_id: str, task_id: str, key: str) -> Any:
    answer = services.api("GET", f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}"
                                 f"/xcomEntries/{key}", params={"deserialize": "true"})
    assert answer.status_code == 200, answer.text
    return answer.json()["value"]


def _task_log(services: AirflowServices, dag_id: str, run_id: str, task_id: str) -> str:
    folder = Path(services.home, "logs", f"dag_id={dag_id}", f"run_id={run_id}",
                  f"task_id={task_id}")
    return "".join(p.read_text(errors="replace") for p in folder.glob("attempt=*.log")
                   if ".trigger." not in p.name)


def _trigger_log(services: AirflowServices, dag_id: str, run_id: str, task_id: str) -> str:
    folder = Path(services.home, "logs", f"dag_id={dag_id}", f"run_id={run_id}",
                  f"task_id={task_id}")
    return "".join(p.read_text(errors="replace") for p in folder.glob("*.trigger.*.log"))
