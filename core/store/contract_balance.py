"""The store contract for load balancing (issue 21): one rotation shared by every writer, the
least-pending choice, re-assignment as a compare-and-set. :class:`~signoff.store.contract.
StoreContract` includes it.
"""

from __future__ import annotations

import concurrent.futures
from typing import Any

from .._model import Event
from ._protocol import Store
from ._protocol_balance import BalancePlan

__all__ = ["BalanceContract"]

TEAM = ("ann", "ben", "cal")


class BalanceContract:
    """Balanced assignment; mixed into the store contract (its ``store`` fixture)."""

    @staticmethod
    def _group_event(store: Store, **fields: Any) -> Event:
        from .contract import T0, make_event

        event = make_event(at=T0, assignees=["group:ops"], **fields)
        store.create_event(event, channel="api")
        return event

    @staticmethod
    def _give(store: Store, event: Event, strategy: str = "round_robin",
              **more: Any) -> Event | None:
        from .contract import T0

        return store.assign_member(event.id, group="ops", members=TEAM, strategy=strategy,
                                   reason="created", at=T0, **more)

    def test_concurrent_assignments_share_one_rotation(self, store: Store) -> None:
        """Six assignments racing on threads give each member two: the turn is claimed in the
        write, not read before it.
        """
        events = [self._group_event(store) for _ in range(6)]
        with concurrent.futures.ThreadPoolExecutor(6) as pool:
            given = list(pool.map(lambda e: self._give(store, e), events))
        members = [g.assignee for g in given if g is not None and g.assignee is not None]
        assert sorted(members) == sorted(TEAM * 2)
        assert store.pending_by_member([*TEAM, "dan"]) == {"ann": 2, "ben": 2, "cal": 2,
                                                          "dan": 0}
        stored = store.get_event(events[0].id)
        assert stored is not None and stored.assignees == ["group:ops", stored.assignee]
        [entry] = [e for e in store.audit(events[0].id) if e.action == "assigned"]
        assert entry.data["member"] == stored.assignee and entry.data["strategy"] == \
            "round_robin"

    def test_least_pending_and_reassignment(self, store: Store) -> None:
        """The least loaded member is chosen; a re-assignment is a compare-and-set on the
        current member and takes back only an assignee balancing added.
        """
        first = self._give(store, self._group_event(store), exclude=("ben", "cal"))
        assert first is not None and first.assignee == "ann"
        event = self._group_event(store)
        chosen = self._give(store, event, "least_pending", exclude=("cal",))
        assert chosen is not None and chosen.assignee == "ben"  # ann has one already
        assert self._give(store, event, previous=None) is None  # someone got there first
        moved = self._give(store, event, "least_pending", previous="ben", exclude=("ben",))
        assert moved is not None and moved.assignee == "cal"
        assert moved.assignees == ["group:ops", "cal"]
        assert [(a.turn, a.member) for a in store.assignments(event.id)] == [(0, "ben"),
                                                                           (1, "cal")]
        assert self._give(store, event, previous="cal", exclude=TEAM) is None  # nobody left

    def test_an_assignee_in_their_own_right_stays(self, store: Store) -> None:
        """Moving an event on from a member who was assigned anyway keeps them assigned."""
        from .contract import T0, make_event

        event = make_event(at=T0, assignees=["group:ops", "ann"])
        store.create_event(event, channel="api")
        given = self._give(store, event, exclude=("ben", "cal"))
        assert given is not None and given.assignees == ["group:ops", "ann"]
        moved = self._give(store, event, previous="ann", exclude=("ann",))
        assert moved is not None and moved.assignees == ["group:ops", "ann", moved.assignee]

    def test_a_balanced_creation_gives_the_event_in_the_same_write(self, store: Store) -> None:
        """``create_event`` with a plan stores the event given to a member (the turn claimed,
        ``assigned`` after ``created``); the same key again gives nothing more.
        """
        from .contract import T0, make_event

        plan = BalancePlan("ops", TEAM, "round_robin", ("ann",), "created")
        event = make_event(at=T0, assignees=["group:ops"], key="k")
        stored, created = store.create_event(event, channel="api", balance=plan)
        assert created and (stored.id, stored.assignee) == (event.id, "ben")
        assert stored.assignees == ["group:ops", "ben"]
        again, created = store.create_event(make_event(at=T0, assignees=["group:ops"], key="k"),
                                            channel="api", balance=plan)
        assert (again.id, again.assignee, created) == (event.id, "ben", False)
        assert [e.action for e in store.audit(event.id)] == ["created", "assigned"]
        assert [(a.member, a.reason) for a in store.assignments(event.id)] == [("ben", "created")]
        after = self._give(store, self._group_event(store))
        assert after is not None and after.assignee == "cal"  # the turn after ben's
