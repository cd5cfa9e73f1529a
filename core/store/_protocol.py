"""The ``Store`` protocol: the hub's one durable record.

A store keeps events, responses, decisions, API tokens (hashed, revocable, expiring), browser
sessions and one-time login links (hashed), the outbox of resume deliveries and an
append-only audit log, chained with a keyed hash (HMAC-SHA256 under a secret kept out of the
database, see :mod:`signoff.store._audit`). Every method is synchronous and
thread-safe; the hub calls them from worker threads. A method that returns has made its
write durable.

A backend may offer two optional capabilities (:class:`Batching`): ``submit``, which queues
a write to be committed together with others (group commit), and ``inline_reads``, which tells
the hub that reading one event by id is cheap enough to do on its event loop.
"""

from __future__ import annotations

import concurrent.futures
import hashlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

from .._errors import InvalidInput
from .._evidence import Keyring
from .._model import Decision, Event, EventPage, Response
from .._rules import Identity
from ._protocol_balance import BalancePlan, BalanceStore
from ._protocol_reviewers import ReviewerStore

__all__ = ["AuditAnchor", "AuditEntry", "AuditNote", "AuditProblem", "AuditReport", "Batching", "DeliveryRecord",
           "DueDelivery", "SessionInfo", "Store", "TakenTier", "TokenInfo", "token_id"]

T = TypeVar("T")

AuditNote = tuple[str, str, dict[str, Any]]
"""An audit entry written with an event's creation: action, actor, data (e.g. ``delegated``)."""


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
class AuditAnchor:
    """The head of the audit log at one moment: its sequence number and keyed hash.

    Kept outside the hub (``signoff audit anchor`` prints it), it lets ``audit verify`` notice a
    log whose newest lines were deleted, which the chain alone cannot show.
    """

    seq: int
    hash: str

    PREFIX = "signoff-audit-anchor"

    def __str__(self) -> str:
        return f"{self.PREFIX}:{self.seq}:{self.hash}"

    @classmethod
    def parse(cls, line: str) -> AuditAnchor:
        """Read the line ``signoff audit anchor`` printed.

        Raises:
            InvalidInput: the line is not an anchor.
        """
        parts = line.strip().split(":")
        if (len(parts) == 3 and parts[0] == cls.PREFIX and parts[1].isdigit()
                and len(parts[2]) == 64 and all(c in "0123456789abcdef" for c in parts[2])):
            return cls(seq=int(parts[1]), hash=parts[2])
        raise InvalidInput("anchor", f"{cls.PREFIX}:SEQ:HMAC as `signoff audit anchor` prints it",
                           line[:200])


@dataclass(frozen=True)
class AuditProblem:
    """One thing ``verify_audit`` found wrong.

    ``kind`` is ``chain`` (an entry's hash or link does not hold, at ``seq``), ``key`` (no keyed
    entry verifies: the key is wrong), ``changed``, ``missing`` or ``extra`` (a ``table`` row,
    ``row_id``, differs from what its audit entry sealed, is gone, or has no audit entry), or
    ``anchor`` (the log does not reach, or does not match, the anchor given).
    """

    kind: str
    message: str
    seq: int | None = None
    table: str | None = None
    row_id: str | None = None


@dataclass(frozen=True)
class AuditReport:
    """The result of checking the audit log: the chain, the sealed rows, and an anchor if given.

    ``legacy_entries`` counts entries written before the log was keyed (plain SHA-256, checked
    for consistency only: anyone with the file could rewrite them). ``head`` is the newest entry.
    """

    ok: bool
    entries: int
    first_bad_seq: int | None = None
    problems: tuple[AuditProblem, ...] = ()
    legacy_entries: int = 0
    head: AuditAnchor | None = None


@dataclass(frozen=True)
class DueDelivery:
    """A delivery the dispatcher should attempt now."""

    id: str
    event_id: str
    resumer: str
    attempts: int
    created_at: datetime
    leased_until: datetime | None = None
    """When the lease :meth:`Store.claim_deliveries` took it with ends (what
    :meth:`Store.release_deliveries` checks, so it never shortens another hub's lease)."""


@dataclass(frozen=True)
class TakenTier:
    """An escalation tier :meth:`Store.claim_escalations` took: the event, its tier then, and
    when the lease ends (what :meth:`Store.release_escalations` checks).
    """

    event_id: str
    level: int
    leased_until: datetime


@dataclass(frozen=True)
class PendingSummary:
    """The queue as one bounded read sees it (issue 18: the gauges of ``/metrics``).

    The same on every replica: it is read from the store, not from a replica's memory.
    """

    counts: dict[tuple[str, int], int]
    """Pending events by (priority, age bucket): bucket ``i`` holds ages up to ``ages[i]``
    seconds (above ``ages[i-1]``), bucket ``len(ages)`` the older ones. Only non-zero."""
    oldest: dict[str, datetime]
    """The creation time of the oldest pending event, by priority (absent: none pending)."""
    past_sla: dict[str, int]
    """Pending events past their SLA, by priority: past their deadline when they have one,
    else older than the priority's SLA. Only non-zero."""
    deliveries_pending: int
    """Deliveries waiting for their next attempt."""


def token_id(token: str) -> str:
    """A token's public id: ``tk_`` and the first 16 hex digits of its SHA-256.

    Safe to show and log: the secret is 256 random bits, so a prefix of its hash says nothing
    about it. Every store derives the id this way, so ``create_token``'s caller knows it too.
    """
    return "tk_" + hashlib.sha256(token.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class TokenInfo:
    """What a store knows about one API token (never the secret)."""

    id: str
    identity: Identity
    name: str | None
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    def state(self, now: datetime) -> str:
        """``revoked``, ``expired`` or ``active`` at ``now``."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True)
class SessionInfo:
    """A live browser session: the token it signs in with and its CSRF secret."""

    token: TokenInfo
    csrf: str
    expires_at: datetime


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
class Store(ReviewerStore, BalanceStore, Protocol):
    """The durable record behind the hub. See :mod:`signoff.store.contract` for its contract."""

    signer: Keyring | None
    """Signs each decision as it is written (the hub sets it; None: decisions go unsigned)."""

    def migrate(self) -> int:
        """Bring the schema up to date; returns the schema version."""

    def close(self) -> None:
        """Release connections."""

    # events -----------------------------------------------------------------------------
    def create_event(self, event: Event, *, channel: str, decision: Decision | None = None,
                     notes: Sequence[str | AuditNote] | None = None,
                     resume_target: str | None = None,
                     balance: BalancePlan | None = None) -> tuple[Event, bool]:
        """Store a new pending event, or return the one with the same key and ``False``.

        A key belongs to the identity that created the event: the same key is looked up among
        the events of ``event.requested_by`` only, so another identity using it gets an event of
        its own and learns nothing about the first.

        With ``decision`` (a policy decided at creation) the event is stored decided, in the same
        transaction; ``notes`` are written to the audit log as policy lines (a text), or as
        entries of their own (an :data:`AuditNote`: action, actor, data).

        ``resume_target`` (the run its resumer would push into, prefixed with the resumer's
        name; see :mod:`signoff.resumers`) is kept with the event. A new event whose target an
        event of another ``requested_by`` already names is refused, atomically with the insert
        so two identities racing for one target cannot both win; the same identity may name
        it again (two pauses in one run). A key already stored is returned as before.

        With ``balance`` (its group is balanced, issue 21) a new pending event is also given to
        a member as :meth:`assign_member` would give it (``previous`` none, at its creation
        time), in the same transaction as the insert: an event is never stored without the
        member it was to be given to, whatever fails between.

        Raises:
            TargetTaken: another identity's event names ``resume_target``; nothing was written.
            InvalidInput: ``resume_target`` is longer than ``MAX_RESUME_TARGET`` bytes, or a
                value the database cannot hold (naming the field where it can); nothing was
                written.
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

    def claim_escalations(self, now: datetime, limit: int, lease: float) -> list[Event]:
        """Take the pending events whose next tier is due by ``now`` (at most ``limit``, the
        earliest due first) for ``lease`` seconds: their next tier moves to ``now + lease``,
        so neither this hub's next look nor another hub on the database takes them while
        their tier is applied; one whose hub died before :meth:`escalate` falls due again when
        the lease ends.
        """

    def release_escalations(self, taken: Sequence[TakenTier], now: datetime) -> int:
        """Give back tiers this hub took and will not apply (it is stopping): each is due again
        at ``now`` for any hub, unless the event moved on meanwhile (decided, escalated, or
        taken again after the lease ended). Returns how many were released.
        """

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

    def claim_deliveries(self, now: datetime, limit: int, lease: float) -> list[DueDelivery]:
        """Take the pending deliveries due by ``now`` (at most ``limit``) for ``lease``
        seconds: their next attempt moves to ``now + lease``, so no other hub on the database
        takes them meanwhile, and one whose hub died before recording the attempt
        (:meth:`delivery_attempted`) falls due again when the lease ends.
        """

    def release_deliveries(self, taken: Sequence[DueDelivery], now: datetime) -> int:
        """Give back deliveries this hub took and will not attempt (it is stopping): each is
        due again at ``now`` for any hub, unless its lease has moved on meanwhile (another hub
        took it after the lease ended, or it was attempted). Returns how many were released.
        """

    def next_delivery_at(self, after: datetime | None = None) -> datetime | None:
        """When the next pending delivery is due (after ``after``, if given)."""

    def pending_summary(self, now: datetime, ages: Sequence[float],
                        sla: Mapping[str, float]) -> PendingSummary:
        """The pending queue by priority and age bucket, its oldest event by priority, the
        events past their SLA (``sla``: seconds by priority; a priority missing has none)
        and the pending deliveries, in one read through the pending events' index.
        """

    def audit_completeness(self, since: datetime) -> tuple[int, int]:
        """Decisions written at or after ``since``, and how many of them have their audit
        entry (the entry the decision's own transaction appends), read by the decisions' time
        index: ``(decisions, audited)``.
        """

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
    def create_token(self, identity: Identity, *, name: str | None = None,
                     expires_at: datetime | None = None, actor: str = "admin",
                     channel: str = "cli") -> str:
        """Mint a token for ``identity``; only its hash is kept. Returns the token (its public
        id is :func:`token_id` of it). Audited as ``token.created`` by ``actor``.
        """

    def identity_for(self, token: str) -> Identity | None:
        """The identity an active token stands for; ``None`` if unknown, revoked or expired."""

    def find_token(self, token: str) -> TokenInfo | None:
        """What is known about a token, whatever its state, or ``None`` if unknown."""

    def get_token(self, token_id: str) -> TokenInfo | None:
        """A token by its public id, or ``None``."""

    def list_tokens(self) -> list[TokenInfo]:
        """Every token, oldest first."""

    def revoke_token(self, token_id: str, *, actor: str, channel: str) -> TokenInfo:
        """Revoke a token now: its sessions and login links end with it, and
        :meth:`token_generation` moves on. Audited as ``token.revoked``; revoking a revoked
        token changes nothing.

        Raises:
            NotFound: no token with that id.
        """

    def token_generation(self) -> int:
        """A number that changes whenever a token is revoked (by any process): a hub may cache
        tokens for as long as it reads the same number.
        """

    def touch_tokens(self, used: dict[str, datetime]) -> None:
        """Record when tokens were last used (by id); an older time never replaces a newer."""

    def create_first_token(self, identity: Identity, *, name: str | None = None,
                           actor: str = "hub", channel: str = "serve") -> str | None:
        """Mint a token as :meth:`create_token` does, but only if the store holds no token
        yet (checked in the same transaction: of several hubs starting together on a new
        database, one mints the first admin); None when one exists.
        """

    def count_tokens(self) -> int:
        """How many tokens exist (zero on a fresh store)."""

    # browser sessions and login links ---------------------------------------------------
    def create_login_link(self, token_id: str, *, expires_at: datetime) -> str:
        """A one-time code that signs a browser in with that token until ``expires_at``;
        only its hash is kept.

        Raises:
            NotFound: no token with that id.
        """

    def login_link(self, code: str) -> TokenInfo | None:
        """The active token an unused, unexpired code would sign in with (reading changes
        nothing), or ``None``.
        """

    def use_login_link(self, code: str, *,
                       session_expires_at: datetime) -> tuple[str, SessionInfo] | None:
        """Spend a code: in one transaction, delete it and start a session. Returns the new
        session's id and the session, or ``None`` when the code is unknown, used, expired, or
        its token is no longer active (then nothing is written).
        """

    def create_session(self, token_id: str, *,
                       expires_at: datetime) -> tuple[str, SessionInfo]:
        """Start a browser session for a token; returns its id (kept hashed) and the session.

        Raises:
            NotFound: no token with that id.
        """

    def session_for(self, session_id: str) -> SessionInfo | None:
        """The live session with this id, or ``None`` if unknown, ended, expired, or its token
        is revoked or expired.
        """

    def end_session(self, session_id: str) -> None:
        """Delete a session (logout); an unknown id is fine."""

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

    def verify_audit(self, anchor: AuditAnchor | None = None) -> AuditReport:
        """Check the whole log with the store's audit key: every entry's keyed hash and link,
        every response and decision row against the digest its audit entry sealed (changed,
        missing, or extra rows), and, with ``anchor``, that the log still reaches and matches it.
        """

    def audit_head(self) -> AuditAnchor | None:
        """The newest audit entry as an anchor (``None`` for an empty log)."""

    def check_audit_key(self) -> None:
        """Check that the newest keyed entry verifies with the store's key (cheap, at start).

        Raises:
            AuditKeyError: it does not: the hub was given another key than the log's.
        """

    def secret(self, name: str) -> bytes:
        """A random secret kept in the store (created on first use), e.g. for CSRF tokens."""


@runtime_checkable
class Batching(Protocol):
    """What a store offers when it can commit many writes at once and read one row cheaply.

    The hub checks for it: with it, a write costs one hand-off to the store's writer and one
    shared commit; without it, each store call runs in a worker thread of its own.
    """

    inline_reads: bool
    """True when reads of one row by key (``get_event``, ``identity_for``, ``find_token``,
    ``token_generation``, ``session_for``, ``login_link``) answer in tens of microseconds (a
    local file in the page cache), so the hub may call them on its event loop."""

    def submit(self, fn: Callable[..., T], /, *args: Any,
               **kwargs: Any) -> concurrent.futures.Future[T]:
        """Run the write ``fn(*args, **kwargs)`` in a transaction shared with the writes queued
        with it; the future resolves once that transaction is durable.
        """
