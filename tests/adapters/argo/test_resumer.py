"""The hub's ArgoResumer, played through the real hub against the fake Argo Server."""

from __future__ import annotations

import json
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import BaseModel

from signoff.adapters.argo import HubConnection, approval, input_step, standalone_workflow
from signoff.testing import HubProcess
from tests.adapters.scenarios import find_event

from .conftest import NAMESPACE, ArgoWorld, hub_env
from .fake_argo import FakeArgoServer
from .fake_controller import FakeController
from .helpers import answer, calls_for, delivery, outputs


@pytest.fixture(scope="session")
def reviewer(argo_world: ArgoWorld) -> str:
    return argo_world.hub.token("alice", role="reviewer")


def test_approve_sets_outputs_phase_and_message(argo_world: ArgoWorld, reviewer: str) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection(), timeout=600)
    run = argo_world.run(standalone_workflow(gate), "approve")
    event = answer(argo_world, run, True, "ship it", token=reviewer)
    node = run.finished(20)
    assert node["phase"] == "Succeeded"
    assert outputs(node) == {"value": "true", "outcome": "approved"}
    assert node["message"] == (f"Resumed by: alice (signoff: approved: ship it; "
                               f"event {event['id']})")
    assert delivery(argo_world, event["id"], "delivered")["attempts"] == 1
    (call,) = calls_for(argo_world, run, "/set")
    assert call.body["nodeFieldSelector"] == f"inputs.parameters.signoff-event.value={event['id']}"
    assert call.authorization == f"Bearer {argo_world.argo.token}"


def test_reject_fails_the_node_by_default(argo_world: ArgoWorld, reviewer: str) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    event = answer(argo_world, run, False, "not today", token=reviewer)
    node = run.finished(20)
    assert node["phase"] == "Failed"
    assert outputs(node) == {"value": "false", "outcome": "rejected"}
    assert node["message"].startswith("Resumed by: alice (signoff: rejected: not today; ")
    delivery(argo_world, event["id"], "delivered")


class Release(BaseModel):
    version: str
    replicas: int


@pytest.mark.parametrize(("spec", "given", "expected"), [
    ({"kind": "int", "min": 1, "max": 9}, 7, "7"),
    ({"kind": "float"}, 0.25, "0.25"),
    ({"kind": "text"}, 'say "hi"\nnow', 'say "hi"\nnow'),
    ({"kind": "multichoice", "options": ["eu", "us", "ap"]}, ["us", "eu"], '["eu","us"]'),
    (Release, {"version": "3.1", "replicas": 2}, '{"version":"3.1","replicas":2}'),
], ids=["int", "float", "text", "multichoice", "form"])
def test_typed_values_arrive_as_strings(argo_world: ArgoWorld, spec: Any, given: Any,
                                        expected: str) -> None:
    gate = input_step("ask", "Which?", input=spec, hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "ask")
    answer(argo_world, run, given)
    node = run.finished(20)
    assert (node["phase"], outputs(node)) == ("Succeeded",
                                              {"value": expected, "outcome": "answered"})


def test_choice_has_an_enum_and_delivers_the_option(argo_world: ArgoWorld) -> None:
    gate = input_step("color", "Color?", input={"kind": "choice", "options": ["blue", "green"]},
                      hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "color")
    waiting = run.wait_node()
    value_input = next(p for p in waiting["inputs"]["parameters"] if p["name"] == "value")
    assert value_input["enum"] == ["blue", "green"]
    answer(argo_world, run, "green")
    assert outputs(run.finished(20)) == {"value": "green", "outcome": "answered"}


def test_server_down_then_up_is_retried_until_delivered(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    argo_world.argo.stop()
    try:
        event = answer(argo_world, run, True)
        deadline = time.monotonic() + 15
        while True:
            state = httpx.get(f"{argo_world.hub.url}/api/v1/events/{event['id']}",
                              headers=argo_world.hub.headers()).json()["deliveries"][0]
            if state["attempts"] >= 2:
                break
            assert time.monotonic() < deadline, state
            time.sleep(0.1)
        assert state["state"] == "pending"
        assert "ConnectError" in state["last_error"]
        assert run.wait_node()["phase"] == "Running"
    finally:
        argo_world.argo.start()
    done = delivery(argo_world, event["id"], "delivered")
    assert done["attempts"] >= 3
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}


def test_a_5xx_is_retried(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    argo_world.argo.inject.append((503, {"code": 14, "message": "upstream connect error"}))
    event = answer(argo_world, run, True)
    delivery(argo_world, event["id"], "delivered")
    assert [c.status for c in calls_for(argo_world, run, "/set")] == [503, 200]


def test_deleted_workflow_is_a_failed_delivery_with_argos_message(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    name = run.workflow["metadata"]["name"]
    with argo_world.argo.lock:
        del argo_world.argo.workflows[(NAMESPACE, name)]
    event = answer(argo_world, run, True)
    failed = delivery(argo_world, event["id"], "failed")
    assert failed["last_error"] == (f"Argo Server answered 404 to set on workflow "
                                    f"{NAMESPACE}/{name}: workflows.argoproj.io \"{name}\" "
                                    f"not found")


def test_wrong_argo_token_is_a_failed_delivery(argo_world: ArgoWorld, tmp_path: Path) -> None:
    env = hub_env(argo_world.argo) | {"SIGNOFF_RESUMERS__ARGO__TOKEN": "stale"}
    with HubProcess(tmp_path / "hub.db", env=env) as hub:
        token = hub.token("argo-workflows", role="workflow")
        argo_world.argo.secrets[(NAMESPACE, "other-token")] = {"authorization": f"Bearer {token}"}
        from signoff.adapters.argo import HubConnection

        gate = approval("approve", "Release?",
                        hub=HubConnection(url=hub.url, token_secret="other-token"))
        run = argo_world.run(standalone_workflow(gate), "approve")
        event = find_event(hub, run.key, timeout=30)
        httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": True},
                   headers=hub.headers()).raise_for_status()
        failed = delivery(argo_world, event["id"], "failed", hub=hub)
        assert failed["last_error"].startswith("Argo Server answered 401 to set")
        assert "token not valid" in failed["last_error"]
        assert run.wait_node()["phase"] == "Running"


def test_argo_timeout_keeps_the_rejection_default_and_the_hub_says_so(
        argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection(), timeout=600)
    manifest = standalone_workflow(gate)
    wait = next(t for t in manifest["spec"]["templates"] if t["name"] == "approve-wait")
    assert wait["suspend"]["duration"] == "660"  # the hub's deadline plus the grace
    wait["suspend"]["duration"] = "1"  # as if the hub's decision never came in time
    run = argo_world.run(manifest, "approve")
    node = run.finished(10)
    assert (node["phase"], outputs(node)) == ("Succeeded",
                                              {"value": "false", "outcome": "unanswered"})
    event = answer(argo_world, run, True)
    failed = delivery(argo_world, event["id"], "failed")
    assert "already ended (Succeeded" in failed["last_error"]
    assert "Argo's duration ran out" in failed["last_error"]


def test_decision_before_the_node_waits_is_delivered_once_it_does(
        argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    hold = threading.Event()
    workflow = argo_world.argo.submit(standalone_workflow(gate), NAMESPACE)
    run = argo_world.controller.start_gate(workflow, "approve", hold=hold)
    assert run.registered.wait(30)
    event = answer(argo_world, run, True)
    pending = delivery(argo_world, event["id"], "pending")
    while pending["attempts"] < 1:
        pending = delivery(argo_world, event["id"], "pending")
    assert "has not reached it" in pending["last_error"]
    hold.set()
    delivery(argo_world, event["id"], "delivered")
    assert outputs(run.finished(20))["value"] == "true"
    statuses = [(c.method, c.status) for c in calls_for(argo_world, run)]
    assert ("PUT", 500) in statuses and ("GET", 200) in statuses
    assert statuses[-1] == ("PUT", 200)


def test_inside_a_loop_only_the_decided_iteration_moves(argo_world: ArgoWorld) -> None:
    from hera.workflows import Steps, Workflow

    with Workflow(generate_name="deploy-", entrypoint="main") as w:
        gate = approval("approve", "Deploy to {{inputs.parameters.region}}?",
                        hub=argo_world.hub_connection(), parameters=["region"])
        with Steps(name="main"):
            gate.step(arguments={"region": "{{item}}"}, with_items=["eu", 'us "east"'])
    workflow = argo_world.argo.submit(w.to_dict(), NAMESPACE)
    runs = [argo_world.controller.start_gate(workflow, "approve", item=(i, region))
            for i, region in enumerate(["eu", 'us "east"'])]
    east = answer(argo_world, runs[1], True)
    assert east["prompt"] == 'Deploy to us "east"?'
    assert east["key"].endswith('[0].approve(1:us "east")')
    assert runs[1].finished(20)["phase"] == "Succeeded"
    assert runs[0].wait_node()["phase"] == "Running"
    answer(argo_world, runs[0], False)
    assert runs[0].finished(20)["phase"] == "Failed"


def test_an_output_the_node_lacks_is_refused_with_argos_message(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    manifest = standalone_workflow(gate)
    register = next(t for t in manifest["spec"]["templates"] if t["name"] == "approve-register")
    # as a gate rendered by a signoff that expects an output this template does not declare
    register["http"]["body"] = register["http"]["body"].replace('"outcome"\n', '"outcome", "by"\n')
    run = argo_world.run(manifest, "approve")
    event = answer(argo_world, run, True)
    failed = delivery(argo_world, event["id"], "failed")
    assert failed["last_error"].endswith("node is not expecting output parameter 'by'")
    assert failed["last_error"].startswith("Argo Server answered 500 to set")


def test_a_set_that_leaves_the_node_running_is_followed_by_resume(
        argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    waiting = run.wait_node()
    # what a server whose /set does not finish the node answers: 200, the node still Running
    workflow = json.loads(json.dumps(argo_world.argo.workflows[
        (NAMESPACE, run.workflow["metadata"]["name"])]))
    argo_world.argo.inject.append((200, workflow))
    event = answer(argo_world, run, True)
    delivery(argo_world, event["id"], "delivered")
    (resume,) = calls_for(argo_world, run, "/resume")
    assert resume.body == {"name": run.workflow["metadata"]["name"], "namespace": NAMESPACE,
                           "nodeFieldSelector": f"inputs.parameters.signoff-event.value="
                                                f"{event['id']}"}
    assert run.finished(20)["id"] == waiting["id"]


@pytest.mark.parametrize(("params", "error"), [
    ({"namespace": "kube-system"}, "source.params.namespace: 'kube-system' is not in"),
    ({"node_field_selector": "displayName=approve"},
     "source.params.node_field_selector: expected 'inputs.parameters.NAME.value={event_id}'"),
    ({"workflow": None}, "source.params.workflow: expected the workflow's name, got None"),
], ids=["namespace-not-allowed", "free-selector", "no-workflow"])
def test_events_a_workflow_token_forges_are_refused(argo_world: ArgoWorld, params: dict[str, Any],
                                                    error: str) -> None:
    from signoff import Client

    source = {"namespace": NAMESPACE, "workflow": "anything", **params}
    with Client(argo_world.hub.url, argo_world.workflow_token) as client:
        event = client.create(name="forged", prompt="?", source={
            "orchestrator": "argo", "params": {k: v for k, v in source.items() if v}})
    httpx.post(f"{argo_world.hub.url}/api/v1/events/{event.id}/responses", json={"value": True},
               headers=argo_world.hub.headers()).raise_for_status()
    assert delivery(argo_world, event.id, "failed")["last_error"].startswith(error)


def test_resumer_settings_are_checked() -> None:
    from signoff.adapters.argo.resumer import ArgoResumer

    with pytest.raises(ValueError, match=r"\[resumers.argo\] url: expected"):
        ArgoResumer({})
    resumer = ArgoResumer({"url": "http://127.0.0.1:1/", "verify": "false",
                           "namespaces": "a, b", "token": "Bearer x"})
    assert (resumer.url, resumer.namespaces) == ("http://127.0.0.1:1", {"a", "b"})
    assert resumer._headers() == {"Authorization": "Bearer x"}


def test_token_file_is_read_at_each_delivery(tmp_path: Path) -> None:
    import asyncio

    from signoff import Decision, Event
    from signoff.resumers import DeliveryFailed

    token = tmp_path / "token"
    token.write_text("first\n")
    with FakeArgoServer(token="second") as argo:
        from signoff.adapters.argo.resumer import ArgoResumer

        resumer = ArgoResumer({"url": argo.url, "token_file": str(token)})
        gate = approval("approve", "?", hub=HubConnection(url="http://127.0.0.1:9"))
        workflow = argo.submit(standalone_workflow(gate), NAMESPACE)
        event = Event.model_validate({
            "id": "ev_1", "key": None, "name": "approve", "prompt": "?",
            "input": {"kind": "approval"}, "context": {}, "assignees": [],
            "priority": "normal", "timeout": None, "on_timeout": "reject",
            "source": {"orchestrator": "argo", "params": {
                "namespace": NAMESPACE, "workflow": workflow["metadata"]["name"]}},
            "labels": {}, "requested_by": "wf", "status": "decided",
            "created_at": "2026-01-01T00:00:00Z", "deadline": None,
            "decision": Decision(value=True, outcome="approved", by="bob",
                                 at="2026-01-01T00:00:01Z")})
        argo.add_node(workflow, {"name": "n", "type": "Suspend", "phase": "Running",
                                 "inputs": {"parameters": [{"name": "signoff-event",
                                                            "value": "ev_1"}]},
                                 "outputs": {"parameters": [
                                     {"name": n, "valueFrom": {"supplied": {}, "default": ""}}
                                     for n in ("value", "outcome")]}})

        async def twice() -> None:
            with pytest.raises(DeliveryFailed, match="answered 401"):
                await resumer.deliver(event)
            token.write_text("second")
            await resumer.deliver(event)
            await resumer.aclose()

        asyncio.run(twice())
        assert [c.authorization for c in argo.calls_to("/set")] == ["Bearer first",
                                                                    "Bearer second"]


def test_fake_controller_refuses_what_it_does_not_know(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "?", hub=argo_world.hub_connection())
    manifest = standalone_workflow(gate)
    register = next(t for t in manifest["spec"]["templates"] if t["name"] == "approve-register")
    register["http"]["body"] = register["http"]["body"].replace(
        "toJson(workflow.name)", "upper(workflow.name)")
    run = FakeController(argo_world.argo).start_gate(
        argo_world.argo.submit(manifest, NAMESPACE), "approve")
    with pytest.raises(AssertionError, match="function upper"):
        run.wait_node(10)


@pytest.mark.skipif(shutil.which("curl") is None, reason="the container registration runs curl")
def test_container_registration_registers_with_curl(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release {{workflow.name}}?",
                    hub=argo_world.hub_connection(registration="container"))
    run = argo_world.run(standalone_workflow(gate), "approve")
    event = answer(argo_world, run, True)
    assert event["prompt"] == f"Release {run.workflow['metadata']['name']}?"
    assert json.loads(run.register_result or "{}")["id"] == event["id"]
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}


def test_a_retried_registration_gets_the_same_event(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    manifest = standalone_workflow(gate)
    register = next(t for t in manifest["spec"]["templates"] if t["name"] == "approve-register")
    # the first attempt creates the event (201) but counts as failed, as if its answer was lost
    register["http"]["successCondition"] = "response.statusCode == 200"
    run = argo_world.run(manifest, "approve")
    node = run.wait_node()
    event_id = next(p["value"] for p in node["inputs"]["parameters"]
                    if p["name"] == "signoff-event")
    same_key = [e for e in httpx.get(f"{argo_world.hub.url}/api/v1/events",
                                     params={"limit": 500},
                                     headers=argo_world.hub.headers()).json()["events"]
                if e["key"] == run.key]
    assert [e["id"] for e in same_key] == [event_id]
