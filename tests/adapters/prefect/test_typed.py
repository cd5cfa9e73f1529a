"""Typed answers: a pydantic model, an Enum, several choices, numbers, defaults."""

from __future__ import annotations

import enum
import time
from typing import Any, Literal

import pytest
from pydantic import BaseModel, Field, field_validator

from signoff import InvalidInput
from signoff.adapters.prefect import ask
from signoff.testing import HubProcess

from .helpers import (
    FlowThread,
    events_with,
    hub_event,
    prefect_input,
    respond,
    resume_in_prefect,
    wait_for_state,
)


class Owner(BaseModel):
    name: str
    team: Literal["ml", "platform"] = "ml"


class Release(BaseModel):
    version: str = Field(pattern=r"^\d+\.\d+$")
    replicas: int = Field(ge=1, le=5)
    owner: Owner


class Colour(enum.Enum):
    red = "red"
    green = "green"


class Strict(BaseModel):
    name: str

    @field_validator("name")
    @classmethod
    def _shouty(cls, name: str) -> str:
        if name != name.upper():
            raise ValueError("must be upper case")
        return name


def _pending(hub: HubProcess, prefix: str, step: str, timeout: float = 60) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in events_with(hub, prefix):
            if event["source"]["step"] == step and event["status"] == "pending":
                return event
        time.sleep(0.1)
    raise AssertionError(f"no pending event at {step}")


def test_pydantic_model_answer_returns_the_model(prefect_hub: HubProcess,
                                                 flow_token: str) -> None:
    def step() -> Release:
        return ask("Release settings?", input=Release, hub_url=prefect_hub.url,
                   hub_token=flow_token)

    run = FlowThread(step, name="typed-model").start()
    event = _pending(prefect_hub, run.key_prefix, "signoff-1")
    assert event["input"]["kind"] == "form"
    bad = respond(prefect_hub, event["id"],
                  {"version": "1.2", "replicas": 9, "owner": {"name": "ana"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "value.replicas"
    answer = {"version": "1.2", "replicas": 3, "owner": {"name": "ana", "team": "platform"}}
    assert respond(prefect_hub, event["id"], answer).status_code == 200
    result = run.result(60).value
    assert result == Release(version="1.2", replicas=3, owner=Owner(name="ana", team="platform"))
    # Prefect's form got the model's schema with its $refs inlined, so its UI can show it
    schema = prefect_input(run.flow_run_id, "paused-signoff-1-schema")
    value = schema["properties"]["value"]
    assert value["properties"]["owner"]["properties"]["team"]["enum"] == ["ml", "platform"]
    assert "$ref" not in str(value)
    assert value["properties"]["replicas"]["maximum"] == 5


def test_pydantic_model_answered_in_prefect(prefect_hub: HubProcess, flow_token: str) -> None:
    def step() -> Release:
        return ask("Release settings?", input=Release, hub_url=prefect_hub.url,
                   hub_token=flow_token)

    run = FlowThread(step, name="typed-model-ui").start()
    event = _pending(prefect_hub, run.key_prefix, "signoff-1")
    wait_for_state(run.flow_run_id, "PAUSED")
    refused = resume_in_prefect(run.flow_run_id, {"value": {"version": "one", "replicas": 1,
                                                            "owner": {"name": "x"}}})
    assert refused["status"] == "REJECT" and "version" in refused["details"]["reason"]
    accepted = resume_in_prefect(run.flow_run_id, {"value": {"version": "2.0", "replicas": 1,
                                                             "owner": {"name": "bo"}}})
    assert accepted["status"] == "ACCEPT"
    assert run.result(60).value == Release(version="2.0", replicas=1, owner=Owner(name="bo"))
    decision = hub_event(prefect_hub, event["id"])["decision"]
    assert decision["channel"] == "prefect"
    assert decision["value"] == {"version": "2.0", "replicas": 1, "owner": {"name": "bo"}}


def test_enum_choices_and_numbers(prefect_hub: HubProcess, flow_token: str) -> None:
    def step() -> tuple[Any, ...]:
        options = {"hub_url": prefect_hub.url, "hub_token": flow_token}
        colour = ask("Colour?", input=Colour, **options)
        regions = ask("Regions?", input=list[Literal["eu", "us", "ap"]], **options)
        share = ask("Traffic share?", input=float, **options)
        return colour, regions, share

    run = FlowThread(step, name="typed-many").start()
    for step_key, value in (("signoff-1", "green"), ("signoff-2", ["ap", "eu"]),
                            ("signoff-3", 1)):
        event = _pending(prefect_hub, run.key_prefix, step_key)
        assert respond(prefect_hub, event["id"], value).status_code == 200
    colour, regions, share = run.result(60).value
    assert colour is Colour.green
    assert regions == ["eu", "ap"]  # in the options' order, as the hub normalises
    assert share == 1.0 and isinstance(share, float)


def test_model_default_on_timeout(prefect_hub: HubProcess, flow_token: str) -> None:
    def step() -> Owner:
        return ask("Owner?", input=Owner, default=Owner(name="nobody"), timeout=1,
                   on_timeout="default", hub_url=prefect_hub.url, hub_token=flow_token)

    run = FlowThread(step, name="typed-default").start()
    assert run.result(60).value == Owner(name="nobody")


def test_answer_failing_the_models_validators_fails_the_step(prefect_hub: HubProcess,
                                                             flow_token: str) -> None:
    """A custom validator is not in the JSON schema: the hub accepts, the step says why."""
    def step() -> Strict:
        return ask("Name?", input=Strict, hub_url=prefect_hub.url, hub_token=flow_token)

    run = FlowThread(step, name="typed-validator").start()
    event = _pending(prefect_hub, run.key_prefix, "signoff-1")
    assert respond(prefect_hub, event["id"], {"name": "quiet"}).status_code == 200
    run.join(60)
    error = run.box["error"]
    assert isinstance(error, InvalidInput)
    assert error.field == "value.name" and "must be upper case" in str(error)


@pytest.mark.parametrize("spec, answer", [
    ({"kind": "text", "pattern": "v[0-9]+"}, "v12"),
    ({"kind": "bool"}, False),
])
def test_other_kinds(spec: dict[str, Any], answer: Any, prefect_hub: HubProcess,
                     flow_token: str) -> None:
    def step() -> Any:
        return ask("?", input=spec, hub_url=prefect_hub.url, hub_token=flow_token)

    run = FlowThread(step, name="typed-other").start()
    event = _pending(prefect_hub, run.key_prefix, "signoff-1")
    assert respond(prefect_hub, event["id"], answer).status_code == 200
    assert run.result(60).value == answer
