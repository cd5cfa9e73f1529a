from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Identity
from signoff.store import SQLiteStore, Store, open_store
from signoff.store.contract import StoreContract, make_event
from signoff.store.sqlite import _MIGRATIONS


class TestSQLiteContract(StoreContract):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        store = open_store(str(tmp_path / "signoff.db"))
        yield store
        store.close()


def test_wal_and_full_sync(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s.db")
    store.migrate()
    conn = store._writer
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    store.close()


def test_schema_version_is_recorded_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    store.close()
    conn = sqlite3.connect(path)
    assert conn.execute("PRAGMA user_version").fetchone()[0] == len(_MIGRATIONS)
    conn.execute(f"PRAGMA user_version = {len(_MIGRATIONS) + 1}")
    conn.close()
    with pytest.raises(RuntimeError, match="newer than this signoff"):
        open_store(str(path))


def test_tokens_are_stored_hashed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    token = store.create_token(Identity(user="rita"))
    store.close()
    for file in tmp_path.iterdir():
        assert token.encode() not in file.read_bytes()


def test_audit_log_refuses_updates_and_detects_tampering(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    event = make_event()
    store.create_event(event, channel="api")
    store.record("note", actor="ops", channel="cli", event_id=event.id, data={"x": 1})
    store.close()
    conn = sqlite3.connect(path)
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("UPDATE audit SET actor = 'mallory'")
    with pytest.raises(sqlite3.IntegrityError, match="append-only"):
        conn.execute("DELETE FROM audit")
    # someone with file access drops the guard and rewrites history: the chain shows it
    conn.execute("DROP TRIGGER audit_no_update")
    conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    conn.commit()
    conn.close()
    store = open_store(str(path))
    report = store.verify_audit()
    store.close()
    assert not report.ok and report.first_bad_seq == 2


def test_unknown_database_scheme_is_refused() -> None:
    with pytest.raises(ValueError, match="database: expected a SQLite path"):
        open_store("mysql://x/y")
