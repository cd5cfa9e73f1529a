"""What every SQL store shares: the row <-> model mapping, the SQL both SQLite and PostgreSQL
accept, and audit sealing (the chain itself is :mod:`signoff.store._audit`).

:class:`SQLStore` holds every method of the :class:`~signoff.store.Store` protocol. A backend
subclass supplies only what its database does its own way (the SQLAlchemy ``default.py`` /
``dialects`` split):

- ``_write()``: a context manager yielding a connection inside a write transaction, committed
  when the block ends; writes are serialized (the audit chain numbers its entries in order);
- ``_read(sql, params)``: rows from a read outside any write;
- ``_read_snapshot()``: several reads that see one snapshot;
- ``migrate()``, ``close()``, and two spellings: ``_indexed_by`` (an index hint, or
  nothing) and ``_INSERTION`` (the column that orders rows with the same ``created_at`` as
  they were inserted).

Statements use ``?`` placeholders; a backend whose driver wants another style translates them.
Rows must answer ``row["column"]``, ``row[0]`` and ``dict(row)``. Timestamps are stored as
seconds since the epoch in a 64-bit float, so an audit entry hashes the same on both.
"""

from __future__ import annotations

import base64
import hmac
import json
import math
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any, Protocol

from .._errors import (
    AlreadyAnswered,
    AlreadyDecided,
    Conflict,
    InvalidInput,
    NotFound,
    TargetTaken,
)
from .._evidence import Keyring, decision_claims
from .._ids import new_id
from .._limits import MAX_RESUME_TARGET, STORED
from .._model import _PRIORITY_RANK, Decision, Delivery, Event, EventPage, Response
from .._policy import escalation_due
from ._audit import (
    GENESIS,
    KEYED,
    AuditKeyError,
    check_anchor,
    check_chain,
    check_rows,
    entry_hash,
    row_seal,
)
from ._protocol import (
    AuditAnchor,
    AuditEntry,
    AuditNote,
    AuditReport,
    DeliveryRecord,
    DueDelivery,
    PendingSummary,
    TakenTier,
)
from ._protocol_balance import BalancePlan
from ._sql_balance import BalanceRecords, put_assignees
from ._sql_reviewers import ReviewerRecords
from ._sql_tokens import TokenRecords, _at, _dt, _now, _ts

__all__ = ["Conn", "Cursor", "Row", "SQLStore"]

Row = Any
"""A row: ``row["column"]``, ``row[0]``, ``dict(row)`` (``sqlite3.Row`` or the PostgreSQL
store's row)."""


class Cursor(Protocol):
    """What a statement returns."""

    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Conn(Protocol):
    """A connection inside a write transaction, as the shared code uses it."""

    def execute(self, sql: str, parameters: Sequence[Any] = ..., /) -> Any: ...

    def executemany(self, sql: str, seq_of_parameters: Any, /) -> Any: ...


_BODY_FIELDS = ("prompt", "input", "context", "assignees", "priority", "timeout", "on_timeout",
                "source", "labels", "recommendation", "confidence", "impact", "policy",
                "sensitive", "digest_parts", "assignee", "shadow")


AuditEntryText = tuple[float, str | None, str, str, str, str]
"""An audit entry before it is chained: at, event id, actor, action, channel, data as JSON."""
LazyEntry = Callable[[], AuditEntryText]
"""An audit entry made when called: its data reads a statement's result not yet fetched."""

def chain_head(last: Row | None) -> tuple[int, str]:
    """The seq and hash of the chain's last entry (0 and the genesis hash when empty)."""
    return (last["seq"], last["hash"]) if last else (0, GENESIS)


_MAX_ERROR = 2_000
_MAX_RANGES = 100
"""At most this many ordered ranges merged for one page (SQLite allows 500 in a compound)."""
"""Characters of a delivery's error kept (an exception may carry a whole remote answer)."""

_AUDIT_INSERT = ("INSERT INTO audit (seq, at, event_id, actor, action, channel, data, prev_hash,"
                 " hash, alg) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")


class SQLStore(TokenRecords, ReviewerRecords, BalanceRecords):
    """A :class:`~signoff.store.Store` on a SQL database, less what each database does its own
    way (see the module docstring).
    """

    name: str
    """What to call the database in messages (a path, or a URL without its password)."""
    _audit_key: bytes
    signer: Keyring | None = None
    """The hub's signing keyring: each decision written is signed with its newest key."""
    _INSERTION = "id"

    def _read_snapshot(self) -> AbstractContextManager[Callable[[str], list[Row]]]:
        raise NotImplementedError

    _SKIP_LOCKED = ""
    """What a subquery that picks rows to take ends with, where the dialect locks rows."""

    def _announce(self, conn: Conn, event_id: str, decision: Decision | None = None) -> None:
        """Tell the other hubs on this database, once the transaction commits, that the event
        changed (created, decided: with the ``decision``, escalated); nothing where one hub
        holds the database.
        """

    def _seal_legacy_audit(self, conn: Conn) -> None:
        """Start the keyed chain (migration 4): an ``audit_keyed`` entry that counts the legacy
        entries before it, then one ``sealed`` entry per existing response and decision row.
        """
        legacy = conn.execute("SELECT COUNT(*) FROM audit").fetchone()[0]
        rows = [("responses", r["id"], r) for r in conn.execute("SELECT * FROM responses")]
        rows += [("decisions", r["event_id"], r) for r in conn.execute("SELECT * FROM decisions")]
        if not legacy and not rows:
            return  # a new database: keyed from its first entry
        now = _ts(_now())
        self._append_audit(conn, "audit_keyed", actor="hub", channel="migration", event_id=None,
                           data={"legacy_entries": legacy, "sealed_rows": len(rows)}, at=now)
        for table, row_id, row in rows:
            self._append_audit(conn, "sealed", actor="hub", channel="migration",
                               event_id=row["event_id"],
                               data={"row": row_seal(table, row_id, dict(row))}, at=now)


    # audit ------------------------------------------------------------------------------
    def _append_audit(self, conn: Conn, action: str, *, actor: str, channel: str,
                      event_id: str | None, data: dict[str, Any] | Callable[[], dict[str, Any]],
                      at: float) -> None:
        """Append an audit entry in ``conn``'s transaction; ``data`` may be a function that
        makes it, called once what it reads has arrived (see :meth:`_add_audit_entry`).
        """
        def text() -> AuditEntryText:
            made = data() if callable(data) else data
            return (at, event_id, actor, action, channel,
                    json.dumps(made, sort_keys=True, default=str))

        self._add_audit_entry(conn, text if callable(data) else text())

    def _add_audit_entry(self, conn: Conn, entry: AuditEntryText | LazyEntry) -> None:
        """Append the entry after the chain's last one, in ``conn``'s transaction (a store
        that sends statements ahead calls a lazy entry's function as late as it can).
        """
        text = entry() if callable(entry) else entry
        conn.execute(_AUDIT_INSERT, self._audit_row(self._audit_chain_head(conn), *text))

    def _check_later(self, conn: Conn, check: Callable[[], None]) -> None:
        """Run ``check`` (it raises to undo the write) once the statements it reads the
        results of have answered: now, where each statement answers as it runs.
        """
        check()

    @staticmethod
    def _audit_chain_head(conn: Conn) -> tuple[int, str]:
        return chain_head(conn.execute("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
                          .fetchone())

    def _audit_row(self, head: tuple[int, str], at: float, event_id: str | None, actor: str,
                   action: str, channel: str, text: str) -> tuple[Any, ...]:
        """The audit row that follows the entry ``head`` (its seq and hash), as
        :data:`_AUDIT_INSERT` takes it; its hash is the row's ``[8]``.
        """
        seq, prev = head[0] + 1, head[1]
        digest = entry_hash(self._audit_key, prev, seq, at, event_id, actor, action, channel,
                            text)
        return (seq, at, event_id, actor, action, channel, text, prev, digest, KEYED)

    def record(self, action: str, *, actor: str, channel: str, event_id: str | None = None,
               data: dict[str, Any] | None = None) -> None:
        """Append one line to the audit log."""
        with self._write() as conn:
            self._append_audit(conn, action, actor=actor, channel=channel, event_id=event_id,
                               data=data or {}, at=_ts(_now()))

    def audit(self, event_id: str) -> list[AuditEntry]:
        """The audit lines of one event, oldest first."""
        rows = self._read("SELECT * FROM audit WHERE event_id = ? ORDER BY seq", (event_id,))
        return [
            AuditEntry(seq=r["seq"], at=_dt(r["at"]) or _now(), event_id=r["event_id"],
                       actor=r["actor"], action=r["action"], channel=r["channel"],
                       data=json.loads(r["data"]), hash=r["hash"])
            for r in rows
        ]

    def verify_audit(self, anchor: AuditAnchor | None = None) -> AuditReport:
        """Check the chain, the sealed rows and the anchor; see
        :meth:`signoff.store.Store.verify_audit`.
        """
        with self._read_snapshot() as read:
            chain = check_chain((dict(r) for r in read("SELECT * FROM audit ORDER BY seq")),
                                self._audit_key)
            current = [("responses", r["id"], dict(r)) for r in read("SELECT * FROM responses")]
            current += [("decisions", r["event_id"], dict(r))
                        for r in read("SELECT * FROM decisions")]
        problems = list(chain.problems)
        if not any(p.kind == "key" for p in problems):  # with a wrong key no seal is trusted
            problems += check_rows(chain.seals, current)
        if anchor is not None:
            problems += check_anchor(anchor, chain.hashes, chain.head)
        first_bad = next((p.seq for p in chain.problems if p.seq is not None), None)
        return AuditReport(ok=not problems, entries=chain.entries, first_bad_seq=first_bad,
                           problems=tuple(problems), legacy_entries=chain.legacy,
                           head=chain.head)

    def audit_head(self) -> AuditAnchor | None:
        """The newest audit entry, as an anchor."""
        rows = self._read("SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1")
        return AuditAnchor(seq=rows[0]["seq"], hash=rows[0]["hash"]) if rows else None

    def check_audit_key(self) -> None:
        """Raise :class:`AuditKeyError` unless the newest keyed entry verifies with the key."""
        rows = self._read("SELECT * FROM audit WHERE alg = ? ORDER BY seq DESC LIMIT 1",
                          (KEYED,))
        if not rows:
            return
        r = rows[0]
        expected = entry_hash(self._audit_key, r["prev_hash"], r["seq"], r["at"], r["event_id"],
                              r["actor"], r["action"], r["channel"], r["data"])
        if not hmac.compare_digest(expected, r["hash"]):
            raise AuditKeyError(f"{self.name}: the audit key does not verify the newest audit "
                                f"entry ({r['seq']}): it is not the key this log was written "
                                "with (or that entry was changed; run `signoff audit verify`)")

    # events -----------------------------------------------------------------------------
    def create_event(self, event: Event, *, channel: str, decision: Decision | None = None,
                     notes: Sequence[str | AuditNote] | None = None,
                     resume_target: str | None = None,
                     balance: BalancePlan | None = None) -> tuple[Event, bool]:
        """Insert a pending event (decided at once when ``decision`` is given, e.g. by a policy);
        with a key that exists, return the stored one unchanged; a ``resume_target`` another
        identity's event names is refused; with ``balance``, give the new event to a member
        (see :meth:`signoff.store.Store.create_event`).

        The check and the insert share the write transaction, which holds the key and the
        target it checks (one writer on SQLite, :meth:`_hold_names` on PostgreSQL): two
        creations with one key make one event, and two identities naming one target at once
        cannot both get it. The giving shares it too, so it takes the serialized write (the
        group's turn is read and claimed in it) instead of sharing the write lock.
        """
        _check_resume_target(event, resume_target)
        body = event.model_dump(mode="json", include=set(_BODY_FIELDS), by_alias=True)
        created = _ts(event.created_at)
        escalation = escalation_due(event.created_at, event.policy, 0)
        names = []
        if event.key is not None:
            names.append(f"key {event.requested_by} {event.key}")
        if resume_target is not None:
            names.append(f"target {resume_target}")
        if decision is not None:
            balance = None  # only a pending event is given to a member
        with self._write(alongside=balance is None) as conn:
            self._hold_names(conn, names)
            existing = None
            if event.key is not None:  # a key is looked up among the requester's own events
                existing = conn.execute(
                    "SELECT id FROM events WHERE requested_by = ? AND key = ?",
                    (event.requested_by, event.key)).fetchone()
            if existing is None and resume_target is not None:
                taken = conn.execute(
                    "SELECT 1 FROM events WHERE resume_target = ? AND requested_by <> ? LIMIT 1",
                    (resume_target, event.requested_by)).fetchone()
                if taken is not None:
                    raise TargetTaken()
            if existing is None:
                conn.execute(
                    "INSERT INTO events (id, key, name, status, sort_priority, created_at,"
                    " deadline, requested_by, assigned, body, next_escalation, resume_target,"
                    " digest) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
                    (event.id, event.key, event.name, "pending", -event.priority.rank, created,
                     _ts(event.deadline) if event.deadline else None, event.requested_by,
                     1 if event.assignees else 0, json.dumps(body),
                     _ts(escalation) if escalation else None, resume_target, event.digest),
                )
                if event.assignees:
                    put_assignees(conn, event.id, event.assignees, new=True)
                self._append_audit(conn, "created", actor=event.requested_by, channel=channel,
                                   event_id=event.id, data={"name": event.name, "key": event.key},
                                   at=created)
                for note in notes or ():
                    action, actor, data = (("policy", "policy", {"note": note})
                                           if isinstance(note, str) else note)
                    self._append_audit(conn, action, actor=actor, channel="hub",
                                       event_id=event.id, data=data, at=created)
                if decision is not None:
                    self._write_decision(conn, event.id, decision, None, key=event.key,
                                         digest=event.digest)
                else:
                    self._announce(conn, event.id)
                    if balance is not None:
                        self._give(conn, event.id, balance, None, event.created_at)
        if existing is None and decision is None and balance is None:
            return event, True
        stored = self.get_event(event.id if existing is None else existing["id"])
        assert stored is not None
        return stored, existing is None

    def _events_from_rows(self, rows: list[Row], detail: bool,
                          conn: Conn | None = None) -> list[Event]:
        if not rows:
            return []
        read = self._read if conn is None else (lambda sql, p=(): conn.execute(sql, p).fetchall())
        ids = [r["id"] for r in rows]
        marks = ",".join("?" * len(ids))
        # a decision and its deliveries are written with the status change: a pending event
        # has neither, so an inbox page of pending events costs one query less (two with detail)
        closed = [r["id"] for r in rows if r["status"] != "pending"]
        closed_marks = ",".join("?" * len(closed))
        decisions = {r["event_id"]: r for r in read(
            f"SELECT * FROM decisions WHERE event_id IN ({closed_marks})", closed)} if closed else {}
        responses: dict[str, list[Response]] = {i: [] for i in ids}
        deliveries: dict[str, list[Delivery]] = {i: [] for i in ids}
        if detail:
            for r in read(
                    f"SELECT * FROM responses WHERE event_id IN ({marks}) ORDER BY at", ids):
                responses[r["event_id"]].append(Response(
                    id=r["id"], event_id=r["event_id"], by=r["by"], value=json.loads(r["value"]),
                    comment=r["comment"], channel=r["channel"], at=_at(r["at"]),
                    relayed_from=r["relayed_from"], verified=bool(r["verified"])))
            for r in read(
                    f"SELECT * FROM deliveries WHERE event_id IN ({closed_marks})"
                    " ORDER BY created_at", closed) if closed else ():
                deliveries[r["event_id"]].append(Delivery(
                    id=r["id"], resumer=r["resumer"], state=r["state"], attempts=r["attempts"],
                    last_error=r["last_error"], next_attempt_at=_dt(r["next_attempt_at"]),
                    updated_at=_at(r["updated_at"])))
        events = []
        for r in rows:
            d = decisions.get(r["id"])
            decision = None if d is None else Decision(
                value=json.loads(d["value"]), outcome=d["outcome"], by=d["by"],
                comment=d["comment"], channel=d["channel"], at=_at(d["at"]), rule=d["rule"],
                relayed_from=d["relayed_from"], verified=bool(d["verified"]),
                proposal=None if d["proposal"] is None else json.loads(d["proposal"]),
                amended=bool(d["amended"]), digest=d["digest"], kid=d["kid"],
                signature=d["signature"])
            events.append(Event.model_validate({
                **json.loads(r["body"]),
                "id": r["id"], "key": r["key"], "name": r["name"], "status": r["status"],
                "created_at": _dt(r["created_at"]), "deadline": _dt(r["deadline"]),
                "requested_by": r["requested_by"], "decision": decision,
                "escalation_level": r["escalation_level"], "digest": r["digest"],
                "responses": responses[r["id"]], "deliveries": deliveries[r["id"]],
            }, context=STORED))  # checked when it came in: not again on every read
        return events

    def get_event(self, event_id: str) -> Event | None:
        """One event with its decision, responses and deliveries."""
        rows = self._read("SELECT * FROM events WHERE id = ?", (event_id,))
        events = self._events_from_rows(rows, detail=True)
        return events[0] if events else None

    def _filters(self, status: str | None, visible_to: set[str] | None, assignee: str | None,
                 requested_by: str | None) -> tuple[list[str], list[Any]]:
        where: list[str] = []
        params: list[Any] = []
        if status is not None:
            where.append("status = ?")
            params.append(status)
        if visible_to is not None:
            marks = ",".join("?" * len(visible_to))
            where.append(
                "(assigned = 0 OR EXISTS (SELECT 1 FROM event_assignees a WHERE"
                f" a.event_id = events.id AND a.principal IN ({marks})))")
            params.extend(sorted(visible_to))
        if assignee is not None:
            where.append(
                "EXISTS (SELECT 1 FROM event_assignees a WHERE a.event_id = events.id"
                " AND a.principal = ?)")
            params.append(assignee)
        if requested_by is not None:
            where.append("requested_by = ?")
            params.append(requested_by)
        return where, params

    def list_events(self, *, status: str | None = None, visible_to: set[str] | None = None,
                    assignee: str | None = None, requested_by: str | None = None,
                    limit: int = 50, cursor: str | None = None) -> EventPage:
        """One page, urgent first then oldest first; the cursor is opaque to callers."""
        after = None if cursor is None else _decode_cursor(cursor)
        merged = self._merged_page(status, visible_to, assignee, requested_by, after, limit + 1)
        if merged is not None:
            rows = merged
        else:
            where, params = self._filters(status, visible_to, assignee, requested_by)
            if after is not None:
                where.append("(sort_priority, created_at, id) > (?, ?, ?)")
                params.extend(after)
            sql = "SELECT * FROM events"
            if where:
                sql += " WHERE " + " AND ".join(where)
            sql += " ORDER BY sort_priority, created_at, id LIMIT ?"
            rows = self._read(sql, [*params, limit + 1])
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            last = rows[-1]
            next_cursor = _encode_cursor(last["sort_priority"], last["created_at"], last["id"])
        return EventPage(events=self._events_from_rows(rows, detail=True), next_cursor=next_cursor)

    def _merged_page(self, status: str | None, visible_to: set[str] | None,
                     assignee: str | None, requested_by: str | None, after: list[Any] | None,
                     size: int) -> list[Row] | None:
        """The page's rows when it is what a reviewer (``visible_to``) or an assignee filter
        asks for: the first ``size`` of a merge of ordered index ranges, each read at most
        ``size`` rows deep: the events open to anyone, and each principal's assignments
        (which carry their event's status and sort key), for each status asked for. Whatever
        the page and however few of the events a reviewer sees, it reads a few hundred index
        entries, never every assignment or every pending event. ``None``: another filter, or
        too many ranges; the caller filters the events in order instead.
        """
        if requested_by is not None:
            return None
        if assignee is not None:
            if visible_to is not None and assignee not in visible_to:
                return None  # assigned to them and visible to the caller: a filter per row
            principals, anyone = [assignee], False
        elif visible_to is not None:
            principals, anyone = sorted(visible_to), True
        else:
            return None  # everything, in order: the events' own order index
        statuses = [status] if status is not None else ["pending", "decided", "cancelled"]
        if len(statuses) * (len(principals) + anyone) > _MAX_RANGES:
            return None
        ranges: list[str] = []
        params: list[Any] = []
        later = "" if after is None else " AND (sort_priority, created_at, {id}) > (?, ?, ?)"
        anyone_index = self._indexed_by("events_anyone_order")
        own_index = self._indexed_by("event_assignees_order")
        for one in statuses:
            if anyone:
                ranges.append(
                    f"SELECT sort_priority, created_at, id FROM events {anyone_index}"
                    f" WHERE assigned = 0 AND status = ?{later.format(id='id')}"
                    " ORDER BY sort_priority, created_at, id LIMIT ?")
                params += [one, *(after or ()), size]
            for who in principals:
                ranges.append(
                    "SELECT sort_priority, created_at, event_id AS id FROM event_assignees"
                    f" {own_index} WHERE principal = ? AND status = ?"
                    f"{later.format(id='event_id')}"
                    " ORDER BY sort_priority, created_at, event_id LIMIT ?")
                params += [who, one, *(after or ()), size]
        # UNION: an event assigned to two of the principals is one row
        merged = " UNION ".join(f"SELECT * FROM ({one}) AS r{i}" for i, one in enumerate(ranges))
        return self._read(
            "SELECT * FROM events WHERE id IN (SELECT id FROM (" + merged + ") AS keys"
            " ORDER BY sort_priority, created_at, id LIMIT ?)"
            " ORDER BY sort_priority, created_at, id", [*params, size])

    def count_events(self, *, status: str | None = None, visible_to: set[str] | None = None,
                     requested_by: str | None = None, limit: int | None = None) -> int:
        """How many events match, at most ``limit``."""
        def count(rows: str, params: list[Any]) -> int:
            """Count what the ``SELECT`` ``rows`` yields; with a limit, stop there."""
            if limit is None:
                return int(self._read(f"SELECT COUNT(*) FROM ({rows}) AS counted", params)[0][0])
            return int(self._read(f"SELECT COUNT(*) FROM ({rows} LIMIT ?) AS counted",
                                  [*params, limit])[0][0])

        if visible_to is not None and requested_by is None:
            # open to anyone, plus assigned to one of these principals: two index lookups
            # instead of a subquery per event (the two sets are disjoint)
            marks = ",".join("?" * len(visible_to))
            status_sql = "" if status is None else " AND status = ?"
            status_args = [] if status is None else [status]
            anyone = count("SELECT 1 FROM events WHERE assigned = 0" + status_sql, status_args)
            if limit is not None and anyone >= limit:
                return limit
            assigned = count(  # an assignment carries its event's status
                f"SELECT DISTINCT event_id FROM event_assignees WHERE principal IN ({marks})"
                + status_sql, [*sorted(visible_to), *status_args])
            total = anyone + assigned
            return total if limit is None else min(total, limit)
        where, params = self._filters(status, visible_to, None, requested_by)
        return count("SELECT 1 FROM events" + (" WHERE " + " AND ".join(where) if where else ""),
                     params)

    def decide(self, event_id: str, decision: Decision, *, response: Response | None = None,
               deliver_via: str | None = None) -> Event:
        """Write the decision once; see :meth:`signoff.store.Store.decide`."""
        with self._write(alongside=True) as conn:
            row = self._pending_row(conn, event_id)
            if response is not None:
                self._insert_response(conn, event_id, response)
            self._write_decision(conn, event_id, decision, deliver_via, key=row["key"],
                                 digest=row["digest"])
        event = self.get_event(event_id)
        assert event is not None
        return event

    def add_response(self, event_id: str, response: Response | Callable[[Event], Response], *,
                     settle: Callable[[Event, list[Response]], Decision | None],
                     deliver_via: str | None | Callable[[Event], str | None] = None) -> Event:
        """Store one response and, if ``settle`` says the responses decide, the decision too.

        All in one transaction that holds the event's row, so two responders completing a
        quorum at once cannot both decide (nor each miss the other's response), and a refused
        response leaves nothing behind.
        """
        with self._write(alongside=True) as conn:
            row = conn.execute(f"SELECT * FROM events WHERE id = ?{self._FOR_UPDATE}",
                               (event_id,)).fetchone()
            if row is None:
                raise NotFound(f"no event {event_id}")
            [event] = self._events_from_rows([row], detail=True, conn=conn)
            answer = response(event) if callable(response) else response  # may refuse first
            if event.status != "pending":
                raise AlreadyDecided(f"event {event_id} is already {event.status}")
            if any(r.by == answer.by for r in event.responses):
                raise AlreadyAnswered(f"{answer.by} already answered event {event_id}")
            kept = self._insert_response(conn, event_id, answer)
            # the event as get_event would now read it, without reading it again
            responses = sorted([*event.responses, kept], key=lambda r: r.at)
            event = event.model_copy(update={"responses": responses})
            decision = settle(event, responses)
            if decision is None:
                return event
            via = deliver_via(event) if callable(deliver_via) else deliver_via
            status, stored, delivery = self._write_decision(conn, event_id, decision, via,
                                                            key=event.key, digest=event.digest)
        deliveries = [*event.deliveries, delivery] if delivery else event.deliveries
        return event.model_copy(update={"status": status, "decision": stored,
                                        "deliveries": deliveries})

    def _pending_row(self, conn: Conn, event_id: str) -> Row:
        row: Row | None = conn.execute(f"SELECT * FROM events WHERE id = ?{self._FOR_UPDATE}",
                                       (event_id,)).fetchone()
        if row is None:
            raise NotFound(f"no event {event_id}")
        if row["status"] != "pending":
            raise AlreadyDecided(f"event {event_id} is already {row['status']}")
        return row

    def _insert_response(self, conn: Conn, event_id: str,
                         response: Response) -> Response:
        """Insert a response and its audit line; returns it as it now reads back."""
        value = json.dumps(response.value)
        at = _ts(response.at)
        # RETURNING *: the row as stored, every column (those later migrations add too), sealed
        # without reading it back (see _returned)
        inserted = conn.execute(
            "INSERT INTO responses (id, event_id, \"by\", value, comment, channel, at,"
            " relayed_from, verified) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (response.id, event_id, response.by, value, response.comment, response.channel, at,
             response.relayed_from, int(response.verified)))
        data: dict[str, Any] = {"value": response.value, "comment": response.comment}
        if response.relayed_from is not None or not response.verified:
            data.update(relayed_from=response.relayed_from, verified=response.verified)
        self._append_audit(conn, "responded", actor=response.by, channel=response.channel,
                           event_id=event_id, at=at, data=lambda: {
                               **data, "row": row_seal("responses", response.id,
                                                       _returned(inserted.fetchone(), at))})
        return response.model_copy(update={"value": json.loads(value), "at": _at(at)})

    def _write_decision(self, conn: Conn, event_id: str, decision: Decision,
                        deliver_via: str | None, *, key: str | None,
                        digest: str | None) -> tuple[str, Decision, Delivery | None]:
        """Write the decision (compare-and-set) on the event the write holds, whose ``key`` and
        ``digest`` it read; returns the new status, the decision and the delivery as they now
        read back from the store.
        """
        status = "cancelled" if decision.outcome.value == "cancelled" else "decided"
        at = _ts(decision.at)
        updated = conn.execute("UPDATE events SET status = ?, next_escalation = NULL"
                               " WHERE id = ? AND status = 'pending'", (status, event_id))

        def still_pending() -> None:  # the compare-and-set: only a pending event is decided
            if updated.rowcount != 1:
                raise AlreadyDecided(f"event {event_id} is no longer pending")

        self._check_later(conn, still_pending)
        value = json.dumps(decision.value)
        # signed as it reads back (the value through JSON, the time through the column)
        stored = decision.model_copy(update={"value": json.loads(value), "at": _at(at),
                                             "digest": digest})
        if self.signer is not None:
            kid, signature = self.signer.sign(decision_claims(event_id, key, digest, stored))
            stored = stored.model_copy(update={"kid": kid, "signature": signature})
        inserted = conn.execute(
            "INSERT INTO decisions (event_id, value, outcome, \"by\", comment, channel, at, rule,"
            " relayed_from, verified, proposal, amended, digest, kid, signature)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *",
            (event_id, value, decision.outcome.value, decision.by, decision.comment,
             decision.channel, at, decision.rule, decision.relayed_from, int(decision.verified),
             None if decision.proposal is None else json.dumps(decision.proposal),
             int(decision.amended), stored.digest, stored.kid, stored.signature))
        data: dict[str, Any] = {"value": decision.value, "comment": decision.comment}
        if stored.kid is not None:
            data["kid"] = stored.kid
        if decision.rule:
            data["rule"] = decision.rule
        if decision.relayed_from is not None or not decision.verified:
            data.update(relayed_from=decision.relayed_from, verified=decision.verified)
        if decision.proposal is not None:
            data.update(proposal=decision.proposal, amended=decision.amended)
        delivery = None
        if deliver_via is not None:
            delivery = Delivery(id=new_id("dl"), resumer=deliver_via,
                                state="pending", attempts=0, next_attempt_at=_at(at),
                                updated_at=_at(at))
            data["delivery"] = {"id": delivery.id, "resumer": deliver_via}
        self._append_audit(conn, decision.outcome.value, actor=decision.by,
                           channel=decision.channel, event_id=event_id, at=at, data=lambda: {
                               **data, "row": row_seal("decisions", event_id,
                                                       _returned(inserted.fetchone(), at))})
        if delivery is not None:
            conn.execute(
                "INSERT INTO deliveries (id, event_id, resumer, state, attempts,"
                " next_attempt_at, created_at, updated_at) VALUES (?,?,?,'pending',0,?,?,?)",
                (delivery.id, event_id, deliver_via, at, at, at))
        self._announce(conn, event_id, stored)
        return status, stored, delivery

    def claim_escalations(self, now: datetime, limit: int, lease: float) -> list[Event]:
        """Take the due tiers for ``lease`` seconds (see the protocol): the pick (rows locked
        where the dialect locks them) and the move are in one write transaction, so two hubs
        never take the same tier.
        """
        with self._write() as conn:
            picked = [r["id"] for r in conn.execute(
                f"SELECT id FROM events {self._indexed_by('events_escalation')}"
                " WHERE status = 'pending' AND next_escalation <= ? ORDER BY next_escalation"
                f" LIMIT ?{self._SKIP_LOCKED}", (_ts(now), limit)).fetchall()]
            if not picked:
                return []
            marks = ", ".join("?" * len(picked))
            rows = conn.execute(f"UPDATE events SET next_escalation = ? WHERE id IN ({marks})"
                                " RETURNING *", (_ts(now) + lease, *picked)).fetchall()
            events = self._events_from_rows(rows, detail=True, conn=conn)
        order = {event_id: i for i, event_id in enumerate(picked)}  # the earliest due first
        return sorted(events, key=lambda e: order[e.id])

    def release_escalations(self, taken: Sequence[TakenTier], now: datetime) -> int:
        """Make taken tiers due at ``now`` where the event is still pending at that tier under
        the lease taken (see the protocol; compared to the millisecond, as deliveries are).
        """
        return self._release(
            "UPDATE events SET next_escalation = ? WHERE id = ? AND status = 'pending'"
            " AND escalation_level = ? AND ABS(next_escalation - ?) < 0.001 RETURNING id",
            [(_ts(now), t.event_id, t.level, _ts(t.leased_until)) for t in taken])

    def next_escalation(self, after: datetime | None = None) -> datetime | None:
        """When the next escalation tier falls due (after ``after``, if given)."""
        row = self._read(f"SELECT next_escalation FROM events {self._indexed_by('events_escalation')}"
                         " WHERE status = 'pending' AND next_escalation > ?"
                         " ORDER BY next_escalation LIMIT 1", (_after(after),))
        return _dt(row[0][0]) if row else None

    def escalate(self, event_id: str, *, level: int, assignees: list[str],
                 data: dict[str, Any]) -> Event:
        """Move a pending event from tier ``level`` to the next, with its new assignees.

        Raises:
            AlreadyDecided: the event is no longer pending or was escalated meanwhile.
        """
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchall()
            if not row:
                raise NotFound(f"no event {event_id}")
            [event] = self._events_from_rows(row, detail=False, conn=conn)
            following = escalation_due(event.created_at, event.policy, level + 1)
            # the body is rewritten from the row read here: the compare-and-set on the level
            # below refuses it if another writer escalated the event in between
            body = {**json.loads(row[0]["body"]), "assignees": assignees}
            updated = conn.execute(
                "UPDATE events SET escalation_level = ?, next_escalation = ?, assigned = ?,"
                " body = ? WHERE id = ? AND status = 'pending' AND escalation_level = ?",
                (level + 1, _ts(following) if following else None, 1 if assignees else 0,
                 json.dumps(body), event_id, level)).rowcount
            if updated != 1:
                raise AlreadyDecided(f"event {event_id} is no longer at tier {level}")
            put_assignees(conn, event_id, assignees)
            self._append_audit(conn, "escalated", actor="policy", channel="sweeper",
                               event_id=event_id,
                               data={"tier": level, "assignees": assignees, **data}, at=now)
            self._announce(conn, event_id)
        # the event as now stored, without reading it again: only these columns changed
        return event.model_copy(update={"escalation_level": level + 1, "assignees": assignees})

    def next_deadline(self, after: datetime | None = None) -> datetime | None:
        """The earliest deadline among pending events (after ``after``, if given)."""
        # the partial index holds only pending events; the planner would pick events_order
        row = self._read(f"SELECT deadline FROM events {self._indexed_by('events_deadline')}"
                         " WHERE status = 'pending' AND deadline > ?"
                         " ORDER BY deadline LIMIT 1", (_after(after),))
        return _dt(row[0][0]) if row else None

    def due_events(self, now: datetime, limit: int = 100) -> list[Event]:
        """Pending events past their deadline."""
        rows = self._read(
            f"SELECT * FROM events {self._indexed_by('events_deadline')} WHERE status = 'pending'"
            " AND deadline <= ? ORDER BY deadline LIMIT ?", (_ts(now), limit))
        return self._events_from_rows(rows, detail=False)

    # deliveries -------------------------------------------------------------------------
    def due_deliveries(self, now: datetime, limit: int = 50) -> list[DueDelivery]:
        """Pending deliveries whose next attempt is due."""
        rows = self._read(
            "SELECT * FROM deliveries WHERE state = 'pending' AND next_attempt_at <= ?"
            " ORDER BY next_attempt_at LIMIT ?", (_ts(now), limit))
        return [DueDelivery(id=r["id"], event_id=r["event_id"], resumer=r["resumer"],
                            attempts=r["attempts"], created_at=_dt(r["created_at"]) or _now())
                for r in rows]

    def claim_deliveries(self, now: datetime, limit: int, lease: float) -> list[DueDelivery]:
        """Take the due deliveries for ``lease`` seconds (see the protocol). The pick and the
        move are one statement in a write transaction: two hubs never take the same one.
        """
        with self._write() as conn:
            rows = conn.execute(
                "UPDATE deliveries SET next_attempt_at = ? WHERE id IN (SELECT id FROM deliveries"
                " WHERE state = 'pending' AND next_attempt_at <= ? ORDER BY next_attempt_at"
                f" LIMIT ?{self._SKIP_LOCKED}) RETURNING *",
                (_ts(now) + lease, _ts(now), limit)).fetchall()
        rows.sort(key=lambda r: (r["created_at"], r["id"]))
        return [DueDelivery(id=r["id"], event_id=r["event_id"], resumer=r["resumer"],
                            attempts=r["attempts"], created_at=_dt(r["created_at"]) or _now(),
                            leased_until=_dt(r["next_attempt_at"]))
                for r in rows]

    def release_deliveries(self, taken: Sequence[DueDelivery], now: datetime) -> int:
        """Make taken deliveries due at ``now`` where their lease is still the one taken (see
        the protocol; the lease is compared to the millisecond: it went through a float).
        """
        return self._release(
            "UPDATE deliveries SET next_attempt_at = ? WHERE id = ? AND state = 'pending'"
            " AND ABS(next_attempt_at - ?) < 0.001 RETURNING id",
            [(_ts(now), d.id, _ts(d.leased_until)) for d in taken if d.leased_until is not None])

    def _release(self, sql: str, rows: list[tuple[Any, ...]]) -> int:
        """Run a compare-and-set ``UPDATE ... RETURNING`` once per row; how many changed."""
        if not rows:
            return 0
        released = 0
        with self._write() as conn:
            for row in rows:
                released += len(conn.execute(sql, row).fetchall())
        return released

    def next_delivery_at(self, after: datetime | None = None) -> datetime | None:
        """When the next pending delivery is due (after ``after``, if given)."""
        row = self._read("SELECT MIN(next_attempt_at) FROM deliveries WHERE state = 'pending'"
                         " AND next_attempt_at > ?", (_after(after),))
        return _dt(row[0][0])

    # metrics ----------------------------------------------------------------------------
    def pending_summary(self, now: datetime, ages: Sequence[float],
                        sla: Mapping[str, float]) -> PendingSummary:
        """The pending queue by priority and age (one pass over the pending events' index)."""
        cut = _ts(now)
        bucket = " ".join(f"WHEN created_at > {cut - age!r} THEN {i}"
                          for i, age in enumerate(ages))
        bucket = f"CASE {bucket} ELSE {len(ages)} END" if ages else "0"
        limits = " ".join(f"WHEN {-_PRIORITY_RANK[p]} THEN {cut - float(s)!r}"
                          for p, s in sla.items() if p in _PRIORITY_RANK)
        sla_cut = f"CASE sort_priority {limits} ELSE NULL END" if limits else "NULL"
        # a CASE, not a boolean, inside SUM: PostgreSQL does not add booleans up
        rows = self._read(
            f"SELECT sort_priority, {bucket} AS bucket, COUNT(*), MIN(created_at),"
            " SUM(CASE WHEN deadline IS NOT NULL AND deadline < ? THEN 1"
            f" WHEN deadline IS NULL AND created_at < {sla_cut} THEN 1 ELSE 0 END)"
            f" FROM events {self._indexed_by('events_order')} WHERE status = 'pending'"
            " GROUP BY sort_priority, bucket", (cut,))
        names = {-rank: name for name, rank in _PRIORITY_RANK.items()}
        counts: dict[tuple[str, int], int] = {}
        oldest: dict[str, datetime] = {}
        past: dict[str, int] = {}
        for r in rows:  # by position: a PostgreSQL row unpacks as its column names
            prio, age, n, first, late = (r[i] for i in range(5))
            name = names.get(prio, "normal")
            counts[(name, age)] = counts.get((name, age), 0) + int(n)
            at = _at(first)
            if name not in oldest or at < oldest[name]:
                oldest[name] = at
            if late:
                past[name] = past.get(name, 0) + int(late)
        waiting = self._read(f"SELECT COUNT(*) FROM deliveries {self._indexed_by('deliveries_due')}"
                             " WHERE state = 'pending'")[0][0]
        return PendingSummary(counts=counts, oldest=oldest, past_sla=past,
                              deliveries_pending=int(waiting))

    def audit_completeness(self, since: datetime) -> tuple[int, int]:
        """Recent decisions, and those with their audit entry (by ``decisions_at``)."""
        row = self._read(
            "SELECT COUNT(*), SUM(CASE WHEN EXISTS (SELECT 1 FROM audit a"
            " WHERE a.event_id = d.event_id AND a.action = d.outcome) THEN 1 ELSE 0 END)"
            f" FROM decisions d {self._indexed_by('decisions_at')}"
            " WHERE d.at >= ?", (_ts(since),))[0]
        return int(row[0]), int(row[1] or 0)

    def delivery_attempted(self, delivery_id: str, *, state: str, error: str | None = None,
                           next_attempt_at: datetime | None = None) -> None:
        """Record one attempt, with its audit line."""
        if state not in ("pending", "delivered", "failed"):
            raise InvalidInput("state", "pending, delivered or failed", state)
        if error is not None:  # it may quote a remote answer: kept as any text column can
            error = error.replace("\x00", "\\x00")[:_MAX_ERROR]
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT event_id, resumer, attempts FROM deliveries WHERE id = ?",
                               (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"no delivery {delivery_id}")
            conn.execute(
                "UPDATE deliveries SET state = ?, attempts = attempts + 1, last_error = ?,"
                " next_attempt_at = ?, updated_at = ? WHERE id = ?",
                (state, error, _ts(next_attempt_at) if next_attempt_at else None, now,
                 delivery_id))
            # every attempt is audited: delivery_attempted (failed, will retry),
            # delivery_delivered or delivery_failed (final)
            action = "delivery_attempted" if state == "pending" else f"delivery_{state}"
            data: dict[str, Any] = {"delivery": delivery_id, "attempts": row["attempts"] + 1,
                                    "error": error}
            if next_attempt_at is not None:
                data["next_attempt_at"] = next_attempt_at.isoformat()
            self._append_audit(conn, action, actor="hub", channel=row["resumer"],
                               event_id=row["event_id"], data=data, at=now)

    def list_deliveries(self, *, state: str | None = None, resumer: str | None = None,
                        error_prefix: str | None = None,
                        limit: int = 100) -> list[DeliveryRecord]:
        """Deliveries, most recently changed first."""
        where: list[str] = ["1 = 1"]
        params: list[Any] = []
        if state is not None:
            where.append("state = ?")
            params.append(state)
        if resumer is not None:
            where.append("resumer = ?")
            params.append(resumer)
        if error_prefix is not None:
            where.append("substr(last_error, 1, ?) = ?")
            params += [len(error_prefix), error_prefix]
        rows = self._read(f"SELECT * FROM deliveries WHERE {' AND '.join(where)}"
                          " ORDER BY updated_at DESC, id LIMIT ?", (*params, limit))
        return [_delivery_record(r) for r in rows]

    def retry_delivery(self, delivery_id: str, *, actor: str, channel: str) -> DeliveryRecord:
        """Make a failed delivery pending again, due now, and audit it."""
        now = _ts(_now())
        with self._write() as conn:
            row = conn.execute("SELECT * FROM deliveries WHERE id = ?",
                               (delivery_id,)).fetchone()
            if row is None:
                raise NotFound(f"no delivery {delivery_id}")
            if row["state"] != "failed":
                raise Conflict(f"delivery {delivery_id} is {row['state']}, not failed: only a "
                               "failed delivery can be retried")
            conn.execute("UPDATE deliveries SET state = 'pending', next_attempt_at = ?,"
                         " created_at = ?, updated_at = ? WHERE id = ?",
                         (now, now, now, delivery_id))
            self._append_audit(conn, "delivery_retried", actor=actor, channel=channel,
                               event_id=row["event_id"],
                               data={"delivery": delivery_id, "resumer": row["resumer"],
                                     "previous_error": row["last_error"]}, at=now)
            again = conn.execute("SELECT * FROM deliveries WHERE id = ?",
                                 (delivery_id,)).fetchone()
        return _delivery_record(again)


def _check_resume_target(event: Event, target: str | None) -> None:
    """Refuse a resume target longer than the store indexes on every database alike (see
    :data:`~signoff._limits.MAX_RESUME_TARGET`), before anything is written: a 422 naming the
    params it came from, where PostgreSQL would refuse the index entry and SQLite take it.
    """
    size = 0 if target is None else len(target.encode("utf-8", "surrogatepass"))
    if size > MAX_RESUME_TARGET:
        raise InvalidInput("source.params", f"params whose {event.source.orchestrator} resume "
                           f"target is at most {MAX_RESUME_TARGET:,} bytes",
                           f"{size:,} bytes")


def _after(moment: datetime | None) -> float:
    return float("-inf") if moment is None else _ts(moment)


def _delivery_record(r: Row) -> DeliveryRecord:
    return DeliveryRecord(id=r["id"], event_id=r["event_id"], resumer=r["resumer"],
                          state=r["state"], attempts=r["attempts"], last_error=r["last_error"],
                          next_attempt_at=_dt(r["next_attempt_at"]),
                          created_at=_at(r["created_at"]), updated_at=_at(r["updated_at"]))


def _encode_cursor(sort_priority: int, created_at: float, event_id: str) -> str:
    raw = json.dumps([sort_priority, created_at, event_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _no_constant(name: str) -> Any:
    raise ValueError(name)


def _decode_cursor(cursor: str) -> list[Any]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        sort_priority, created_at, event_id = json.loads(raw, parse_constant=_no_constant)
        # printable ASCII: a NUL in the id would be refused by PostgreSQL and not by SQLite
        if not (type(sort_priority) is int and -3 <= sort_priority <= 0  # noqa: E721
                and type(created_at) in (int, float) and math.isfinite(created_at)
                and abs(created_at) < 1e12 and isinstance(event_id, str)
                and len(event_id) <= 100 and event_id.isascii() and event_id.isprintable()):
            raise ValueError
    except (ValueError, TypeError):
        raise InvalidInput("cursor", "a cursor returned by a previous page", cursor) from None
    return [sort_priority, created_at, event_id]


def _returned(row: Row, at: float) -> dict[str, Any]:
    """A row from ``INSERT ... RETURNING *`` as a later ``SELECT`` reads it: SQLite returns
    the values before the column's affinity applies, so a whole-second ``at`` (a REAL column)
    comes back as an int there, and would seal differently from the row as stored.
    """
    return {**dict(row), "at": at}
