"""Delegation and out of office (issue 21): windows with a moved clock, the audit trail, the API's
refusals, the CLI, and that no delegation gains self-approval or bypasses a quorum.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from signoff import AlreadyAnswered, Client, Forbidden, InvalidInput
from signoff.testing import HubProcess

from .inprocess import FakeClock, InProcessHub


def _actions(client: Client, event_id: str) -> list[tuple[str, dict[str, object]]]:
    return [(e["action"], e["data"]) for e in client.audit(event_id)
            if e["action"] not in ("notified", "created")]


def test_delegation_windows_with_a_moved_clock(tmp_path: Path) -> None:
    clock = FakeClock()
    hub = InProcessHub(tmp_path / "away.db", clock).start()
    try:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        alice = Client(hub.url, hub.token("alice"))
        bob = Client(hub.url, hub.token("bob"))
        away = alice.delegate("bob", "3h", starts="1h", reason="on leave")
        assert (away["delegator"], away["delegate"], away["active"]) == ("alice", "bob", False)

        def ask(prompt: str) -> str:
            made = flow.create(name="deploy", prompt=prompt, assignees=["alice"])
            return made.id

        before = ask("Before?")
        clock.advance(hours=1)
        during = ask("During?")
        clock.advance(hours=2)
        after = ask("After?")
        assert [flow.get(e).assignees for e in (before, during, after)] == [
            ["alice"], ["alice", "bob"], ["alice"]]
        [(action, data)] = _actions(flow, during)
        assert action == "delegated"
        assert (data["from"], data["to"], data["delegation"]) == ("alice", "bob", away["id"])
        assert [e.id for e in bob.list(status="pending").events] == [during]
        assert bob.respond(during, True, "covering for alice").decision.by == "bob"  # type: ignore[union-attr]

        ops = alice.delegate("group:ops", "1d")
        covered = ask("Covered by ops?")
        assert flow.get(covered).assignees == ["alice", "group:ops"]
        assert alice.end_delegation(ops["id"])["ended_at"] is not None
        assert flow.get(ask("Not any more?")).assignees == ["alice"]
        assert [d["id"] for d in alice.delegations(all=True)] == [ops["id"], away["id"]]
        assert alice.delegations() == []  # both are over
    finally:
        hub.stop()


def test_refusals_name_the_field(hub: HubProcess) -> None:
    alice = Client(hub.url, hub.token("alice"))
    with pytest.raises(InvalidInput) as to_self:
        alice.delegate("alice", "1d")
    assert to_self.value.field == "delegate"
    with pytest.raises(InvalidInput) as over:
        alice.delegate("bob", "2020-01-01")
    assert over.value.field == "until"
    with pytest.raises(InvalidInput) as bad:
        alice.delegate("not a name", "1d")
    assert bad.value.field == "delegate"
    with pytest.raises(Forbidden):
        alice.delegate("bob", "1d", delegator="carol")  # only an admin delegates for others
    with pytest.raises(Forbidden):
        Client(hub.url, hub.token("flow", role="workflow")).delegate("bob", "1d")
    admin = Client(hub.url, hub.admin_token)
    assert admin.delegate("bob", "1d", delegator="carol")["delegator"] == "carol"
    other = admin.delegations()[0]["id"]
    gone = httpx.post(f"{hub.url}/api/v1/delegations/{other}/end", headers=hub.headers(
        hub.token("alice")))
    assert gone.status_code == 404  # not alice's to end
    assert [d["delegator"] for d in alice.delegations()] == []


def test_no_delegation_gains_self_approval(hub: HubProcess) -> None:
    root = Client(hub.url, hub.admin_token)  # an admin may create events, and requests this one
    alice = Client(hub.url, hub.token("alice"))
    alice.delegate("admin", "1d")
    event = root.create(name="grant", prompt="Grant admin prod access?", assignees=["alice"],
                        policy={"forbid_self_approval": True})
    assert root.get(event.id).assignees == ["alice"]
    [(action, data)] = _actions(root, event.id)
    assert action == "delegation_refused" and "requested this event" in str(data["reason"])
    with pytest.raises(Forbidden):
        root.respond(event.id, True)
    assert root.get(event.id).status == "pending"


def test_one_person_holding_two_delegations_counts_once(hub: HubProcess) -> None:
    flow = Client(hub.url, hub.token("flow", role="workflow"))
    alice, carol = Client(hub.url, hub.token("alice")), Client(hub.url, hub.token("carol"))
    bob = Client(hub.url, hub.token("bob"))
    alice.delegate("bob", "1d")
    carol.delegate("bob", "1d")
    event = flow.create(name="four-eyes", prompt="Ship it?", assignees=["alice", "carol"],
                        policy={"quorum": 2})
    assert flow.get(event.id).assignees == ["alice", "carol", "bob"]
    assert [a for a, _ in _actions(flow, event.id)] == ["delegated", "delegated"]
    assert bob.respond(event.id, True).status == "pending"  # one person, one vote
    with pytest.raises(AlreadyAnswered):
        bob.respond(event.id, True)
    done = carol.respond(event.id, True)
    assert done.decision is not None and done.decision.outcome.value == "approved"
    assert sorted(r.by for r in done.responses) == ["bob", "carol"]


def test_delegate_from_the_command_line(hub: HubProcess) -> None:
    env = {"SIGNOFF_URL": hub.url, "SIGNOFF_TOKEN": hub.token("alice"), "PATH": ""}

    def signoff(*args: str) -> str:
        done = subprocess.run([sys.executable, "-c", "from signoff.cli import run; run()",
                               "delegate", *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    made = signoff("add", "--to", "bob", "--until", "2w", "--reason", "on leave")
    assert "alice -> bob" in made and "active" in made and "on leave" in made
    delegation = made.split()[0]
    assert signoff("list").split()[0] == delegation
    assert "ended" in signoff("end", delegation)
    assert signoff("list") == ""
    refused = subprocess.run([sys.executable, "-c", "from signoff.cli import run; run()",
                              "delegate", "add", "--to", "alice", "--until", "1d"],
                             capture_output=True, text=True, env=env)
    assert refused.returncode == 1 and "delegate" in refused.stderr
