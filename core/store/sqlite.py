"""The SQLite store: the embedded default.

One writer connection behind a lock, and one reader connection per thread, in WAL mode with
``synchronous=FULL``: a method that returned has its write on disk, and readers never wait
for the writer. The schema is versioned with ``PRAGMA user_version`` (see ``_MIGRATIONS``,
rendered from :mod:`signoff.store._schema`).

Everything the store does is in :class:`~signoff.store._sql.SQLStore`, shared with the
PostgreSQL store; this module holds what SQLite does its own way: connections, the schema
version, index hints, and the transaction group commit runs in (:mod:`signoff.store._group`).

The audit log is chained with HMAC-SHA256 under an audit key kept out of the database (see
:mod:`signoff.store._audit`): given to the constructor, or by default ``<path>.audit-key``,
made on first use.

Writes can also be queued with ``submit`` (group commit, :mod:`signoff.store._group`): every
queued write is on disk before its future resolves, but a burst of them shares the commit.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from .._errors import StoreError
from ._audit import load_audit_key
from ._group import GroupCommit
from ._protocol import TokenInfo
from ._schema import for_sqlite
from ._signal import Signal
from ._sql import SQLStore

__all__ = ["SQLiteStore"]


_MIGRATIONS: list[str] = for_sqlite()


class SQLiteStore(GroupCommit, SQLStore):
    """A :class:`~signoff.store.Store` in one SQLite file (or ``:memory:`` for tests), with the
    :class:`~signoff.store.Batching` capability.
    """

    inline_reads = True
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
        self._revocations = None if self.path == ":memory:" else \
            Signal.open(Path(self.path + ".revocations"))
        self._start_group_commit(f"sqlite:{self.path}")

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
        return self._batch_conn() is not None

    # group commit: the transaction a batch runs in ----------------------------------------
    @contextmanager
    def _open_batch(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            conn = self._writer
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

    def _transaction_open(self, conn: Any) -> bool:
        return bool(conn.in_transaction)

    def _restart_batch(self, conn: Any) -> None:
        conn.execute("BEGIN IMMEDIATE")

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
    def _write(self, *, alongside: bool = False) -> Iterator[sqlite3.Connection]:
        # ``alongside`` changes nothing here: SQLite runs one write at a time
        if self._in_batch():  # inside a group commit: a savepoint, committed with the batch
            with self._savepoint(self._writer) as conn:
                yield conn
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
                raise StoreError(
                    f"database: {self.path} has schema version {version}, newer than this "
                    f"signoff's ({len(_MIGRATIONS)}); run the signoff that wrote it, or a newer one"
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


    def close(self) -> None:
        """Finish the queued writes, stop the writer thread and close every connection."""
        self._stop_group_commit()
        with self._readers_lock:
            for conn in self._readers:
                conn.close()
            self._readers.clear()
        self._writer.close()
        if self._revocations is not None:
            self._revocations.close()
            self._revocations = None

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

    def revoke_token(self, token_id: str, *, actor: str, channel: str) -> TokenInfo:
        """Revoke a token (see :meth:`SQLStore.revoke_token`), and once that is committed move
        the revocation counter every process on this database reads.
        """
        info = super().revoke_token(token_id, actor=actor, channel=channel)
        if self._revocations is not None:
            self._after_commit(self._revocations.bump)
        return info

    def token_generation(self) -> int:
        """Moves on at every revocation. Read on every request: the revocation counter beside
        the database (:mod:`signoff.store._signal`: a memory read), or where it cannot be
        kept, a query on the calling thread's reader connection.
        """
        if self._revocations is not None:
            return self._revocations.read()
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
