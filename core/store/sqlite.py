"""The SQLite store: the embedded default.

One writer connection behind a lock, and one reader connection per thread, in WAL mode with
``synchronous=FULL``: a method that returned has its write on disk, and readers never wait
for the writer. The schema is versioned with ``PRAGMA user_version`` (see ``_MIGRATIONS``).

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

import base64
import concurrent.futures
import hashlib
import hmac
import json
import math
import queue
import secrets
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from .._errors import (
    AlreadyAnswered,
    AlreadyDecided,
    Conflict,
    InvalidInput,
    NotFound,
    StoreError,
    TargetTaken,
)
from .._limits import STORED
from .._model import _PRIORITY_RANK, Decision, Delivery, Event, EventPage, Response
from .._policy import escalation_due
from .._rules import Identity
from ._audit import (
    GENESIS,
    KEYED,
    AuditKeyError,
    check_anchor,
    check_chain,
    check_rows,
    entry_hash,
    load_audit_key,
    row_seal,
)
from ._protocol import (
    AuditAnchor,
    AuditEntry,
    AuditReport,
    DeliveryRecord,
    DueDelivery,
    PendingSummary,
    SessionInfo,
    TokenInfo,
    token_id,
)

__all__ = ["SQLiteStore"]

T = TypeVar("T")
_BATCH = 128  # writes committed together at most
_Job = tuple["concurrent.futures.Future[Any]", Callable[..., Any], tuple[Any, ...], dict[str, Any]]

_MIGRATIONS: list[str] = [
    # 1: the first schema
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        key TEXT UNIQUE,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'decided', 'cancelled')),
        sort_priority INTEGER NOT NULL,      -- minus the priority rank: ascending = urgent first
        created_at REAL NOT NULL,
        deadline REAL,
        requested_by TEXT NOT NULL,
        assigned INTEGER NOT NULL,           -- 0: anyone may answer
        body TEXT NOT NULL                   -- the rest of the event, as JSON
    );
    CREATE INDEX events_order ON events (status, sort_priority, created_at, id);
    CREATE INDEX events_all_order ON events (sort_priority, created_at, id);
    CREATE INDEX events_deadline ON events (deadline) WHERE status = 'pending';
    CREATE INDEX events_requester ON events (requested_by, status);
    CREATE TABLE event_assignees (
        principal TEXT NOT NULL,
        event_id TEXT NOT NULL REFERENCES events (id),
        PRIMARY KEY (principal, event_id)
    ) WITHOUT ROWID;
    CREATE INDEX event_assignees_event ON event_assignees (event_id);
    CREATE TABLE responses (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events (id),
        by TEXT NOT NULL,
        value TEXT NOT NULL,
        comment TEXT,
        channel TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE INDEX responses_event ON responses (event_id, at);
    CREATE TABLE decisions (
        event_id TEXT PRIMARY KEY REFERENCES events (id),   -- one decision per event, ever
        value TEXT NOT NULL,
        outcome TEXT NOT NULL,
        by TEXT NOT NULL,
        comment TEXT,
        channel TEXT NOT NULL,
        at REAL NOT NULL
    );
    CREATE TABLE deliveries (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events (id),
        resumer TEXT NOT NULL,
        state TEXT NOT NULL CHECK (state IN ('pending', 'delivered', 'failed')),
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        next_attempt_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    );
    CREATE INDEX deliveries_event ON deliveries (event_id);
    CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE state = 'pending';
    CREATE TABLE tokens (
        hash TEXT PRIMARY KEY,
        user TEXT NOT NULL,
        groups TEXT NOT NULL,
        role TEXT NOT NULL CHECK (role IN ('workflow', 'reviewer', 'admin')),
        created_at REAL NOT NULL
    );
    CREATE TABLE audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at REAL NOT NULL,
        event_id TEXT,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        channel TEXT NOT NULL,
        data TEXT NOT NULL,
        prev_hash TEXT NOT NULL,
        hash TEXT NOT NULL
    );
    CREATE INDEX audit_event ON audit (event_id, seq);
    CREATE TRIGGER audit_no_update BEFORE UPDATE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TRIGGER audit_no_delete BEFORE DELETE ON audit
        BEGIN SELECT RAISE(ABORT, 'the audit log is append-only'); END;
    CREATE TABLE secrets (name TEXT PRIMARY KEY, value BLOB NOT NULL);
    """,
    # 2: policies: the rule behind a decision, escalation tiers, one response per responder
    """
    ALTER TABLE decisions ADD COLUMN rule TEXT;
    ALTER TABLE events ADD COLUMN escalation_level INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE events ADD COLUMN next_escalation REAL;
    CREATE INDEX events_escalation ON events (next_escalation) WHERE status = 'pending';
    CREATE UNIQUE INDEX responses_once ON responses (event_id, by);
    """,
    # 3: count an inbox without visiting every pending event
    """
    CREATE INDEX events_open ON events (status, assigned);
    """,
    # 4: idempotency keys belong to the identity that created the event; a keyed audit chain.
    # SQLite cannot drop a column's UNIQUE in place: the table is rebuilt the documented way
    # (https://www.sqlite.org/lang_altertable.html#otheralter: create, copy, drop, rename,
    # recreate the indexes; migrate() runs it with foreign keys off and checks them before the
    # commit). Then _seal_legacy_audit starts the keyed chain.
    """
    CREATE TABLE events_new (
        id TEXT PRIMARY KEY,
        key TEXT,
        name TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'decided', 'cancelled')),
        sort_priority INTEGER NOT NULL,
        created_at REAL NOT NULL,
        deadline REAL,
        requested_by TEXT NOT NULL,
        assigned INTEGER NOT NULL,
        body TEXT NOT NULL,
        escalation_level INTEGER NOT NULL DEFAULT 0,
        next_escalation REAL,
        UNIQUE (requested_by, key)
    );
    INSERT INTO events_new (id, key, name, status, sort_priority, created_at, deadline,
                            requested_by, assigned, body, escalation_level, next_escalation)
        SELECT id, key, name, status, sort_priority, created_at, deadline, requested_by,
               assigned, body, escalation_level, next_escalation FROM events;
    DROP TABLE events;
    ALTER TABLE events_new RENAME TO events;
    CREATE INDEX events_order ON events (status, sort_priority, created_at, id);
    CREATE INDEX events_all_order ON events (sort_priority, created_at, id);
    CREATE INDEX events_deadline ON events (deadline) WHERE status = 'pending';
    CREATE INDEX events_requester ON events (requested_by, status);
    CREATE INDEX events_escalation ON events (next_escalation) WHERE status = 'pending';
    CREATE INDEX events_open ON events (status, assigned);
    ALTER TABLE audit ADD COLUMN alg TEXT NOT NULL DEFAULT 'sha256';
    """,
    # 5 (issue 13, part 3 "channels"): engine-relayed answers are
    # marked relayed and unverified; the relays recorded before this (channels prefect-ui,
    # temporal-ui, flyte-ui) move over as relayed from that engine, unverified
    """
    ALTER TABLE responses ADD COLUMN relayed_from TEXT;
    ALTER TABLE responses ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE decisions ADD COLUMN relayed_from TEXT;
    ALTER TABLE decisions ADD COLUMN verified INTEGER NOT NULL DEFAULT 1;
    UPDATE responses SET relayed_from = substr(channel, 1, length(channel) - 3), verified = 0
        WHERE channel IN ('prefect-ui', 'temporal-ui', 'flyte-ui');
    UPDATE decisions SET relayed_from = substr(channel, 1, length(channel) - 3), verified = 0
        WHERE channel IN ('prefect-ui', 'temporal-ui', 'flyte-ui');
    """,
    # 6 (issue 13, part 2): tokens get a public id, a name, expiry, last use and revocation;
    # browser sessions and one-time login links live here (hashed), not in a hub's memory.
    # Existing tokens keep working: their id is derived from the hash they already have.
    """
    ALTER TABLE tokens ADD COLUMN id TEXT;
    ALTER TABLE tokens ADD COLUMN name TEXT;
    ALTER TABLE tokens ADD COLUMN expires_at REAL;
    ALTER TABLE tokens ADD COLUMN last_used_at REAL;
    ALTER TABLE tokens ADD COLUMN revoked_at REAL;
    UPDATE tokens SET id = 'tk_' || substr(hash, 1, 16);
    CREATE UNIQUE INDEX tokens_id ON tokens (id);
    CREATE TABLE token_generation (
        one INTEGER PRIMARY KEY CHECK (one = 1),
        value INTEGER NOT NULL                -- moves on at every revocation
    );
    INSERT INTO token_generation (one, value) VALUES (1, 0);
    CREATE TABLE sessions (
        hash TEXT PRIMARY KEY,                -- SHA-256 of the cookie's session id
        token_id TEXT NOT NULL REFERENCES tokens (id),
        csrf TEXT NOT NULL,
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX sessions_token ON sessions (token_id);
    CREATE INDEX sessions_expiry ON sessions (expires_at);
    CREATE TABLE login_links (
        hash TEXT PRIMARY KEY,                -- SHA-256 of the one-time code
        token_id TEXT NOT NULL REFERENCES tokens (id),
        created_at REAL NOT NULL,
        expires_at REAL NOT NULL
    );
    CREATE INDEX login_links_token ON login_links (token_id);
    CREATE INDEX login_links_expiry ON login_links (expires_at);
    """,
    # 7 (issue 13 follow-up "target"): the run an event's resumer would push into, so another
    # identity cannot aim a decision at it. Older rows keep NULL: nothing is computed for them.
    """
    ALTER TABLE events ADD COLUMN resume_target TEXT;
    CREATE INDEX events_resume_target ON events (resume_target, requested_by)
        WHERE resume_target IS NOT NULL;
    """,
    # 8 (issue 18, metrics): audit completeness reads recent decisions by their time
    """
    CREATE INDEX decisions_at ON decisions (at);
    """,
]


def _ts(moment: datetime) -> float:
    return moment.timestamp()


def _dt(seconds: float | None) -> datetime | None:
    return None if seconds is None else datetime.fromtimestamp(seconds, tz=timezone.utc)


def _at(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _now() -> datetime:
    return datetime.now(timezone.utc)


def _hash_token(token: str) -> str:
    # Tokens are 256 random bits, so a fast hash is enough: there is nothing to brute-force.
    return hashlib.sha256(token.encode()).hexdigest()


_BODY_FIELDS = ("prompt", "input", "context", "assignees", "priority", "timeout", "on_timeout",
                "source", "labels", "recommendation", "confidence", "impact", "policy")


class SQLiteStore:
    """A :class:`~signoff.store.Store` in one SQLite file (or ``:memory:`` for tests), with the
    :class:`~signoff.store.Batching` capability.
    """

    inline_reads = True

    def __init__(self, path: str | Path, audit_key: bytes | None = None) -> None:
        self.path = str(path)
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

    def _seal_legacy_audit(self, conn: sqlite3.Connection) -> None:
        """Start the keyed chain (migration 4): an ``audit_keyed`` entry that counts the legacy
        entries before it, then one ``sealed`` entry per existing response and decision row.
        """
        legacy = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        rows = [("responses", r["id"], r) for r in conn.execute("SELECT * FROM responses")]
        rows += [("decisions", r["event_id"], r) for r in conn.execute("SELECT * FROM decisions")]
        if not legacy and not rows:
            return  # a new database: keyed from its first entry
        now = _ts(_now())
        self._append_audit(conn, "audit_keyed", actor="hub", channel="migration", event_id=None,
                           data={"legacy_entries": legacy, "sealed_rows": len(rows)}, at=now)
        for table, row_id, row in rows:
            self._append_audit(conn, "sealed", actor="hub", channel="migration",
                               event_id=row["event_id"],
                               data={"row": row_seal(table, row_id, dict(row))}, at=now)

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

    # audit ------------------------------------------------------------------------------
    def _append_audit(self, conn: sqlite3.Connection, action: str, *, actor: str, channel: str,
                      event_id: str | None, data: dict[str, Any], at: float) -> None:
        last = conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (last["seq"] + 1, last["hash"]) if last else (1, GENESIS)
        text = json.dumps(data, sort_keys=True, default=str)
        digest = entry_hash(self._audit_key, prev, seq, at, event_id, actor, action, channel,
                            text)
        conn.execute(
            "INSERT INTO audit (seq, at, event_id, actor, action, channel, data, prev_hash, hash,"
            " alg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (seq, at, event_id, actor, action, channel, text, prev, digest, KEYED),
        )

    @staticmethod
    def _seal(conn: sqlite3.Connection, table: str, row_id: str) -> dict[str, str]:
        """The seal of a row as it now reads back (so columns other code adds are covered)."""
        column = "event_id" if table == "decisions" else "id"
        row = conn.execute(f"SELECT * FROM {table} WHERE {column} = ?", (row_id,)).fetchone()
        return row_seal(table, row_id, dict(row))

    def record(self, action: str, *, actor: str, channel: str, event_id: str | None = None,
               data: dict[str, Any] | None = None) -> None:
        """Append one line to the audit log."""
        with self._write() as conn:
            self._append_audit(conn, action, actor=actor, channel=channel, event_id=event_id,
                               data=data or {}, at=_ts(_now()))

    def audit(self, event_id: str) -> list[AuditEntry]:
        """The audit lines of one event, oldest first."""
        rows = self._read("SELECT * FROM audit WHERE event_id = ? ORDER BY seq", (event_id,))
        return [
            AuditEntry(seq=r["seq"], at=_dt(r["at"]) or _now(), event_id=r["event_id"],
                       actor=r["actor"], action=r["action"], channel=r["channel"],
                       data=json.loads(r["data"]), hash=r["hash"])
            for r in rows
        ]

    def verify_audit(self, anchor: AuditAnchor | None = None) -> AuditReport:
        """Check the chain, the sealed rows and the anchor; see
        :meth:`signoff.store.Store.verify_audit`.
        """
        with self._read_snapshot() as read:
            chain = check_chain((dict(r) for r in read("SELECT * FROM audit ORDER BY seq")),
                                self._audit_key)
            current = [("responses", r["id"], dict(r)) for r in read("SELECT * FROM responses")]
            current += [("decisions", r["event_id"], dict(r))
                        for r in read("SELECT * FROM decisions")]
        problems = list(chain.problems)
        if not any(p.kind == "key" for p in problems):  # with a wrong key no seal is trusted
            problems += check_rows(chain.seals, current)
        if anchor is not None:
            problems += check_anchor(anchor, chain.hashes, chain.head)
        first_bad = next((p.seq for p in chain.problems if p.seq is not None), None)
        return AuditReport(ok=not problems, entries=chain.entries, first_bad_seq=first_bad,
                           problems=tuple(problems), legacy_entries=chain.legacy,
                           head=chain.head)

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

    def audit_head(self) -> AuditAnchor | None:
        """The newest audit entry, as an anchor."""
        rows = self._read("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return AuditAnchor(seq=rows[0]["seq"], hash=rows[0]["hash"]) if rows else None

    def check_audit_key(self) -> None:
        """Raise :class:`AuditKeyError` unless the newest keyed entry verifies with the key."""
        rows = self._read("SELECT * FROM audit WHERE alg = ? ORDER BY seq DESC LIMIT 1",
                          (KEYED,))
        if not rows:
            return
        r = rows[0]
        expected = entry_hash(self._audit_key, r["prev_hash"], r["seq"], r["at"], r["event_id"],
                              r["actor"], r["action"], r["channel"], r["data"])
        if not hmac.compare_digest(expected, r["hash"]):
            raise AuditKeyError(f"{self.path}: the audit key does not verify the newest audit "
                                f"entry ({r['seq']}): it is not the key this log was written "
                                "with (or that entry was changed; run `signoff audit verify`)")

    # events -----------------------------------------------------------------------------
    def create_event(self, event: Event, *, channel: str, decision: Decision | None = None,
                     notes: list[str] | None = None,
                     resume_target: str | None = None) -> tuple[Event, bool]:
        """Insert a pending event (decided at once when ``decision`` is given, e.g. by a policy);
        with a key that exists, return the stored one unchanged; a ``resume_target`` another
        identity's event names is refused (see :meth:`signoff.store.Store.create_event`).
        """
        body = event.model_dump(mode="json", include=set(_BODY_FIELDS), by_alias=True)
        created = _ts(event.created_at)
        escalation = escalation_due(event.created_at, event.policy, 0)
        with self._write() as conn:
            existing = None
            if event.key is not None:  # a key is looked up among the requester's own events
                existing = conn.execute(
                    "SELECT id FROM events WHERE requested_by = ? AND key = ?",
                    (event.requested_by, event.key)).fetchone()
            if existing is None and resume_target is not None:
                taken = conn.execute(
                    "SELECT 1 FROM events WHERE resume_target = ? AND requested_by <> ? LIMIT 1",
                    (resume_target, event.requested_by)).fetchone()
                if taken is not None:
                    raise TargetTaken()
            if existing is None:
                conn.execute(
                    "INSERT INTO events (id, key, name, status, sort_priority, created_at,"
                    " deadline, requested_by, assigned, body, next_escalation, resume_target)"
                    " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                    (event.id, event.key, event.name, "pending", -event.priority.rank, created,
                     _ts(event.deadline) if event.deadline else None, event.requested_by,
                     1 if event.assignees else 0, json.dumps(body),
                     _ts(escalation) if escalation else None, resume_target),
                )
                conn.executemany(
                    "INSERT INTO event_assignees (principal, event_id) VALUES (?, ?)",
                    [(who, event.id) for who in event.assignees],
                )
                self._append_audit(conn, "created", actor=event.requested_by, channel=channel,
                                   event_id=event.id, data={"name": event.name, "key": event.key},
                                   at=created)
                for note in notes or ():
                    self._append_audit(conn, "policy", actor="policy", channel="hub",
                                       event_id=event.id, data={"note": note}, at=created)
                if decision is not None:
                    self._write_decision(conn, event.id, decision, None)
        if existing is None and decision is None:
            return event, True
        stored = self.get_event(event.id if existing is None else existing["id"])
        assert stored is not None
        return stored, existing is None

    def _events_from_rows(self, rows: list[sqlite3.Row], detail: bool,
                          conn: sqlite3.Connection | None = None) -> list[Event]:
        if not rows:
            return []
        read = self._read if conn is None else (lambda sql, p=(): conn.execute(sql, p).fetchall())
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        # a decision and its deliveries are written with the status change: a pending event
        # has neither, so an inbox page of pending events costs one query less (two with detail)
        closed = [r["id"] for r in rows if r["status"] != "pending"]
        closed_marks = ",".join("?" * len(closed))
        decisions = {r["event_id"]: r for r in read(
            f"SELECT * FROM decisions WHERE event_id IN ({closed_marks})", closed)} if closed else {}
        responses: dict[str, list[Response]] = {i: [] for i in ids}
        deliveries: dict[str, list[Delivery]] = {i: [] for i in ids}
        if detail:
            for r in read(
                    f"SELECT * FROM responses WHERE event_id IN ({marks}) ORDER BY at", ids):
                responses[r["event_id"]].append(Response(
                    id=r["id"], event_id=r["event_id"], by=r["by"], value=json.loads(r["value"]),
                    comment=r["comment"], channel=r["channel"], at=_at(r["at"]),
                    relayed_from=r["relayed_from"], verified=bool(r["verified"])))
            for r in read(
                    f"SELECT * FROM deliveries WHERE event_id IN ({closed_marks})"
                    " ORDER BY created_at", closed) if closed else ():
                deliveries[r["event_id"]].append(Delivery(
                    id=r["id"], resumer=r["resumer"], state=r["state"], attempts=r["attempts"],
                    last_error=r["last_error"], next_attempt_at=_dt(r["next_attempt_at"]),
                    updated_at=_at(r["updated_at"])))
        events = []
        for r in rows:
            d = decisions.get(r["id"])
            decision = None if d is None else Decision(
                value=json.loads(d["value"]), outcome=d["outcome"], by=d["by"],
                comment=d["comment"], channel=d["channel"], at=_at(d["at"]), rule=d["rule"],
                relayed_from=d["relayed_from"], verified=bool(d["verified"]))
            events.append(Event.model_validate({
                **json.loads(r["body"]),
                "id": r["id"], "key": r["key"], "name": r["name"], "status": r["status"],
                "created_at": _dt(r["created_at"]), "deadline": _dt(r["deadline"]),
                "requested_by": r["requested_by"], "decision": decision,
                "escalation_level": r["escalation_level"],
                "responses": responses[r["id"]], "deliveries": deliveries[r["id"]],
            }, context=STORED))  # checked when it came in: not again on every read
        return events

    def get_event(self, event_id: str) -> Event | None:
        """One event with its decision, responses and deliveries."""
        rows = self._read("SELECT * FROM events WHERE id = ?", (event_id,))
        events = self._events_from_rows(rows, detail=True)
        return events[0] if events else None

    def _filters(self, status: str | None, visible_to: set[str] | None, assignee: str | None,
                 requested_by: str | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if visible_to is not None:
            marks = ",".join("?" * len(visible_to))
            where.append(
                "(assigned = 0 OR EXISTS (SELECT 1 FROM event_assignees a WHERE"
                f" a.event_id = events.id AND a.principal IN ({marks})))")
            params.extend(sorted(visible_to))
        if assignee is not None:
            where.append(
                "EXISTS (SELECT 1 FROM event_assignees a WHERE a.event_id = events.id"
                " AND a.principal = ?)")
            params.append(assignee)
        if requested_by is not None:
            where.append("requested_by = ?")
            params.append(requested_by)
        return where, params

    def list_events(self, *, status: str | None = None, visible_to: set[str] | None = None,
                    assignee: str | None = None, requested_by: str | None = None,
                    limit: int = 50, cursor: str | None = None) -> EventPage:
        """One page, urgent first then oldest first; the cursor is opaque to callers."""
        where, params = self._filters(status, visible_to, assignee, requested_by)
        if cursor is not None:
            where.append("(sort_priority, created_at, id) > (?, ?, ?)")
            params.extend(_decode_cursor(cursor))
        sql = "SELECT * FROM events"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY sort_priority, created_at, id LIMIT ?"
        rows = self._read(sql, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = _encode_cursor(last["sort_priority"], last["created_at"], last["id"])
        return EventPage(events=self._events_from_rows(rows, detail=True), next_cursor=next_cursor)

    def count_events(self, *, status: str | None = None, visible_to: set[str] | None = None,
                     requested_by: str | None = None, limit: int | None = None) -> int:
        """How many events match, at most ``limit``."""
        def count(rows: str, params: list[Any]) -> int:
            """Count what the ``SELECT`` ``rows`` yields; with a limit, stop there."""
            if limit is None:
                return int(self._read(f"SELECT COUNT(*) FROM ({rows})", params)[0][0])
            return int(self._read(f"SELECT COUNT(*) FROM ({rows} LIMIT ?)",
                                  [*params, limit])[0][0])

        if visible_to is not None and requested_by is None:
            # open to anyone, plus assigned to one of these principals: two index lookups
            # instead of a subquery per event (the two sets are disjoint)
            marks = ",".join("?" * len(visible_to))
            status_sql = "" if status is None else " AND e.status = ?"
            status_args = [] if status is None else [status]
            anyone = count("SELECT 1 FROM events e WHERE e.assigned = 0" + status_sql,
                           status_args)
            if limit is not None and anyone >= limit:
                return limit
            assigned = count(
                "SELECT DISTINCT a.event_id FROM event_assignees a CROSS JOIN events e"
                f" ON e.id = a.event_id WHERE a.principal IN ({marks}){status_sql}",
                [*sorted(visible_to), *status_args])
            total = anyone + assigned
            return total if limit is None else min(total, limit)
        where, params = self._filters(status, visible_to, None, requested_by)
        return count("SELECT 1 FROM events" + (" WHERE " + " AND ".join(where) if where else ""),
                     params)

    def decide(self, event_id: str, decision: Decision, *, response: Response | None = None,
               deliver_via: str | None = None) -> Event:
        """Write the decision once; see :meth:`signoff.store.Store.decide`."""
        with self._write() as conn:
            self._pending_row(conn, event_id)
            if response is not None:
                self._insert_response(conn, event_id, response)
            self._write_decision(conn, event_id, decision, deliver_via)
        event = self.get_event(event_id)
        assert event is not None
        return event

    def add_response(self, event_id: str, response: Response | Callable[[Event], Response], *,
                     settle: Callable[[Event, list[Response]], Decision | None],
                     deliver_via: str | None | Callable[[Event], str | None] = None) -> Event:
        """Store one response and, if ``settle`` says the responses decide, the decision too.

        All in one transaction, so two responders completing a quorum at once cannot both
        decide, and a refused response leaves nothing behind.
        """
        with self._write() as conn:
            row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
            if row is None:
                raise NotFound(f"no event {event_id}")
            [event] = self._events_from_rows([row], detail=True, conn=conn)
            answer = response(event) if callable(response) else response  # may refuse first
            if event.status != "pending":
                raise AlreadyDecided(f"event {event_id} is already {event.status}")
            if any(r.by == answer.by for r in event.responses):
                raise AlreadyAnswered(f"{answer.by} already answered event {event_id}")
            kept = self._insert_response(conn, event_id, answer)
            # the event as get_event would now read it, without reading it again
            responses = sorted([*event.responses, kept], key=lambda r: r.at)
            event = event.model_copy(update={"responses": responses})
            decision = settle(event, responses)
            if decision is None:
                return event
            via = deliver_via(event) if callable(deliver_via) else deliver_via
            status, stored, delivery = self._write_decision(conn, event_id, decision, via)
        deliveries = [*event.deliveries, delivery] if delivery else event.deliveries
        return event.model_copy(update={"status": status, "decision": stored,
                                        "deliveries": deliveries})

    @staticmethod
    def _pending_row(conn: sqlite3.Connection, event_id: str) -> sqlite3.Row:
        row: sqlite3.Row | None = conn.execute("SELECT * FROM events WHERE id = ?",
                                               (event_id,)).fetchone()
        if row is None:
            raise NotFound(f"no event {event_id}")
        if row["status"] != "pending":
            raise AlreadyDecided(f"event {event_id} is already {row['status']}")
        return row

    def _insert_response(self, conn: sqlite3.Connection, event_id: str,
                         response: Response) -> Response:
        """Insert a response and its audit line; returns it as it now reads back."""
        value = json.dumps(response.value)
        at = _ts(response.at)
        conn.execute(
            "INSERT INTO responses (id, event_id, by, value, comment, channel, at,"
            " relayed_from, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (response.id, event_id, response.by, value, response.comment, response.channel, at,
             response.relayed_from, int(response.verified)))
        data: dict[str, Any] = {"value": response.value, "comment": response.comment}
        if response.relayed_from is not None or not response.verified:
            data.update(relayed_from=response.relayed_from, verified=response.verified)
        self._append_audit(conn, "responded", actor=response.by, channel=response.channel,
                           event_id=event_id,
                           data={**data, "row": self._seal(conn, "responses", response.id)},
                           at=at)
        return response.model_copy(update={"value": json.loads(value), "at": _at(at)})

    def _write_decision(self, conn: sqlite3.Connection, event_id: str, decision: Decision,
                        deliver_via: str | None) -> tuple[str, Decision, Delivery | None]:
        """Write the decision (compare-and-set); returns the new status, the decision and the
        delivery as they now read back from the store.
        """
        status = "cancelled" if decision.outcome.value == "cancelled" else "decided"
        at = _ts(decision.at)
        updated = conn.execute(
            "UPDATE events SET status = ?, next_escalation = NULL"
            " WHERE id = ? AND status = 'pending'", (status, event_id)).rowcount
        if updated != 1:  # the compare-and-set: only a pending event takes a decision
            raise AlreadyDecided(f"event {event_id} is no longer pending")
        value = json.dumps(decision.value)
        conn.execute(
            "INSERT INTO decisions (event_id, value, outcome, by, comment, channel, at, rule,"
            " relayed_from, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, value, decision.outcome.value, decision.by, decision.comment,
             decision.channel, at, decision.rule, decision.relayed_from, int(decision.verified)))
        data: dict[str, Any] = {"value": decision.value, "comment": decision.comment,
                                "row": self._seal(conn, "decisions", event_id)}
        if decision.rule:
            data["rule"] = decision.rule
        if decision.relayed_from is not None or not decision.verified:
            data.update(relayed_from=decision.relayed_from, verified=decision.verified)
        delivery = None
        if deliver_via is not None:
            delivery = Delivery(id=f"dl_{uuid.uuid4().hex}", resumer=deliver_via,
                                state="pending", attempts=0, next_attempt_at=_at(at),
                                updated_at=_at(at))
            data["delivery"] = {"id": delivery.id, "resumer": deliver_via}
        self._append_audit(conn, decision.outcome.value, actor=decision.by,
                           channel=decision.channel, event_id=event_id, data=data, at=at)
        if delivery is not None:
            conn.execute(
                "INSERT INTO deliveries (id, event_id, resumer, state, attempts,"
                " next_attempt_at, created_at, updated_at) VALUES (?,?,?,'pending',0,?,?,?)",
                (delivery.id, event_id, deliver_via, at, at, at))
        stored = decision.model_copy(update={"value": json.loads(value), "at": _at(at)})
        return status, stored, delivery

    def due_escalations(self, now: datetime, limit: int = 100) -> list[Event]:
        """Pending events whose next escalation tier is due."""
        rows = self._read(
            "SELECT * FROM events INDEXED BY events_escalation WHERE status = 'pending'"
            " AND next_escalation <= ? ORDER BY next_escalation LIMIT ?", (_ts(now), limit))
        return self._events_from_rows(rows, detail=True)

    def next_escalation(self, after: datetime | None = None) -> datetime | None:
        """When the next escalation tier falls due (after ``after``, if given)."""
        row = self._read("SELECT next_escalation FROM events INDEXED BY events_escalation"
                         " WHERE status = 'pending' AND next_escalation > ?"
                         " ORDER BY next_escalation LIMIT 1", (_after(after),))
        return _dt(row[0][0]) if row else None

    def escalate(self, event_id: str, *, level: int, assignees: list[str],
                 data: dict[str, Any]) -> Event:
        """Move a pending event from tier ``level`` to the next, with its new assignees.

        Raises:
            AlreadyDecided: the event is no longer pending or was escalated meanwhile.
        """
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchall()
            if not row:
                raise NotFound(f"no event {event_id}")
            [event] = self._events_from_rows(row, detail=False, conn=conn)
            following = escalation_due(event.created_at, event.policy, level + 1)
            updated = conn.execute(
                "UPDATE events SET escalation_level = ?, next_escalation = ?, assigned = ?,"
                " body = json_set(body, '$.assignees', json(?))"
                " WHERE id = ? AND status = 'pending' AND escalation_level = ?",
                (level + 1, _ts(following) if following else None, 1 if assignees else 0,
                 json.dumps(assignees), event_id, level)).rowcount
            if updated != 1:
                raise AlreadyDecided(f"event {event_id} is no longer at tier {level}")
            conn.execute("DELETE FROM event_assignees WHERE event_id = ?", (event_id,))
            conn.executemany("INSERT INTO event_assignees (principal, event_id) VALUES (?, ?)",
                             [(who, event_id) for who in assignees])
            self._append_audit(conn, "escalated", actor="policy", channel="sweeper",
                               event_id=event_id,
                               data={"tier": level, "assignees": assignees, **data}, at=now)
        stored = self.get_event(event_id)
        assert stored is not None
        return stored

    def next_deadline(self, after: datetime | None = None) -> datetime | None:
        """The earliest deadline among pending events (after ``after``, if given)."""
        # the partial index holds only pending events; the planner would pick events_order
        row = self._read("SELECT deadline FROM events INDEXED BY events_deadline"
                         " WHERE status = 'pending' AND deadline > ?"
                         " ORDER BY deadline LIMIT 1", (_after(after),))
        return _dt(row[0][0]) if row else None

    def due_events(self, now: datetime, limit: int = 100) -> list[Event]:
        """Pending events past their deadline."""
        rows = self._read(
            "SELECT * FROM events INDEXED BY events_deadline WHERE status = 'pending'"
            " AND deadline <= ? ORDER BY deadline LIMIT ?", (_ts(now), limit))
        return self._events_from_rows(rows, detail=False)

    # deliveries -------------------------------------------------------------------------
    def due_deliveries(self, now: datetime, limit: int = 50) -> list[DueDelivery]:
        """Pending deliveries whose next attempt is due."""
        rows = self._read(
            "SELECT * FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?", (_ts(now), limit))
        return [DueDelivery(id=r["id"], event_id=r["event_id"], resumer=r["resumer"],
                            attempts=r["attempts"], created_at=_dt(r["created_at"]) or _now())
                for r in rows]

    def next_delivery_at(self, after: datetime | None = None) -> datetime | None:
        """When the next pending delivery is due (after ``after``, if given)."""
        row = self._read("SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'"
                         " AND next_attempt_at > ?", (_after(after),))
        return _dt(row[0][0])

    def pending_summary(self, now: datetime, ages: Sequence[float],
                        sla: Mapping[str, float]) -> PendingSummary:
        """The pending queue by priority and age (one pass over the pending events' index)."""
        cut = _ts(now)
        bucket = " ".join(f"WHEN created_at > {cut - age!r} THEN {i}"
                          for i, age in enumerate(ages))
        bucket = f"CASE {bucket} ELSE {len(ages)} END" if ages else "0"
        limits = " ".join(f"WHEN {-_PRIORITY_RANK[p]} THEN {cut - float(s)!r}"
                          for p, s in sla.items() if p in _PRIORITY_RANK)
        sla_cut = f"CASE sort_priority {limits} ELSE NULL END" if limits else "NULL"
        rows = self._read(
            f"SELECT sort_priority, {bucket} AS bucket, COUNT(*), MIN(created_at),"
            f" SUM(CASE WHEN deadline IS NOT NULL THEN deadline < ?"
            f" ELSE created_at < {sla_cut} END)"
            " FROM events INDEXED BY events_order WHERE status = 'pending'"
            " GROUP BY sort_priority, bucket", (cut,))
        names = {-rank: name for name, rank in _PRIORITY_RANK.items()}
        counts: dict[tuple[str, int], int] = {}
        oldest: dict[str, datetime] = {}
        past: dict[str, int] = {}
        for prio, age, n, first, late in rows:
            name = names.get(prio, "normal")
            counts[(name, age)] = counts.get((name, age), 0) + n
            at = _at(first)
            if name not in oldest or at < oldest[name]:
                oldest[name] = at
            if late:
                past[name] = past.get(name, 0) + int(late)
        waiting = self._read("SELECT COUNT(*) FROM deliveries INDEXED BY deliveries_due"
                             " WHERE state = 'pending'")[0][0]
        return PendingSummary(counts=counts, oldest=oldest, past_sla=past,
                              deliveries_pending=int(waiting))

    def audit_completeness(self, since: datetime) -> tuple[int, int]:
        """Recent decisions, and those with their audit entry (by ``decisions_at``)."""
        row = self._read(
            "SELECT COUNT(*), SUM(EXISTS (SELECT 1 FROM audit a WHERE a.event_id = d.event_id"
            " AND a.action = d.outcome)) FROM decisions d INDEXED BY decisions_at"
            " WHERE d.at >= ?", (_ts(since),))[0]
        return int(row[0]), int(row[1] or 0)

    def delivery_attempted(self, delivery_id: str, *, state: str, error: str | None = None,
                           next_attempt_at: datetime | None = None) -> None:
        """Record one attempt, with its audit line."""
        if state not in ("pending", "delivered", "failed"):
            raise InvalidInput("state", "pending, delivered or failed", state)
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT event_id, resumer, attempts FROM deliveries WHERE id = ?",
                               (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"no delivery {delivery_id}")
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (state, error, _ts(next_attempt_at) if next_attempt_at else None, now,
                 delivery_id))
            # every attempt is audited: delivery_attempted (failed, will retry),
            # delivery_delivered or delivery_failed (final)
            action = "delivery_attempted" if state == "pending" else f"delivery_{state}"
            data: dict[str, Any] = {"delivery": delivery_id, "attempts": row["attempts"] + 1,
                                    "error": error}
            if next_attempt_at is not None:
                data["next_attempt_at"] = next_attempt_at.isoformat()
            self._append_audit(conn, action, actor="hub", channel=row["resumer"],
                               event_id=row["event_id"], data=data, at=now)

    def list_deliveries(self, *, state: str | None = None, resumer: str | None = None,
                        error_prefix: str | None = None,
                        limit: int = 100) -> list[DeliveryRecord]:
        """Deliveries, most recently changed first."""
        where: list[str] = ["1"]
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if resumer is not None:
            where.append("resumer = ?")
            params.append(resumer)
        if error_prefix is not None:
            where.append("substr(last_error, 1, ?) = ?")
            params += [len(error_prefix), error_prefix]
        rows = self._read(f"SELECT * FROM deliveries WHERE {' AND '.join(where)}"
                          " ORDER BY updated_at DESC, id LIMIT ?", (*params, limit))
        return [_delivery_record(r) for r in rows]

    def retry_delivery(self, delivery_id: str, *, actor: str, channel: str) -> DeliveryRecord:
        """Make a failed delivery pending again, due now, and audit it."""
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT * FROM deliveries WHERE id = ?",
                               (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"no delivery {delivery_id}")
            if row["state"] != "failed":
                raise Conflict(f"delivery {delivery_id} is {row['state']}, not failed: only a "
                               "failed delivery can be retried")
            conn.execute("UPDATE deliveries SET state = 'pending', next_attempt_at = ?,"
                         " created_at = ?, updated_at = ? WHERE id = ?",
                         (now, now, now, delivery_id))
            self._append_audit(conn, "delivery_retried", actor=actor, channel=channel,
                               event_id=row["event_id"],
                               data={"delivery": delivery_id, "resumer": row["resumer"],
                                     "previous_error": row["last_error"]}, at=now)
            again = conn.execute("SELECT * FROM deliveries WHERE id = ?",
                                 (delivery_id,)).fetchone()
        return _delivery_record(again)

    # tokens -----------------------------------------------------------------------------
    def create_token(self, identity: Identity, *, name: str | None = None,
                     expires_at: datetime | None = None, actor: str = "admin",
                     channel: str = "cli") -> str:
        """Mint a token; only its SHA-256 is stored."""
        token = "so_" + secrets.token_urlsafe(32)
        now = _ts(_now())
        public = token_id(token)
        with self._write() as conn:
            conn.execute(
                "INSERT INTO tokens (hash, id, user, groups, role, name, created_at, expires_at)"
                " VALUES (?,?,?,?,?,?,?,?)",
                (_hash_token(token), public, identity.user, json.dumps(list(identity.groups)),
                 identity.role, name, now, _ts(expires_at) if expires_at else None))
            self._append_audit(conn, "token.created", actor=actor, channel=channel,
                               event_id=None,
                               data={"token": public, "user": identity.user,
                                     "role": identity.role, "groups": list(identity.groups),
                                     "name": name,
                                     "expires_at": expires_at.isoformat() if expires_at else None},
                               at=now)
        return token

    @staticmethod
    def _token_info(r: sqlite3.Row) -> TokenInfo:
        return TokenInfo(
            id=r["id"], name=r["name"],
            identity=Identity(user=r["user"], groups=tuple(json.loads(r["groups"])),
                              role=r["role"]),
            created_at=_at(r["created_at"]), expires_at=_dt(r["expires_at"]),
            last_used_at=_dt(r["last_used_at"]), revoked_at=_dt(r["revoked_at"]))

    _TOKEN_COLUMNS = ("id, user, groups, role, name, created_at, expires_at, last_used_at,"
                      " revoked_at")

    def find_token(self, token: str) -> TokenInfo | None:
        """What is known about a token, whatever its state."""
        rows = self._read(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE hash = ?",
                          (_hash_token(token),))
        return self._token_info(rows[0]) if rows else None

    def identity_for(self, token: str) -> Identity | None:
        """The identity behind an active token, or ``None``."""
        info = self.find_token(token)
        if info is None or info.state(_now()) != "active":
            return None
        return info.identity

    def get_token(self, token_id: str) -> TokenInfo | None:
        """A token by its public id."""
        rows = self._read(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?", (token_id,))
        return self._token_info(rows[0]) if rows else None

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, oldest first."""
        return [self._token_info(r) for r in self._read(
            f"SELECT {self._TOKEN_COLUMNS} FROM tokens ORDER BY created_at, rowid")]

    def revoke_token(self, token_id: str, *, actor: str, channel: str) -> TokenInfo:
        """Revoke a token, end its sessions and links, move the generation on; audited."""
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT revoked_at FROM tokens WHERE id = ?",
                               (token_id,)).fetchone()
            if row is None:
                raise NotFound(f"no token {token_id}")
            if row["revoked_at"] is None:
                conn.execute("UPDATE tokens SET revoked_at = ? WHERE id = ?", (now, token_id))
                conn.execute("DELETE FROM sessions WHERE token_id = ?", (token_id,))
                conn.execute("DELETE FROM login_links WHERE token_id = ?", (token_id,))
                conn.execute("UPDATE token_generation SET value = value + 1")
                self._append_audit(conn, "token.revoked", actor=actor, channel=channel,
                                   event_id=None, data={"token": token_id}, at=now)
            rows = conn.execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?",
                                (token_id,)).fetchall()
        return self._token_info(rows[0])

    def token_generation(self) -> int:
        """Moves on at every revocation. Read on every request: the shortest path to the
        calling thread's reader connection.
        """
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or self._in_batch():
            return int(self._read("SELECT value FROM token_generation")[0][0])
        return int(conn.execute("SELECT value FROM token_generation").fetchone()[0])

    def touch_tokens(self, used: dict[str, datetime]) -> None:
        """Record last use; never moves a time backwards."""
        if not used:
            return
        with self._write() as conn:
            conn.executemany(
                "UPDATE tokens SET last_used_at = ? WHERE id = ?"
                " AND (last_used_at IS NULL OR last_used_at < ?)",
                [(_ts(at), tid, _ts(at)) for tid, at in used.items()])

    def count_tokens(self) -> int:
        """How many tokens exist."""
        return int(self._read("SELECT COUNT(*) FROM tokens")[0][0])

    # browser sessions and login links ---------------------------------------------------
    @staticmethod
    def _require_token(conn: sqlite3.Connection, token_id: str) -> None:
        if conn.execute("SELECT 1 FROM tokens WHERE id = ?", (token_id,)).fetchone() is None:
            raise NotFound(f"no token {token_id}")

    def create_login_link(self, token_id: str, *, expires_at: datetime) -> str:
        """A one-time code; only its hash is stored."""
        code = secrets.token_urlsafe(32)
        now = _ts(_now())
        with self._write() as conn:
            self._require_token(conn, token_id)
            conn.execute("DELETE FROM login_links WHERE expires_at <= ?", (now,))
            conn.execute("INSERT INTO login_links (hash, token_id, created_at, expires_at)"
                         " VALUES (?, ?, ?, ?)", (_hash_token(code), token_id, now,
                                                  _ts(expires_at)))
        return code

    _ACTIVE = "t.revoked_at IS NULL AND (t.expires_at IS NULL OR t.expires_at > ?)"

    def login_link(self, code: str) -> TokenInfo | None:
        """The active token an unused, unexpired code signs in with."""
        now = _ts(_now())
        rows = self._read(
            f"SELECT {', '.join('t.' + c for c in self._TOKEN_COLUMNS.split(', '))}"
            f" FROM login_links l JOIN tokens t ON t.id = l.token_id"
            f" WHERE l.hash = ? AND l.expires_at > ? AND {self._ACTIVE}",
            (_hash_token(code), now, now))
        return self._token_info(rows[0]) if rows else None

    def use_login_link(self, code: str, *,
                       session_expires_at: datetime) -> tuple[str, SessionInfo] | None:
        """Spend a code and start a session, in one transaction."""
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("DELETE FROM login_links WHERE hash = ? AND expires_at > ?"
                               " RETURNING token_id", (_hash_token(code), now)).fetchone()
            if row is None:
                return None
            active = conn.execute(f"SELECT 1 FROM tokens t WHERE t.id = ? AND {self._ACTIVE}",
                                  (row["token_id"], now)).fetchone()
            if active is None:
                return None  # the link is spent anyway: its token cannot sign in any more
            return self._start_session(conn, row["token_id"], session_expires_at, now)

    def create_session(self, token_id: str, *,
                       expires_at: datetime) -> tuple[str, SessionInfo]:
        """Start a session; only the hash of its id is stored."""
        now = _ts(_now())
        with self._write() as conn:
            self._require_token(conn, token_id)
            return self._start_session(conn, token_id, expires_at, now)

    def _start_session(self, conn: sqlite3.Connection, token_id: str, expires_at: datetime,
                       now: float) -> tuple[str, SessionInfo]:
        session_id = secrets.token_urlsafe(32)
        csrf = secrets.token_hex(32)
        conn.execute("DELETE FROM sessions WHERE expires_at <= ?", (now,))
        conn.execute("INSERT INTO sessions (hash, token_id, csrf, created_at, expires_at)"
                     " VALUES (?, ?, ?, ?, ?)",
                     (_hash_token(session_id), token_id, csrf, now, _ts(expires_at)))
        row = conn.execute(f"SELECT {self._TOKEN_COLUMNS} FROM tokens WHERE id = ?",
                           (token_id,)).fetchone()
        return session_id, SessionInfo(token=self._token_info(row), csrf=csrf,
                                       expires_at=_at(_ts(expires_at)))

    def session_for(self, session_id: str) -> SessionInfo | None:
        """The live session with this id."""
        now = _ts(_now())
        rows = self._read(
            f"SELECT {', '.join('t.' + c for c in self._TOKEN_COLUMNS.split(', '))},"
            f" s.csrf, s.expires_at AS session_expires_at"
            f" FROM sessions s JOIN tokens t ON t.id = s.token_id"
            f" WHERE s.hash = ? AND s.expires_at > ? AND {self._ACTIVE}",
            (_hash_token(session_id), now, now))
        if not rows:
            return None
        return SessionInfo(token=self._token_info(rows[0]), csrf=rows[0]["csrf"],
                           expires_at=_at(rows[0]["session_expires_at"]))

    def end_session(self, session_id: str) -> None:
        """Delete a session."""
        with self._write() as conn:
            conn.execute("DELETE FROM sessions WHERE hash = ?", (_hash_token(session_id),))

    def secret(self, name: str) -> bytes:
        """A random secret kept in the store, made on first use."""
        with self._write() as conn:
            row = conn.execute("SELECT value FROM secrets WHERE name = ?", (name,)).fetchone()
            if row is not None:
                return bytes(row["value"])
            value = secrets.token_bytes(32)
            conn.execute("INSERT INTO secrets (name, value) VALUES (?, ?)", (name, value))
            return value


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


def _after(moment: datetime | None) -> float:
    return float("-inf") if moment is None else _ts(moment)


def _delivery_record(r: sqlite3.Row) -> DeliveryRecord:
    return DeliveryRecord(id=r["id"], event_id=r["event_id"], resumer=r["resumer"],
                          state=r["state"], attempts=r["attempts"], last_error=r["last_error"],
                          next_attempt_at=_dt(r["next_attempt_at"]), created_at=_at(r["created_at"]),
                          updated_at=_at(r["updated_at"]))


def _batch_lost(cause: BaseException) -> Exception:
    error = RuntimeError(f"a write in the same batch ended the transaction: {cause}")
    error.__cause__ = cause
    return error


def _encode_cursor(sort_priority: int, created_at: float, event_id: str) -> str:
    raw = json.dumps([sort_priority, created_at, event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_priority, created_at, event_id = json.loads(raw, parse_constant=_no_constant)
        if not (type(sort_priority) is int and -3 <= sort_priority <= 0  # noqa: E721
                and type(created_at) in (int, float) and math.isfinite(created_at)
                and abs(created_at) < 1e12 and isinstance(event_id, str)
                and len(event_id) <= 100 and event_id.isascii()):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidInput("cursor", "a cursor returned by a previous page", cursor) from None
    return [sort_priority, created_at, event_id]
