"""Native Flyte 2 conditions in the inbox: the bridge raises an event per waiting condition, the
hub's ``flyte2`` resumer answers it through RunService, and an answer given in Flyte closes the
event. Flyte's control plane is the FAKE RunService (flyteidl2's own Connect stubs); the hub is
a real one; Flyte's own SDK client (``flyte.remote.Condition``) answers conditions natively.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import flyte
import flyte.remote
import httpx
import pytest

from signoff.adapters.flyte.conditions import ConditionBridge
from signoff.testing import HubProcess, until

from .fake_runservice import FakeControlPlane

HUB_TOKEN = "hub-secret"  # the hub's credential for Flyte's control plane
ALICE_TOKEN = "alice-secret"
PROJECT = ("ml", "development")


@pytest.fixture(scope="module")
def plane() -> Iterator[FakeControlPlane]:
    users = {HUB_TOKEN: "signoff-hub@example.com", ALICE_TOKEN: "alice@example.com"}
    with FakeControlPlane(users, open=True) as fake:  # open: Flyte's SDK below sends no token
        yield fake


@pytest.fixture(scope="module")
def hub(plane: FakeControlPlane, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    env = {"SIGNOFF_RESUMERS__FLYTE2__ENDPOINT": plane.endpoint,
           "SIGNOFF_RESUMERS__FLYTE2__TOKEN": HUB_TOKEN,
           "SIGNOFF_RESUMERS__FLYTE2__ORG": "testorg",
           "SIGNOFF_RESUMERS__FLYTE2__BRIDGE_USERS": "flyte2-bridge,flyte2-bridge-2,flyte2-cli"}
    with HubProcess(Path(tmp_path_factory.mktemp("hub")) / "hub.db", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    """One event loop for the bridges' rounds (their clients keep connections open)."""
    made = asyncio.new_event_loop()
    yield made
    made.close()


@pytest.fixture(scope="module")
def bridge(plane: FakeControlPlane, hub: HubProcess,
           loop: asyncio.AbstractEventLoop) -> Iterator[ConditionBridge]:
    made = ConditionBridge({"endpoint": plane.endpoint, "token": HUB_TOKEN, "org": "testorg"},
                           [PROJECT], hub_url=hub.url,
                           hub_token=hub.token("flyte2-bridge", role="workflow"),
                           console="https://flyte.example")
    made.loop = loop  # type: ignore[attr-defined]
    yield made
    loop.run_until_complete(made.aclose())


def _sync(bridge: ConditionBridge) -> None:
    bridge.loop.run_until_complete(bridge.sync_once())  # type: ignore[attr-defined]


def _event(hub: HubProcess, run: str) -> dict[str, Any]:
    events = httpx.get(f"{hub.url}/api/v1/events", headers=hub.headers()).json()["events"]
    [found] = [e for e in events if e["source"]["params"].get("run") == run]
    return found


def _signal_in_flyte(loop: asyncio.AbstractEventLoop, plane: FakeControlPlane, action: Any,
                    value: Any, token: str = ALICE_TOKEN) -> None:
    """A person answers the condition in Flyte: ``SignalEvent`` with their own token."""
    from signoff.adapters.flyte._runservice import RunServiceCalls

    person = RunServiceCalls({"endpoint": plane.endpoint, "token": token}, "a person")

    async def signal() -> None:
        await person.signal(await person.details(action), value)
        await person.aclose()

    loop.run_until_complete(signal())


def _respond(hub: HubProcess, event: dict[str, Any], value: Any) -> httpx.Response:
    return httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": value},
                      headers=hub.headers())


def test_a_native_bool_condition_is_answered_in_signoff(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    action = plane.service.add_condition(*PROJECT, "r-bool", "a0", "deploy",
                                         prompt="Deploy v3?", description="canary is green",
                                         timeout=3600)
    _sync(bridge)
    event = _event(hub, "r-bool")
    assert event["input"]["kind"] == "approval" and event["prompt"] == "Deploy v3?"
    assert event["context"] == {"description": "canary is green",
                                "flyte_timeout_seconds": 3600.0}
    assert event["source"]["link"] == \
        "https://flyte.example/v2/domain/development/project/ml/runs/r-bool"
    assert event["key"] == "flyte2-condition:testorg:ml:development:r-bool:a0-deploy-1"
    _sync(bridge)  # a second round raises nothing new
    assert len([e for e in httpx.get(f"{hub.url}/api/v1/events", headers=hub.headers())
                .json()["events"] if e["source"]["params"].get("run") == "r-bool"]) == 1
    assert _respond(hub, event, True).status_code == 200
    assert plane.service.wait_resolved(action) is True  # what the task's wait() returns
    details = plane.service.actions[("testorg", "ml", "development", "r-bool", action.name)]
    assert details.signal_info.signalled_by.user.spec.email == "signoff-hub@example.com"
    shown = httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers()).json()
    until(lambda: httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers())
          .json()["deliveries"][0]["state"] == "delivered" or None, 20, "delivered")
    assert shown["decision"]["value"] is True


def test_a_typed_condition_takes_its_type_and_a_rejection_aborts_it(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    count = plane.service.add_condition(*PROJECT, "r-int", "a0", "replicas", data_type=int,
                                        prompt="How many replicas?")
    go = plane.service.add_condition(*PROJECT, "r-no", "a0", "go", prompt="Go?")
    _sync(bridge)
    event = _event(hub, "r-int")
    assert event["input"]["kind"] == "int"
    refused = _respond(hub, event, "three")
    assert refused.status_code == 422 and refused.json()["error"]["field"] == "value"
    assert _respond(hub, event, 3).status_code == 200
    assert plane.service.wait_resolved(count) == 3
    assert _respond(hub, _event(hub, "r-no"), False).status_code == 200
    assert plane.service.wait_resolved(go) is False


def test_an_answer_given_with_flytes_own_client_closes_the_event(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    action = plane.service.add_condition(*PROJECT, "r-native", "a0", "size", data_type=int)
    _sync(bridge)
    event = _event(hub, "r-native")
    flyte.init(endpoint=plane.endpoint, insecure=True, project="ml", domain="development",
               org="testorg", auth_type="Passthrough")
    [condition] = list(flyte.remote.Condition.listall(run_name="r-native"))
    condition.signal(12)  # what `flyte signal condition r-native a0-size-1 12` does
    _sync(bridge)
    decided = httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers()).json()
    decision = decided["decision"]
    assert decision["value"] == 12 and decision["channel"] == "flyte2"
    assert decision["by"] == "flyte2:unverified" and decision["verified"] is False
    assert plane.service.outcome(action) == 12  # the delivery did not signal it again
    until(lambda: httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers())
          .json()["deliveries"][0]["state"] == "delivered" or None, 20, "delivered")


def test_a_named_person_answering_in_flyte_is_named(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    action = plane.service.add_condition(*PROJECT, "r-alice", "a0", "ok")
    _sync(bridge)
    event = _event(hub, "r-alice")
    _signal_in_flyte(bridge.loop, plane, action, True)  # type: ignore[attr-defined]
    _sync(bridge)
    decision = httpx.get(f"{hub.url}/api/v1/events/{event['id']}",
                         headers=hub.headers()).json()["decision"]
    assert decision["by"] == "flyte2:alice@example.com" and decision["value"] is True


def test_a_condition_timed_out_in_flyte_cancels_the_event(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    action = plane.service.add_condition(*PROJECT, "r-late", "a0", "late", timeout=1)
    _sync(bridge)
    event = _event(hub, "r-late")
    plane.service.time_out(action)
    _sync(bridge)
    decision = httpx.get(f"{hub.url}/api/v1/events/{event['id']}",
                         headers=hub.headers()).json()["decision"]
    assert decision["outcome"] == "cancelled"
    assert decision["comment"] == "the condition timed out in Flyte"
    assert _respond(hub, event, True).status_code == 409  # nobody answers it any more


def test_a_restarted_bridge_finds_its_events_and_asks_nobody_twice(
        plane: FakeControlPlane, hub: HubProcess, loop: asyncio.AbstractEventLoop) -> None:
    token = hub.token("flyte2-bridge-2", role="workflow")
    settings = {"endpoint": plane.endpoint, "token": HUB_TOKEN, "org": "testorg"}
    action = plane.service.add_condition("ops", "production", "r-restart", "a0", "go")
    first = ConditionBridge(settings, [("ops", "production")], hub_url=hub.url, hub_token=token)
    loop.run_until_complete(first.sync_once())
    event = _event(hub, "r-restart")
    plane.service.time_out(action)
    second = ConditionBridge(settings, [("ops", "production")], hub_url=hub.url, hub_token=token)
    loop.run_until_complete(second.sync_once())  # knows the event from the hub, sees Flyte ended it
    assert httpx.get(f"{hub.url}/api/v1/events/{event['id']}",
                     headers=hub.headers()).json()["decision"]["outcome"] == "cancelled"
    assert _event(hub, "r-restart")["id"] == event["id"]  # still the one event
    for made in (first, second):
        loop.run_until_complete(made.aclose())


def test_only_the_bridges_tokens_may_raise_events_that_answer_conditions(
        hub: HubProcess, bridge: ConditionBridge) -> None:
    body = {"name": "squat", "prompt": "?", "input": {"kind": "approval"},
            "source": {"orchestrator": "flyte2", "params": {
                "mode": "condition", "org": "testorg", "project": "ml", "domain": "development",
                "run": "r-bool", "action": "a0-deploy-1", "type": "bool"}}}
    other = hub.token("someone-else", role="workflow")
    answer = httpx.post(f"{hub.url}/api/v1/events", json=body, headers=hub.headers(other))
    assert answer.status_code == 422 and answer.json()["error"]["field"] == "source.params"
    assert answer.json()["error"]["got"] == "RequesterNotABridgeUser"
    # a token the hub lists, on a run another listed token already holds: 409
    other_bridge = hub.token("flyte2-bridge-2", role="workflow")
    answer = httpx.post(f"{hub.url}/api/v1/events", json=body,
                        headers=hub.headers(other_bridge))
    assert answer.status_code == 409 and answer.json()["error"]["code"] == "target_taken"


def test_bad_settings_name_the_field() -> None:
    from signoff.adapters.flyte.conditions import Flyte2Resumer

    with pytest.raises(ValueError, match=r"unknown settings \['client'\]"):
        Flyte2Resumer({"client": "grpc"})
    with pytest.raises(ValueError, match="bridge_users: expected a list of user names"):
        Flyte2Resumer({"bridge_users": 3})
    with pytest.raises(ValueError, match="projects: expected at least one"):
        ConditionBridge({"endpoint": "http://127.0.0.1:1"}, [])


def test_signoff_flyte2_bridge_runs_beside_the_hub(plane: FakeControlPlane,
                                                    hub: HubProcess) -> None:
    env = {**os.environ, "SIGNOFF_URL": hub.url,
           "SIGNOFF_TOKEN": hub.token("flyte2-cli", role="workflow"),
           "SIGNOFF_FLYTE2_TOKEN": HUB_TOKEN}
    action = plane.service.add_condition("cli", "dev", "r-cli", "a0", "ship", prompt="Ship?")
    bridge = subprocess.Popen(
        [str(Path(sys.executable).with_name("signoff")), "flyte2", "bridge", "--endpoint",
         plane.endpoint, "--org", "testorg", "--project", "cli/dev", "--interval", "0.2"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        event = until(lambda: next((e for e in httpx.get(
            f"{hub.url}/api/v1/events", headers=hub.headers()).json()["events"]
            if e["source"]["params"].get("run") == "r-cli"), None), 60, "the bridged event")
        assert event["requested_by"] == "flyte2-cli"
        assert _respond(hub, event, True).status_code == 200
        assert plane.service.wait_resolved(action) is True
    finally:
        bridge.terminate()
        out, _ = bridge.communicate(timeout=30)
    assert "signoff flyte2 bridge: watching cli/dev" in out, out
    assert "HUB_TOKEN" not in out and HUB_TOKEN not in out  # no secret in its log


def test_the_hubs_policies_apply_to_native_conditions(plane: FakeControlPlane,
                                                      tmp_path: Path) -> None:
    config = tmp_path / "signoff.toml"
    config.write_text('[[policies]]\nmatch = { orchestrator = "flyte2" }\nquorum = 2\n')
    env = {"SIGNOFF_RESUMERS__FLYTE2__ENDPOINT": plane.endpoint,
           "SIGNOFF_RESUMERS__FLYTE2__TOKEN": HUB_TOKEN,
           "SIGNOFF_RESUMERS__FLYTE2__BRIDGE_USERS": "flyte2-bridge"}
    with HubProcess(tmp_path / "quorum.db", env=env, config=config) as hub:
        made = ConditionBridge({"endpoint": plane.endpoint, "token": HUB_TOKEN},
                               [("ops", "prod")], hub_url=hub.url,
                               hub_token=hub.token("flyte2-bridge", role="workflow"))
        action = plane.service.add_condition("ops", "prod", "r-quorum", "a0", "drop-table")
        loop = asyncio.new_event_loop()
        try:
            loop.run_until_complete(made.sync_once())
            event = _event(hub, "r-quorum")
            assert event["policy"]["quorum"] == 2
            first = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                               json={"value": True},
                               headers=hub.headers(hub.token("ann", role="reviewer")))
            assert first.status_code == 200 and first.json()["decision"] is None
            loop.run_until_complete(made.sync_once())  # still waiting in Flyte too
            assert plane.service.outcome(action) == "ACTION_PHASE_RUNNING"
            second = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                                json={"value": True},
                                headers=hub.headers(hub.token("bob", role="reviewer")))
            assert second.json()["decision"]["verified"] is True
            assert plane.service.wait_resolved(action) is True
            trail = httpx.get(f"{hub.url}/api/v1/events/{event['id']}/audit",
                              headers=hub.headers()).json()
            assert [entry["action"] for entry in trail["entries"]][:5] == [
                "created", "policy", "responded", "responded", "approved"]
            # answered in Flyte: one relayed answer cannot meet the quorum, the run went on
            native = plane.service.add_condition("ops", "prod", "r-quorum-2", "a0", "go")
            loop.run_until_complete(made.sync_once())
            event = _event(hub, "r-quorum-2")
            _signal_in_flyte(loop, plane, native, True)
            loop.run_until_complete(made.sync_once())
            decision = httpx.get(f"{hub.url}/api/v1/events/{event['id']}",
                                 headers=hub.headers()).json()["decision"]
            assert decision["outcome"] == "cancelled"
            assert decision["comment"] == (
                "answered in Flyte with True by alice@example.com; the relayed answer did not "
                "decide the event alone (a quorum)")
        finally:
            loop.run_until_complete(made.aclose())
            loop.close()


def _delivery(hub: HubProcess, event: dict[str, Any], state: str) -> dict[str, Any]:
    def check() -> dict[str, Any] | None:
        shown = httpx.get(f"{hub.url}/api/v1/events/{event['id']}", headers=hub.headers())
        found = shown.json()["deliveries"]
        return found[0] if found and found[0]["state"] == state else None
    return until(check, 30, f"a {state} delivery")


def test_a_decision_flyte_already_contradicts_fails_the_delivery_saying_so(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    action = plane.service.add_condition(*PROJECT, "r-race", "a0", "ok")
    _sync(bridge)
    event = _event(hub, "r-race")
    # answered in Flyte before the bridge's next round
    _signal_in_flyte(bridge.loop, plane, action, False)  # type: ignore[attr-defined]
    assert _respond(hub, event, True).status_code == 200  # and in signoff, the other way
    failed = _delivery(hub, event, "failed")
    assert "was already answered in Flyte with False" in failed["last_error"]
    assert plane.service.outcome(action) is False  # Flyte's answer stands; nothing overwrote it


def test_a_hub_without_flytes_address_fails_the_delivery_naming_the_setting(
        plane: FakeControlPlane, tmp_path: Path, loop: asyncio.AbstractEventLoop) -> None:
    with HubProcess(tmp_path / "bare.db",
                    env={"SIGNOFF_RESUMERS__FLYTE2__BRIDGE_USERS": "flyte2-bridge"}) as bare:
        made = ConditionBridge({"endpoint": plane.endpoint, "token": HUB_TOKEN},
                               [("bare", "dev")], hub_url=bare.url,
                               hub_token=bare.token("flyte2-bridge", role="workflow"))
        action = plane.service.add_condition("bare", "dev", "r-bare", "a0", "ok")
        loop.run_until_complete(made.sync_once())
        event = _event(bare, "r-bare")
        assert _respond(bare, event, True).status_code == 200
        failed = _delivery(bare, event, "failed")
        assert "[resumers.flyte2] endpoint is not set" in failed["last_error"]
        assert plane.service.outcome(action) == "ACTION_PHASE_RUNNING"
        loop.run_until_complete(made.aclose())


def test_a_run_another_token_holds_is_skipped_and_stops_no_other(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge,
        caplog: pytest.LogCaptureFixture) -> None:
    body = {"name": "first", "prompt": "?", "input": {"kind": "approval"},
            "source": {"orchestrator": "flyte2", "params": {
                "mode": "condition", "org": "testorg", "project": "ml", "domain": "development",
                "run": "r-taken", "action": "x", "type": "bool"}}}
    squatter = hub.token("flyte2-bridge-2", role="workflow")  # another bridge's token
    assert httpx.post(f"{hub.url}/api/v1/events", json=body,
                      headers=hub.headers(squatter)).status_code == 201
    plane.service.add_condition(*PROJECT, "r-taken", "a0", "ok")
    plane.service.add_condition(*PROJECT, "r-free", "a0", "ok")
    caplog.set_level("WARNING", logger="signoff.adapters.flyte._condition_bridge")
    _sync(bridge)
    assert _event(hub, "r-free")["requested_by"] == "flyte2-bridge"
    assert [e["requested_by"] for e in httpx.get(f"{hub.url}/api/v1/events",
                                                 headers=hub.headers()).json()["events"]
            if e["source"]["params"].get("run") == "r-taken"] == ["flyte2-bridge-2"]
    assert any("r-taken not raised" in r.getMessage() and "target" in r.getMessage().lower()
               for r in caplog.records), [r.getMessage() for r in caplog.records]


def test_a_condition_name_no_event_name_allows_still_reaches_the_inbox(
        plane: FakeControlPlane, hub: HubProcess, bridge: ConditionBridge) -> None:
    from signoff.adapters.flyte._common import event_name

    plane.service.add_condition(*PROJECT, "r-names", "a0", "Ship v3 to prod?")
    plane.service.add_condition(*PROJECT, "r-names", "a0", "Ship v3 to prod!")
    _sync(bridge)
    events = [e for e in httpx.get(f"{hub.url}/api/v1/events", headers=hub.headers())
              .json()["events"] if e["source"]["params"].get("run") == "r-names"]
    names = sorted(e["name"] for e in events)
    assert len(set(names)) == 2 and all(n.startswith("Ship-v3-to-prod-") for n in names)
    assert sorted(e["source"]["params"]["condition"] for e in events) == [
        "Ship v3 to prod!", "Ship v3 to prod?"]
    assert event_name("deploy") == "deploy"  # a name that fits is kept as it is
