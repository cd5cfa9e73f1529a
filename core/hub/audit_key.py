"""The hub's audit key, from its settings: the one place ``serve``, the app and the CLI read it."""

from __future__ import annotations

from pathlib import Path

from ..store import AuditKey, AuditKeyError, Store, check_database, load_audit_key, open_store
from .settings import Settings

__all__ = ["hub_audit_key", "open_hub_store"]


def hub_audit_key(settings: Settings, *, create: bool) -> AuditKey:
    """The audit key the settings name (``audit_key``, ``audit_key_file``), else the file
    beside the database, made when ``create`` (the hub and ``token create`` make it; ``audit
    verify`` never does: a new key could only fail to verify an old log).

    Raises:
        AuditKeyError: no key, an unreadable or short one, or two that differ.
    """
    return load_audit_key(
        settings.database.removeprefix("sqlite:///"),
        key=settings.audit_key.get_secret_value() if settings.audit_key else None,
        key_file=settings.audit_key_file, create=create)


def open_hub_store(settings: Settings, *, create_key: bool = True,
                   create: bool = True) -> tuple[Store, AuditKey]:
    """Open (and migrate) the hub's store with its audit key.

    Only the hub makes a new store (``create``); the CLI's commands on an existing hub pass
    ``create=False``, so a mistyped ``--db`` is an error, with no key file made beside it.

    For a store that will be written (``create_key``), the key must verify the log's newest
    keyed entry: a hub or ``token create`` with another key would fork the chain. A key file
    made just now for a log written under another key is removed again.

    Raises:
        AuditKeyError: no usable key, or not the key the log was written with.
    """
    check_database(settings.database, create=create)
    key = hub_audit_key(settings, create=create_key)
    store = open_store(settings.database, audit_key=key.secret, create=create)
    if create_key:
        try:
            store.check_audit_key()
        except AuditKeyError:
            store.close()
            if key.created:
                Path(key.source).unlink(missing_ok=True)
            raise
    return store, key
