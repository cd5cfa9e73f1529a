"""Where the hub keeps its record: the :class:`Store` protocol and its backends.

``open_store(url)`` picks the backend from a URL: a path or ``sqlite:///path`` for SQLite
(the embedded default). :mod:`signoff.store.contract` is the contract every backend passes.
"""

from __future__ import annotations

from ._audit import AuditKey, AuditKeyError, key_file_for, load_audit_key
from ._protocol import (
    AuditAnchor,
    AuditEntry,
    AuditProblem,
    AuditReport,
    Batching,
    DueDelivery,
    SessionInfo,
    Store,
    TokenInfo,
    token_id,
)
from .sqlite import SQLiteStore

__all__ = ["AuditAnchor", "AuditEntry", "AuditKey", "AuditKeyError", "AuditProblem", "AuditReport",
           "Batching", "DueDelivery", "SQLiteStore", "SessionInfo", "Store", "TokenInfo",
           "key_file_for", "load_audit_key", "open_store", "token_id"]


def open_store(url: str, *, audit_key: bytes | None = None) -> Store:
    """Open (and migrate) the store a URL names: ``sqlite:///path``, a plain path, ``:memory:``.

    ``audit_key`` keys the audit chain; without it a SQLite store uses ``<path>.audit-key``
    (made on first use; see :func:`load_audit_key`).
    """
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"database: expected a SQLite path or sqlite:/// URL, got scheme {scheme!r}")
    else:
        path = url
    store = SQLiteStore(path, audit_key=audit_key)
    store.migrate()
    return store
