"""Issue 20, bulk resume: one batch decision in the inbox resumes several suspended Argo nodes;
the hub's batch policy (no batch for high-impact events) keeps a guarded gate out.

Real hub, its ArgoResumer, the inbox's ``POST /batch`` (a signed-in reviewer, CSRF) and the
fake Argo Server, made slow (each ``set``/``resume`` takes ``delay``, as a round trip to the
Kubernetes API does) so overlapping calls can be counted.
"""

from __future__ import annotations

import json
import time
from typing import Any

import httpx

from signoff.adapters.argo import approval, standalone_workflow
from tests.adapters.scenarios import find_event
from tests.hub.test_web import sign_in

from .conftest import NAMESPACE, ArgoWorld
from .fake_controller import GateRun
from .helpers import calls_for, delivery, outputs

REGIONS = ["eu", "us", "ap"]


def _looped(world: ArgoWorld) -> tuple[dict[str, Any], list[GateRun]]:
    """A workflow with one gate per region (a loop), each waiting on its suspend node."""
    from hera.workflows import Steps, Workflow

    with Workflow(generate_name="bulk-", entrypoint="main") as w:
        gate = approval("approve", "Deploy to {{inputs.parameters.region}}?",
                        hub=world.hub_connection(), parameters=["region"])
        with Steps(name="main"):
            gate.step(arguments={"region": "{{item}}"}, with_items=REGIONS)
    workflow = world.argo.submit(w.to_dict(), NAMESPACE)
    runs = [world.controller.start_gate(workflow, "approve", item=(i, region))
            for i, region in enumerate(REGIONS)]
    for run in runs:
        run.wait_node()
    return workflow, runs


def _audit(world: ArgoWorld, event_id: str) -> list[str]:
    answer = httpx.get(f"{world.hub.url}/api/v1/events/{event_id}/audit",
                       headers=world.hub.headers(), timeout=30)
    return [line["action"] for line in answer.json()["entries"]]


def test_one_batch_resumes_every_node_one_failure_stops_no_other(argo_world: ArgoWorld) -> None:
    argo = argo_world.argo
    first, first_runs = _looped(argo_world)
    second, second_runs = _looped(argo_world)
    gone, gone_runs = _looped(argo_world)
    runs = first_runs + second_runs
    with argo.lock:  # deleted while its nodes wait: its deliveries cannot succeed
        del argo.workflows[(NAMESPACE, gone["metadata"]["name"])]
    events = [find_event(argo_world.hub, r.key, timeout=30) for r in runs + gone_runs]
    # a high-impact gate: the hub's policy keeps it out of any batch
    guarded = approval("approve", "Deploy to prod?", hub=argo_world.hub_connection(),
                       impact="high")
    high_run = argo_world.run(standalone_workflow(guarded), "approve")
    high = find_event(argo_world.hub, high_run.key, timeout=30)
    ids = [e["id"] for e in events] + [high["id"]]
    ana = sign_in(argo_world.hub, argo_world.hub.token("ana"), "ana")
    argo.delay, argo.most_in_flight, argo.most_per_workflow = 0.2, 0, 0
    try:
        began = time.monotonic()
        done = ana.post("/batch", {"event": ids, "choice": "approve", "comment": "wave 2"})
        assert done.status_code == 200, done.text
        assert f"Batch: {len(events)} of {len(ids)} recorded" in done.text
        assert "the hub allows no batch decisions for high-impact events" in done.text
        nodes = [r.finished(30) for r in runs]
        took = time.monotonic() - began
    finally:
        argo.delay = 0.0
    for node, event in zip(nodes, events, strict=False):
        assert node["phase"] == "Succeeded"
        assert outputs(node) == {"value": "true", "outcome": "approved"}
        assert node["message"] == f"Resumed by: ana (signoff: approved: wave 2; " \
                                  f"event {event['id']})"
        assert delivery(argo_world, event["id"], "delivered")["attempts"] == 1
        assert "delivery_delivered" in _audit(argo_world, event["id"])
    assert high_run.wait_node()["phase"] == "Running"  # refused by policy: still waits
    assert [c for c in argo.calls if high["id"] in json.dumps(c.body)] == []
    name = gone["metadata"]["name"]
    for event in events[len(runs):]:
        failed = delivery(argo_world, event["id"], "failed")
        assert failed["last_error"] == (f"Argo Server answered 404 to set on workflow "
                                        f"{NAMESPACE}/{name}: workflows.argoproj.io \"{name}\" "
                                        f"not found")
        assert "delivery_failed" in _audit(argo_world, event["id"])
    # each node got exactly one set, and none was resumed twice
    for workflow, its_runs in ((first, first_runs), (second, second_runs)):
        sets = calls_for(argo_world, its_runs[0], "/set")
        assert len(sets) == len(REGIONS), [c.body for c in sets]
        assert sorted(c.body["nodeFieldSelector"] for c in sets) == sorted(
            f"inputs.parameters.signoff-event.value={e['id']}" for e in events
            if e["source"]["params"]["workflow"] == workflow["metadata"]["name"])
    # bounded and parallel across workflows, one at a time within one (Argo's set rewrites
    # the whole Workflow object)
    assert argo.most_per_workflow == 1
    assert 2 <= argo.most_in_flight <= 16
    # six sets of 0.2 s each, three per workflow: about 0.6 s with the two workflows in
    # parallel (plus the hub's and the test's polling); printed for the record
    print(f"batch of {len(ids)} decided -> {len(runs)} nodes resumed in {took:.2f} s; at most "
          f"{argo.most_in_flight} Argo calls in flight, {argo.most_per_workflow} per workflow")
