"""The keyed audit log against someone who can write the database file but not read the key."""

from __future__ import annotations

import os
import sqlite3
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Decision, Identity, Outcome, Response
from signoff.store import (
    AuditAnchor,
    AuditKeyError,
    AuditReport,
    Store,
    key_file_for,
    load_audit_key,
    open_store,
)
from signoff.store._audit import entry_hash
from signoff.store.contract import T0, make_event
from signoff.store.sqlite import SQLiteStore


@pytest.fixture
def db(tmp_path: Path) -> Iterator[Path]:
    """A database with two decided events (one with a response) and a token."""
    path = tmp_path / "hub.db"
    store = open_store(str(path))
    store.create_token(Identity(user="ci", role="workflow"))
    for n in (1, 2):
        event = make_event(requested_by="flow")
        store.create_event(event, channel="api")
        store.decide(event.id, Decision(value=True, outcome=Outcome.approved, by="rita",
                                        channel="web", at=T0),
                     response=Response(id=f"rs_{n}", event_id=event.id, by="rita", value=True,
                                       channel="web", at=T0))
    store.close()
    yield path


def _sql(path: Path, *statements: str) -> None:
    conn = sqlite3.connect(path)
    for statement in statements:
        conn.execute(statement)
    conn.commit()
    conn.close()


def _verify(path: Path, anchor: AuditAnchor | None = None) -> AuditReport:
    store = open_store(str(path))
    try:
        return store.verify_audit(anchor)
    finally:
        store.close()


def _one_event(path: Path) -> str:
    conn = sqlite3.connect(path)
    [(event_id,)] = conn.execute(
        "SELECT event_id FROM responses WHERE id = 'rs_1'").fetchall()
    conn.close()
    return str(event_id)


def test_an_intact_log_verifies(db: Path) -> None:
    report = _verify(db)
    assert report.ok and report.problems == ()


def test_an_edited_decision_row_is_named(db: Path) -> None:
    event_id = _one_event(db)
    _sql(db, f"UPDATE decisions SET value = 'false', outcome = 'rejected'"
             f" WHERE event_id = '{event_id}'")
    report = _verify(db)
    assert not report.ok
    [problem] = report.problems
    assert (problem.kind, problem.table, problem.row_id) == ("changed", "decisions", event_id)
    assert f"decisions row {event_id}: changed" in problem.message


def test_an_edited_response_row_is_named(db: Path) -> None:
    _sql(db, "UPDATE responses SET by = 'mallory' WHERE id = 'rs_2'")
    [problem] = _verify(db).problems
    assert (problem.kind, problem.table, problem.row_id) == ("changed", "responses", "rs_2")


def test_a_deleted_row_and_a_row_without_an_audit_entry_are_named(db: Path) -> None:
    event_id = _one_event(db)
    _sql(db, "PRAGMA foreign_keys = OFF", "DELETE FROM responses WHERE id = 'rs_1'",
         f"INSERT INTO responses (id, event_id, by, value, channel, at)"
         f" VALUES ('rs_forged', '{event_id}', 'ann', 'true', 'web', 0)")
    found = {(p.kind, p.table, p.row_id) for p in _verify(db).problems}
    assert found == {("missing", "responses", "rs_1"), ("extra", "responses", "rs_forged")}


def test_a_rewritten_entry_is_found_by_seq_even_with_a_recomputed_plain_hash(db: Path) -> None:
    # someone drops the guard and rewrites entry 3 with the only hash they can compute
    conn = sqlite3.connect(db)
    row = conn.execute("SELECT * FROM audit WHERE seq = 3").fetchone()
    names = [d[0] for d in conn.execute("SELECT * FROM audit LIMIT 0").description]
    entry = dict(zip(names, row, strict=True))
    forged = entry_hash(None, entry["prev_hash"], 3, entry["at"], entry["event_id"], "mallory",
                        entry["action"], entry["channel"], entry["data"])
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory', hash = ? WHERE seq = 3", (forged,))
    conn.commit()
    conn.close()
    report = _verify(db)
    assert report.first_bad_seq == 3
    seqs = [p.seq for p in report.problems if p.kind == "chain"]
    assert seqs == [3, 4]  # the entry itself, and the next one no longer follows it


def test_a_column_a_later_migration_adds_does_not_break_older_seals(db: Path) -> None:
    _sql(db, "ALTER TABLE responses ADD COLUMN relayed INTEGER NOT NULL DEFAULT 0")
    assert _verify(db).ok
    _sql(db, "UPDATE responses SET value = 'false' WHERE id = 'rs_1'")
    assert [p.row_id for p in _verify(db).problems] == ["rs_1"]


def test_a_cut_tail_needs_an_anchor_to_be_seen(db: Path) -> None:
    store = open_store(str(db))
    anchor = store.audit_head()
    store.close()
    assert anchor is not None and anchor.seq >= 4
    _sql(db, "DROP TRIGGER audit_no_delete", f"DELETE FROM audit WHERE seq >= {anchor.seq - 1}",
         "PRAGMA foreign_keys = OFF")
    # the decision of the last event is unsealed now: delete it too, as a careful attacker would
    conn = sqlite3.connect(db)
    last_event = conn.execute("SELECT event_id FROM responses WHERE id = 'rs_2'").fetchone()[0]
    conn.execute("DELETE FROM decisions WHERE event_id = ?", (last_event,))
    conn.execute("DELETE FROM responses WHERE id = 'rs_2'")
    conn.execute("UPDATE events SET status = 'pending' WHERE id = ?", (last_event,))
    conn.commit()
    conn.close()
    plain = _verify(db)
    assert plain.ok, plain.problems  # what is left is a consistent log: hence anchors
    anchored = _verify(db, anchor=anchor)
    assert not anchored.ok
    [problem] = anchored.problems
    assert problem.kind == "anchor" and "deleted from its end" in problem.message


def test_a_log_rewritten_as_unkeyed_entries_is_refused(db: Path) -> None:
    # without the key, the only chain one can rebuild is a plain SHA-256 one
    conn = sqlite3.connect(db)
    conn.execute("DROP TRIGGER audit_no_update")
    prev = "0" * 64
    for seq, at, event_id, actor, action, channel, data in conn.execute(
            "SELECT seq, at, event_id, actor, action, channel, data FROM audit ORDER BY seq"
            ).fetchall():
        forged = entry_hash(None, prev, seq, at, event_id, actor, action, channel, data)
        conn.execute("UPDATE audit SET alg = 'sha256', prev_hash = ?, hash = ? WHERE seq = ?",
                     (prev, forged, seq))
        prev = forged
    conn.commit()
    conn.close()
    report = _verify(db)
    assert not report.ok and report.legacy_entries == report.entries
    assert "no keyed one" in report.problems[0].message


def test_a_wrong_key_fails_clearly(db: Path) -> None:
    store = SQLiteStore(db, audit_key=b"not-the-key-at-all-0123456789")
    try:
        report = store.verify_audit()
        assert not report.ok
        assert [p.kind for p in report.problems] == ["key"]
        assert "the key is wrong" in report.problems[0].message
        with pytest.raises(AuditKeyError, match="not the key this log was written with"):
            store.check_audit_key()
    finally:
        store.close()


def test_the_default_key_file_is_private_and_reused(tmp_path: Path) -> None:
    path = tmp_path / "k.db"
    made = load_audit_key(str(path), create=True)
    assert made.created and made.source == str(key_file_for(str(path)))
    assert stat.S_IMODE(os.stat(key_file_for(str(path))).st_mode) == 0o600
    again = load_audit_key(str(path))
    assert again.secret == made.secret and not again.created
    assert made.secret.decode() not in repr(made)
    # the key lives outside the database
    store: Store = open_store(str(path))
    store.record("note", actor="ops", channel="cli")
    store.close()
    assert made.secret not in path.read_bytes()


def test_key_settings_are_checked(tmp_path: Path) -> None:
    with pytest.raises(AuditKeyError, match="does not exist"):
        load_audit_key(str(tmp_path / "none.db"))
    with pytest.raises(AuditKeyError, match="at least 16 characters"):
        load_audit_key(str(tmp_path / "x.db"), key="short")
    file = tmp_path / "key"
    file.write_text("0123456789abcdef-from-file\n")
    assert load_audit_key("x.db", key_file=file).secret == b"0123456789abcdef-from-file"
    assert load_audit_key("x.db", key="0123456789abcdef-from-file", key_file=file).created is False
    with pytest.raises(AuditKeyError, match="two different keys"):
        load_audit_key("x.db", key="0123456789abcdef-other", key_file=file)
