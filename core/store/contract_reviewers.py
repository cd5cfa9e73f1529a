"""The store contract for what reviewers at work need (issue 21): answer links spent once,
reminders planned and claimed once. :class:`~signoff.store.contract.StoreContract` includes it.
"""

from __future__ import annotations

import concurrent.futures
from datetime import timedelta
from typing import Any

from .._rules import Identity
from ._protocol import Store

__all__ = ["ReviewerContract"]


class ReviewerContract:
    """Answer links and reminders; mixed into the store contract (its ``store`` fixture)."""

    @staticmethod
    def _event(store: Store, **fields: Any) -> Any:
        from .contract import T0, make_event

        event = make_event(at=T0, **fields)
        store.create_event(event, channel="api")
        return event

    def test_an_answer_link_is_spent_once(self, store: Store) -> None:
        """A link's use is recorded once; a second use is refused."""
        from .contract import T0

        event = self._event(store)
        assert not store.answer_link_used("l1")
        assert store.spend_answer_link("l1", event_id=event.id, recipient="ann", at=T0)
        assert not store.spend_answer_link("l1", event_id=event.id, recipient="ann", at=T0)
        assert store.answer_link_used("l1") and not store.answer_link_used("l2")

    def test_user_active_follows_tokens(self, store: Store) -> None:
        """Only a reviewer or admin with an active token is active."""
        from ._protocol import token_id

        assert not store.user_active("ann")
        store.create_token(Identity(user="flow", role="workflow"))
        assert not store.user_active("flow")  # a workflow answers by no link
        token = store.create_token(Identity(user="ann"))
        assert store.user_active("ann")
        store.revoke_token(token_id(token), actor="admin", channel="cli")
        assert not store.user_active("ann")

    def test_reminders_are_planned_and_claimed_once(self, store: Store) -> None:
        """Due reminders are found, and of racing claims of one step exactly one wins."""
        from .contract import T0

        event = self._event(store, timeout=100)
        [(found, done)] = store.reminder_candidates(T0, 2)
        assert (found.id, done) == (event.id, 0)
        store.plan_reminder(event.id, reminded=0, at=T0 + timedelta(seconds=50))
        assert store.reminder_candidates(T0, 2) == []  # planned and not due
        [(found, done)] = store.reminder_candidates(T0 + timedelta(seconds=50), 2)
        later = T0 + timedelta(seconds=90)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            won = list(pool.map(lambda _: store.claim_reminder(
                event.id, step=0, at=T0, next_at=later, data={"to": ["ann"]}), range(4)))
        assert sorted(won) == [False, False, False, True]
        assert store.reminders_sent(event.id) == [0]
        assert store.reminder_candidates(T0 + timedelta(seconds=89), 2) == []
        assert store.claim_reminder(event.id, step=1, at=later, next_at=None, data={})
        assert store.reminder_candidates(later + timedelta(days=1), 2) == []
        assert store.reminders_sent(event.id) == [0, 1]
        assert [e.action for e in store.audit(event.id)].count("reminded") == 2
