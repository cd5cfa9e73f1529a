"""The PostgreSQL store: several hubs on one database (needs the ``postgres`` extra).

Everything the store does is in :class:`~signoff.store._sql.SQLStore`, shared with SQLite;
this module holds what PostgreSQL does its own way:

- **Connections**: pools of autocommit connections. The store's code is synchronous, like the
  :class:`~signoff.store.Store` protocol, and shared with SQLite. Called from a thread, it
  takes a ``psycopg_pool.ConnectionPool`` connection. The hub runs it on its event loop
  instead (:meth:`PostgresStore.drive`): in a greenlet whose every wait for the server is
  awaited on an ``AsyncConnection`` from that loop's ``AsyncConnectionPool``
  (:mod:`signoff.store._drive`). A worker thread hands the GIL to the loop and back at every
  round trip; measured with ``bench/hub_throughput.py --db`` (2,000 events, one hub), driven
  calls cost the hub 10-20% less CPU per creation and per decision. A connection that broke
  (the server restarted) is checked and replaced when taken from either pool.
- **No group commit**: unlike SQLite, the store does not offer
  :class:`~signoff.store.Batching`, so the hub runs each call on its own (driven on the loop).
  Measured with ``bench/hub_throughput.py --db`` (1,000 decisions, 16 clients, 2 cores): on a
  quiet machine one writer thread committing batches (``_group.GroupCommit``, as SQLite does)
  decided 230-299 events/s against 227-239 for worker threads; on a machine loaded by other
  work (load average 13) 51/s against 144/s, the one writer thread doing a dozen round trips
  per write one after another. Worker threads keep the hub steady under load.
- **Writes** run in a transaction that first takes a transaction-level advisory lock, so
  writes are serialized across every process on the database, as SQLite's single writer
  serializes them in one: the audit chain numbers its entries in order, and a decision stays a
  compare-and-set (``UPDATE ... WHERE status = 'pending'``, checked by its row count). The
  queries that pick due work (``due_events``, ``claim_escalations``, ``claim_deliveries``) are plain
  ``SELECT ... ORDER BY ... LIMIT`` on one table, so they can take ``FOR UPDATE SKIP LOCKED``.
- **The busy writes run side by side**: creating an event, answering and deciding one
  (``_write(alongside=True)``) lock what they read themselves: the event's row
  (``SELECT ... FOR UPDATE``), and the idempotency key and resume target a creation checks
  (two-key advisory locks on the names' hashes, :meth:`PostgresStore._hold_names`). They take
  the write lock *shared*, so they run alongside one another but never alongside a serialized
  write, and they keep their audit entries until the end: as it commits, the write takes a
  third lock, the audit lock, reads the chain's head, and inserts its entries in one
  statement. The audit lock is held from the head to the commit (see "Round trips") instead
  of the whole write, and commits stay in audit order (a write takes the audit lock
  after every row lock it needs, and keeps it to its commit). Nothing waits for a row lock
  while holding a lock another write waits for, so these locks cannot deadlock: a serialized
  write starts only when no shared holder is left, and after the audit lock a write only
  inserts.
- **Round trips**: the busy writes run in psycopg's pipeline mode, and wait for an answer only
  where they read one: a statement whose result only an audit entry or a check needs (the
  inserted row's seal, the decision's compare-and-set) is sent without waiting, and the audit
  lock and the chain's head travel with them. An answer that decides an event costs four
  round trips (begin, lock and read the event; its responses; the writes with the audit lock
  and head; the audit entries with the commit) instead of eleven, and the audit lock is held
  for one. A serialized write sends ``BEGIN`` and its lock as one simple query. A connection
  taken from the pool is checked only when the server has written to it since it was put
  back (a restart's goodbye), not with a query every time.
- **Migrations** are the same versioned list as SQLite's (:mod:`signoff.store._schema`),
  applied each in its own transaction under another advisory lock, so replicas starting
  together migrate once; the version is kept in the table ``signoff_schema``.
- **Placeholders**: the shared SQL is written with ``?``; here it becomes ``%s``.

The password comes from the URL, or, better, from where libpq looks by itself: the
``PGPASSWORD`` environment variable or the ``PGPASSFILE`` file (``~/.pgpass`` by default), so it
need never be on a command line.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import math
import secrets
import select
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any, TypeVar

from .._errors import InvalidInput, StoreError, StoreUnavailable
from .._model import Decision
from . import shown
from ._drive import drive, driven, in_context, wait_for
from ._listen import APPLICATION, CHANNEL, Heard, Listener, payload
from ._schema import for_postgresql
from ._sql import _AUDIT_INSERT, AuditEntryText, LazyEntry, Row, SQLStore, chain_head

try:
    import psycopg
    from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout
except ImportError as exc:  # pragma: no cover - depends on the environment
    raise ImportError("the PostgreSQL store needs the postgres extra: "
                      "pip install 'signoff[postgres]'") from exc

__all__ = ["PostgresStore"]

T = TypeVar("T")

# advisory lock keys: arbitrary, fixed numbers every signoff process agrees on
_WRITE_LOCK = 0x5166_0FF1
_MIGRATE_LOCK = 0x5166_0FF2
_AUDIT_LOCK = 0x5166_0FF3
_NAMES = 0x5166  # the first of the two keys of a lock that holds a name (the second: its hash)
_BEGIN_SERIAL = b"BEGIN; SELECT pg_advisory_xact_lock(%d)" % _WRITE_LOCK
_SHARE_WRITE_LOCK = b"SELECT pg_advisory_xact_lock_shared(%d)" % _WRITE_LOCK
_TAKE_AUDIT_LOCK = b"SELECT pg_advisory_xact_lock(%d)" % _AUDIT_LOCK
_AUDIT_HEAD = b"SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1"
_CONNECT_TIMEOUT = 10.0  # seconds to wait for the first connection, at start
_REQUEST_TIMEOUT = 5.0  # seconds a call waits for a connection before it answers 503
_RELEASE_TIMEOUT = 0.5  # seconds a closing loop pool waits for its own tasks (release_loop)
_KEEPALIVES = {  # a connection to a host that vanished (no FIN, no RST) fails within ~30 s
    "keepalives": "1", "keepalives_idle": "10", "keepalives_interval": "5",
    "keepalives_count": "3", "tcp_user_timeout": "30000"}


class _Row(dict[str, Any]):
    """A row that answers ``row["column"]``, ``row[0]`` and ``dict(row)`` like ``sqlite3.Row``."""

    def __init__(self, names: list[str], values: Sequence[Any]) -> None:
        super().__init__(zip(names, values, strict=True))
        self._values = values

    def __getitem__(self, key: str | int) -> Any:
        if isinstance(key, int):
            return self._values[key]
        return super().__getitem__(key)


def _row_factory(cursor: Any) -> Callable[[Sequence[Any]], _Row]:
    # the names straight from the result: ``cursor.description`` builds a Column (with its
    # type looked up) for each column of every statement (4% of a decision's CPU in the store)
    result = cursor.pgresult
    names = [] if result is None else [result.fname(i).decode() for i in range(result.nfields)]
    return functools.partial(_Row, names)


@functools.lru_cache(maxsize=512)
def _dialect(sql: str) -> str:
    """The shared SQL's ``?`` placeholders as psycopg's ``%s``."""
    return sql.replace("%", "%%").replace("?", "%s")


@functools.lru_cache(maxsize=16)
def _audit_insert(rows: int) -> str:
    """``_AUDIT_INSERT`` for ``rows`` rows in one statement."""
    head, _, values = _AUDIT_INSERT.partition(" VALUES ")
    return _dialect(head + " VALUES " + ", ".join([values] * rows))


def _check(conn: psycopg.Connection[Any]) -> None:
    """Check a connection taken from the pool with a query only when it is closed or the
    server wrote to it while it sat in the pool: a server that stops or restarts says goodbye
    (or its socket ends), and a healthy idle connection is never written to. The check costs a
    ``poll`` instead of a round trip on every call.
    """
    if conn.closed or _readable(conn.fileno()):
        ConnectionPool.check_connection(conn)


async def _check_async(conn: psycopg.AsyncConnection[Any]) -> None:
    """:func:`_check` for the event loop's pool."""
    if conn.closed or _readable(conn.fileno()):
        await AsyncConnectionPool.check_connection(conn)


def _readable(fd: int) -> bool:
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


class _Conn:
    """A pooled connection as :class:`~signoff.store._sql.SQLStore` uses it."""

    def __init__(self, raw: psycopg.Connection[Any],
                 entries: list[AuditEntryText | LazyEntry] | None = None) -> None:
        self.raw = raw
        self.entries = entries
        """The audit entries an ``alongside`` write chains as it commits (None: at once)."""
        self.checks: list[Callable[[], None]] = []
        """What an ``alongside`` write checks once its statements have answered."""

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:
        return self.raw.execute(_dialect(sql), list(parameters))

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any:
        cursor = self.raw.cursor()
        cursor.executemany(_dialect(sql), list(seq_of_parameters))
        return cursor


class _Blocking:
    """An ``AsyncConnection`` as the store's synchronous code uses a ``Connection``, from code
    :func:`~signoff.store._drive.drive` runs: each wait for the server goes to the event loop.
    """

    def __init__(self, conn: psycopg.AsyncConnection[Any]) -> None:
        self._conn = conn

    @property
    def info(self) -> Any:
        return self._conn.info

    def execute(self, query: Any, params: Any = None) -> _BlockingCursor:
        return _BlockingCursor(wait_for(self._conn.execute(query, params)))

    def cursor(self) -> _BlockingCursor:
        return _BlockingCursor(self._conn.cursor())

    def pipeline(self) -> contextlib.AbstractContextManager[Any]:
        return in_context(self._conn.pipeline())

    def transaction(self) -> contextlib.AbstractContextManager[Any]:
        return in_context(self._conn.transaction())


class _BlockingCursor:
    """An ``AsyncCursor`` as :class:`_Blocking` hands it out."""

    def __init__(self, cursor: psycopg.AsyncCursor[Any]) -> None:
        self._cursor = cursor

    @property
    def rowcount(self) -> int:
        return self._cursor.rowcount

    def fetchone(self) -> Any:
        return wait_for(self._cursor.fetchone())

    def fetchall(self) -> list[Any]:
        return wait_for(self._cursor.fetchall())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.fetchall())

    def executemany(self, query: Any, params_seq: Any) -> None:
        wait_for(self._cursor.executemany(query, params_seq))


@contextmanager
def _unavailable() -> Iterator[None]:
    """The server unreachable, restarting, or a connection lost mid-call: 503, not 500; so is
    a server that only reads (a failover that landed on a standby). The answer names no host,
    user or database: it goes to whoever asked, signed in or not. A value the database refuses
    (a NUL character, an index entry too large) is the request's fault: 422, which a retry
    cannot change (see :func:`_refused`).
    """
    try:
        yield
    except (PoolTimeout, psycopg.OperationalError, psycopg.errors.ReadOnlySqlTransaction
            ) as exc:
        if _over_a_limit(exc):
            raise _refused(exc) from exc
        raise StoreUnavailable(f"the database cannot be reached just now "
                               f"({type(exc).__name__}); nothing was done") from exc
    except psycopg.DataError as exc:  # a value a column refuses: 422, not 500
        raise _refused(exc) from exc


_INDEXED_FIELDS = {"events_requester_key": "key", "events_resume_target": "source.params"}
"""The request field each index over a client-given value holds (named in a refusal)."""


def _over_a_limit(exc: psycopg.Error) -> bool:
    """SQLSTATE class 54, program limit exceeded (an index row too large, too many columns):
    psycopg makes it an OperationalError, yet the server is up and the same request fails the
    same way every time, so it is no 503 to retry.
    """
    return (exc.sqlstate or "").startswith("54")


def _refused(exc: psycopg.Error) -> InvalidInput:
    """A value PostgreSQL refuses, as the 422 of the request that sent it: the field when an
    index the error names holds one, else the body; what the server said as what came.
    """
    if "NUL" in str(exc):  # psycopg's own check, before the server: a text column
        # The hub refuses NUL where each field comes in (signoff._limits.Text), naming it; this
        # is the backstop for a caller that did not. The store cannot tell which field held
        # it, so it names none it would be wrong about: "store", and says the database refused.
        return InvalidInput("store", "text without NUL characters", "a NUL character",
                            "the database refused a value: PostgreSQL text cannot hold a NUL "
                            "character; nothing was stored")
    said = exc.diag.message_primary or str(exc).partition("\n")[0]
    field = next((f for index, f in _INDEXED_FIELDS.items() if f'"{index}"' in said), "body")
    return InvalidInput(field, "a value within PostgreSQL's limits", said)


def _parsed(url: str, name: str) -> dict[str, Any]:
    """The connection parameters libpq reads from ``url``.

    Raises:
        StoreError: libpq cannot read it; the message never repeats the URL (a malformed one
            may hold its password where the masking cannot find it).
    """
    try:
        return psycopg.conninfo.conninfo_to_dict(url)
    except psycopg.ProgrammingError as exc:
        reason = str(exc).split(" in URI:")[0].strip().splitlines()[0]
        raise StoreError(f"database: not a PostgreSQL URL libpq can read ({reason}): "
                         f"expected postgresql://user@host:port/database, got "
                         f"{name.split('://')[0]}://...") from None


def _reason(exc: BaseException) -> str:
    """A driver error on one line (libpq's messages span several)."""
    return "; ".join(line.strip() for line in str(exc).splitlines() if line.strip())


_NOT_YET = ("Connection refused", "timeout expired", "could not translate host name",
            "No such file or directory", "Network is unreachable", "No route to host")
"""libpq's words for a server not reachable yet (starting, or its name not yet in DNS)."""
_NOT_YET_STATES = {"57P01", "57P02", "57P03", "53300"}  # shutting down, starting, too many


def _first_connection(url: str, name: str, timeout: float, options: dict[str, str]) -> None:
    """Connect once before the pool does, so a start that cannot work says why, at once: a
    server that refuses the user, the password or the database fails at the first try; a
    server not up yet, or not yet reachable, is tried again until ``timeout``.

    Raises:
        StoreError: with the server's reason, never the password.
    """
    deadline = time.monotonic() + timeout
    while True:
        left = deadline - time.monotonic()
        try:
            psycopg.connect(psycopg.conninfo.make_conninfo(
                url, connect_timeout=max(1, math.ceil(left)), **options)).close()
            return
        except psycopg.Error as exc:
            reason = _reason(exc)
            later = (exc.sqlstate in _NOT_YET_STATES
                     or (exc.sqlstate is None and any(w in reason for w in _NOT_YET)))
            if not later or time.monotonic() + 0.5 >= deadline:
                waited = f" within {timeout:g} s" if later else ""
                raise StoreError(f"database: cannot connect to {name}{waited}: {reason} (the "
                                 "password goes in PGPASSWORD, a PGPASSFILE, or with the URL "
                                 "in SIGNOFF_DATABASE_FILE)") from None
        time.sleep(0.5)


class PostgresStore(SQLStore):
    """A :class:`~signoff.store.Store` in a PostgreSQL database, shareable by many hubs."""

    _SKIP_LOCKED = " FOR UPDATE SKIP LOCKED"

    remote = True
    """On a database server: the hub bounds each call (``database_timeout``, ``Hub._run``)."""

    def __init__(self, url: str, *, audit_key: bytes, pool_size: int = 10,
                 connect_timeout: float = _CONNECT_TIMEOUT) -> None:
        self.url = url
        self.name = shown(url)
        self._audit_key = audit_key
        self._instance = secrets.token_hex(8)  # tells this store's notifications from others'
        self._connect_timeout = connect_timeout
        self._listeners: list[Listener] = []
        options = {k: v for k, v in _KEEPALIVES.items() if k not in _parsed(url, self.name)}
        self._keepalives = options  # the pool's and the listener's connections alike
        _first_connection(url, self.name, connect_timeout, options)
        self._pool_size = pool_size
        self._connection_options = {"autocommit": True, "row_factory": _row_factory, **options}
        self._pool: ConnectionPool[Any] = ConnectionPool(
            url, min_size=1, max_size=pool_size, open=False,
            timeout=min(connect_timeout, _REQUEST_TIMEOUT),
            check=_check, name="signoff", kwargs=self._connection_options)
        self._loop_pools: dict[asyncio.AbstractEventLoop, AsyncConnectionPool[Any]] = {}
        """Each event loop's pool (:meth:`drive`): its connections belong to that loop."""
        self._pool.open()
        try:
            self._pool.wait(timeout=connect_timeout)
        except PoolTimeout as exc:
            self._pool.close()
            raise StoreError(f"database: cannot connect to {self.name} within "
                             f"{connect_timeout:g} s") from exc

    # the event loop's calls -------------------------------------------------------------
    async def drive(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run ``fn(*args, **kwargs)``, store code that is otherwise called from a worker
        thread, on the running event loop: its connections come from a pool of
        ``AsyncConnection`` s, and each wait for the server is awaited by the loop (see
        :mod:`signoff.store._drive`). It costs a third less CPU than a worker thread, whose
        every round trip hands the GIL over twice.
        """
        loop = asyncio.get_running_loop()
        if loop not in self._loop_pools:
            pool = self._loop_pools[loop] = AsyncConnectionPool(
                self.url, min_size=1, max_size=self._pool_size, open=False,
                timeout=min(self._connect_timeout, _REQUEST_TIMEOUT), check=_check_async,
                name="signoff-loop", kwargs=self._connection_options)
            await pool.open()
        return await drive(fn, *args, **kwargs)

    async def release_loop(self, timeout: float = _RELEASE_TIMEOUT) -> None:
        """Close the running event loop's pool (:meth:`drive` opens another if called again).

        ``timeout`` is how long to wait for the pool's own tasks before its idle connections
        close (psycopg_pool's default, 5 s, is spent in full when one of them is connecting to
        a server that stopped answering: a stop that long for nothing). A connection in use
        closes when its call gives it back.
        """
        pool = self._loop_pools.pop(asyncio.get_running_loop(), None)
        if pool is not None:
            await pool.close(timeout=timeout)

    @contextmanager
    def _connection(self) -> Iterator[Any]:
        """A pooled connection: the event loop's, in code :meth:`drive` runs; else a
        worker thread's.
        """
        if not driven():
            with self._pool.connection() as raw:
                yield raw
            return
        with in_context(self._loop_pools[asyncio.get_running_loop()].connection()) as conn:
            yield _Blocking(conn)

    # other hubs on the database --------------------------------------------------------
    def _announce(self, conn: Any, event_id: str, decision: Decision | None = None) -> None:
        """``NOTIFY`` the other hubs; PostgreSQL sends it when the transaction commits."""
        conn.execute("SELECT pg_notify(?, ?)", (CHANNEL, payload(self._instance, event_id,
                                                                 decision)))

    def listen(self, heard: Heard) -> Callable[[], None]:
        """Call ``heard`` (in a thread of its own) with the id of each event another hub
        created, decided or escalated (and the decision, when it fitted in the notice), and
        with None after a lost connection came back (see :mod:`signoff.store._listen`);
        returns what stops it.
        """
        # the listening connection idles longest: a server that vanished must not leave it
        # waiting for notices that never come
        listener = Listener(psycopg.conninfo.make_conninfo(self.url, **self._keepalives),
                            self._instance, heard, self._connect_timeout)
        self._listeners.append(listener)
        return listener.close

    def check_writable(self) -> None:
        """Raises :class:`StoreUnavailable` unless the server answers and would take a write:
        a standby, or a database set ``default_transaction_read_only``, refuses every write.
        """
        rows = self._read("SELECT pg_is_in_recovery() OR current_setting('transaction_read_only')"
                          " = 'on'")
        if rows[0][0]:
            raise StoreUnavailable("the database only reads just now (a standby, or read-only)")

    def count_hubs(self) -> int:
        """How many hubs listen on this database now (each holds one listening connection);
        at least 1.
        """
        rows = self._read("SELECT COUNT(*) FROM pg_stat_activity WHERE datname ="
                          " current_database() AND application_name = ?", (APPLICATION,))
        return max(1, int(rows[0][0]))

    # connections ------------------------------------------------------------------------
    @contextmanager
    def _write(self, *, alongside: bool = False) -> Iterator[_Conn]:
        """A write transaction: it waits for the write lock, so writes from every hub on the
        database run one at a time (the audit chain is one sequence); with ``alongside``, it
        shares the lock with the other such writes, sends its statements in pipeline mode and
        chains its audit entries as it commits (see the module docstring).
        """
        with _unavailable(), self._connection() as raw:
            try:
                if not alongside:
                    raw.execute(_BEGIN_SERIAL)
                    yield _Conn(raw)
                    raw.execute(b"COMMIT")
                    return
                with raw.pipeline():
                    raw.execute(b"BEGIN")
                    raw.execute(_SHARE_WRITE_LOCK)
                    conn = _Conn(raw, [])
                    yield conn
                    self._chain_audit(conn)
                    raw.execute(b"COMMIT")
            except BaseException:
                if raw.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
                    with contextlib.suppress(psycopg.Error):
                        raw.execute(b"ROLLBACK")
                raise

    def _add_audit_entry(self, conn: Any, entry: AuditEntryText | LazyEntry) -> None:
        if conn.entries is None:  # a serialized write (or a migration): chained at once
            super()._add_audit_entry(conn, entry)
        else:
            conn.entries.append(entry)

    def _check_later(self, conn: Any, check: Callable[[], None]) -> None:
        if conn.entries is None:
            check()
        else:
            conn.checks.append(check)

    def _chain_audit(self, conn: _Conn) -> None:
        """Take the audit lock (to the commit), then chain the write's entries after the head.

        The lock and the head travel with the write's statements not yet answered: one round
        trip answers them all, then the checks run and the entries are made.
        """
        if not conn.entries and not conn.checks:
            return
        conn.raw.execute(_TAKE_AUDIT_LOCK)
        head = chain_head(conn.raw.execute(_AUDIT_HEAD).fetchone())
        for check in conn.checks:
            check()
        rows = []
        for entry in conn.entries or ():
            row = self._audit_row(head, *(entry() if callable(entry) else entry))
            rows.append(row)
            head = (row[0], row[8])
        if rows:
            conn.raw.execute(_audit_insert(len(rows)), [v for row in rows for v in row])

    _FOR_UPDATE = " FOR UPDATE"

    def _hold_names(self, conn: _Conn, names: Sequence[str]) -> None:
        for name in sorted(set(names)):  # in one order: two writes holding two names wait
            conn.execute("SELECT pg_advisory_xact_lock(?, hashtext(?))", (_NAMES, name))

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        with _unavailable(), self._connection() as raw:
            rows: list[Row] = raw.execute(_dialect(sql), list(params)).fetchall()
            return rows

    @contextmanager
    def _read_snapshot(self) -> Iterator[Callable[[str], list[Row]]]:
        with _unavailable(), self._connection() as raw, raw.transaction():
            raw.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield lambda sql: raw.execute(_dialect(sql), []).fetchall()

    def close(self) -> None:
        """Stop listening and close every pooled connection."""
        for listener in self._listeners:
            listener.close()
        self._listeners.clear()
        self._pool.close()

    # schema -----------------------------------------------------------------------------
    @staticmethod
    def _schema_version(raw: psycopg.Connection[Any], name: str) -> int:
        """The applied schema version; makes the version table in a database that is empty.

        Raises:
            StoreError: the database holds another application's tables.
        """
        found: Any = raw.execute("SELECT to_regclass('signoff_schema')").fetchone()
        if found[0] is not None:
            version: Any = raw.execute("SELECT version FROM signoff_schema").fetchone()
            return int(version[0])
        tables = [r[0] for r in raw.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            " ORDER BY tablename LIMIT 5")]
        if tables:
            raise StoreError(f"database: {name} is not a signoff database (its tables: "
                             f"{', '.join(tables)})")
        raw.execute("CREATE TABLE signoff_schema (one INTEGER PRIMARY KEY CHECK (one = 1),"
                    " version INTEGER NOT NULL)")
        raw.execute("INSERT INTO signoff_schema (one, version) VALUES (1, 0)")
        return 0

    def migrate(self) -> int:
        """Apply the migrations the database lacks, each in its own transaction, under an
        advisory lock: of several hubs starting together, one migrates and the others wait,
        then find nothing left to do.

        Raises:
            StoreError: the schema is newer than this signoff, or the server refused a
                migration (its reason given in one line, e.g. a user without CREATE on the
                schema).
        """
        try:
            return self._migrate()
        except psycopg.errors.InsufficientPrivilege as exc:
            raise StoreError(f"database: cannot create signoff's tables in {self.name}: "
                             f"{_reason(exc)} (the user needs CREATE on the schema; since "
                             "PostgreSQL 15 only the database's owner has it on public: make "
                             "the user the owner, or GRANT CREATE ON SCHEMA public TO it)"
                             ) from None
        except (PoolTimeout, psycopg.OperationalError) as exc:
            raise StoreError(f"database: lost {self.name} while migrating: {_reason(exc)}"
                             ) from None
        except psycopg.Error as exc:
            raise StoreError(f"database: migrating {self.name} failed: {_reason(exc)}"
                             ) from None

    def _migrate(self) -> int:
        scripts = for_postgresql()
        with self._pool.connection() as raw:
            for number, script in enumerate(scripts, start=1):
                with raw.transaction():
                    raw.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATE_LOCK,))
                    version = self._schema_version(raw, self.name)
                    if version > len(scripts):
                        raise StoreError(
                            f"database: {self.name} has schema version {version}, newer than "
                            f"this signoff's ({len(scripts)}); run the signoff that wrote it, "
                            "or a newer one")
                    if version >= number:
                        continue
                    raw.execute(script.encode())  # no parameters: several statements at once
                    raw.execute("UPDATE signoff_schema SET version = %s", (number,))
                    if number == 4:
                        self._seal_legacy_audit(_Conn(raw))
        return len(scripts)
