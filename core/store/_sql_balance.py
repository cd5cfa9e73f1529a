"""Load balancing on a SQL store (issue 21): a group's event given to one member, once.

- ``balance_turns`` holds one position per group: where the next turn starts, just after the
  member chosen last (a member passed over, away or the requester, does not make the next one
  lose a turn). Each assignment reads and moves it inside its write transaction, and writes
  are serialized (SQLite's one writer, PostgreSQL's write advisory lock), so every replica
  shares one rotation: three events to a group of three go to three different members
  whichever replicas create them.
- ``events.assignee`` (and the same in the event's body) is the member an event is given to;
  the partial index ``events_assignee`` counts each member's pending ones for ``least_pending``
  and the queue depth gauge.
- ``assignments`` keeps every giving of an event in order (``turn``), with whether balancing
  made the member an assignee (``added``): a re-assignment takes that one back out, never an
  assignee the event had in its own right.

Mixed into :class:`~signoff.store._sql.SQLStore`, like :mod:`._sql_reviewers`.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

from .._errors import NotFound
from .._limits import MAX_ASSIGNEES
from .._model import Event
from ._protocol_balance import Assignment, BalancePlan
from ._sql_tokens import _at, _ts

__all__ = ["BalanceRecords", "put_assignees"]


def put_assignees(conn: Any, event_id: str, principals: Sequence[str], *,
                  new: bool = False) -> None:
    """Make ``principals`` the event's assignees (``new``: it has none yet), each row with
    the event's status and sort key copied from its row (written before this, in the same
    transaction), for the inbox's ordered reads; a trigger keeps the status in step.
    """
    if not new:
        conn.execute("DELETE FROM event_assignees WHERE event_id = ?", (event_id,))
    conn.executemany(
        "INSERT INTO event_assignees (principal, event_id, status, sort_priority, created_at)"
        " SELECT ?, id, status, sort_priority, created_at FROM events WHERE id = ?",
        [(who, event_id) for who in principals])


class BalanceRecords:
    """Balanced assignment on a SQL store (see the module docstring)."""

    def _write(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        raise NotImplementedError

    def _append_audit(self, conn: Any, action: str, *, actor: str, channel: str,
                      event_id: str | None, data: dict[str, Any], at: float) -> None:
        raise NotImplementedError

    def _announce(self, conn: Any, event_id: str, decision: Any = None) -> None:
        raise NotImplementedError

    def get_event(self, event_id: str) -> Event | None:
        raise NotImplementedError

    def assign_member(self, event_id: str, *, group: str, members: Sequence[str],
                      strategy: str, exclude: Sequence[str] = (), previous: str | None = None,
                      reason: str, at: datetime) -> Event | None:
        """Give the event to one member (see :meth:`BalanceStore.assign_member`)."""
        plan = BalancePlan(group, tuple(members), strategy, tuple(exclude), reason)
        with self._write() as conn:
            if not self._give(conn, event_id, plan, previous, at):
                return None
        return self.get_event(event_id)

    def _give(self, conn: Any, event_id: str, plan: BalancePlan, previous: str | None,
              at: datetime) -> bool:
        """Give the event to a member in the write transaction ``conn`` (which must hold the
        serialized write: the turn read here is claimed here); whether it was given.
        """
        group, strategy, reason = plan.group, plan.strategy, plan.reason
        members = list(plan.members)
        candidates = [m for m in members if m not in plan.exclude]
        row = conn.execute("SELECT status, body FROM events WHERE id = ?",
                           (event_id,)).fetchone()
        if row is None:
            raise NotFound(f"no event {event_id}")
        body = json.loads(row["body"])
        if row["status"] != "pending" or body.get("assignee") != previous or not candidates:
            return False
        # writes are serialized: what is read here is not taken by another writer
        turn = conn.execute("SELECT next_turn FROM balance_turns WHERE grp = ?",
                            (group,)).fetchone()
        start = (0 if turn is None else int(turn[0])) % len(members)
        ranked = [m for m in members[start:] + members[:start] if m in candidates]
        data: dict[str, Any] = {"group": group, "strategy": strategy, "reason": reason}
        if strategy == "least_pending":
            queues = self._queues(lambda q, p: conn.execute(q, p).fetchall(), ranked)
            chosen = min(ranked, key=lambda m: queues[m])  # the first of the least: turns
            data["pending"] = queues
        else:
            chosen = ranked[0]
        conn.execute("INSERT INTO balance_turns (grp, next_turn) VALUES (?, ?)"
                     " ON CONFLICT (grp) DO UPDATE SET next_turn = excluded.next_turn",
                     (group, members.index(chosen) + 1))  # the turn after the chosen
        assignees = list(body.get("assignees", []))
        last = conn.execute("SELECT member, added FROM assignments WHERE event_id = ?"
                            " ORDER BY turn DESC LIMIT 1", (event_id,)).fetchone()
        if last is not None and last["added"] and last["member"] in assignees:
            assignees.remove(last["member"])  # balancing put them there: it takes them out
        added = chosen not in assignees and len(assignees) < MAX_ASSIGNEES
        if added:
            assignees.append(chosen)
        body.update(assignee=chosen, assignees=assignees)
        conn.execute("UPDATE events SET assignee = ?, body = ?, assigned = ? WHERE id = ?",
                     (chosen, json.dumps(body), 1 if assignees else 0, event_id))
        put_assignees(conn, event_id, assignees)
        count = conn.execute("SELECT COUNT(*) FROM assignments WHERE event_id = ?",
                             (event_id,)).fetchone()[0]
        conn.execute(
            "INSERT INTO assignments (event_id, turn, grp, member, strategy, added, reason,"
            " at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            (event_id, count, group, chosen, strategy, 1 if added else 0, reason, _ts(at)))
        self._append_audit(conn, "assigned", actor="hub", channel="hub", event_id=event_id,
                           data={**data, "member": chosen, "previous": previous},
                           at=_ts(at))
        self._announce(conn, event_id)
        return True

    @staticmethod
    def _queues(read: Callable[[str, list[Any]], list[Any]],
                members: Sequence[str]) -> dict[str, int]:
        """Each member's pending events, zeros included (``read`` runs a query)."""
        if not members:
            return {}
        marks = ",".join("?" * len(members))
        found = {r[0]: int(r[1]) for r in read(
            "SELECT assignee, COUNT(*) FROM events WHERE status = 'pending' AND assignee IN"
            f" ({marks}) GROUP BY assignee", list(members))}
        return {m: found.get(m, 0) for m in members}

    def assignments(self, event_id: str) -> list[Assignment]:
        """An event's assignments, in order."""
        return [Assignment(event_id=r["event_id"], turn=int(r["turn"]), group=r["grp"],
                           member=r["member"], strategy=r["strategy"], reason=r["reason"],
                           at=_at(r["at"]))
                for r in self._read("SELECT * FROM assignments WHERE event_id = ?"
                                    " ORDER BY turn", (event_id,))]

    def pending_by_member(self, members: Sequence[str]) -> dict[str, int]:
        """How many pending events are given to each of ``members``."""
        return self._queues(self._read, members)
