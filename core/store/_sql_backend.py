"""What the SQL record mixins (tokens, reviewers) and :class:`~signoff.store._sql.SQLStore`
need from the database a store runs on: each dialect's store supplies them (``sqlite.py``,
``postgres.py``), the mixins only call them.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager
from typing import Any

from .._model import Event

__all__ = ["SQLBackend"]


class SQLBackend:
    """The operations a dialect supplies (and :class:`~signoff.store._sql.SQLStore` the shared
    ones: audit entries, rows to events).
    """

    def _write(self) -> AbstractContextManager[Any]:
        """A connection in a write transaction (a savepoint inside a group commit)."""
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        """The rows of one read-only statement."""
        raise NotImplementedError

    def _indexed_by(self, index: str) -> str:
        """An index hint for the planner, where the dialect has one."""
        return ""

    def _append_audit(self, conn: Any, action: str, *, actor: str, channel: str,
                      event_id: str | None, data: dict[str, Any], at: float) -> None:
        """Append one entry to the audit chain, inside ``conn``'s transaction."""
        raise NotImplementedError

    def _events_from_rows(self, rows: list[Any], detail: bool,
                          conn: Any | None = None) -> list[Event]:
        """Events from their rows (with responses, decision and deliveries when ``detail``)."""
        raise NotImplementedError
