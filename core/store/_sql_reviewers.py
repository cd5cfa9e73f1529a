"""What reviewers at work need of a SQL store (issue 21): spent one-click links, reminders.

- A one-click answer link is signed by the hub, never stored; only its *use* is
  (``answer_links_used``), keyed by a hash of its signature, so a second use is refused on any
  replica. :meth:`ReviewerRecords.spend_answer_link` is the compare-and-set.
- Delegations: rows with a period; ending one early sets ``ended_at`` (rows are never
  deleted: the audit names them).
- Reminders: ``events.reminded`` counts the reminder steps an event has had (or skipped) and
  ``events.next_reminder`` is when its next one falls due (NULL until the hub planned it). A
  sent reminder is a row in ``reminders`` keyed by (event, step): the replica whose insert
  wins sends it, the others see the row and send nothing.

Mixed into :class:`~signoff.store._sql.SQLStore`, like :mod:`._sql_tokens`.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from .._errors import InvalidInput, NotFound
from .._model import Event
from .._rules import Identity
from ._protocol_reviewers import Delegation
from ._sql_backend import SQLBackend
from ._sql_tokens import _at, _dt, _now, _ts

__all__ = ["ReviewerRecords"]


class ReviewerRecords(SQLBackend):
    """Answer links spent and reminders sent, on a SQL store (see the module docstring)."""

    # one-click answer links ------------------------------------------------------------------
    def spend_answer_link(self, link_id: str, *, event_id: str, recipient: str,
                          at: datetime) -> bool:
        """Record the use of a link; ``False`` when it was used before (nothing written)."""
        with self._write() as conn:
            row = conn.execute(
                "INSERT INTO answer_links_used (id, event_id, recipient, used_at)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (id) DO NOTHING RETURNING id",
                (link_id, event_id, recipient, _ts(at))).fetchone()
        return row is not None

    def answer_link_used(self, link_id: str) -> bool:
        """Whether a link was used already."""
        return bool(self._read("SELECT 1 FROM answer_links_used WHERE id = ?", (link_id,)))

    def user_active(self, user: str) -> bool:
        """Whether ``user`` holds an active (unrevoked, unexpired) reviewer or admin token: a
        person whose access was taken away answers by no link either.
        """
        now = _ts(_now())
        return bool(self._read(
            'SELECT 1 FROM tokens WHERE "user" = ? AND role IN (\'reviewer\', \'admin\')'
            " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?) LIMIT 1",
            (user, now)))

    def active_identity(self, user: str) -> Identity | None:
        """``user`` as a reviewer with the groups of their active reviewer and admin tokens;
        ``None`` when they hold none.
        """
        now = _ts(_now())
        rows = self._read(
            'SELECT groups FROM tokens WHERE "user" = ? AND role IN (\'reviewer\', \'admin\')'
            " AND revoked_at IS NULL AND (expires_at IS NULL OR expires_at > ?)", (user, now))
        if not rows:
            return None
        groups = dict.fromkeys(g for r in rows for g in json.loads(r[0]))
        return Identity(user=user, groups=tuple(groups), role="reviewer")

    def first_sight(self, request_id: str, *, at: datetime, keep: float) -> bool:
        """Record a signed request; ``False`` when it was seen before (a replay). Entries older
        than ``keep`` seconds (past the signature's own age limit) are dropped.
        """
        with self._write() as conn:
            conn.execute("DELETE FROM seen_requests WHERE seen_at < ?", (_ts(at) - keep,))
            row = conn.execute("INSERT INTO seen_requests (id, seen_at) VALUES (?, ?)"
                               " ON CONFLICT (id) DO NOTHING RETURNING id",
                               (request_id, _ts(at))).fetchone()
        return row is not None

    # reminders -------------------------------------------------------------------------------
    def reminder_candidates(self, now: datetime, steps: int,
                            limit: int = 100) -> list[tuple[Event, int]]:
        """Pending events with reminder steps left whose next one is due by ``now`` or not
        planned yet, with their responses (who answered already) and their steps done.
        """
        index = self._indexed_by("events_reminder")
        rows = self._read(
            f"SELECT * FROM events {index} WHERE status = 'pending' AND next_reminder <= ?"
            " AND reminded < ? ORDER BY next_reminder LIMIT ?", (_ts(now), steps, limit))
        rows += self._read(
            f"SELECT * FROM events {index} WHERE status = 'pending' AND next_reminder IS NULL"
            " AND reminded < ? ORDER BY created_at LIMIT ?", (steps, limit))
        done = {r["id"]: int(r["reminded"]) for r in rows}
        return [(e, done[e.id]) for e in self._events_from_rows(rows, detail=True)]

    def plan_reminder(self, event_id: str, *, reminded: int, at: datetime | None) -> None:
        """Set when an event's next reminder falls due (``None``: it has none left)."""
        with self._write() as conn:
            conn.execute("UPDATE events SET reminded = ?, next_reminder = ?"
                         " WHERE id = ? AND status = 'pending' AND reminded <= ?",
                         (reminded, None if at is None else _ts(at), event_id, reminded))

    def claim_reminder(self, event_id: str, *, step: int, at: datetime,
                       next_at: datetime | None, data: dict[str, Any]) -> bool:
        """Take reminder ``step`` of an event for sending, once across replicas: records it,
        plans the next, audits ``reminded``. ``False`` when another took it (nothing written).
        """
        with self._write() as conn:
            won = conn.execute(
                "INSERT INTO reminders (event_id, step, sent_at) VALUES (?, ?, ?)"
                " ON CONFLICT (event_id, step) DO NOTHING RETURNING step",
                (event_id, step, _ts(at))).fetchone()
            if won is None:
                return False
            conn.execute("UPDATE events SET reminded = ?, next_reminder = ?"
                         " WHERE id = ? AND reminded <= ?",
                         (step + 1, None if next_at is None else _ts(next_at), event_id, step))
            self._append_audit(conn, "reminded", actor="hub", channel="sweeper",
                               event_id=event_id, data={"step": step, **data}, at=_ts(_now()))
        return True

    def reminders_sent(self, event_id: str) -> list[int]:
        """The reminder steps recorded for an event, in order."""
        return [int(r[0]) for r in self._read(
            "SELECT step FROM reminders WHERE event_id = ? ORDER BY step", (event_id,))]

    # delegations -----------------------------------------------------------------------------
    _DELEGATION = ("id, delegator, delegate, starts_at, ends_at, reason, created_by, created_at,"
                   " ended_at")

    @staticmethod
    def _delegation(r: Any) -> Delegation:
        return Delegation(id=r["id"], delegator=r["delegator"], delegate=r["delegate"],
                          starts_at=_at(r["starts_at"]), ends_at=_at(r["ends_at"]),
                          reason=r["reason"], created_by=r["created_by"],
                          created_at=_at(r["created_at"]), ended_at=_dt(r["ended_at"]))

    def create_delegation(self, delegation: Delegation, *, channel: str,
                          max_active: int) -> Delegation:
        """Store a delegation and audit it, within its delegator's bound of open ones."""
        d = delegation
        with self._write() as conn:
            open_ = conn.execute(
                "SELECT COUNT(*) FROM delegations WHERE delegator = ? AND ended_at IS NULL"
                " AND ends_at > ?", (d.delegator, _ts(d.created_at))).fetchone()[0]
            if open_ >= max_active:
                raise InvalidInput("delegate", f"at most {max_active} delegations of "
                                   f"{d.delegator} not yet over", f"{open_} already")
            conn.execute(
                f"INSERT INTO delegations ({self._DELEGATION}) VALUES (?,?,?,?,?,?,?,?,?)",
                (d.id, d.delegator, d.delegate, _ts(d.starts_at), _ts(d.ends_at), d.reason,
                 d.created_by, _ts(d.created_at), None))
            self._append_audit(conn, "delegation.created", actor=d.created_by, channel=channel,
                               event_id=None, data={
                                   "delegation": d.id, "delegator": d.delegator,
                                   "delegate": d.delegate, "starts_at": d.starts_at.isoformat(),
                                   "ends_at": d.ends_at.isoformat()}, at=_ts(_now()))
        return d

    def delegations(self, *, delegator: str | None = None, current_at: datetime | None = None,
                    limit: int = 500) -> list[Delegation]:
        """Delegations, newest first: one delegator's, or those not over at ``current_at``."""
        where: list[str] = []
        params: list[Any] = []
        if delegator is not None:
            where.append("delegator = ?")
            params.append(delegator)
        if current_at is not None:
            where.append("ended_at IS NULL AND ends_at > ?")
            params.append(_ts(current_at))
        clause = f" WHERE {' AND '.join(where)}" if where else ""
        rows = self._read(f"SELECT {self._DELEGATION} FROM delegations{clause}"
                          " ORDER BY created_at DESC, id LIMIT ?", (*params, limit))
        return [self._delegation(r) for r in rows]

    def end_delegation(self, delegation_id: str, *, at: datetime, actor: str,
                       channel: str) -> Delegation:
        """End a delegation now and audit it; ending it again changes nothing."""
        with self._write() as conn:
            changed = conn.execute(
                "UPDATE delegations SET ended_at = ? WHERE id = ? AND ended_at IS NULL",
                (_ts(at), delegation_id)).rowcount
            rows = conn.execute(f"SELECT {self._DELEGATION} FROM delegations WHERE id = ?",
                                (delegation_id,)).fetchall()
            if not rows:
                raise NotFound(f"no delegation {delegation_id}")
            if changed:
                self._append_audit(conn, "delegation.ended", actor=actor, channel=channel,
                                   event_id=None, data={"delegation": delegation_id},
                                   at=_ts(_now()))
        return self._delegation(rows[0])
