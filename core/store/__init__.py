"""Where the hub keeps its record: the :class:`Store` protocol and its backends.

``open_store(url)`` picks the backend from a URL: a path or ``sqlite:///path`` for SQLite
(the embedded default). :mod:`signoff.store.contract` is the contract every backend passes.
"""

from __future__ import annotations

from ._protocol import AuditEntry, AuditReport, Batching, DeliveryRecord, DueDelivery, Store
from .sqlite import SQLiteStore

__all__ = ["AuditEntry", "AuditReport", "Batching", "DeliveryRecord", "DueDelivery", "SQLiteStore",
           "Store", "open_store"]


def open_store(url: str) -> Store:
    """Open (and migrate) the store a URL names: ``sqlite:///path``, a plain path, ``:memory:``."""
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
    elif "://" in url:
        scheme = url.split("://", 1)[0]
        raise ValueError(f"database: expected a SQLite path or sqlite:/// URL, got scheme {scheme!r}")
    else:
        path = url
    store = SQLiteStore(path)
    store.migrate()
    return store
