"""Load balancing (issue 21) through a real hub: a group of three shares events round-robin or by
least pending, an away member is passed over and their events move, a tier that passes
unanswered moves the event on; the member is the one notified; the queue depth gauge.
"""

from __future__ import annotations

import concurrent.futures
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Client
from signoff.testing import free_port, until

from .inprocess import FakeClock, InProcessHub
from .test_reliability import Receiver

MEMBERS = ["alice", "bob", "carol"]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


@pytest.fixture
def team(tmp_path: Path, receiver: Receiver) -> Iterator[tuple[InProcessHub, FakeClock]]:
    target = f"json://127.0.0.1:{receiver.port}"
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "team.db", clock, group_members={"ops": MEMBERS},
                       notify={"group:ops": [f"{target}/ops"],
                               **{m: [f"{target}/{m}"] for m in MEMBERS}}).start()
    try:
        yield hub, clock
    finally:
        hub.stop()


def _clients(hub: InProcessHub) -> tuple[Client, dict[str, Client]]:
    flow = Client(hub.url, hub.token("flow", role="workflow"))
    return flow, {m: Client(hub.url, hub.token(m, groups=("ops",))) for m in MEMBERS}


def _ask(flow: Client, strategy: str, **policy: Any) -> str:
    return flow.create(name="deploy", prompt="Deploy?", assignees=["group:ops"],
                       policy={"balance": strategy, **policy}).id


def _assigned(client: Client, event_id: str) -> list[dict[str, Any]]:
    return [e["data"] for e in client.audit(event_id) if e["action"] == "assigned"]


def _queues(hub: InProcessHub) -> dict[str, float]:
    text = httpx.get(f"{hub.url}/metrics").text
    return {m: float(v) for m, v in
            re.findall(r'^signoff_reviewer_pending\{reviewer="([^"]+)"\} (\S+)$', text, re.M)}


def _notified(client: Client, event_id: str, count: int) -> bool:
    """Whether the hub has recorded ``count`` notifications of the event (each once sent)."""
    return [e["action"] for e in client.audit(event_id)].count("notified") >= count


def test_round_robin_gives_one_each_and_the_group_still_sees_them(
        team: tuple[InProcessHub, FakeClock]) -> None:
    hub, _ = team
    flow, people = _clients(hub)
    events = [_ask(flow, "round_robin") for _ in range(3)]
    given = [flow.get(e).assignee for e in events]
    assert sorted(given) == MEMBERS  # 1/1/1
    assert [flow.get(e).assignees for e in events] == [["group:ops", m] for m in given]
    assert _queues(hub) == {"alice": 1.0, "bob": 1.0, "carol": 1.0}
    [entry] = _assigned(flow, events[0])
    assert (entry["strategy"], entry["member"], entry["group"]) == ("round_robin", given[0],
                                                                   "ops")
    # the group still sees every event, and another member may answer one
    assert sorted(e.id for e in people["bob"].list(status="pending").events) == sorted(events)
    other = next(m for m in MEMBERS if m != given[0])
    assert people[other].respond(events[0], True).decision.by == other  # type: ignore[union-attr]
    assert _queues(hub)[given[0]] == 0.0


def test_least_pending_prefers_the_idle_member(team: tuple[InProcessHub, FakeClock]) -> None:
    hub, _ = team
    flow, people = _clients(hub)
    first = {flow.get(e).assignee: e for e in (_ask(flow, "least_pending") for _ in range(3))}
    assert sorted(first) == MEMBERS
    people["carol"].respond(first["carol"], True)  # carol is idle now; round-robin says alice
    fourth = _ask(flow, "least_pending")
    assert flow.get(fourth).assignee == "carol"
    [entry] = _assigned(flow, fourth)
    assert entry["pending"] == {"alice": 1, "bob": 1, "carol": 0}
    fifth = _ask(flow, "least_pending")  # all at one again: the turn decides
    assert flow.get(fifth).assignee in ("alice", "bob")


def test_an_away_member_is_passed_over_and_their_events_move(
        team: tuple[InProcessHub, FakeClock]) -> None:
    hub, _ = team
    flow, people = _clients(hub)
    mine = _ask(flow, "round_robin")
    assert flow.get(mine).assignee == "alice"
    people["alice"].delegate("dave", "1d", reason="on leave")
    moved = flow.get(mine)
    assert moved.assignee == "bob" and moved.assignees == ["group:ops", "bob"]
    assert _assigned(flow, mine)[-1] | {"pending": None} == {
        "group": "ops", "strategy": "round_robin", "member": "bob", "previous": "alice",
        "reason": "alice is away", "pending": None}
    later = [flow.get(_ask(flow, "round_robin")).assignee for _ in range(4)]
    assert "alice" not in later and sorted(set(later)) == ["bob", "carol"]


def test_a_tier_passing_unanswered_moves_the_event_on(team: tuple[InProcessHub, FakeClock],
                                                      receiver: Receiver) -> None:
    hub, clock = team
    flow, people = _clients(hub)
    event = _ask(flow, "round_robin",
                 escalate=[{"after": 3600}, {"after": 7200}, {"after": 10800}])
    assert flow.get(event).assignee == "alice"
    until(lambda: _notified(flow, event, 1), what="the creation notice")
    # the member is told, with her one-click links; the group's own target is left out
    [created] = [json.loads(body)["message"] for _, body in receiver.calls]
    assert "one-click answers for alice" in created

    clock.advance(hours=1)
    hub.settle(lambda: flow.get(event).assignee == "bob")
    assert flow.get(event).assignees == ["group:ops", "bob"]
    step = _assigned(flow, event)[-1]
    assert (step["previous"], step["reason"]) == ("alice", "escalate[0] passed unanswered")
    until(lambda: _notified(flow, event, 2), what="the escalation notice")
    assert "one-click answers for bob" in json.loads(receiver.calls[1][1])["message"]
    assert len(receiver.calls) == 2

    clock.advance(hours=1)  # bob did not answer either: the one not tried yet
    hub.settle(lambda: flow.get(event).assignee == "carol")
    assert [a["member"] for a in _assigned(flow, event)] == ["alice", "bob", "carol"]
    assert _queues(hub) == {"alice": 0.0, "bob": 0.0, "carol": 1.0}

    clock.advance(hours=1)  # every one tried: round again, to anyone but the current one
    hub.settle(lambda: flow.get(event).assignee == "alice")
    assert [a["member"] for a in _assigned(flow, event)] == ["alice", "bob", "carol", "alice"]
    assert people["alice"].respond(event, False, "not today").status == "decided"


def test_the_policy_file_balances_and_the_requester_is_never_chosen(tmp_path: Path) -> None:
    hub = InProcessHub(tmp_path / "file.db", FakeClock(), group_members={"ops": MEMBERS},
                       policies=[{"match": {"name": "deploy-*"}, "balance": "round_robin"}]
                       ).start()
    try:
        carol = Client(hub.url, hub.token("carol", role="admin"))  # an admin may create events
        made = [carol.create(name="deploy-api", prompt="Deploy?", assignees=["group:ops"],
                             policy={"forbid_self_approval": True}) for _ in range(4)]
        assert [e.assignee for e in made] == ["alice", "bob", "alice", "bob"]
        notes = [e["data"].get("note") for e in carol.audit(made[0].id)
                 if e["action"] == "policy"]
        assert "policy file rule 0: balanced round_robin" in notes
        other = carol.create(name="other", prompt="Other?", assignees=["group:ops"])
        assert other.assignee is None and other.assignees == ["group:ops"]
    finally:
        hub.stop()


def test_two_replicas_share_one_rotation(pg_url: str, tmp_path: Path) -> None:
    from .test_replicas import replicas

    members = json.dumps({"ops": MEMBERS})
    with replicas(pg_url, tmp_path, 2, SIGNOFF_GROUP_MEMBERS=members) as (a, b):
        flows = [Client(h.url, a.token("flow", role="workflow")) for h in (a, b)]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            made = list(pool.map(lambda i: _ask(flows[i % 2], "round_robin"), range(6)))
        given = [flows[0].get(e).assignee for e in made]
        assert sorted(given) == sorted(MEMBERS * 2)  # 2/2/2 across both replicas
        for hub in (a, b):  # the gauge is read from the store: the same on each replica
            text = httpx.get(f"{hub.url}/metrics").text
            assert set(re.findall(r'^signoff_reviewer_pending\{reviewer="\w+"\} (\S+)$', text,
                                  re.M)) == {"2.0"}


def test_the_member_is_reminded_not_the_group(tmp_path: Path, receiver: Receiver) -> None:
    target = f"json://127.0.0.1:{receiver.port}"
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "remind.db", clock, group_members={"ops": MEMBERS},
                       reminders=[0.5], notify={"group:ops": [f"{target}/ops"],
                                                "alice": [f"{target}/alice"]}).start()
    try:
        flow, _ = _clients(hub)
        event = flow.create(name="deploy", prompt="Deploy?", assignees=["group:ops"],
                            timeout=1000, policy={"balance": "round_robin"}).id
        until(lambda: _notified(flow, event, 1), what="the creation notice")
        clock.advance(seconds=501)
        hub.settle(lambda: any(e["action"] == "reminded" for e in flow.audit(event)))
        [reminded] = [e["data"] for e in flow.audit(event) if e["action"] == "reminded"]
        assert reminded["to"] == ["alice"]
        until(lambda: _notified(flow, event, 2), what="the reminder")
        titles = [json.loads(body)["title"] for _, body in receiver.calls]
        assert len(titles) == 2 and "still waits for you" in titles[1]  # alice's two, no group's
    finally:
        hub.stop()
