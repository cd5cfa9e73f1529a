"""The store contract for writes that race: what must hold however many writers run at once
(threads here, hubs on one database in production). PostgreSQL runs creations, answers and
decisions side by side (``_write(alongside=True)``), so each of these checks a lock that store
takes itself. :class:`~signoff.store.contract.StoreContract` includes it.
"""

from __future__ import annotations

import concurrent.futures
import threading

from .._model import Decision, Event, Outcome, Response
from ._protocol import Store

__all__ = ["RaceContract"]


def _approved_by_last(current: Event, responses: list[Response]) -> Decision:
    return Decision(value=True, outcome=Outcome.approved, by=responses[-1].by, channel="web",
                    at=responses[-1].at)


def _quorum_of_two(current: Event, responses: list[Response]) -> Decision | None:
    return _approved_by_last(current, responses) if len(responses) >= 2 else None


class RaceContract:
    """Racing writers; mixed into the store contract (its ``store`` fixture)."""

    def test_racing_creations_with_one_key_make_one_event(self, store: Store) -> None:
        """Eight creations with one idempotency key at once: one event, the others get it."""
        from .contract import make_event

        start = threading.Barrier(8)

        def create(event: Event) -> tuple[str, bool]:
            start.wait()
            stored, created = store.create_event(event, channel="api")
            return stored.id, created

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            for day in range(1, 7):  # rounds: a store's connections open as they are needed
                events = [make_event(key=f"nightly-2026-01-0{day}") for _ in range(8)]
                results = list(pool.map(create, events))
                assert len({event_id for event_id, _ in results}) == 1
                assert [created for _, created in results].count(True) == 1
        assert len(store.list_events().events) == 6

    def test_responders_completing_a_quorum_at_once_decide_it_once(self, store: Store) -> None:
        """Two answers to a two-person rule at the same moment: each must see the other's
        (else neither decides and the event waits for ever), and only one may decide.
        """
        from .contract import T0, make_event

        events = [make_event() for _ in range(12)]
        for event in events:
            store.create_event(event, channel="api")
        start = threading.Barrier(2)

        def answer(event: Event, by: str) -> str:
            start.wait()
            return store.add_response(event.id, Response(
                id=f"rs_{event.id}_{by}", event_id=event.id, by=by, value=True, channel="web",
                at=T0), settle=_quorum_of_two).status

        with concurrent.futures.ThreadPoolExecutor(2) as pool:
            for event in events:
                statuses = sorted(pool.map(answer, [event, event], ["ann", "bob"]))
                assert statuses == ["decided", "pending"], event.id
                stored = store.get_event(event.id)
                assert stored is not None and stored.decision is not None
                assert sorted(r.by for r in stored.responses) == ["ann", "bob"]
                assert stored.decision.by in {"ann", "bob"}

    def test_racing_writers_keep_one_audit_chain(self, store: Store) -> None:
        """Creations, answers, decisions and serialized writes at once: the chain has every
        entry once, in one unbroken sequence, and verifies.
        """
        from .contract import T0, make_event

        events = [make_event() for _ in range(24)]

        def work(n: int) -> None:
            event = events[n]
            store.create_event(event, channel="api")
            if n % 3 == 0:
                store.record("note", actor="ops", channel="cli", event_id=event.id,
                             data={"n": n})
            store.add_response(event.id, Response(
                id=f"rs_{n}", event_id=event.id, by=f"r{n}", value=True, channel="web",
                at=T0), settle=_approved_by_last)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            list(pool.map(work, range(len(events))))
        report = store.verify_audit()
        assert report.ok, report.problems
        # created + responded + approved for each event, and a note for every third
        assert report.entries == 3 * len(events) + len(events) // 3
        for n, event in enumerate(events):
            stored = store.get_event(event.id)
            assert stored is not None and stored.status == "decided"
            expected = ["created", "responded", "approved"] + (["note"] if n % 3 == 0 else [])
            assert sorted(a.action for a in store.audit(event.id)) == sorted(expected)
