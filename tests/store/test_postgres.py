"""The PostgreSQL store: the store contract on a real server, and what only it does."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import psycopg
import pytest

from signoff.store import AuditKeyError, Store, StoreError, open_store
from signoff.store._drive import driven
from signoff.store._schema import for_postgresql
from signoff.store.contract import StoreContract, make_event
from signoff.store.postgres import PostgresStore, shown

from ..conftest import PG_AUDIT_KEY
from ..postgres import PostgresServer, wide_text

KEY = PG_AUDIT_KEY.encode()


class TestPostgresContract(StoreContract):
    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[Store]:
        store = open_store(pg_url, audit_key=KEY)
        yield store
        store.close()


class _OnTheLoop:
    """A store whose every method runs as the hub runs it on a database server: through
    :meth:`PostgresStore.drive`, on an event loop (a thread of its own here), its connections
    from that loop's pool. Racing callers (threads) interleave on the one loop.
    """

    def __init__(self, store: PostgresStore, loop: asyncio.AbstractEventLoop) -> None:
        object.__setattr__(self, "_store", store)
        object.__setattr__(self, "_loop", loop)

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._store, name)
        if not callable(found) or name in {"close", "drive", "release_loop", "migrate"}:
            # (the hub migrates once, before it serves: never on the loop)
            return found

        def on_the_loop(*args: Any, **kwargs: Any) -> Any:
            call = self._store.drive(found, *args, **kwargs)
            return asyncio.run_coroutine_threadsafe(call, self._loop).result(timeout=60)
        return on_the_loop

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(self._store, name, value)


class TestPostgresContractOnTheLoop(StoreContract):
    """The contract again, every call driven on an event loop as the hub makes them."""

    @pytest.fixture
    def store(self, pg_url: str) -> Iterator[Any]:
        store = open_store(pg_url, audit_key=KEY)
        assert isinstance(store, PostgresStore)
        loop = asyncio.new_event_loop()
        runner = threading.Thread(target=loop.run_forever, daemon=True)
        runner.start()
        threads = store._pool.connection

        def blocking(*args: Any, **kwargs: Any) -> Any:
            assert not driven(), "a call on the loop waited for a thread's connection"
            return threads(*args, **kwargs)
        store._pool.connection = blocking  # type: ignore[method-assign]
        yield _OnTheLoop(store, loop)
        asyncio.run_coroutine_threadsafe(store.release_loop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        runner.join(timeout=10)
        loop.close()
        store.close()


def test_replicas_starting_together_migrate_once(postgres: PostgresServer) -> None:
    url = postgres.create_database()  # empty: every migration still to apply

    def start() -> int:
        store = open_store(url, audit_key=KEY)
        try:
            return store.migrate()
        finally:
            store.close()

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        versions = list(pool.map(lambda _: start(), range(4)))
    assert versions == [len(for_postgresql())] * 4
    with psycopg.connect(url) as conn:
        assert conn.execute("SELECT version FROM signoff_schema").fetchone() == (
            len(for_postgresql()),)
        # one migration run: the tables exist once, the generation row once
        assert conn.execute("SELECT COUNT(*) FROM token_generation").fetchone() == (1,)


def test_a_newer_schema_is_refused(pg_url: str) -> None:
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE signoff_schema SET version = version + 1")
    with pytest.raises(StoreError, match="newer than this signoff"):
        open_store(pg_url, audit_key=KEY)


def test_another_applications_database_is_refused(postgres: PostgresServer) -> None:
    url = postgres.create_database()
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("CREATE TABLE invoices (id INTEGER)")
    with pytest.raises(StoreError, match="not a signoff database .*invoices"):
        open_store(url, audit_key=KEY)
    with psycopg.connect(url) as conn:  # nothing was written into it
        assert conn.execute("SELECT to_regclass('signoff_schema')").fetchone() == (None,)


def test_the_audit_log_is_append_only_and_tampering_shows(pg_url: str) -> None:
    store = open_store(pg_url, audit_key=KEY)
    event = make_event()
    store.create_event(event, channel="api")
    store.record("note", actor="ops", channel="cli", event_id=event.id, data={"x": 1})
    with psycopg.connect(pg_url, autocommit=True) as conn:
        for statement in ("UPDATE audit SET actor = 'mallory'", "DELETE FROM audit",
                          "TRUNCATE audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        # someone with the database's owner rights drops the guard: the chain shows it
        conn.execute("ALTER TABLE audit DISABLE TRIGGER audit_no_change")
        conn.execute("UPDATE audit SET actor = 'mallory' WHERE seq = 2")
    report = store.verify_audit()
    store.close()
    assert not report.ok and report.first_bad_seq == 2


def test_a_nul_character_postgresql_cannot_store_is_refused_and_nothing_written(
        pg_url: str) -> None:
    from datetime import timezone

    from signoff import InvalidInput, Response
    store = open_store(pg_url, audit_key=KEY)
    event = make_event()
    store.create_event(event, channel="api")
    answer = Response(id="rs_nul", event_id=event.id, by="rita", value=True,
                      comment="ok\x00then", channel="api", at=datetime.now(timezone.utc))
    with pytest.raises(InvalidInput, match="the database refused a value.*NUL") as caught:
        store.add_response(event.id, answer, settle=lambda _event, _responses: None)
    stored = store.get_event(event.id)
    store.close()
    assert stored is not None and stored.status == "pending" and stored.responses == []
    # the store cannot tell which field held it: it says it refused, not "body" (the hub
    # refuses a NUL in a comment before the store is asked, naming "comment")
    assert caught.value.field == "store"


def test_a_store_on_a_server_needs_its_audit_key_given(pg_url: str) -> None:
    with pytest.raises(AuditKeyError, match="SIGNOFF_AUDIT_KEY"):
        open_store(pg_url)


def test_an_unreachable_server_is_a_store_error_naming_it_without_the_password() -> None:
    from signoff.testing import free_port

    url = f"postgresql://signoff:s3cret@127.0.0.1:{free_port()}/signoff"
    with pytest.raises(StoreError, match="cannot connect") as caught:
        PostgresStore(url, audit_key=KEY, connect_timeout=1)
    assert "s3cret" not in str(caught.value) and "signoff:***@" in str(caught.value)
    assert shown(url) == url.replace("s3cret", "***")


def test_a_url_libpq_cannot_read_is_refused_without_repeating_it() -> None:
    for url in ("postgresql://signoff:WrongPassXYZ@[::1/x", "postgresql://signoff:WrongPassXYZ@[]/x"):
        with pytest.raises(StoreError, match="not a PostgreSQL URL libpq can read") as refused:
            PostgresStore(url, audit_key=KEY)
        assert "WrongPassXYZ" not in str(refused.value)


def test_a_start_that_cannot_work_says_why_at_once(postgres: PostgresServer) -> None:
    """A database that does not exist or a wrong password is not worth ten seconds of
    retries: the error comes at the first try, with the server's reason."""
    absent = postgres.url("no_such_database")
    wrong = f"postgresql://postgres:WrongPassXYZ@127.0.0.1:{postgres.port}/postgres"
    for url, reason in ((absent, 'database "no_such_database" does not exist'),
                        (wrong, "password authentication failed")):
        started = time.monotonic()
        with pytest.raises(StoreError, match="cannot connect to") as refused:
            PostgresStore(url, audit_key=KEY, connect_timeout=10)
        assert time.monotonic() - started < 5
        assert reason in str(refused.value) and "WrongPassXYZ" not in str(refused.value)


def test_a_server_not_up_yet_is_waited_for_then_named(postgres: PostgresServer) -> None:
    from ..postgres import free_port

    nowhere = f"postgresql://postgres@127.0.0.1:{free_port()}/postgres"
    started = time.monotonic()
    with pytest.raises(StoreError, match=r"within 2 s: .*Connection refused"):
        PostgresStore(nowhere, audit_key=KEY, connect_timeout=2)
    assert 1.5 < time.monotonic() - started < 6


def test_a_user_without_create_on_the_schema_is_told_what_to_grant(
        postgres: PostgresServer) -> None:
    # a database the superuser owns: since PostgreSQL 15, only the owner may create in public
    name = postgres.create_database().rsplit("/", 1)[1]
    postgres.sql(f"CREATE ROLE app_{name} LOGIN PASSWORD 'app-pw'")
    app = f"postgresql://app_{name}:app-pw@127.0.0.1:{postgres.port}/{name}"
    with pytest.raises(StoreError, match="GRANT CREATE ON SCHEMA public") as refused:
        open_store(app, audit_key=KEY)
    assert "\n" not in str(refused.value) and "app-pw" not in str(refused.value)


def test_a_value_too_large_to_index_is_refused_naming_the_field_not_unavailable(
        pg_url: str) -> None:
    """A requester and key of 4-byte characters at their longest (200 and 500) make a
    ``(requested_by, key)`` index entry over PostgreSQL's 2,704 bytes: ProgramLimitExceeded,
    an OperationalError that no retry gets past. It is the request's 422 naming the key, not a
    503 "cannot be reached" (which a client retries forever), and nothing is written."""
    from signoff import InvalidInput
    store = open_store(pg_url, audit_key=KEY)
    try:
        wide = make_event(requested_by=wide_text(200, 1), key=wide_text(500, 2))
        with pytest.raises(InvalidInput) as refused:
            store.create_event(wide, channel="api")
        assert refused.value.field == "key"
        assert "index row size" in str(refused.value.got)
        assert store.count_events() == 0
        assert store.create_event(make_event(key="next"), channel="api")[1]
    finally:
        store.close()



def test_a_loop_pool_closes_at_once_on_a_server_that_stopped_answering() -> None:
    """A hub that stops releases its loop's pool last. When the server froze while calls
    waited for connections, a task of the pool is stuck connecting to it: the release must not
    wait psycopg_pool's 5 s for that task (they came on top of the hub's own grace)."""
    import os
    import signal

    from ..hub.test_postgres_hub import _server_processes
    from ..postgres import find_bin

    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql-15)")
    with PostgresServer(bin_dir).running() as server:  # its own: this test freezes it
        store = open_store(server.create_database(), audit_key=KEY)
        assert isinstance(store, PostgresStore)

        async def main() -> float:
            assert await store.drive(store.count_events) == 0  # the loop's pool, 1 connection
            frozen = _server_processes(server)
            for pid in frozen:
                os.kill(pid, signal.SIGSTOP)
            calls = [asyncio.ensure_future(store.drive(store.count_events))
                     for _ in range(4)]  # one takes the connection, the pool grows
            try:
                await asyncio.sleep(0.5)
                started = time.monotonic()
                await store.release_loop()
                took = time.monotonic() - started
            finally:
                for pid in reversed(frozen):
                    os.kill(pid, signal.SIGCONT)
            await asyncio.gather(*calls, return_exceptions=True)  # thawed: they end
            return took

        try:
            took = asyncio.run(main())
        finally:
            store.close()
    assert took < 2, took
