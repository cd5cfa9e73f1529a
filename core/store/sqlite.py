"""The SQLite store: the embedded default.

One writer connection behind a lock, and one reader connection per thread, in WAL mode with
``synchronous=FULL``: a method that returned has its write on disk, and readers never wait
for the writer. The schema is versioned with ``PRAGMA user_version`` (see ``_MIGRATIONS``,
rendered from :mod:`signoff.store._schema`).

Everything the store does is in :class:`~signoff.store._sql.SQLStore`, shared with the
PostgreSQL store; this module holds what SQLite does its own way: connections, the schema
version, index hints, and group commit.

The audit log is chained with HMAC-SHA256 under an audit key kept out of the database (see
:mod:`signoff.store._audit`): given to the constructor, or by default ``<path>.audit-key``,
made on first use.

Writes can also be queued with :meth:`SQLiteStore.submit`: a writer thread runs whatever is
waiting in one transaction, each write in its own savepoint, and commits once (group commit).
Every queued write is on disk before its future resolves, but a burst of them shares the
commit, and the caller pays one hand-off to the writer thread instead of a worker thread plus
a contended lock.
"""

from __future__ import annotations

import concurrent.futures
import queue
import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from .._errors import StoreError
from ._audit import load_audit_key
from ._schema import for_sqlite
from ._sql import SQLStore

__all__ = ["SQLiteStore"]

T = TypeVar("T")
_BATCH = 128  # writes committed together at most
_Job = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_MIGRATIONS: list[str] = for_sqlite()


class SQLiteStore(SQLStore):
    """A :class:`~signoff.store.Store` in one SQLite file (or ``:memory:`` for tests), with the
    :class:`~signoff.store.Batching` capability.
    """

    inline_reads = True
    _JOIN_IN_ORDER = "CROSS JOIN"  # SQLite's way to keep the join order written
    _INSERTION = "rowid"

    def __init__(self, path: str | Path, audit_key: bytes | None = None) -> None:
        self.path = str(path)
        self.name = self.path
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._audit_key = audit_key if audit_key is not None else load_audit_key(
            self.path, create=True).secret
        self._lock = threading.Lock()
        self._writer = self._connect()
        self._local = threading.local()
        self._readers: list[sqlite3.Connection] = []
        self._readers_lock = threading.Lock()
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._writer_thread: threading.Thread | None = None

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False,
                               timeout=30)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.row_factory = sqlite3.Row
        return conn

    def _in_batch(self) -> bool:
        """Whether this thread is the writer thread inside a batch (which holds the lock)."""
        return getattr(self._local, "batch", False)

    def _reader(self) -> sqlite3.Connection:
        if self.path == ":memory:" or self._in_batch():
            return self._writer  # in a batch: read what the batch has written so far
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._connect()
            conn.execute("PRAGMA query_only=ON")
            self._local.conn = conn
            with self._readers_lock:
                self._readers.append(conn)
        return conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        if self._in_batch():  # inside a group commit: a savepoint, committed with the batch
            conn = self._writer
            conn.execute("SAVEPOINT write")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK TO write")
                    conn.execute("RELEASE write")
                raise
            conn.execute("RELEASE write")
            return
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _read(self, sql: str, params: Any = ()) -> list[sqlite3.Row]:
        if self._in_batch():
            return self._writer.execute(sql, params).fetchall()
        if self.path == ":memory:":
            with self._lock:
                return self._writer.execute(sql, params).fetchall()
        return self._reader().execute(sql, params).fetchall()


    # schema -----------------------------------------------------------------------------
    def _refuse_foreign(self, version: int) -> None:
        """Refuse to write a schema into (or read) another application's database."""
        names = {row[0] for row in self._writer.execute(
            "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'")}
        if (version == 0 and names) or (version > 0 and "events" not in names):
            shown = ", ".join(sorted(names)[:5])
            raise StoreError(f"database: {self.path} is not a signoff database (its tables: {shown})")

    def migrate(self) -> int:
        """Apply the migrations this file lacks, each in its own transaction.

        Foreign keys are off while a migration runs (a table rebuild drops the parent table)
        and checked before it commits.
        """
        with self._lock:
            conn = self._writer
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_foreign(version)
            if version > len(_MIGRATIONS):
                raise RuntimeError(
                    f"{self.path}: schema version {version} is newer than this signoff "
                    f"({len(_MIGRATIONS)}); upgrade signoff"
                )
            if version == len(_MIGRATIONS):
                return int(version)
            conn.execute("PRAGMA foreign_keys=OFF")
            try:
                for number, script in enumerate(_MIGRATIONS[version:], start=version + 1):
                    conn.execute("BEGIN IMMEDIATE")
                    try:
                        if conn.execute("PRAGMA user_version").fetchone()[0] >= number:
                            conn.execute("ROLLBACK")  # another process applied it meanwhile
                            continue
                        # statement by statement: executescript would commit what is open
                        for statement in _statements(f"{script}\nPRAGMA user_version = {number};"):
                            conn.execute(statement)
                        broken = conn.execute("PRAGMA foreign_key_check").fetchall()
                        if broken:
                            raise RuntimeError(f"{self.path}: migration {number} would break "
                                               f"{len(broken)} foreign key(s)")
                        if number == 4:
                            self._seal_legacy_audit(conn)
                    except BaseException:
                        if conn.in_transaction:
                            conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            finally:
                conn.execute("PRAGMA foreign_keys=ON")
            return len(_MIGRATIONS)


    # group commit -----------------------------------------------------------------------
    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run ``fn(*args, **kwargs)`` on the writer thread, committed with whatever else waits.

        ``fn`` is usually one of this store's write methods; anything it writes through the
        store joins the batch's transaction, and anything it reads sees the batch so far. The
        future resolves after the commit, so a resolved write is on disk. When ``fn`` raises, its
        own writes are rolled back (a savepoint) and the rest of the batch is unaffected; when the
        commit itself fails, every write of the batch fails with that error.
        """
        future: concurrent.futures.Future[T] = concurrent.futures.Future()
        if self._writer_thread is None:
            with self._readers_lock:
                if self._writer_thread is None:
                    thread = threading.Thread(target=self._write_loop, daemon=True,
                                              name=f"signoff-sqlite-writer:{self.path}")
                    thread.start()
                    self._writer_thread = thread
        self._jobs.put((future, fn, args, kwargs))
        return future

    def _write_loop(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch = [job]
            stop = False
            while len(batch) < _BATCH:
                try:
                    job = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if job is None:
                    stop = True
                    break
                batch.append(job)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[_Job]) -> None:
        done: list[tuple[concurrent.futures.Future[Any], Any]] = []
        failed: list[tuple[concurrent.futures.Future[Any], BaseException]] = []
        with self._lock:
            conn = self._writer
            self._local.batch = True
            try:
                conn.execute("BEGIN IMMEDIATE")
                for future, fn, args, kwargs in batch:
                    if not future.set_running_or_notify_cancel():
                        continue  # cancelled while it waited: never ran
                    conn.execute("SAVEPOINT job")
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:
                        failed.append((future, exc))
                        if conn.in_transaction:
                            conn.execute("ROLLBACK TO job")
                            conn.execute("RELEASE job")
                        else:  # the error ended the transaction: the batch so far is lost
                            failed.extend((f, _batch_lost(exc)) for f, _ in done)
                            done.clear()
                            conn.execute("BEGIN IMMEDIATE")
                        continue
                    conn.execute("RELEASE job")
                    done.append((future, result))
                conn.execute("COMMIT")
            except BaseException as exc:  # BEGIN or COMMIT failed: nothing of the batch stays
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                # every job fails with this, except one that already failed with its own error
                # (a future takes only its first exception: see below)
                failed.extend((f, exc) for f, _, _, _ in batch)
                done.clear()
            finally:
                self._local.batch = False
        for future, result in done:
            future.set_result(result)
        for future, error in failed:
            if not future.done():  # not cancelled, and not failed already
                future.set_exception(error)

    def close(self) -> None:
        """Finish the queued writes, stop the writer thread and close every connection."""
        if self._writer_thread is not None:
            self._jobs.put(None)
            self._writer_thread.join()
            self._writer_thread = None
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()

    @contextmanager
    def _read_snapshot(self) -> Iterator[Callable[[str], list[sqlite3.Row]]]:
        """Several reads from one snapshot (the log and the rows it seals must agree)."""
        if self._in_batch():
            yield lambda sql: self._writer.execute(sql).fetchall()
            return
        if self.path == ":memory:":
            with self._lock:
                yield lambda sql: self._writer.execute(sql).fetchall()
            return
        conn = self._reader()
        conn.execute("BEGIN")
        try:
            yield lambda sql: conn.execute(sql).fetchall()
        finally:
            conn.execute("COMMIT")


    def _indexed_by(self, index: str) -> str:
        return f"INDEXED BY {index}"

    def token_generation(self) -> int:
        """Moves on at every revocation. Read on every request: the shortest path to the
        calling thread's reader connection.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._in_batch():
            return super().token_generation()
        return int(conn.execute("SELECT value FROM token_generation").fetchone()[0])


def _statements(script: str) -> Iterator[str]:
    """The statements of a script, split where SQLite itself says one is complete (so a
    trigger's ``BEGIN ... END;`` stays whole).
    """
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete statement ends the script: {pending.strip()[:80]}")


def _batch_lost(cause: BaseException) -> Exception:
    error = RuntimeError(f"a write in the same batch ended the transaction: {cause}")
    error.__cause__ = cause
    return error

