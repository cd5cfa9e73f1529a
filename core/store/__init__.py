"""Where the hub keeps its record: the :class:`Store` protocol and its backends.

``open_store(url)`` picks the backend from a URL: a path or ``sqlite:///path`` for SQLite
(the embedded default), ``postgresql://...`` for PostgreSQL (the ``postgres`` extra; the store
is :mod:`signoff.store.postgres`, imported only then). :mod:`signoff.store.contract` is the
contract every backend passes.
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path
from urllib.parse import quote, unquote

from .._errors import StoreError
from ._audit import AuditKey, AuditKeyError, key_file_for, load_audit_key
from ._protocol import (
    AuditAnchor,
    AuditEntry,
    AuditNote,
    AuditProblem,
    AuditReport,
    Batching,
    DeliveryRecord,
    DueDelivery,
    PendingSummary,
    SessionInfo,
    Store,
    TakenTier,
    TokenInfo,
    token_id,
)
from ._protocol_balance import Assignment, BalancePlan
from ._protocol_reviewers import Delegation
from .sqlite import SQLiteStore

__all__ = ["Assignment", "AuditAnchor", "AuditEntry", "AuditKey", "AuditKeyError", "AuditNote", "AuditProblem",
           "AuditReport", "BalancePlan", "Batching", "Delegation", "DeliveryRecord", "DueDelivery", "PendingSummary", "SQLiteStore",
           "SessionInfo", "Store", "StoreError", "TakenTier", "TokenInfo", "check_database", "has_password", "is_postgres",
           "key_file_for", "load_audit_key", "open_store", "shown", "token_id"]


def shown(url: str) -> str:
    """A database URL without its password (in its user part or a ``password=`` parameter,
    however its name is percent-encoded: libpq decodes it), for messages and logs.
    """
    url = re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)

    def masked(found: re.Match[str]) -> str:
        if unquote(found[2]).lower() != "password":
            return found[0]
        return f"{found[1]}{found[2]}=***"

    return re.sub(r"([?&])([^=&#]*)=([^&#]*)", masked, url)


def has_password(url: str) -> bool:
    """Whether a database URL carries a password (in its user part or a ``password=``
    parameter), as :func:`shown` finds it, or as libpq reads the URL when the PostgreSQL
    driver is installed.
    """
    if shown(url) != url:
        return True
    if not is_postgres(url):
        return False
    try:
        from psycopg.conninfo import conninfo_to_dict
    except ImportError:  # no driver: the store cannot open it either
        return False
    try:
        return bool(conninfo_to_dict(url).get("password"))
    except Exception:  # noqa: BLE001 (unreadable: the store refuses it, without showing it)
        return False


def is_postgres(url: str) -> bool:
    """Whether ``url`` names a PostgreSQL database (``postgresql://`` or ``postgres://``)."""
    return url.startswith(_POSTGRES_SCHEMES)


_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def open_store(url: str, *, audit_key: bytes | None = None, create: bool = True) -> Store:
    """Open (and migrate) the store a URL names: ``sqlite:///path``, a plain path, ``:memory:``,
    or ``postgresql://user@host:port/database``.

    ``audit_key`` keys the audit chain; without it a SQLite store uses ``<path>.audit-key``
    (made on first use; see :func:`load_audit_key`). A PostgreSQL store needs it given.

    Only the hub creates a store (``create=True``, the default); commands that read one pass
    ``create=False`` so a mistyped path is an error rather than a new, empty, "intact" store.

    Raises:
        StoreError: the folder or (without ``create``) the file does not exist, or the file is
            not a signoff database (a text file, another application's SQLite database).
    """
    path = check_database(url, create=create)
    store: Store
    if is_postgres(url):
        from .postgres import PostgresStore

        if audit_key is None:
            raise AuditKeyError("a PostgreSQL store needs its audit key given (SIGNOFF_AUDIT_KEY "
                                "or SIGNOFF_AUDIT_KEY_FILE): no key file is kept beside it")
        store = PostgresStore(url, audit_key=audit_key)
    else:
        store = SQLiteStore(path, audit_key=audit_key)
    try:
        store.migrate()
    except BaseException:
        store.close()
        raise
    return store


def check_database(url: str, *, create: bool = True) -> str:
    """The SQLite path ``url`` names, checked as :func:`open_store` checks it, without opening
    it (so the CLI can refuse a wrong ``--db`` before it makes anything beside it).

    Raises:
        StoreError: as :func:`open_store`.
    """
    if is_postgres(url):
        return url  # the server checks it when the store connects
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise StoreError(f"database: expected a SQLite path, a sqlite:/// or a postgresql:// "
                         f"URL, got scheme "
                         f"{scheme!r}")
    else:
        path = url
    if path != ":memory:":
        _check_path(Path(path), create)
    return path


def _check_path(path: Path, create: bool) -> None:
    if path.is_dir():
        raise StoreError(f"database: {path} is a folder; give the database file's path")
    if not path.parent.is_dir():
        raise StoreError(f"database: the folder {path.parent} does not exist "
                         f"(for {path}); create it or give another --db")
    if not create and not path.exists():
        raise StoreError(f"database: no signoff database at {path}; give the hub's database "
                         "with --db or SIGNOFF_DATABASE (only `signoff serve` creates one)")
    if not path.exists() or (create and path.stat().st_size == 0):
        return
    # look without writing: opening for the hub would switch the file to WAL mode
    try:
        conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True)
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            names = {row[0] for row in conn.execute(
                "SELECT name FROM sqlite_master WHERE name NOT LIKE 'sqlite%'")}
        finally:
            conn.close()
    except sqlite3.DatabaseError as exc:
        raise StoreError(f"database: {path} is not a signoff database ({exc})") from exc
    if version == 0 and not names and not create:
        raise StoreError(f"database: {path} is not a signoff database (it is empty)")
    if (version == 0 and names) or (version > 0 and "events" not in names):
        shown = ", ".join(sorted(names)[:5]) or "none"
        raise StoreError(f"database: {path} is not a signoff database (its tables: {shown})")
