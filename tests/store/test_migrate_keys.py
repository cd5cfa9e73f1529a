"""Migration 4 on a database written by schema 3: rows kept, keys scoped, the chain keyed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

from signoff.store import open_store
from signoff.store._audit import GENESIS, entry_hash
from signoff.store.contract import T0, make_event
from signoff.store.sqlite import _MIGRATIONS

_EVENT_INDEXES = {"events_order", "events_all_order", "events_deadline", "events_requester",
                  "events_escalation", "events_open"}


def _legacy_audit(conn: sqlite3.Connection, action: str, event_id: str | None,
                  data: dict[str, object]) -> None:
    """Append an entry the way schema 3 did: plain SHA-256, no key."""
    last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
    seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
    text = json.dumps(data, sort_keys=True)
    at = T0.timestamp() + seq
    conn.execute("INSERT INTO audit (seq, at, event_id, actor, action, channel, data, prev_hash,"
                 " hash) VALUES (?,?,?,?,?,?,?,?,?)",
                 (seq, at, event_id, "flow", action, "api", text, prev,
                  entry_hash(None, prev, seq, at, event_id, "flow", action, "api", text)))


def _schema_3_database(path: Path) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    for number, script in enumerate(_MIGRATIONS[:3], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    conn.execute("BEGIN")
    body = json.dumps({"prompt": "Deploy?", "input": {"kind": "approval"}, "context": {"n": 1},
                       "assignees": ["group:ops"], "priority": "high", "timeout": None,
                       "on_timeout": "fail", "source": {"orchestrator": "webhook"},
                       "labels": {}, "recommendation": None, "confidence": None,
                       "impact": None, "policy": None})
    at = T0.timestamp()
    for event_id, key, status in (("ev_old1", "argo:uid-1:approve", "decided"),
                                  ("ev_old2", "airflow:etl:r1:approve:-1", "pending")):
        conn.execute("INSERT INTO events (id, key, name, status, sort_priority, created_at,"
                     " deadline, requested_by, assigned, body, escalation_level, next_escalation)"
                     " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                     (event_id, key, "deploy", status, -3, at, at + 60, "flow", 1, body, 1,
                      at + 30))
        conn.execute("INSERT INTO event_assignees VALUES ('group:ops', ?)", (event_id,))
        _legacy_audit(conn, "created", event_id, {"key": key})
    conn.execute("INSERT INTO responses VALUES ('rs_old', 'ev_old1', 'rita', 'true', 'ok',"
                 " 'web', ?)", (at + 5,))
    _legacy_audit(conn, "responded", "ev_old1", {"value": True})
    conn.execute("INSERT INTO decisions (event_id, value, outcome, by, comment, channel, at,"
                 " rule) VALUES ('ev_old1', 'true', 'approved', 'rita', 'ok', 'web', ?, NULL)",
                 (at + 5,))
    _legacy_audit(conn, "approved", "ev_old1", {"value": True})
    conn.execute("INSERT INTO deliveries VALUES ('dl_old', 'ev_old1', 'webhook', 'delivered', 1,"
                 " NULL, NULL, ?, ?)", (at + 5, at + 6))
    conn.execute("COMMIT")
    conn.close()


def test_migration_4_keeps_every_row_and_scopes_keys(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    _schema_3_database(path)
    store = open_store(str(path))
    try:
        old = store.get_event("ev_old1")
        assert old is not None and old.status == "decided" and old.key == "argo:uid-1:approve"
        assert (old.requested_by, old.assignees, old.escalation_level) == (
            "flow", ["group:ops"], 1)
        assert [r.id for r in old.responses] == ["rs_old"]
        assert old.decision is not None and old.decision.by == "rita"
        assert [(d.id, d.state) for d in old.deliveries] == [("dl_old", "delivered")]
        assert [e.id for e in store.list_events(status="pending").events] == ["ev_old2"]
        assert store.next_escalation() is not None  # the partial index came back
        # migration 15 copied each assignment's status and sort key: the inbox's pages read them
        for status, want in (("pending", ["ev_old2"]), ("decided", ["ev_old1"]),
                             (None, ["ev_old1", "ev_old2"])):
            for seen in ({"rita", "group:ops"}, {"group:ops"}):
                assert [e.id for e in store.list_events(status=status, visible_to=seen).events
                        ] == want
                assert store.count_events(status=status, visible_to=seen) == len(want)
            assert [e.id for e in store.list_events(status=status, assignee="group:ops").events
                    ] == want
            assert store.list_events(status=status, visible_to={"rita"}).events == []

        # the key is now the requester's: another identity gets its own event...
        theirs, created = store.create_event(
            make_event(key="airflow:etl:r1:approve:-1", requested_by="other-flow"), channel="api")
        assert created and theirs.id != "ev_old2" and theirs.requested_by == "other-flow"
        # ...and the first identity still gets its old event back
        again, created = store.create_event(
            make_event(key="airflow:etl:r1:approve:-1", requested_by="flow"), channel="api")
        assert not created and again.id == "ev_old2"

        # the keyed chain starts at the migration, sealing the rows the legacy log covered
        report = store.verify_audit()
        assert report.ok, report.problems
        assert report.legacy_entries == 4
        marker = [a for a in store.audit("ev_old1")]
        assert [a.action for a in marker][-2:] == ["sealed", "sealed"]
    finally:
        store.close()

    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS) >= 4
    indexes = {r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'events'")}
    assert _EVENT_INDEXES <= indexes
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    for child in ("event_assignees", "responses", "decisions", "deliveries"):
        assert [r[2] for r in conn.execute(f"PRAGMA foreign_key_list({child})")] == ["events"]
    conn.execute("PRAGMA foreign_keys = ON")
    with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):
        conn.execute("INSERT INTO responses (id, event_id, by, value, comment, channel, at)"
                     " VALUES ('rs_x', 'ev_gone', 'a', '1', NULL, 'api', 0)")
    with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):  # one key per identity
        conn.execute("INSERT INTO events (id, key, name, status, sort_priority, created_at,"
                     " requested_by, assigned, body) VALUES ('ev_dup', 'argo:uid-1:approve',"
                     " 'n', 'pending', 0, 0, 'flow', 0, '{}')")
    [(first, audit_keyed)] = conn.execute(
        "SELECT seq, data FROM audit WHERE action = 'audit_keyed'").fetchall()
    assert first == 5 and json.loads(audit_keyed) == {"legacy_entries": 4, "sealed_rows": 2}
    # a decision row the legacy log covered, edited after the migration, is caught
    conn.execute("UPDATE decisions SET by = 'mallory' WHERE event_id = 'ev_old1'")
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        [problem] = store.verify_audit().problems
        assert (problem.kind, problem.table, problem.row_id) == ("changed", "decisions",
                                                                 "ev_old1")
    finally:
        store.close()


def test_a_fresh_database_is_keyed_from_its_first_entry(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "new.db"))
    try:
        store.create_event(make_event(), channel="api")
        report = store.verify_audit()
        assert report.ok and report.legacy_entries == 0 and report.entries == 1
    finally:
        store.close()
