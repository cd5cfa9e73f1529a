"""Gate mode end to end: flytekit's serialized tasks run as a pod would, a real hub, and its
Flyte resumer answering gates on a FAKE flyteadmin SignalService (flyteidl's own stubs)."""

from __future__ import annotations

import logging
import os
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from flyteidl.core import literals_pb2, types_pb2

from signoff import Client
from signoff.adapters.flyte._tasks import _settle
from signoff.testing import HubProcess

from .container import Compiled, binding_literal, compile_workflow, run_container
from .fake_flyteadmin import FakeFlyteAdmin
from .workflows import count_gate, publish

PROJECT, DOMAIN = "reports", "development"


@dataclass
class Cluster:
    hub: HubProcess
    admin: FakeFlyteAdmin
    env: dict[str, str]
    tmp: Path
    execution: tuple[str, str, str] = (PROJECT, DOMAIN, "")

    def run(self, task_name: str, inputs: dict[str, Any], compiled: Compiled,
            attempt: str = "a") -> Any:
        spec = next(t for name, t in compiled.tasks.items() if name.endswith(task_name))
        workdir = self.tmp / f"{self.execution[2]}-{task_name}-{attempt}"
        return run_container(spec, inputs, workdir, self.execution, self.env)

    def event(self, event_id: str) -> dict[str, Any]:
        return httpx.get(f"{self.hub.url}/api/v1/events/{event_id}",
                         headers=self.hub.headers()).json()

    def respond(self, event_id: str, value: Any, comment: str | None = None) -> None:
        httpx.post(f"{self.hub.url}/api/v1/events/{event_id}/responses",
                   json={"value": value, "comment": comment},
                   headers=self.hub.headers()).raise_for_status()

    def delivery(self, event_id: str, state: str, timeout: float = 30) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            deliveries = self.event(event_id)["deliveries"]
            if deliveries and deliveries[0]["state"] == state:
                return deliveries[0]
            time.sleep(0.1)
        raise AssertionError(f"delivery of {event_id} not {state}: {self.event(event_id)}")


def _cluster(tmp: Path, client: str, token: str | None) -> Iterator[Cluster]:
    with FakeFlyteAdmin(token=token) as admin:
        env = {"SIGNOFF_SWEEP_INTERVAL": "0.2", "SIGNOFF_DELIVERY_BACKOFF": "0.2",
               "SIGNOFF_DELIVERY_BACKOFF_MAX": "0.5",
               "SIGNOFF_RESUMERS__FLYTE__ENDPOINT": admin.endpoint,
               "SIGNOFF_RESUMERS__FLYTE__INSECURE": "true",
               "SIGNOFF_RESUMERS__FLYTE__CLIENT": client}
        if token:
            env["SIGNOFF_RESUMERS__FLYTE__TOKEN"] = token
        with HubProcess(tmp / "hub.db", env=env) as hub:
            pod_env = {"SIGNOFF_URL": hub.url,
                       "SIGNOFF_TOKEN": hub.token("flyte-pods", role="workflow"),
                       "SIGNOFF_FLYTE_CONSOLE_URL": "https://flyte.example.com"}
            yield Cluster(hub, admin, pod_env, tmp)


@pytest.fixture(scope="module")
def shared_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    yield from _cluster(tmp_path_factory.mktemp("cluster"), "grpc", token="admin-secret")


@pytest.fixture
def cluster(shared_cluster: Cluster, request: pytest.FixtureRequest) -> Cluster:
    """The module's hub and fake flyteadmin, with an execution of this test's own."""
    name = f"x{zlib.crc32(request.node.name.encode()):08x}"
    return Cluster(shared_cluster.hub, shared_cluster.admin, shared_cluster.env,
                   shared_cluster.tmp, (PROJECT, DOMAIN, name))


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_workflow(publish)


def string(value: str) -> literals_pb2.Literal:
    return literals_pb2.Literal(scalar=literals_pb2.Scalar(
        primitive=literals_pb2.Primitive(string_value=value)))


def test_the_compiled_workflow_holds_the_gate_nodes(compiled: Compiled) -> None:
    title, publish_gate = compiled.gate("title"), compiled.gate("publish")
    assert title.gate_node.signal.type.simple == types_pb2.STRING
    assert title.gate_node.signal.output_variable_name == "o0"
    assert publish_gate.gate_node.approve.signal_id == "publish"
    # each gate waits for the registration task that created its event ...
    registers = compiled.nodes_running("signoff_register")
    assert len(registers) == 2
    assert {r.id for r in registers} <= set(title.upstream_node_ids) | set(
        publish_gate.upstream_node_ids)
    for gate in (title, publish_gate):
        assert any(r.id in gate.upstream_node_ids for r in registers)
    # ... and the gates' timeouts outlive the hub's deadlines (1 h and 8 h, + 15 min)
    assert title.metadata.timeout.total_seconds() == 3600 + 900
    assert publish_gate.metadata.timeout.total_seconds() == 8 * 3600 + 900
    # the settle task after the text gate is what the downstream task reads
    settle = compiled.nodes_running("signoff_settle_str")[0]
    assert title.id in settle.upstream_node_ids
    send = compiled.nodes_running("send_report")[0]
    sources = {b.var: b.binding.promise.node_id for b in send.inputs}
    assert sources == {"report": publish_gate.id, "title": settle.id}
    assert compiled.nodes_running("signoff_settle_approval")


def test_a_text_gate_answered_in_the_hub(cluster: Cluster, compiled: Compiled) -> None:
    register = next(r for r in compiled.nodes_running("signoff_register")
                    if "title" in binding_literal(r, "request").scalar.primitive.string_value)
    request = binding_literal(register, "request")
    ran = cluster.run("signoff_register", {"request": request}, compiled)
    assert ran.error is None, ran.error
    event_id = ran.outputs["o0"].scalar.primitive.string_value
    event = cluster.event(event_id)
    name = cluster.execution[2]
    assert event["key"] == f"flyte:reports:development:{name}:title"
    assert event["source"]["link"] == ("https://flyte.example.com/console/projects/reports/"
                                       f"domains/development/executions/{name}")
    assert event["source"]["params"]["mode"] == "gate"
    assert event["source"]["params"]["literal_type"] == {"simple": "STRING"}
    # a retried registration pod gets the same event back
    again = cluster.run("signoff_register", {"request": request}, compiled, attempt="b")
    assert again.outputs["o0"].scalar.primitive.string_value == event_id

    # the answer comes before propeller reached the gate: flyteadmin refuses, the hub retries
    cluster.respond(event_id, "Q3 report")
    waiting = cluster.delivery(event_id, "pending")
    deadline = time.monotonic() + 20
    while not (waiting := cluster.event(event_id)["deliveries"][0])["last_error"]:
        assert time.monotonic() < deadline
        time.sleep(0.1)
    assert "gate has not started yet" in waiting["last_error"]
    gate = compiled.gate("title").gate_node.signal
    cluster.admin.start_gate(*cluster.execution, "title", gate.type.to_flyte_idl())
    cluster.delivery(event_id, "delivered")
    value = cluster.admin.service.value((*cluster.execution, "title"))
    assert value == string("Q3 report")

    # the node after the gate continues with the hub's decision
    settled = cluster.run("signoff_settle_str", {"event_id": string(event_id), "value": value},
                          compiled)
    assert settled.error is None, settled.error
    assert settled.outputs["o0"] == string("Q3 report")


def test_an_approve_gate_rejected_in_the_hub(cluster: Cluster, compiled: Compiled) -> None:
    register = next(r for r in compiled.nodes_running("signoff_register")
                    if "publish" in binding_literal(r, "request").scalar.primitive.string_value)
    ran = cluster.run("signoff_register", {"request": binding_literal(register, "request")},
                      compiled)
    event_id = ran.outputs["o0"].scalar.primitive.string_value
    assert cluster.event(event_id)["assignees"] == ["group:editors"]
    # propeller asks for a boolean signal when an approve gate starts
    cluster.admin.start_gate(*cluster.execution, "publish", types_pb2.LiteralType(
        simple=types_pb2.BOOLEAN))
    cluster.respond(event_id, False, comment="numbers look off")
    cluster.delivery(event_id, "delivered")
    # false on an approve gate: Flyte fails the node ("ReceivedRejectSignal"), nothing passes
    assert cluster.admin.service.value((*cluster.execution, "publish")) == literals_pb2.Literal(
        scalar=literals_pb2.Scalar(primitive=literals_pb2.Primitive(boolean=False)))
    mine = [r for r in cluster.admin.service.set_calls()
            if r.id.execution_id.name == cluster.execution[2]]
    assert [(r.id.execution_id.project, r.id.signal_id) for r in mine] == [
        ("reports", "publish")]


def test_a_cancelled_event_fails_the_node_after_the_gate(cluster: Cluster) -> None:
    compiled = compile_workflow(count_gate)
    register = compiled.nodes_running("signoff_register")[0]
    ran = cluster.run("signoff_register", {"request": binding_literal(register, "request")},
                      compiled)
    event_id = ran.outputs["o0"].scalar.primitive.string_value
    cluster.admin.start_gate(*cluster.execution, "how-many", compiled.gate(
        "how-many").gate_node.signal.type.to_flyte_idl())
    httpx.post(f"{cluster.hub.url}/api/v1/events/{event_id}/cancel",
               json={"comment": "superseded by run 12"},
               headers=cluster.hub.headers()).raise_for_status()
    cluster.delivery(event_id, "delivered")
    # the gate gets an empty integer so it passes; the settle task fails with the reason
    value = cluster.admin.service.value((*cluster.execution, "how-many"))
    assert value.scalar.primitive.integer == 0
    settled = cluster.run("signoff_settle_int", {"event_id": string(event_id), "value": value},
                          compiled)
    assert settled.outputs is None
    assert "signoff step 'how-many'" in settled.error
    assert "cancelled by admin: superseded by run 12" in settled.error


def test_a_gate_answered_in_flytes_own_ui_is_recorded_in_the_hub(cluster: Cluster) -> None:
    compiled = compile_workflow(count_gate)
    register = compiled.nodes_running("signoff_register")[0]
    ran = cluster.run("signoff_register", {"request": binding_literal(register, "request")},
                      compiled)
    event_id = ran.outputs["o0"].scalar.primitive.string_value
    ui_value = literals_pb2.Literal(scalar=literals_pb2.Scalar(
        primitive=literals_pb2.Primitive(integer=7)))
    settled = cluster.run("signoff_settle_int", {"event_id": string(event_id),
                                                 "value": ui_value}, compiled)
    assert settled.outputs["o0"] == ui_value
    event = cluster.event(event_id)
    assert event["decision"]["value"] == 7
    assert (event["decision"]["channel"], event["decision"]["by"]) == \
        ("flyte", "flyte:unverified")  # Flyte names nobody: never the workflow token's name
    # a value the hub refuses (out of 1..10) fails the node and says why
    other = run_container(
        compiled.tasks[next(n for n in compiled.tasks if n.endswith("signoff_register"))],
        {"request": binding_literal(register, "request")}, cluster.tmp / "reg-other",
        (PROJECT, DOMAIN, cluster.execution[2] + "-2"), cluster.env)
    other_id = other.outputs["o0"].scalar.primitive.string_value
    refused = cluster.run("signoff_settle_int", {"event_id": string(other_id), "value":
                          literals_pb2.Literal(scalar=literals_pb2.Scalar(
                              primitive=literals_pb2.Primitive(integer=99)))}, compiled, "c")
    assert "refused by the hub" in refused.error and "from 1 to 10" in refused.error
    assert cluster.event(other_id)["status"] == "pending"


def test_a_value_of_the_wrong_type_is_refused_and_not_retried(cluster: Cluster) -> None:
    compiled = compile_workflow(count_gate)
    register = compiled.nodes_running("signoff_register")[0]
    ran = cluster.run("signoff_register", {"request": binding_literal(register, "request")},
                      compiled)
    event_id = ran.outputs["o0"].scalar.primitive.string_value
    # the execution runs an older version of the workflow, whose gate wants a string
    cluster.admin.start_gate(*cluster.execution, "how-many", types_pb2.LiteralType(
        simple=types_pb2.STRING))
    cluster.respond(event_id, 4)
    failed = cluster.delivery(event_id, "failed")
    assert "INVALID_ARGUMENT" in failed["last_error"] and "not castable" in failed["last_error"]
    assert cluster.admin.service.value((*cluster.execution, "how-many")) is None


def test_flyteremote_client_answers_with_approve(tmp_path: Path, compiled: Compiled) -> None:
    for cluster in _cluster(tmp_path, "remote", token=None):
        cluster.execution = (PROJECT, DOMAIN, "remote-1")
        register = next(r for r in compiled.nodes_running("signoff_register") if "publish" in
                        binding_literal(r, "request").scalar.primitive.string_value)
        ran = cluster.run("signoff_register", {"request": binding_literal(register, "request")},
                          compiled)
        event_id = ran.outputs["o0"].scalar.primitive.string_value
        cluster.respond(event_id, True)
        deadline = time.monotonic() + 30
        while not (pending := cluster.event(event_id)["deliveries"][0])["last_error"]:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        assert "gate has not started yet" in pending["last_error"]  # FlyteRemote's error
        cluster.admin.start_gate(*cluster.execution, "publish", types_pb2.LiteralType(
            simple=types_pb2.BOOLEAN))
        cluster.delivery(event_id, "delivered")
        assert cluster.admin.service.value((*cluster.execution, "publish")).scalar.primitive.boolean


def test_a_gate_approved_in_flytes_ui_under_four_eyes_waits_for_the_hub(
        flow: HubProcess, caplog: pytest.LogCaptureFixture) -> None:
    """The settle task's relay is unverified: under four-eyes the hub refuses it (audited), the
    task logs why and waits for a person's answer in the hub."""
    with Client(flow.url, os.environ["SIGNOFF_TOKEN"]) as client:
        event = client.create(name="gate", prompt="Go?", source={"orchestrator": "flyte"},
                              policy={"forbid_self_approval": True})
    result: list[object] = []
    settle = threading.Thread(target=lambda: result.append(_settle(event.id, True)))
    with caplog.at_level(logging.WARNING, logger="user_space.signoff"):
        settle.start()
        with Client(flow.url, flow.admin_token) as admin:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(
                    e["action"] == "relay_refused" for e in admin.audit(event.id)):
                time.sleep(0.1)
            refused = [e for e in admin.audit(event.id) if e["action"] == "relay_refused"]
            assert [(e["actor"], e["channel"]) for e in refused] == \
                [("flyte:unverified", "flyte")]
            assert admin.get(event.id).status == "pending"
            admin.respond(event.id, True, "checked")
        settle.join(30)
    assert result == [True]
    assert any("refused by the hub" in r.getMessage() and "self-approval" in r.getMessage()
               for r in caplog.records)
