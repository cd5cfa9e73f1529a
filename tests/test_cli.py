"""The `signoff` command against a real hub."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from signoff import Client
from signoff.cli import main
from signoff.testing import HubProcess


@pytest.fixture(scope="module")
def env(shared_hub: HubProcess) -> dict[str, str]:
    return {"SIGNOFF_URL": shared_hub.url, "SIGNOFF_TOKEN": shared_hub.admin_token or ""}


@pytest.fixture(scope="module")
def flow(shared_hub: HubProcess) -> Client:
    return Client(shared_hub.url, shared_hub.token("flow", role="workflow"))


def cli(env: dict[str, str], *args: str) -> Any:
    result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)
    return result


def test_token_create_prints_the_token_alone_on_the_last_line(tmp_path: Path) -> None:
    db = str(tmp_path / "t.db")
    from signoff.store import open_store

    open_store(db).close()  # the hub's store: token create never makes one
    result = subprocess.run(
        [sys.executable, "-c", "from signoff.cli import run; run()", "token", "create",
         "--user", "rita", "--group", "ops", "--group", "data", "--role", "reviewer", "--db", db],
        capture_output=True, text=True, check=True)
    token = result.stdout.strip().splitlines()[-1]
    assert token.startswith("so_") and " " not in token
    store = open_store(db)
    who = store.identity_for(token)
    store.close()
    assert who is not None and (who.user, who.groups, who.role) == ("rita", ("ops", "data"),
                                                                     "reviewer")


def test_list_show_respond(env: dict[str, str], flow: Client) -> None:
    event = flow.create(name="cli-int", prompt="How many replicas?",
                        input={"kind": "int", "min": 1, "max": 9})
    listed = cli(env, "list", "--status", "pending")
    assert event.id in listed.output and "How many replicas?" in listed.output
    as_json = [json.loads(line) for line in cli(env, "list", "--json").output.splitlines()]
    assert event.id in {e["id"] for e in as_json}
    shown = json.loads(cli(env, "show", event.id, "--json").output)
    assert shown["input"] == {"kind": "int", "min": 1, "max": 9, "default": None}
    answered = cli(env, "respond", event.id, "3", "--comment", "three is plenty")
    assert answered.exit_code == 0 and "answered by admin" in answered.output
    decided = flow.get(event.id)
    assert decided.decision is not None
    assert (decided.decision.value, decided.decision.channel) == (3, "cli")
    assert decided.decision.comment == "three is plenty"


def test_respond_reads_yes_no_and_json(env: dict[str, str], flow: Client) -> None:
    approval = flow.create(name="cli-yes", prompt="Go?")
    assert "approved" in cli(env, "respond", approval.id, "yes").output
    form = flow.create(name="cli-form", prompt="Fill", input={
        "kind": "form", "schema": {"type": "object", "properties": {"n": {"type": "integer"}}}})
    assert "answered" in cli(env, "respond", form.id, '{"n": 2}', "--json").output
    assert flow.get(form.id).decision.value == {"n": 2}  # type: ignore[union-attr]


def test_bad_answers_exit_1_with_the_hubs_message(shared_hub: HubProcess, env: dict[str, str],
                                                  flow: Client) -> None:
    event = flow.create(name="cli-bad", prompt="Pick", input={"kind": "choice",
                                                               "options": ["a", "b"]})
    result = subprocess.run(
        [sys.executable, "-c", "from signoff.cli import run; run()", "respond", event.id, "c"],
        capture_output=True, text=True, env={**env, "PATH": ""})
    assert result.returncode == 1
    assert "value: expected one of ['a', 'b'], got 'c'" in result.stderr
    assert flow.get(event.id).status == "pending"


def test_cancel(env: dict[str, str], flow: Client) -> None:
    event = flow.create(name="cli-cancel", prompt="Go?")
    assert "cancelled by admin" in cli(env, "cancel", event.id, "--comment", "moot").output
    assert flow.get(event.id).status == "cancelled"


def test_export_writes_labelled_rows(env: dict[str, str], flow: Client) -> None:
    event = flow.create(name="cli-export", prompt="Refund?", context={"amount": 42},
                        recommendation=True, confidence=0.7)
    Client(env["SIGNOFF_URL"], env["SIGNOFF_TOKEN"]).respond(event.id, False, "too much")
    rows = [json.loads(line) for line in cli(env, "export").output.splitlines()]
    row = next(r for r in rows if r["id"] == event.id)
    assert row["context"] == {"amount": 42} and row["recommendation"] is True
    assert (row["value"], row["outcome"], row["by"]) == (False, "rejected", "admin")
    assert row["confidence"] == 0.7 and row["comment"] == "too much"
    assert all(r["outcome"] != "cancelled" for r in rows)


def test_audit_show_and_verify(shared_hub: HubProcess, env: dict[str, str],
                               flow: Client) -> None:
    event = flow.create(name="cli-audit", prompt="Go?")
    cli(env, "respond", event.id, "no")
    trail = cli(env, "audit", "show", event.id).output
    assert "created" in trail and "rejected" in trail and "via cli" in trail
    verified = cli(env, "audit", "verify", "--db", shared_hub.database)
    assert verified.exit_code == 0 and "audit log intact" in verified.output


def test_unreachable_hub_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", "from signoff.cli import run; run()", "--url",
         "http://127.0.0.1:9", "--token", "x", "list"], capture_output=True, text=True)
    assert result.returncode == 1 and "error: http://127.0.0.1:9" in result.stderr
