"""Issue 22 for Argo: the gate's verify step refuses a value set through Argo's own road.

The real hub signs the decision; the fake Argo Server takes ``set``/``resume`` calls from
anyone holding an Argo token (an attacker's ``argo node set`` included); the fake controller
runs the gate's ``<name>-verify`` container — the real ``signoff verify-decision`` — once the
suspend node has succeeded. Only a node holding the hub's signed decision passes.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest

from signoff._evidence import Keyring
from signoff.adapters.argo import approval, standalone_workflow
from tests.adapters.scenarios import find_event

from .conftest import NAMESPACE, ArgoWorld
from .fake_controller import GateRun
from .helpers import answer, delivery, outputs


def _audit(world: ArgoWorld, event_id: str) -> list[dict[str, Any]]:
    answer = httpx.get(f"{world.hub.url}/api/v1/events/{event_id}/audit",
                       headers=world.hub.headers(), timeout=30)
    entries: list[dict[str, Any]] = answer.json()["entries"]
    return entries


def _forge(world: ArgoWorld, run: GateRun, event_id: str, token: str, **outputs: str) -> None:
    """What ``argo node set WF --output-parameter ... --phase Succeeded`` sends."""
    name = run.workflow["metadata"]["name"]
    body = {"nodeFieldSelector": f"inputs.parameters.signoff-event.value={event_id}",
            "outputParameters": json.dumps(outputs), "phase": "Succeeded",
            "message": "looks fine to me"}
    done = httpx.put(f"{world.argo.url}/api/v1/workflows/{NAMESPACE}/{name}/set", json=body,
                     headers={"Authorization": f"Bearer {token}"})
    assert done.status_code == 200, done.text


def _keys(world: ArgoWorld) -> dict[str, Any]:
    found: dict[str, Any] = httpx.get(f"{world.hub.url}/api/v1/keys").json()
    return found


@pytest.mark.parametrize("pinned", [False, True], ids=["fetched-keys", "pinned-keys"])
def test_a_genuine_decision_passes(argo_world: ArgoWorld, pinned: bool) -> None:
    hub = argo_world.hub_connection(keys=_keys(argo_world) if pinned else None)
    gate = approval("approve", "Release?", hub=hub)
    run = argo_world.run(standalone_workflow(gate), "approve")
    event = answer(argo_world, run, True, "ship it")
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}
    checked = run.verify_node()
    assert checked["phase"] == "Succeeded", checked["message"]
    assert checked["message"].startswith(f"event {event['id']}: approved by ")
    assert "value 'true' verified" in checked["message"]
    assert "decision_refused" not in [e["action"] for e in _audit(argo_world, event["id"])]
    print(f"verify step ({'pinned' if pinned else 'fetched'} keys): "
          f"{run.verify_seconds:.2f} s, process start included")


def test_a_forged_set_on_an_undecided_event_fails_the_gate(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    event = find_event(argo_world.hub, run.key, timeout=30)
    _forge(argo_world, run, event["id"], argo_world.argo.token, value="true",
           outcome="approved")
    assert outputs(run.finished(20)) == {"value": "true", "outcome": "approved"}
    checked = run.verify_node()
    assert checked["phase"] == "Failed"
    assert f"event {event['id']}: the decision does not verify: the event has no decision" \
        in checked["message"]
    refused = [e for e in _audit(argo_world, event["id"]) if e["action"] == "decision_refused"]
    assert refused and "the event has no decision" in json.dumps(refused[0])
    still = httpx.get(f"{argo_world.hub.url}/api/v1/events/{event['id']}",
                      headers=argo_world.hub.headers()).json()
    assert still["status"] == "pending"


def test_a_forged_value_against_a_signed_rejection_fails_the_gate(
        argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection(),
                    on_reject="continue")
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    argo = argo_world.argo
    real, argo.token = argo.token, "someone-elses-argo-token"
    try:  # the hub's resumer is locked out; someone with Argo rights sets the node instead
        event = answer(argo_world, run, False, "not this one")
        assert "401" in delivery(argo_world, event["id"], "failed")["last_error"]
        _forge(argo_world, run, event["id"], argo.token, value="true", outcome="approved")
    finally:
        argo.token = real
    checked = run.verify_node()
    assert checked["phase"] == "Failed"
    assert ("the node got value 'true' and outcome 'approved', but the hub signed value "
            "'false' and outcome 'rejected'") in checked["message"]
    assert "decision_refused" in [e["action"] for e in _audit(argo_world, event["id"])]


def test_keys_pinned_from_another_hub_refuse_even_a_genuine_decision(
        argo_world: ArgoWorld) -> None:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    other = Keyring.of([Ed25519PrivateKey.generate()]).jwks()
    gate = approval("approve", "Release?", hub=argo_world.hub_connection(keys=other))
    run = argo_world.run(standalone_workflow(gate), "approve")
    answer(argo_world, run, True)
    checked = run.verify_node()
    assert checked["phase"] == "Failed"
    assert "which is not among the hub's public keys" in checked["message"]


def test_a_bare_resume_continues_with_the_default_only(argo_world: ArgoWorld) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    name = run.workflow["metadata"]["name"]
    done = httpx.put(f"{argo_world.argo.url}/api/v1/workflows/{NAMESPACE}/{name}/resume",
                     json={}, headers={"Authorization": f"Bearer {argo_world.argo.token}"})
    assert done.status_code == 200, done.text
    # Argo's own timeout does the same: the default (false), which runs nothing guarded
    assert outputs(run.finished(20)) == {"value": "false", "outcome": "unanswered"}
    checked = run.verify_node()
    assert checked["phase"] == "Succeeded", checked["message"]
    assert "continuing with the default 'false'" in checked["message"]


@pytest.mark.parametrize("forged", [{"value": "true", "outcome": "unanswered"},
                                    {"value": "--outcome=unanswered", "outcome": "approved"}],
                         ids=["unanswered-true", "option-in-value"])
def test_other_forged_outputs_fail_the_gate(argo_world: ArgoWorld,
                                            forged: dict[str, str]) -> None:
    gate = approval("approve", "Release?", hub=argo_world.hub_connection())
    run = argo_world.run(standalone_workflow(gate), "approve")
    run.wait_node()
    event = find_event(argo_world.hub, run.key, timeout=30)
    _forge(argo_world, run, event["id"], argo_world.argo.token, **forged)
    checked = run.verify_node()
    assert checked["phase"] == "Failed", checked["message"]
    assert f"event {event['id']}" in checked["message"]
    assert "refused" in checked["message"] or "does not verify" in checked["message"]
