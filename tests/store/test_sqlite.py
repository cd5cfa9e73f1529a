from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from signoff import Identity, TargetTaken
from signoff.store import SQLiteStore, Store, StoreError, open_store, token_id
from signoff.store.contract import StoreContract, hold_writer, make_event
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
    with pytest.raises(StoreError, match="newer than this signoff"):
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
    with pytest.raises(StoreError, match="database: expected a SQLite path"):
        open_store("mysql://x/y")


def test_a_resolved_batched_write_is_committed(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    assert isinstance(store, SQLiteStore)
    event = make_event()
    store.submit(store.create_event, event, channel="api").result(10)
    other = sqlite3.connect(path)  # another connection sees it: it was committed
    assert other.execute("SELECT status FROM events WHERE id = ?", (event.id,)).fetchone() == (
        "pending",)
    other.close()
    store.close()


def test_a_write_that_ends_the_transaction_fails_the_writes_before_it(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    assert isinstance(store, SQLiteStore)
    before, after = make_event(), make_event()

    def end_the_transaction() -> None:
        store._writer.execute("ROLLBACK")
        raise RuntimeError("broke the batch")

    release, held = hold_writer(store)
    futures = [store.submit(store.create_event, before, channel="api"),
               store.submit(end_the_transaction),
               store.submit(store.create_event, after, channel="api")]
    release.set()
    with pytest.raises(RuntimeError, match="ended the transaction"):
        futures[0].result(10)
    with pytest.raises(RuntimeError, match="broke the batch"):
        futures[1].result(10)
    assert futures[2].result(10)[1] is True
    assert held.result(10) is None  # committed in a batch of its own, before
    assert store.get_event(before.id) is None and store.get_event(after.id) is not None
    assert store.verify_audit().ok
    store.close()


def test_close_finishes_the_queued_writes(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    assert isinstance(store, SQLiteStore)
    events = [make_event() for _ in range(50)]
    futures = [store.submit(store.create_event, e, channel="api") for e in events]
    store.close()
    assert all(f.done() and f.exception() is None for f in futures)
    store = open_store(str(path))
    assert len(store.list_events(limit=100).events) == 50
    store.close()


def test_a_failed_commit_fails_every_write_of_its_batch(tmp_path: Path) -> None:
    store = open_store(str(tmp_path / "s.db"))
    assert isinstance(store, SQLiteStore)
    before, after = make_event(), make_event()

    def orphan_response() -> None:
        # a foreign key checked only at COMMIT: the commit itself fails
        store._writer.execute("PRAGMA defer_foreign_keys = ON")
        store._writer.execute(
            "INSERT INTO responses (id, event_id, by, value, channel, at)"
            " VALUES ('rs_x', 'ev_nowhere', 'rita', 'true', 'api', 0)")

    def refused() -> None:
        raise RuntimeError("refused on its own")

    release, held = hold_writer(store)
    futures = [store.submit(store.create_event, before, channel="api"),
               store.submit(refused),
               store.submit(orphan_response),
               store.submit(store.create_event, after, channel="api")]
    release.set()
    held.result(10)
    errors = [f.exception(10) for f in futures]
    assert isinstance(errors[1], RuntimeError) and "on its own" in str(errors[1])
    assert all(isinstance(e, sqlite3.IntegrityError) for e in errors[::2] + errors[3:])
    assert store.get_event(before.id) is None and store.get_event(after.id) is None
    assert store.submit(store.create_event, after, channel="api").result(10)[1] is True
    assert store.verify_audit().ok
    store.close()


def test_the_relay_migration_marks_earlier_relays_unverified(tmp_path: Path) -> None:
    # issue 13, part 3: answers relayed before channels were facts move over as unverified
    path = tmp_path / "old.db"
    mine = next(i for i, script in enumerate(_MIGRATIONS) if "relayed_from" in script)
    conn = sqlite3.connect(path)
    for script in _MIGRATIONS[:mine]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {mine}")
    conn.execute("INSERT INTO events (id, name, status, sort_priority, created_at,"
                 " requested_by, assigned, body) VALUES ('ev_1', 'a', 'decided', 0, 0, 'flow',"
                 " 0, ?)", ('{"prompt": "p", "input": {"kind": "approval"}, "context": {},'
                            ' "assignees": [], "priority": "normal", "timeout": null,'
                            ' "on_timeout": "reject", "source": {}, "labels": {}}',))
    for table, extra in (("responses", "'rs_1', 'ev_1', "), ("decisions", "'ev_1', ")):
        columns = "id, event_id" if table == "responses" else "event_id"
        outcome = "" if table == "responses" else "'approved', "
        conn.execute(f"INSERT INTO {table} ({columns}, value, "
                     f"{'outcome, ' if outcome else ''}by, channel, at)"
                     f" VALUES ({extra}'true', {outcome}'flow', 'prefect-ui', 0)")
    conn.commit()
    conn.close()
    store = open_store(str(path))
    event = store.get_event("ev_1")
    store.close()
    assert event is not None and event.decision is not None
    for record in (event.responses[0], event.decision):
        assert (record.relayed_from, record.verified, record.channel) == \
            ("prefect", False, "prefect-ui")


def test_tokens_made_before_migration_5_keep_working_with_an_id(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    conn = sqlite3.connect(path)
    for number, script in enumerate(_MIGRATIONS[:3], start=1):
        conn.executescript(f"BEGIN;\n{script}\nPRAGMA user_version = {number};\nCOMMIT;")
    token = "so_" + "a" * 43
    digest = hashlib.sha256(token.encode()).hexdigest()
    conn.execute("INSERT INTO tokens (hash, user, groups, role, created_at)"
                 " VALUES (?, 'rita', '[\"ops\"]', 'reviewer', 1.0)", (digest,))
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        assert store.identity_for(token) == Identity(user="rita", groups=("ops",))
        info = store.find_token(token)
        assert info is not None and info.id == token_id(token)
        assert (info.expires_at, info.revoked_at, info.last_used_at) == (None, None, None)
        assert [t.id for t in store.list_tokens()] == [token_id(token)]
        store.revoke_token(info.id, actor="admin", channel="cli")
        assert store.identity_for(token) is None
    finally:
        store.close()


def test_token_changes_are_audited_without_secrets(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    store = open_store(str(path))
    token = store.create_token(Identity(user="rita"), name="ci", actor="root", channel="api")
    store.revoke_token(token_id(token), actor="root", channel="api")
    store.close()
    conn = sqlite3.connect(path)
    rows = conn.execute("SELECT action, actor, channel, data FROM audit ORDER BY seq").fetchall()
    conn.close()
    assert [r[:3] for r in rows] == [("token.created", "root", "api"),
                                    ("token.revoked", "root", "api")]
    assert all(token not in r[3] and token_id(token) in r[3] for r in rows)


def test_events_stored_before_the_target_migration_keep_a_null_target(tmp_path: Path) -> None:
    # issue 13 follow-up: nothing is computed for older rows; they name no target, so they
    # block nobody, and new events are checked against the targets recorded from then on
    path = tmp_path / "old.db"
    mine = next(i for i, script in enumerate(_MIGRATIONS) if "resume_target" in script)
    conn = sqlite3.connect(path)
    for script in _MIGRATIONS[:mine]:
        conn.executescript(script)
    conn.execute(f"PRAGMA user_version = {mine}")
    conn.execute("INSERT INTO events (id, name, status, sort_priority, created_at,"
                 " requested_by, assigned, body) VALUES ('ev_old', 'a', 'pending', 0, 0,"
                 " 'flow-a', 0, '{}')")
    conn.commit()
    conn.close()
    store = open_store(str(path))
    try:
        rows = sqlite3.connect(path).execute(
            "SELECT id, resume_target FROM events").fetchall()
        assert rows == [("ev_old", None)]
        target = "argo:ci/build-1"
        assert store.create_event(make_event(requested_by="flow-b"), channel="api",
                                  resume_target=target)[1]
        with pytest.raises(TargetTaken):
            store.create_event(make_event(requested_by="flow-a"), channel="api",
                               resume_target=target)
    finally:
        store.close()


def test_a_revocation_in_one_process_moves_the_generation_every_other_one_reads(
        tmp_path: Path) -> None:
    # two stores on one file stand for the hub and `signoff token revoke`: the hub reads the
    # revocation counter from memory, so the other's revocation must reach it with no query
    path = str(tmp_path / "s.db")
    hub, cli = open_store(path), open_store(path)
    try:
        token = cli.create_token(Identity(user="rita"), name="ci", actor="root", channel="cli")
        before = hub.token_generation()
        cli.revoke_token(token_id(token), actor="root", channel="cli")
        assert hub.token_generation() != before
        assert Path(path + ".revocations").stat().st_mode & 0o777 == 0o600
        # a revocation queued on the hub's own group commit moves it only once committed
        other = hub.create_token(Identity(user="sam"), name="ci", actor="root", channel="api")
        moved = hub.token_generation()
        assert isinstance(hub, SQLiteStore)
        hub.submit(hub.revoke_token, token_id(other), actor="root", channel="api").result()
        assert cli.token_generation() != moved
    finally:
        hub.close()
        cli.close()


def test_without_a_counter_file_the_generation_is_read_from_the_database(
        tmp_path: Path) -> None:
    path = str(tmp_path / "s.db")
    Path(path + ".revocations").mkdir()  # a counter file cannot be made there
    store = open_store(path)
    try:
        token = store.create_token(Identity(user="rita"), name="ci", actor="root", channel="cli")
        before = store.token_generation()
        store.revoke_token(token_id(token), actor="root", channel="cli")
        assert store.token_generation() == before + 1
    finally:
        store.close()
