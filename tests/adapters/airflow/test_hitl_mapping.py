"""The Airflow HITL bridge's mapping, without Airflow: actions in Airflow's own response shape
(``HITLDetail`` as Airflow 3.3.2's REST API returns it) to events, and decisions to answers.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from signoff import Decision, Event
from signoff._model import Outcome
from signoff.hub.bridges.airflow_config import AirflowDeployment
from signoff.hub.bridges.airflow_mapping import (
    HitlDetail,
    answer_for,
    event_for,
    event_key,
    value_of_response,
)
from signoff.hub.settings import Settings

CONFIG = AirflowDeployment(url="https://airflow.example.com", username="signoff",
                           password="secret", assignees=["group:ops"], users={"7": "bob"})
NOW = datetime(2026, 12, 2, tzinfo=timezone.utc)


def _detail(**fields: Any) -> HitlDetail:
    """An action as Airflow's ``GET .../hitlDetails`` returns it (the fields the bridge reads
    and some it ignores)."""
    body: dict[str, Any] = {
        "options": ["Approve", "Reject"], "subject": "Ship it?", "body": None, "defaults": None,
        "multiple": False, "params": {}, "assigned_users": [], "created_at": NOW.isoformat(),
        "responded_by_user": None, "responded_at": None, "chosen_options": None,
        "params_input": {}, "response_received": False,
        "task_instance": {"id": "0199", "task_id": "approve", "dag_id": "ship",
                          "dag_run_id": "manual__2026-12-02T10:00:00+00:00", "map_index": -1,
                          "try_number": 1, "state": "awaiting_input", "pool": "default_pool",
                          "dag_display_name": "ship", "task_display_name": "approve"}}
    body.update(fields)
    return HitlDetail.model_validate(body)


def _decided(detail: HitlDetail, value: Any, outcome: Outcome) -> Event:
    created = event_for("prod", CONFIG, detail)
    return Event.model_construct(**dict(created), decision=Decision(
        value=value, outcome=outcome, by="alice", at=NOW))


def test_an_approval_operator_is_an_approval() -> None:
    detail = _detail(defaults=["Reject"], assigned_users=[{"id": "7", "name": "robert"},
                                                         {"id": "8", "name": "carol"}])
    event = event_for("prod", CONFIG, detail)
    assert event.input.kind == "approval" and event.input.default is False
    assert event.assignees == ["bob", "carol"]  # by the users map, else the Airflow name
    assert event.key == ("airflow-hitl:prod/ship/manual__2026-12-02T10%3A00%3A00%2B00%3A00/"
                         "approve/-1/1")
    assert event.source.link == ("https://airflow.example.com/dags/ship/runs/manual__2026-12-"
                                 "02T10%3A00%3A00%2B00%3A00/tasks/approve/required_actions"
                                 "?map_index=-1")
    assert answer_for(_decided(detail, True, Outcome.approved)) == (["Approve"], {})
    assert answer_for(_decided(detail, False, Outcome.rejected)) == (["Reject"], {})
    assert answer_for(_decided(detail, None, Outcome.cancelled)) is None  # nothing to send
    answered = _detail(response_received=True, chosen_options=["Reject"])
    assert value_of_response(event_for("prod", CONFIG, detail), answered) is False


def test_options_are_a_choice_or_a_multichoice() -> None:
    one = _detail(options=["canary", "all", "hold"], defaults=["hold"])
    event = event_for("prod", CONFIG, one)
    assert (event.input.kind, event.input.options, event.input.default) == (
        "choice", ["canary", "all", "hold"], "hold")
    assert event.assignees == ["group:ops"]  # no assigned users: the deployment's
    assert answer_for(_decided(one, "all", Outcome.answered)) == (["all"], {})
    with pytest.raises(ValueError, match="no Reject option"):
        answer_for(_decided(one, None, Outcome.rejected))

    many = _detail(options=["eu", "us", "ap"], multiple=True)
    event = event_for("prod", CONFIG, many)
    assert (event.input.kind, event.input.min_selected) == ("multichoice", 1)
    assert answer_for(_decided(many, ["eu", "ap"], Outcome.answered)) == (["eu", "ap"], {})


def test_params_are_a_form_and_every_param_is_sent() -> None:
    params = {"rows": {"value": 100, "description": "rows", "schema": {"type": "integer"}},
              "note": {"value": None, "description": None, "schema": {"type": "string"}}}
    entry = _detail(options=["OK"], defaults=["OK"], params=params)
    schema = event_for("prod", CONFIG, entry).input.schema_
    assert list(schema["properties"]) == ["rows", "note"]  # one option: nothing to choose
    assert schema["required"] == ["note"]  # rows has a default
    assert answer_for(_decided(entry, {"note": "hi"}, Outcome.answered)) == (
        ["OK"], {"rows": 100, "note": "hi"})

    pick = _detail(options=["small", "large"], params=params)
    assert answer_for(_decided(pick, {"chosen_options": "large", "rows": 5, "note": ""},
                               Outcome.answered)) == (["large"], {"rows": 5, "note": ""})
    answered = _detail(options=["small", "large"], params=params, response_received=True,
                       chosen_options=["small"], params_input={"rows": 9, "note": "x"})
    assert value_of_response(event_for("prod", CONFIG, pick), answered) == {
        "chosen_options": "small", "rows": 9, "note": "x"}

    hidden = _detail(options=["a", "b"], params={"chosen_options": {"value": 1}})
    with pytest.raises(ValueError, match="params.chosen_options"):
        event_for("prod", CONFIG, hidden)


def test_a_long_key_is_hashed_within_the_limit() -> None:
    detail = _detail()
    ti = detail.task_instance.model_copy(update={"dag_id": "d" * 250, "dag_run_id": "r" * 250})
    key = event_key("prod", ti)
    assert len(key) <= 500 and key.startswith("airflow-hitl:prod:sha256:")


def test_a_response_of_another_shape_is_refused_naming_the_field() -> None:
    with pytest.raises(ValidationError, match="task_instance"):
        HitlDetail.model_validate({"options": ["a"], "subject": "s",
                                   "created_at": NOW.isoformat()})
    with pytest.raises(ValidationError, match="options"):
        _detail(options=[])


@pytest.mark.parametrize(("fields", "message"), [
    ({"username": "u"}, "expected one credential"),
    ({"password": "p"}, "needs the username"),
    ({"token": "t", "username": "u", "password": "p"}, "expected one credential"),
    ({"url": "ftp://airflow", "token": "t"}, "url"),
])
def test_a_deployment_without_one_clear_credential_is_refused(fields: dict[str, Any],
                                                              message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings(airflow_hitl={"prod": {"url": "https://airflow.example.com", **fields}})
    with pytest.raises(ValidationError, match="airflow_hitl"):
        Settings(airflow_hitl={"Bad Name": {"url": "https://a.example.com", "token": "t"}})
