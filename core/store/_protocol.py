"""The ``Store`` protocol: the hub's one durable record.

A store keeps events, responses, decisions, API tokens (hashed), the outbox of resume
deliveries and an append-only, hash-chained audit log. Every method is synchronous and
thread-safe; the hub calls them from worker threads. A method that returns has made its
write durable.

A backend may offer two optional capabilities (:class:`Batching`): ``submit``, which queues
a write to be committed together with others (group commit), and ``inline_reads``, which tells
the hub that reading one event by id is cheap enough to do on its event loop.
"""

from __future__ import annotations

import concurrent.futures
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from .._model import Decision, Event, EventPage, Response
from .._rules import Identity

__all__ = ["AuditEntry", "AuditReport", "Batching", "DeliveryRecord", "DueDelivery", "Store"]

T = TypeVar("T")


@dataclass(frozen=True)
class AuditEntry:
    """One line of the audit log: who did what to which event, when and through which channel."""

    seq: int
    at: datetime
    event_id: str | None
    actor: str
    action: str
    channel: str
    data: dict[str, Any]
    hash: str


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the audit log's hash chain."""

    ok: bool
    entries: int
    first_bad_seq: int | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A delivery the dispatcher should attempt now."""

    id: str
    event_id: str
    resumer: str
    attempts: int
    created_at: datetime


@dataclass(frozen=True)
class DeliveryRecord:
    """One delivery as an operator sees it (``signoff deliveries list``)."""

    id: str
    event_id: str
    resumer: str
    state: str
    attempts: int
    last_error: str | None
    next_attempt_at: datetime | None
    created_at: datetime
    updated_at: datetime


@runtime_checkable
class Store(Protocol):
    """The durable record behind the hub. See :mod:`signoff.store.contract` for its contract."""

    def migrate(self) -> int:
        """Bring the schema up to date; returns the schema version."""

    def close(self) -> None:
        """Release connections."""

    # events -----------------------------------------------------------------------------
    def create_event(self, event: Event, *, channel: str, decision: Decision | None = None,
                     notes: list[str] | None = None) -> tuple[Event, bool]:
        """Store a new pending event, or return the one with the same key and ``False``.

        With ``decision`` (a policy decided at creation) the event is stored decided, in the same
        transaction; ``notes`` are written to the audit log as policy lines.
        """

    def get_event(self, event_id: str) -> Event | None:
        """One event with its decision, responses and deliveries, or ``None``."""

    def list_events(
        self,
        *,
        status: str | None = None,
        visible_to: set[str] | None = None,
        assignee: str | None = None,
        requested_by: str | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> EventPage:
        """Events, highest priority then oldest first, one page at a time.

        ``visible_to`` keeps events unassigned or assigned to one of those principals;
        ``assignee`` keeps events assigned to exactly that principal.
        """

    def count_events(self, *, status: str | None = None, visible_to: set[str] | None = None,
                     requested_by: str | None = None, limit: int | None = None) -> int:
        """How many events match (for the inbox header); with ``limit``, at most that many
        (counting stops there, so a large inbox costs no more than a small one).
        """

    def decide(
        self,
        event_id: str,
        decision: Decision,
        *,
        response: Response | None = None,
        deliver_via: str | None = None,
    ) -> Event:
        """Write the decision once (compare-and-set on the pending status).

        In the same transaction: the response (if any), the audit lines, and a pending
        delivery through ``deliver_via`` (if any).

        Raises:
            NotFound: no such event.
            AlreadyDecided: the event is no longer pending; nothing was written.
        """

    def add_response(self, event_id: str, response: Response | Callable[[Event], Response], *,
                     settle: Callable[[Event, list[Response]], Decision | None],
                     deliver_via: str | None | Callable[[Event], str | None] = None) -> Event:
        """Store a response; if ``settle(event, responses)`` returns a decision, write it too,
        all in one transaction.

        ``response`` may be a function of the pending event as the transaction reads it: it
        checks the answer against that event and builds it, or raises to refuse it (nothing
        is written). ``deliver_via`` may likewise be a function of the event.

        Raises:
            NotFound: no such event.
            AlreadyDecided: the event is no longer pending.
            AlreadyAnswered: this responder already answered.
        """

    def due_escalations(self, now: datetime, limit: int = 100) -> list[Event]:
        """Pending events whose next escalation tier is due."""

    def next_escalation(self, after: datetime | None = None) -> datetime | None:
        """When the next escalation tier falls due (the first one after ``after``, if given:
        the hub skips what it is already working on).
        """

    def escalate(self, event_id: str, *, level: int, assignees: list[str],
                 data: dict[str, Any]) -> Event:
        """Move a pending event from tier ``level`` to the next with these assignees
        (compare-and-set on the level), and audit it with ``data``.
        """

    def next_deadline(self, after: datetime | None = None) -> datetime | None:
        """The earliest deadline among pending events (after ``after``, if given)."""

    def due_events(self, now: datetime, limit: int = 100) -> list[Event]:
        """Pending events whose deadline is at or before ``now``."""

    # deliveries -------------------------------------------------------------------------
    def due_deliveries(self, now: datetime, limit: int = 50) -> list[DueDelivery]:
        """Pending deliveries whose next attempt is due."""

    def next_delivery_at(self, after: datetime | None = None) -> datetime | None:
        """When the next pending delivery is due (after ``after``, if given)."""

    def delivery_attempted(
        self,
        delivery_id: str,
        *,
        state: str,
        error: str | None = None,
        next_attempt_at: datetime | None = None,
    ) -> None:
        """Record one attempt: ``delivered``, ``failed`` (final) or ``pending`` (retry later)."""

    def list_deliveries(self, *, state: str | None = None, resumer: str | None = None,
                        error_prefix: str | None = None,
                        limit: int = 100) -> list[DeliveryRecord]:
        """Deliveries, most recently changed first; ``error_prefix`` keeps those whose last
        error starts with it.
        """

    def retry_delivery(self, delivery_id: str, *, actor: str, channel: str) -> DeliveryRecord:
        """Make a failed delivery pending again, due now (its give-up clock starts again), and
        audit it.

        Raises:
            NotFound: no such delivery.
            Conflict: the delivery has not failed; nothing was changed.
        """

    # tokens -----------------------------------------------------------------------------
    def create_token(self, identity: Identity) -> str:
        """Mint a token for ``identity``; only its hash is kept. Returns the token."""

    def identity_for(self, token: str) -> Identity | None:
        """The identity a token stands for, or ``None``."""

    def count_tokens(self) -> int:
        """How many tokens exist (zero on a fresh store)."""

    # audit and secrets ------------------------------------------------------------------
    def audit(self, event_id: str) -> list[AuditEntry]:
        """The audit lines of one event, oldest first."""

    def record(
        self,
        action: str,
        *,
        actor: str,
        channel: str,
        event_id: str | None = None,
        data: dict[str, Any] | None = None,
    ) -> None:
        """Append one line to the audit log."""

    def verify_audit(self) -> AuditReport:
        """Recompute the hash chain over the whole log."""

    def secret(self, name: str) -> bytes:
        """A random secret kept in the store (created on first use), e.g. for CSRF tokens."""


@runtime_checkable
class Batching(Protocol):
    """What a store offers when it can commit many writes at once and read one row cheaply.

    The hub checks for it: with it, a write costs one hand-off to the store's writer and one
    shared commit; without it, each store call runs in a worker thread of its own.
    """

    inline_reads: bool
    """True when ``get_event`` and ``identity_for`` answer in tens of microseconds (a local
    file in the page cache), so the hub may call them on its event loop."""

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run the write ``fn(*args, **kwargs)`` in a transaction shared with the writes queued
        with it; the future resolves once that transaction is durable.
        """
