"""The keyed audit log of a real hub, checked with `signoff audit verify` / `audit anchor`.

One hub run writes a log (tokens, events, responses, decisions, failing delivery attempts);
each test then works on its own copy of the database and its key file, as an attacker with
write access to the database file (not to the key) would.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from signoff import Client
from signoff.cli import main
from signoff.testing import HubProcess, free_port, until

_until = until


@pytest.fixture(scope="module")
def written(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Run a hub once and stop it; what it wrote is the starting point of every test."""
    path = tmp_path_factory.mktemp("audited") / "hub.db"
    hub = HubProcess(path, env={"SIGNOFF_SWEEP_INTERVAL": "0.2",
                                "SIGNOFF_DELIVERY_BACKOFF": "0.05",
                                # the webhook receiver is on loopback: allowed explicitly
                                "SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
                                "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'})
    with hub:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        hub.token("rita", role="reviewer")
        admin = Client(hub.url, hub.admin_token)
        plain = flow.create(name="plain", prompt="Ship?")
        admin.respond(plain.id, True, "fine")
        hooked = flow.create(name="hooked", prompt="Ship?", source={
            "orchestrator": "webhook", "params": {"url": f"http://127.0.0.1:{free_port()}/"}})
        admin.respond(hooked.id, False, "no")
        _until(lambda: [e for e in flow.audit(hooked.id)
                        if e["action"].startswith("delivery_")], 20, "audited delivery attempt")
    log = hub.log_path.read_text()
    return {"db": path, "log": log, "plain": plain.id, "hooked": hooked.id}


@pytest.fixture
def db(written: dict[str, Any], tmp_path: Path) -> Iterator[Path]:
    """A copy of the hub's database and its key file."""
    source: Path = written["db"]
    for file in source.parent.iterdir():
        if file.name.startswith("hub.db") and not file.name.endswith(".log"):
            shutil.copy(file, tmp_path / file.name)
    yield tmp_path / "hub.db"


def _cli(*args: str, env: dict[str, str] | None = None) -> Result:
    clean = {k: None for k in os.environ if k.startswith("SIGNOFF_")}
    return CliRunner().invoke(main, list(args), env={**clean, **(env or {})})


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_the_hub_makes_a_private_key_beside_the_database_and_says_where(
        written: dict[str, Any]) -> None:
    key_file = Path(str(written["db"]) + ".audit-key")
    assert f"made a new audit key in {key_file}" in written["log"]
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip().encode() not in written["db"].read_bytes()


def test_tokens_responses_decisions_and_delivery_attempts_are_audited(db: Path,
                                                                       written: dict[str, Any]
                                                                       ) -> None:
    made = [json.loads(d)["user"] for (d,) in _rows(
        db, "SELECT data FROM audit WHERE action = 'token.created' ORDER BY seq")]
    assert sorted(set(made)) == ["admin", "flow", "rita"]
    actions = [a for (a,) in _rows(
        db, f"SELECT action FROM audit WHERE event_id = '{written['hooked']}' ORDER BY seq")]
    assert actions[:3] == ["created", "responded", "rejected"]
    assert "delivery_attempted" in actions or "delivery_failed" in actions
    attempts = [json.loads(d) for (d,) in _rows(
        db, f"SELECT data FROM audit WHERE event_id = '{written['hooked']}'"
            " AND action LIKE 'delivery_%' ORDER BY seq")]
    assert attempts[0]["attempts"] == 1 and attempts[0]["error"]


def test_anchor_then_verify(db: Path) -> None:
    anchored = _cli("audit", "anchor", "--db", str(db))
    assert anchored.exit_code == 0, anchored.output
    line = anchored.stdout.strip()
    assert line.startswith("signoff-audit-anchor:") and len(line.splitlines()) == 1
    verified = _cli("audit", "verify", "--db", str(db), "--anchor", line)
    assert verified.exit_code == 0, verified.output
    assert "audit log intact" in verified.stdout and "matches" in verified.stdout
    bad = _cli("audit", "verify", "--db", str(db), "--anchor", "not-an-anchor")
    assert bad.exit_code == 2 and "--anchor" in bad.output


def test_verify_names_an_edited_decision_and_an_edited_response(db: Path,
                                                                written: dict[str, Any]) -> None:
    plain = written["plain"]
    [(response_id,)] = _rows(db, f"SELECT id FROM responses WHERE event_id = '{plain}'")
    _sql(db, f"UPDATE decisions SET value = 'false', outcome = 'rejected' WHERE event_id = '{plain}'",
         f"UPDATE responses SET comment = 'rubber stamp' WHERE id = '{response_id}'")
    verified = _cli("audit", "verify", "--db", str(db))
    assert verified.exit_code == 1
    assert f"decisions row {plain}: changed" in verified.stderr
    assert f"responses row {response_id}: changed" in verified.stderr
    assert "NOT intact: 2 problem(s)" in verified.stderr


def test_a_deleted_tail_is_caught_only_with_an_anchor(db: Path) -> None:
    line = _cli("audit", "anchor", "--db", str(db)).stdout.strip()
    [(last, action)] = _rows(db, "SELECT seq, action FROM audit ORDER BY seq DESC LIMIT 1")
    assert action.startswith("delivery_")  # an entry that seals no row: a clean cut
    _sql(db, "DROP TRIGGER audit_no_delete", f"DELETE FROM audit WHERE seq = {last}")
    plain = _cli("audit", "verify", "--db", str(db))
    assert plain.exit_code == 0  # what is left is a consistent log: this is why anchors exist
    anchored = _cli("audit", "verify", "--db", str(db), "--anchor", line)
    assert anchored.exit_code == 1
    assert (f"ends at entry {last - 1}, but the anchor was taken at entry {last}"
            in anchored.stderr)


def test_a_wrong_or_missing_key_fails_verify_and_the_hub_will_not_start(db: Path) -> None:
    wrong = {"SIGNOFF_AUDIT_KEY": "an-entirely-different-key-0123456789"}
    verified = _cli("audit", "verify", "--db", str(db), env=wrong)
    assert verified.exit_code == 1
    assert "the key is wrong" in verified.stderr and "SIGNOFF_AUDIT_KEY" in verified.stderr
    served = subprocess.run(
        [sys.executable, "-c", "from signoff.cli import run; run()", "serve", "--db", str(db),
         "--port", str(free_port())], env={**os.environ, **wrong}, capture_output=True,
        text=True, timeout=60)
    assert served.returncode == 2
    assert "not the key this log was written with" in served.stderr
    tokens = _rows(db, "SELECT COUNT(*) FROM tokens")
    minted = _cli("token", "create", "--user", "eve", "--db", str(db), env=wrong)
    assert minted.exit_code == 2 and "not the key this log was written with" in minted.stderr
    assert _rows(db, "SELECT COUNT(*) FROM tokens") == tokens  # nothing written under it

    key_file = Path(str(db) + ".audit-key")
    key_file.unlink()  # the key is lost: a new one must not be made for the old log
    missing = _cli("audit", "verify", "--db", str(db))
    assert missing.exit_code == 2 and "no audit key" in missing.stderr
    assert not key_file.exists()  # verify never makes a key
    minted = _cli("token", "create", "--user", "eve", "--db", str(db))
    assert minted.exit_code == 2 and "not the key this log was written with" in minted.stderr
    assert not key_file.exists()  # the key it made for the attempt is gone again


def test_a_key_from_the_environment(tmp_path: Path) -> None:
    key = {"SIGNOFF_AUDIT_KEY": "from-a-kubernetes-secret-0123456789"}
    hub = HubProcess(tmp_path / "k8s.db", env=key)
    with hub:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        flow.create(name="n", prompt="p")
    assert "keyed with the audit_key setting (SIGNOFF_AUDIT_KEY)" in hub.log_path.read_text()
    assert not Path(str(tmp_path / "k8s.db") + ".audit-key").exists()
    assert _cli("audit", "verify", "--db", str(tmp_path / "k8s.db"), env=key).exit_code == 0
    assert _cli("audit", "verify", "--db", str(tmp_path / "k8s.db")).exit_code == 2
