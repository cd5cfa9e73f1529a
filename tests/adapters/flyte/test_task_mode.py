"""Task mode on a cluster: the waiting tasks run as a pod would (``pyflyte-execute``) against a
real hub; ``approve``'s pass-through task is found again through its own resolver."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import httpx
import pytest
from flyteidl.core import literals_pb2
from flytekit.core.context_manager import FlyteContextManager
from flytekit.core.type_engine import TypeEngine

from signoff.testing import HubProcess

from .container import Compiled, binding_literal, compile_workflow, run_container
from .test_local import _pending
from .workflows import publish_tasks

EXECUTION = ("reports", "development", "t9b8c7d6")


@pytest.fixture(scope="module")
def compiled() -> Compiled:
    return compile_workflow(publish_tasks)


def _in_background(compiled: Compiled, task_name: str, inputs: dict[str, Any], tmp: Path,
                   env: dict[str, str]) -> tuple[threading.Thread, dict[str, Any]]:
    spec = next(t for name, t in compiled.tasks.items() if name.endswith(task_name))
    box: dict[str, Any] = {}

    def run() -> None:
        box["ran"] = run_container(spec, inputs, tmp / task_name, EXECUTION, env)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def _env(hub: HubProcess) -> dict[str, str]:
    return {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.token("flyte-pods", role="workflow")}


def test_the_compiled_workflow_waits_in_tasks_not_gates(compiled: Compiled) -> None:
    nodes = compiled.workflow.template.nodes
    assert not [n for n in nodes if n.gate_node is not None]
    assert compiled.nodes_running("signoff_wait_str")
    approve_task = next(t for name, t in compiled.tasks.items() if ".approve_" in name)
    args = approve_task.template.container.args
    resolver = args[args.index("--resolver") + 1]
    assert resolver == "signoff.adapters.flyte._passthrough.approve_resolver"
    assert args[args.index("--") + 1] == "literal-type"


def test_a_waiting_task_continues_with_the_answer(hub: HubProcess, compiled: Compiled,
                                                  tmp_path: Path) -> None:
    node = compiled.nodes_running("signoff_wait_str")[0]
    thread, box = _in_background(compiled, "signoff_wait_str",
                                 {"request": binding_literal(node, "request")}, tmp_path,
                                 _env(hub))
    event = _pending(hub, ":title")
    assert event["key"] == "flyte:reports:development:t9b8c7d6:title"
    assert event["source"]["params"]["mode"] == "task"
    httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": "Q3"},
               headers=hub.headers()).raise_for_status()
    thread.join(240)
    assert box["ran"].outputs["o0"].scalar.primitive.string_value == "Q3"
    # no push is needed for a waiting task: the hub's delivery is a no-op
    deliveries = httpx.get(f"{hub.url}/api/v1/events/{event['id']}",
                           headers=hub.headers()).json()["deliveries"]
    assert all(d["state"] != "failed" for d in deliveries), deliveries


def _report_literal() -> literals_pb2.Literal:
    ctx = FlyteContextManager.current_context()
    report = {"rows": 3, "mean": 2.0}
    literal = TypeEngine.to_literal(ctx, report, dict, TypeEngine.to_literal_type(dict))
    return literal.to_flyte_idl()


@pytest.mark.parametrize("answer", [True, False], ids=["approved", "rejected"])
def test_approve_passes_the_literal_through_only_when_approved(
        answer: bool, hub: HubProcess, compiled: Compiled, tmp_path: Path) -> None:
    node = next(n for n in compiled.workflow.template.nodes
                if n.task_node is not None and ".approve_" in n.task_node.reference_id.name)
    value = _report_literal()
    thread, box = _in_background(compiled, node.task_node.reference_id.name,
                                 {"request": binding_literal(node, "request"), "value": value},
                                 tmp_path, _env(hub))
    event = _pending(hub, ":publish")
    httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
               json={"value": answer, "comment": "checked"},
               headers=hub.headers()).raise_for_status()
    thread.join(240)
    ran = box["ran"]
    if answer:
        assert ran.outputs["o0"] == value  # the very same bytes, never converted
    else:
        assert ran.outputs is None
        assert "signoff step 'publish'" in ran.error and "rejected by admin: checked" in ran.error
