"""The hub's audit key, from its settings: the one place ``serve``, the app and the CLI read it."""

from __future__ import annotations

from ..store import AuditKey, Store, load_audit_key, open_store
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


def open_hub_store(settings: Settings, *, create_key: bool = True) -> tuple[Store, AuditKey]:
    """Open (and migrate) the hub's store with its audit key."""
    key = hub_audit_key(settings, create=create_key)
    return open_store(settings.database, audit_key=key.secret), key
