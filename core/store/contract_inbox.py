"""The store contract for inbox pages: every page a reviewer or an assignee filter asks for
holds exactly the events it should, in order, after creations, decisions, cancels,
escalations and balancing have moved events between states and assignees.
:class:`~signoff.store.contract.StoreContract` includes it.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

from .._model import Decision, Event, Outcome
from .._rules import Identity, is_assigned
from ._protocol import Store

__all__ = ["InboxContract"]

PEOPLE = ("ann", "bob", "cy")
GROUPS = ("ops", "dev")
STATUSES = ("pending", "decided", "cancelled", None)


def _in_order(events: list[Event]) -> list[str]:
    return [e.id for e in sorted(events, key=lambda e: (-e.priority.rank, e.created_at, e.id))]


def _pages(store: Store, size: int, **filters: Any) -> list[str]:
    seen: list[str] = []
    cursor = None
    while True:
        page = store.list_events(limit=size, cursor=cursor, **filters)
        assert len(page.events) <= size
        seen += [e.id for e in page.events]
        if page.next_cursor is None:
            return seen
        cursor = page.next_cursor


class InboxContract:
    """Inbox pages; mixed into the store contract (its ``store`` fixture)."""

    @staticmethod
    def _moved_about(store: Store, rng: random.Random) -> None:
        """Events with every kind of assignee, then some decided, cancelled, escalated (to
        other assignees, or to anyone) and balanced over a group.
        """
        from .contract import T0, make_event

        principals = [*PEOPLE, *(f"group:{g}" for g in GROUPS)]
        made: list[Event] = []
        for _ in range(60):
            assignees = rng.sample(principals, rng.choice((0, 0, 1, 1, 2, 3)))
            event = make_event(priority=rng.choice(("low", "normal", "high", "urgent")),
                               at=T0 + timedelta(seconds=rng.randrange(8)),  # ties in time
                               assignees=assignees)
            store.create_event(event, channel="api")
            made.append(event)
        rng.shuffle(made)
        for event in made[:12]:
            store.decide(event.id, Decision(value=True, outcome=Outcome.approved, by="ann",
                                            channel="api", at=T0))
        for event in made[12:18]:
            store.decide(event.id, Decision(value=None, outcome=Outcome.cancelled, by="flow",
                                            channel="api", at=T0))
        for event in made[18:26]:
            store.escalate(event.id, level=0, data={},
                           assignees=rng.sample(principals, rng.choice((0, 1, 2))))
        for event in made[26:30]:
            if "group:ops" in event.assignees:
                store.assign_member(event.id, group="ops", members=("bob", "dan"),
                                    strategy="round_robin", reason="created", at=T0)
        for event in made[18:22]:  # decided after moving: their assignments follow
            store.decide(event.id, Decision(value=False, outcome=Outcome.rejected, by="bob",
                                            channel="api", at=T0))

    def test_every_inbox_page_holds_what_it_should_in_order(self, store: Store) -> None:
        """Each caller's pages, for each status and page size, against the events filtered
        and sorted here; the counts too; and the assignee filter, alone and a reviewer's.
        """
        rng = random.Random(20261203)
        self._moved_about(store, rng)
        everything = store.list_events(limit=1000).events
        assert len(everything) == 60
        callers = [Identity(user="ann"), Identity(user="bob", groups=("ops",)),
                   Identity(user="cy", groups=("ops", "dev")), Identity(user="dan"),
                   Identity(user="eve", groups=("nobody",))]
        for who in callers:
            for status in STATUSES:
                want = _in_order([e for e in everything if is_assigned(who, e)
                                  and status in (None, e.status)])
                for size in (1, 4, 50):
                    got = _pages(store, size, status=status, visible_to=who.principals)
                    assert got == want, (who.user, status, size)
                assert store.count_events(status=status, visible_to=who.principals) == \
                    len(want), (who.user, status)
        for assignee in (*PEOPLE, "dan", "group:ops", "group:dev", "nobody"):
            for status in STATUSES:
                want = _in_order([e for e in everything if assignee in e.assignees
                                  and status in (None, e.status)])
                assert _pages(store, 3, status=status, assignee=assignee) == want
                # an admin's filter, and a reviewer's own: the same pages
                mine = {assignee, "group:x"}
                assert _pages(store, 3, status=status, assignee=assignee,
                              visible_to=mine) == want
        # assigned to someone else, and visible to the caller: only through their own groups
        want = _in_order([e for e in everything if "ann" in e.assignees
                          and {"bob", "group:ops"} & set(e.assignees) and e.status == "pending"])
        assert _pages(store, 2, status="pending", assignee="ann",
                      visible_to={"bob", "group:ops"}) == want

    def test_a_reviewer_of_many_groups_gets_the_same_pages(self, store: Store) -> None:
        """More groups than a page merges ranges for: the same events, in the same order."""
        from .contract import T0, make_event

        groups = tuple(f"g{i:03d}" for i in range(150))
        made = [make_event(assignees=[f"group:{groups[i * 7 % 150]}"], priority="high",
                           at=T0 + timedelta(seconds=i)) for i in range(30)]
        made.append(make_event(at=T0))
        for event in made:
            store.create_event(event, channel="api")
        store.decide(made[3].id, Decision(value=True, outcome=Outcome.approved, by="ann",
                                          channel="api", at=T0))
        who = Identity(user="zed", groups=groups)
        for status in ("pending", None):
            want = _in_order([e for e in store.list_events(limit=100).events
                              if is_assigned(who, e) and status in (None, e.status)])
            assert len(want) == (30 if status == "pending" else 31)
            assert _pages(store, 7, status=status, visible_to=who.principals) == want
