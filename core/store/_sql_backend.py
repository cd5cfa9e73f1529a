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

    def _write(self, *, alongside: bool = False) -> AbstractContextManager[Any]:
        """A connection in a write transaction (a savepoint inside a group commit).

        Writes run one at a time. ``alongside=True`` is a write that locks what it reads
        itself (rows read with ``_FOR_UPDATE``, names checked with :meth:`_hold_names`):
        where the database can, it runs alongside other such writes, and only its audit
        entries are put in order, as it commits.
        """
        raise NotImplementedError

    _FOR_UPDATE = ""
    """What a ``SELECT`` of a row an ``alongside`` write goes on to change ends with, where
    the dialect locks rows."""

    def _hold_names(self, conn: Any, names: Sequence[str]) -> None:
        """Hold ``names`` until the transaction ends (an ``alongside`` write checking that
        something does not exist yet); nothing where writes run one at a time.
        """

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
