"""A workflow cannot aim its decision at another workflow's run, through a real hub.

Resumers take their engine target from ``source.params``, which the creating workflow token
supplies. The hub records the run each event's resumer would push into and refuses (409) an
event naming a run that another identity's events already name, whatever decides it (a
route rule at creation, or the second workflow's own reviewers later). One identity may name
its run again (two pauses in one run). Each built-in resumer's params shape is tried, with
the second token writing the run the way the engine would still accept (another pause, signal
or run id of the same run; an upper-case UUID).
"""

from __future__ import annotations

import asyncio
import importlib.util
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Event, EventCreate, Identity, InvalidInput, Source, TargetTaken
from signoff.hub import load_settings
from signoff.hub.batch import create_batch
from signoff.hub.service import Hub
from signoff.resumers import target_name, target_of
from signoff.store import open_store
from signoff.store.contract import make_event
from signoff.testing import HubProcess

from ..conftest import PG_AUDIT_KEY

RUN = str(uuid.uuid4())
# per resumer: the params of flow-a's event, and flow-b's params naming the same run
SHAPES: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "prefect": ({"flow_run_id": RUN, "pause_key": "signoff-1", "mode": "pause"},
                {"flow_run_id": RUN.upper().replace("-", ""), "pause_key": "signoff-9",
                 "mode": "suspend"}),
    "temporal": ({"namespace": "default", "workflow_id": "order-1234", "run_id": RUN,
                  "signal": "signoff:approve"},
                 {"namespace": "default", "workflow_id": "order-1234",
                  "run_id": str(uuid.uuid4()), "signal": "signoff:other"}),
    "flyte": ({"mode": "gate", "project": "flytesnacks", "domain": "development",
               "execution": "f8a2b3c4d5e6", "signal_id": "approve", "kind": "approve"},
              {"mode": "gate", "project": "flytesnacks", "domain": "development",
               "execution": "f8a2b3c4d5e6", "signal_id": "n1-approve", "kind": "signal",
               "literal_type": {"simple": "BOOLEAN"}}),
    "argo": ({"namespace": "ci", "workflow": "build-x7k2p"},
             {"namespace": "ci", "workflow": "build-x7k2p",
              "node_field_selector": "inputs.parameters.other.value={event_id}"}),
}
LOW_RISK = {"route": [{"when": "confidence >= 0.9", "then": "approve"}]}


def _needs(resumer: str) -> Any:
    if resumer == "temporal" and importlib.util.find_spec("temporalio") is None:
        # the temporal resumer cannot be loaded without the extra; the temporal adapter's
        # suite runs this case (tests/adapters/temporal/test_resume_target.py)
        return pytest.mark.skip(reason="needs the temporal extra in the hub's environment")
    return []


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    env = {"SIGNOFF_RESUMERS__ARGO__URL": "http://127.0.0.1:9",  # configured, never reached
           "SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
           "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'}
    with HubProcess(Path(tmp_path_factory.mktemp("hub")) / "hub.db", env=env) as process:
        yield process


@pytest.fixture(scope="module")
def tokens(hub: HubProcess) -> dict[str, str]:
    return {"a": hub.token("flow-a", role="workflow"),
            "b": hub.token("flow-b", role="workflow")}


def _create(hub: HubProcess, token: str, orchestrator: str, params: dict[str, Any],
            **fields: Any) -> httpx.Response:
    body = {"name": "gate", "prompt": "Ship it?",
            "source": {"orchestrator": orchestrator, "params": params}, **fields}
    return httpx.post(f"{hub.url}/api/v1/events", json=body, headers=hub.headers(token),
                      timeout=30)


def _events_of(hub: HubProcess, token: str) -> list[dict[str, Any]]:
    page = httpx.get(f"{hub.url}/api/v1/events", params={"limit": 500},
                     headers=hub.headers(token), timeout=30)
    page.raise_for_status()
    return page.json()["events"]  # type: ignore[no-any-return]


def check_target_is_guarded(hub: HubProcess, a: str, b: str, orchestrator: str,
                            mine: dict[str, Any], theirs: dict[str, Any]) -> None:
    """flow-a names a run; flow-b naming it is refused and leaves nothing behind."""
    first = _create(hub, a, orchestrator, mine, key=f"{orchestrator}-a-1")
    assert first.status_code == 201, first.text
    # the same identity names its run again: a second pause in the same run
    second = _create(hub, a, orchestrator, theirs, key=f"{orchestrator}-a-2")
    assert second.status_code == 201, second.text
    before = _events_of(hub, b)
    seen = [e["id"] for e in _events_of(hub, a)]
    for extra in ({"key": f"{orchestrator}-b-1"},
                  # decided at creation by flow-b's own route rule: refused all the same
                  {"policy": LOW_RISK, "confidence": 0.99}):
        refused = _create(hub, b, orchestrator, theirs, **extra)
        assert refused.status_code == 409, refused.text
        error = refused.json()["error"]
        assert error["code"] == "target_taken"
        assert "another identity" in error["message"]
        assert "flow-a" not in refused.text
        assert not any(event_id in refused.text for event_id in seen)
    assert _events_of(hub, b) == before  # nothing stored
    # flow-b's own runs are fine
    assert _create(hub, b, orchestrator, {**theirs, **_elsewhere(orchestrator)}).status_code \
        == 201


def _elsewhere(orchestrator: str) -> dict[str, Any]:
    return {"prefect": {"flow_run_id": str(uuid.uuid4())},
            "temporal": {"workflow_id": f"order-{uuid.uuid4().hex[:6]}"},
            "flyte": {"execution": uuid.uuid4().hex[:12]},
            "argo": {"workflow": f"build-{uuid.uuid4().hex[:5]}"}}[orchestrator]


@pytest.mark.parametrize("orchestrator", [pytest.param(name, marks=_needs(name))
                                          for name in SHAPES])
def test_a_second_workflow_cannot_name_the_first_ones_run(hub: HubProcess,
                                                          tokens: dict[str, str],
                                                          orchestrator: str) -> None:
    mine, theirs = SHAPES[orchestrator]
    check_target_is_guarded(hub, tokens["a"], tokens["b"], orchestrator, mine, theirs)


def test_the_first_to_name_a_run_keeps_it_after_its_event_is_decided(
        hub: HubProcess, tokens: dict[str, str]) -> None:
    params = {"namespace": "ci", "workflow": "nightly-q9z"}
    made = _create(hub, tokens["a"], "argo", params, policy=LOW_RISK, confidence=0.99)
    assert made.status_code == 201 and made.json()["status"] == "decided", made.text
    assert _create(hub, tokens["b"], "argo", params).status_code == 409


def test_runs_named_with_no_push_target_are_not_checked(hub: HubProcess,
                                                        tokens: dict[str, str]) -> None:
    """A webhook names no engine run (its receiver checks the signed event id), and a Flyte
    task-mode step reads its own event from the hub: neither has a target to guard."""
    cases = [("webhook", {"url": "http://127.0.0.1:9/hook"}),
             ("flyte", {"mode": "task", "project": "p", "domain": "d", "execution": "e1"})]
    for orchestrator, params in cases:
        for who in ("a", "b"):
            made = _create(hub, tokens[who], orchestrator, params)
            assert made.status_code == 201, (orchestrator, who, made.text)


class _ThirdPartyResumer:
    """A fake third-party resumer (as a ``signoff.resumers`` entry point would give): its
    target is ``params["run"]``, and it cannot read params without one."""

    def target(self, event: Event) -> str | None:
        return str(event.source.params["run"])

    async def deliver(self, event: Event) -> None:
        return None

    async def aclose(self) -> None:
        return None


class _OldResumer:
    """A fake resumer written before ``target`` existed: never checked."""

    async def deliver(self, event: Event) -> None:
        return None

    async def aclose(self) -> None:
        return None


def test_third_party_resumers_are_guarded_by_their_own_target(tmp_path: Path) -> None:
    async def go() -> None:
        store = open_store(str(tmp_path / "hub.db"))
        hub = Hub(load_settings(database=str(tmp_path / "hub.db")), store)
        hub.dispatcher.resumers.update(mine=_ThirdPartyResumer(), old=_OldResumer())
        a, b = Identity(user="flow-a", role="workflow"), Identity(user="flow-b", role="workflow")

        def body(orchestrator: str, **params: Any) -> EventCreate:
            return EventCreate(name="gate", prompt="?", source=Source(
                orchestrator=orchestrator, params=params))

        try:
            await hub.create(a, body("mine", run="r-1"), None)
            with pytest.raises(TargetTaken):
                await hub.create(b, body("mine", run="r-1"), None)
            await hub.create(b, body("mine", run="r-2"), None)
            with pytest.raises(InvalidInput) as refused:  # fails closed, naming the field
                await hub.create(b, body("mine"), None)
            assert refused.value.field == "source.params"
            # the same run under another resumer's name is another target
            await hub.create(b, body("old", run="r-1"), None)
            await hub.create(a, body("old", run="r-1"), None)
            assert store.count_events(requested_by="flow-b") == 2
        finally:
            store.close()

    asyncio.run(go())


@pytest.mark.parametrize(("params", "field", "expected", "got"), [
    ({"namespace": "argo", "workflow": "f" * 3000}, "source.params.workflow",
     "at most 253 characters (a Kubernetes name)", "3000 characters"),
    ({"namespace": "n" * 64, "workflow": "build"}, "source.params.namespace",
     "at most 63 characters (a Kubernetes name)", "64 characters"),
])
def test_a_name_longer_than_kubernetes_allows_is_refused_naming_it(
        hub: HubProcess, tokens: dict[str, str], params: dict[str, Any], field: str,
        expected: str, got: str) -> None:
    before = _events_of(hub, tokens["a"])
    refused = _create(hub, tokens["a"], "argo", params)
    assert refused.status_code == 422, refused.text
    error = refused.json()["error"]
    assert (error["field"], error["expected"], error["got"]) == (field, expected, got)
    assert _events_of(hub, tokens["a"]) == before
    longest = {"namespace": "n" * 63, "workflow": "w" * 253}
    assert _create(hub, tokens["a"], "argo", longest).status_code == 201


def _hub_on(where: str, request: pytest.FixtureRequest, tmp_path: Path) -> Hub:
    """An in-process hub on a fresh SQLite file or PostgreSQL database."""
    if where == "postgresql":
        url: str = request.getfixturevalue("pg_url")
        return Hub(load_settings(database=url), open_store(url, audit_key=PG_AUDIT_KEY.encode()))
    path = str(tmp_path / "hub.db")
    return Hub(load_settings(database=path), open_store(path))


@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_a_batch_item_whose_target_is_too_long_to_store_is_refused_alone(
        where: str, request: pytest.FixtureRequest, tmp_path: Path) -> None:
    """A third-party resumer names a run too long to index: the store refuses that item (a
    422 naming the params) and nothing else, the same on SQLite and PostgreSQL (where the
    index entry would have failed the whole request with a 503, the items before it stored).
    """
    async def go() -> None:
        hub = _hub_on(where, request, tmp_path)
        hub.dispatcher.resumers.update(mine=_ThirdPartyResumer())
        who = Identity(user="flow-a", role="workflow")
        runs = {"g1": "r-1", "g2": "r-2", "bad": "r" * 3000, "g3": "r-3"}
        items = [{"name": "gate", "prompt": f"Ship {key}?", "key": key,
                  "source": {"orchestrator": "mine", "params": {"run": run}}}
                 for key, run in runs.items()]
        try:
            results = await create_batch(hub, who, items, None)
            assert [status for status, _, _ in results] == [201, 201, 422, 201]
            error = results[2][2]
            assert error is not None and error["error"]["field"] == "source.params"
            assert error["error"]["got"] == "3,005 bytes"
            made = {event.key: event.id for _, event, _ in results if event is not None}
            assert set(made) == {"g1", "g2", "g3"}
            assert {e.key: e.id for e in hub.store.list_events(limit=10).events} == made
        finally:
            hub.store.close()

    asyncio.run(go())


def test_target_helpers() -> None:
    assert target_name("a/b", "c") == "a%2Fb/c" != target_name("a", "b/c") == "a/b%2Fc"
    assert target_of(None, make_event()) is None
    assert target_of(_OldResumer(), make_event()) is None  # type: ignore[arg-type]

    class Wrong(_OldResumer):
        def target(self, event: Event) -> Any:
            return 7

    with pytest.raises(TypeError, match="Wrong.target returned int"):
        target_of(Wrong(), make_event())  # type: ignore[arg-type]
