"""The contract every :class:`~signoff.store.Store` backend passes (needs pytest).

A backend's tests subclass :class:`StoreContract` and provide a ``store`` fixture that yields a
fresh, migrated store; every test here then runs against it (the SQLAlchemy ``testing/suite``
idea):

```python
class TestSQLite(StoreContract):
    @pytest.fixture
    def store(self, tmp_path):
        store = open_store(str(tmp_path / "s.db"))
        yield store
        store.close()
```
"""

from __future__ import annotations

import concurrent.futures
import threading
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from .._errors import (
    AlreadyAnswered,
    AlreadyDecided,
    Conflict,
    InvalidInput,
    NotFound,
    TargetTaken,
)
from .._model import Decision, Event, EventCreate, Outcome, Response
from .._policy import Policy, Tier
from .._rules import Identity
from ._protocol import AuditAnchor, Batching, DueDelivery, Store, TakenTier, token_id
from .contract_balance import BalanceContract
from .contract_inbox import InboxContract
from .contract_races import RaceContract
from .contract_reviewers import ReviewerContract

__all__ = ["StoreContract", "hold_writer", "make_event"]

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def make_event(*, at: datetime = T0, requested_by: str = "flow", timeout: float | None = None,
               **fields: Any) -> Event:
    """A pending event as the hub would build it."""
    fields.setdefault("name", "deploy")
    fields.setdefault("prompt", "Deploy?")
    body = EventCreate(timeout=timeout, **fields)
    return Event(**body.model_dump(), id=f"ev_{uuid.uuid4().hex}", requested_by=requested_by,
                 status="pending", created_at=at,
                 deadline=at + timedelta(seconds=timeout) if timeout else None)


def _batching(store: Store) -> Batching:
    if not isinstance(store, Batching):
        pytest.skip("the store has no Batching capability")
    return store


def hold_writer(store: Batching) -> tuple[threading.Event, concurrent.futures.Future[None]]:
    """Occupy the store's writer until the returned event is set, so that what is submitted
    meanwhile is committed as one batch.
    """
    release = threading.Event()
    started = threading.Event()

    def hold() -> None:
        started.set()
        assert release.wait(10), "the test never released the writer"

    held = store.submit(hold)
    assert started.wait(10), "the writer never started"
    return release, held


def _claimed_delivery(store: Store) -> tuple[Event, datetime, DueDelivery]:
    """An approved event with a webhook delivery, taken by a hub at T0 + 1 s for 60 s."""
    event = make_event(source={"orchestrator": "webhook", "params": {"url": "http://x"}})
    store.create_event(event, channel="api")
    store.decide(event.id, _approved(), deliver_via="webhook")
    now = T0 + timedelta(seconds=1)
    [taken] = store.claim_deliveries(now, 10, lease=60)
    return event, now, taken


def _approved(by: str = "rita", at: datetime = T0) -> Decision:
    return Decision(value=True, outcome=Outcome.approved, by=by, channel="api", at=at)


class StoreContract(ReviewerContract, BalanceContract, RaceContract, InboxContract):
    """Behaviour every store must have. Subclass it and provide a ``store`` fixture."""

    @pytest.fixture
    def store(self) -> Store:
        """A fresh, migrated store (the backend's tests override this)."""
        raise NotImplementedError

    def test_migrate_is_idempotent(self, store: Store) -> None:
        assert store.migrate() == store.migrate() >= 1

    def test_create_and_get(self, store: Store) -> None:
        event = make_event(context={"rows": 3, "tags": ["a"]}, assignees=["group:ops", "ann"],
                           input={"kind": "int", "min": 1, "max": 9}, labels={"team": "data"})
        stored, created = store.create_event(event, channel="api")
        assert created
        assert store.get_event(event.id) == event
        assert store.get_event("ev_missing") is None
        assert stored == event

    def test_form_schema_round_trips(self, store: Store) -> None:
        schema = {"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"]}
        event = make_event(input={"kind": "form", "schema": schema})
        store.create_event(event, channel="api")
        got = store.get_event(event.id)
        assert got is not None and got.input == event.input

    def test_same_key_returns_the_stored_event_unchanged(self, store: Store) -> None:
        first = make_event(key="k-1", prompt="first")
        second = make_event(key="k-1", prompt="second")
        store.create_event(first, channel="api")
        again, created = store.create_event(second, channel="api")
        assert not created
        assert again.id == first.id and again.prompt == "first"
        assert len(store.list_events().events) == 1

    def test_a_key_belongs_to_the_identity_that_created_the_event(self, store: Store) -> None:
        mine = make_event(key="airflow:etl:run-1:approve:-1", requested_by="flow-a", prompt="a")
        theirs = make_event(key="airflow:etl:run-1:approve:-1", requested_by="flow-b",
                            prompt="b")
        first, created_first = store.create_event(mine, channel="api")
        second, created_second = store.create_event(theirs, channel="api")
        assert created_first and created_second  # two identities: two events
        assert second.id == theirs.id != first.id
        assert (second.requested_by, second.prompt) == ("flow-b", "b")
        again, created = store.create_event(
            make_event(key="airflow:etl:run-1:approve:-1", requested_by="flow-b"), channel="api")
        assert not created and again.id == theirs.id  # the same identity: its own event back
        assert again.prompt == "b"
        assert {e.id for e in store.list_events(requested_by="flow-a").events} == {mine.id}
        assert [a.actor for a in store.audit(theirs.id)] == ["flow-b"]  # nothing of flow-a

    def test_a_resume_target_belongs_to_the_identity_that_named_it_first(
            self, store: Store) -> None:
        target = "prefect:0b6e8e5c-5f3a-4d8e-9c1e-2a7d3f1b9e40"
        mine = make_event(key="k-a", requested_by="flow-a")
        stored, created = store.create_event(mine, channel="api", resume_target=target)
        assert created and stored.id == mine.id
        # the same identity names it again: a second pause in the same run
        again = make_event(key="k-a2", requested_by="flow-a")
        assert store.create_event(again, channel="api", resume_target=target)[1]
        audit_before = len(store.audit(mine.id)) + len(store.audit(again.id))
        count_before = store.count_events()
        theirs = make_event(key="k-b", requested_by="flow-b")
        with pytest.raises(TargetTaken) as refused:
            store.create_event(theirs, channel="api", resume_target=target)
        assert "flow-a" not in str(refused.value) and mine.id not in str(refused.value)
        assert store.get_event(theirs.id) is None and store.count_events() == count_before
        assert store.audit(theirs.id) == []
        assert len(store.audit(mine.id)) + len(store.audit(again.id)) == audit_before
        # a decided-at-creation event is refused the same way, before anything is written
        with pytest.raises(TargetTaken):
            store.create_event(make_event(requested_by="flow-b"), channel="api",
                               resume_target=target, decision=_approved())
        assert store.count_events() == count_before
        # other targets, and no target at all, stay free for everyone
        assert store.create_event(make_event(requested_by="flow-b"), channel="api",
                                  resume_target=target + "x")[1]
        assert store.create_event(make_event(requested_by="flow-b"), channel="api")[1]
        # flow-a's own key comes back as before, target or not
        back, created = store.create_event(make_event(key="k-a", requested_by="flow-a"),
                                           channel="api", resume_target=target)
        assert not created and back.id == mine.id

    def test_a_resume_target_too_long_to_index_is_refused_alone(self, store: Store) -> None:
        """Over 1,024 bytes (an index entry PostgreSQL might refuse): a 422 naming the params on
        every store, nothing written, and the store writes on.
        """
        with pytest.raises(InvalidInput) as refused:
            store.create_event(make_event(key="long"), channel="api",
                               resume_target="mine:" + "r" * 1_100)
        assert refused.value.field == "source.params"
        assert refused.value.got == "1,105 bytes"
        assert store.count_events() == 0
        assert store.create_event(make_event(key="short"), channel="api",
                                  resume_target="mine:" + "r" * 1_019)[1]  # 1,024 bytes

    def test_racing_identities_cannot_both_take_a_target(self, store: Store) -> None:
        target = "temporal:default/order-7"
        events = [make_event(requested_by=f"flow-{i % 2}") for i in range(8)]

        def create(event: Event) -> str:
            try:
                store.create_event(event, channel="api", resume_target=target)
            except TargetTaken:
                return "refused"
            return event.requested_by

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(create, events))
        winners = {r for r in results if r != "refused"}
        assert len(winners) == 1
        [winner] = winners
        assert results.count(winner) == 4 and results.count("refused") == 4
        assert {e.requested_by for e in store.list_events().events} == {winner}

    def test_list_orders_by_priority_then_age(self, store: Store) -> None:
        low = make_event(priority="low", at=T0)
        old = make_event(priority="high", at=T0 + timedelta(seconds=1))
        new = make_event(priority="high", at=T0 + timedelta(seconds=2))
        urgent = make_event(priority="urgent", at=T0 + timedelta(seconds=3))
        for event in (low, new, old, urgent):
            store.create_event(event, channel="api")
        ids = [e.id for e in store.list_events(status="pending").events]
        assert ids == [urgent.id, old.id, new.id, low.id]

    def test_cursor_pages_cover_everything_once(self, store: Store) -> None:
        made = [make_event(priority=("low", "normal", "high")[i % 3],
                           at=T0 + timedelta(seconds=i % 4)) for i in range(23)]
        for event in made:
            store.create_event(event, channel="api")
        seen: list[str] = []
        cursor = None
        while True:
            page = store.list_events(limit=5, cursor=cursor)
            seen += [e.id for e in page.events]
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        assert sorted(seen) == sorted(e.id for e in made) and len(seen) == len(set(seen))
        assert seen == [e.id for e in store.list_events(limit=100).events]

    def test_bad_cursor_is_refused(self, store: Store) -> None:
        with pytest.raises(InvalidInput) as caught:
            store.list_events(cursor="not-a-cursor")
        assert caught.value.field == "cursor"

    @pytest.mark.parametrize("cursor", [
        "", "=", "%%%", "é" * 8, "7aCA",  # not base64 of JSON; raw surrogate bytes
        "WzEsMiwzXQ", "W3RydWUsMSwieCJd", "W251bGwsMSwieCJd",  # [1,2,3] [true,1,"x"] [null,..]
        "W05hTiwxLCJ4Il0", "WzAsTmFOLCJ4Il0", "WzAsMWUzMDAwLCJ4Il0",  # NaN, 1e3000
        "Wzk5OTk5OTk5OTk5OTk5OTk5OTk5OTk5OTksMSwieCJd",  # an integer no database holds
        "WzAsMSwiXHVkODAwIl0",  # a lone surrogate in the id
        "WzAsIDEsICJcdTAwMDAiXQ",  # a NUL in the id: PostgreSQL would refuse it, SQLite not
        "eyJhIjogMX0", "W10", "WzAsMSwieCIsNF0",  # an object, [], four items
    ])
    def test_a_garbled_cursor_is_refused_naming_cursor(self, store: Store, cursor: str) -> None:
        store.create_event(make_event(), channel="api")
        with pytest.raises(InvalidInput) as caught:
            store.list_events(cursor=cursor)
        assert caught.value.field == "cursor"

    def test_visibility_and_assignee_filters(self, store: Store) -> None:
        anyone = make_event()
        ops = make_event(assignees=["group:ops"])
        ann = make_event(assignees=["ann"])
        mine = make_event(requested_by="other-flow")
        for event in (anyone, ops, ann, mine):
            store.create_event(event, channel="api")

        def ids(**kw: Any) -> set[str]:
            return {e.id for e in store.list_events(**kw).events}

        assert ids(visible_to={"bob", "group:ops"}) == {anyone.id, ops.id, mine.id}
        assert ids(visible_to={"ann"}) == {anyone.id, ann.id, mine.id}
        assert ids(assignee="group:ops") == {ops.id}
        assert ids(requested_by="other-flow") == {mine.id}
        assert store.count_events(status="pending", visible_to={"ann"}) == 3
        assert store.count_events() == 4
        assert store.count_events(limit=2) == 2 and store.count_events(limit=9) == 4
        assert store.count_events(status="pending", visible_to={"ann"}, limit=2) == 2
        assert store.count_events(visible_to={"bob", "group:ops"}, limit=9) == 3
        assert store.count_events(requested_by="other-flow", limit=9) == 1

    def test_decide_once(self, store: Store) -> None:
        event = make_event()
        store.create_event(event, channel="api")
        response = Response(id="rs_1", event_id=event.id, by="rita", value=True,
                            comment="fine", channel="web", at=T0)
        decided = store.decide(event.id, _approved(), response=response)
        assert decided.status == "decided" and decided.decision == _approved()
        assert decided.responses == [response]
        with pytest.raises(AlreadyDecided):
            store.decide(event.id, _approved(by="sam"))
        after = store.get_event(event.id)
        assert after is not None and after.decision is not None and after.decision.by == "rita"
        assert len(after.responses) == 1
        with pytest.raises(NotFound):
            store.decide("ev_missing", _approved())

    def test_cancel_sets_cancelled(self, store: Store) -> None:
        event = make_event()
        store.create_event(event, channel="api")
        cancelled = Decision(value=None, outcome=Outcome.cancelled, by="flow", channel="api",
                             at=T0)
        assert store.decide(event.id, cancelled).status == "cancelled"
        assert [e.id for e in store.list_events(status="cancelled").events] == [event.id]

    def test_racing_deciders_make_exactly_one_decision(self, store: Store) -> None:
        event = make_event()
        store.create_event(event, channel="api")
        wins: list[str] = []
        losses: list[str] = []
        start = threading.Barrier(20)

        def answer(n: int) -> None:
            start.wait()
            try:
                store.decide(event.id, _approved(by=f"r{n}"), response=Response(
                    id=f"rs_{n}", event_id=event.id, by=f"r{n}", value=True, channel="api",
                    at=T0))
                wins.append(f"r{n}")
            except AlreadyDecided:
                losses.append(f"r{n}")

        threads = [threading.Thread(target=answer, args=(n,)) for n in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(wins) == 1 and len(losses) == 19
        got = store.get_event(event.id)
        assert got is not None and got.decision is not None
        assert got.decision.by == wins[0] and [r.by for r in got.responses] == wins

    def test_deadlines(self, store: Store) -> None:
        soon = make_event(timeout=10)
        later = make_event(timeout=100)
        never = make_event()
        for event in (later, soon, never):
            store.create_event(event, channel="api")
        assert store.next_deadline() == T0 + timedelta(seconds=10)
        assert [e.id for e in store.due_events(T0 + timedelta(seconds=50))] == [soon.id]
        store.decide(soon.id, _approved())
        assert store.next_deadline() == T0 + timedelta(seconds=100)
        assert store.due_events(T0 + timedelta(seconds=50)) == []

    def test_deliveries_through_the_outbox(self, store: Store) -> None:
        event = make_event(source={"orchestrator": "webhook", "params": {"url": "http://x"}})
        store.create_event(event, channel="api")
        store.decide(event.id, _approved(), deliver_via="webhook")
        due = store.due_deliveries(T0 + timedelta(seconds=1))
        assert [(d.event_id, d.resumer, d.attempts) for d in due] == [(event.id, "webhook", 0)]
        retry_at = T0 + timedelta(seconds=30)
        store.delivery_attempted(due[0].id, state="pending", error="refused",
                                 next_attempt_at=retry_at)
        assert store.due_deliveries(T0 + timedelta(seconds=1)) == []
        assert store.next_delivery_at() == retry_at
        [again] = store.due_deliveries(retry_at)
        assert again.attempts == 1
        store.delivery_attempted(again.id, state="delivered")
        got = store.get_event(event.id)
        assert got is not None
        [delivery] = got.deliveries
        assert (delivery.state, delivery.attempts) == ("delivered", 2)
        assert store.due_deliveries(retry_at + timedelta(days=1)) == []
        actions = [a.action for a in store.audit(event.id)]
        assert actions[-1] == "delivery_delivered"

    def test_a_claimed_delivery_is_taken_once_until_its_lease_ends(self, store: Store) -> None:
        event, now, taken = _claimed_delivery(store)
        assert (taken.event_id, taken.attempts) == (event.id, 0)
        assert store.claim_deliveries(now, 10, lease=60) == []  # another hub finds nothing
        assert store.claim_deliveries(now + timedelta(seconds=59), 10, lease=60) == []
        # the hub that took it died without a word: it falls due again when the lease ends
        [again] = store.claim_deliveries(now + timedelta(seconds=61), 10, lease=60)
        assert again.id == taken.id and again.attempts == 0
        store.delivery_attempted(again.id, state="delivered")
        assert store.claim_deliveries(now + timedelta(days=1), 10, lease=60) == []
        assert store.next_delivery_at() is None

    def test_a_stopping_hub_gives_back_what_it_took(self, store: Store) -> None:
        _, now, taken = _claimed_delivery(store)
        assert taken.leased_until == now + timedelta(seconds=60)
        later = now + timedelta(seconds=2)
        assert store.release_deliveries([taken], later) == 1
        [again] = store.claim_deliveries(later, 10, lease=60)  # any hub takes it at once
        assert again.id == taken.id and again.attempts == 0
        # the first taking is stale now: giving it back must not shorten the new lease
        assert store.release_deliveries([taken], later) == 0
        assert store.claim_deliveries(later, 10, lease=60) == []
        store.delivery_attempted(again.id, state="delivered")
        assert store.release_deliveries([again], later) == 0  # attempted: nothing to give
        assert store.next_delivery_at() is None

    def test_next_times_after_a_moment(self, store: Store) -> None:
        """``after`` skips what is due by then (what the hub is already working on)."""
        soon = make_event(timeout=10, policy=Policy(escalate=[Tier(after=timedelta(seconds=5), assignees=["b"])]))
        later = make_event(timeout=100, policy=Policy(escalate=[Tier(after=timedelta(seconds=50), assignees=["b"])]))
        for event in (soon, later):
            store.create_event(event, channel="api")
        assert store.next_deadline(T0 + timedelta(seconds=10)) == T0 + timedelta(seconds=100)
        assert store.next_escalation(T0 + timedelta(seconds=5)) == T0 + timedelta(seconds=50)
        assert store.next_deadline(T0 + timedelta(seconds=100)) is None
        assert store.next_escalation(T0 + timedelta(seconds=50)) is None
        assert store.next_deadline(None) == T0 + timedelta(seconds=10)
        store.decide(soon.id, _approved(), deliver_via="webhook")
        [due] = store.due_deliveries(T0 + timedelta(days=1))
        assert store.next_delivery_at() is not None
        assert store.next_delivery_at(T0 + timedelta(days=3650)) is None
        assert due.resumer == "webhook"

    def test_a_delivery_error_quoting_a_remote_answer_is_kept_as_every_store_can(
            self, store: Store) -> None:
        """An error may quote what a remote server answered: a NUL (which PostgreSQL text
        cannot hold) is kept escaped, and a long answer is cut, on every store alike.
        """
        event = make_event(source={"orchestrator": "webhook", "params": {"url": "http://x"}})
        store.create_event(event, channel="api")
        store.decide(event.id, _approved(), deliver_via="webhook")
        [due] = store.due_deliveries(T0 + timedelta(days=1))
        store.delivery_attempted(due.id, state="failed", error="bad\x00reply " + "x" * 5000)
        [failed] = store.list_deliveries(state="failed")
        assert failed.last_error is not None
        assert failed.last_error.startswith("bad\\x00reply x") and len(failed.last_error) == 2_000

    def test_failed_deliveries_are_listed_and_retried(self, store: Store) -> None:
        event = make_event(source={"orchestrator": "webhook", "params": {"url": "http://x"}})
        store.create_event(event, channel="api")
        store.decide(event.id, _approved(), deliver_via="webhook")
        [due] = store.due_deliveries(T0 + timedelta(days=1))
        with pytest.raises(Conflict):
            store.retry_delivery(due.id, actor="admin", channel="cli")  # pending: not failed
        store.delivery_attempted(due.id, state="failed", error="resumer unavailable: gone")
        assert store.due_deliveries(T0 + timedelta(days=1)) == []
        [failed] = store.list_deliveries(state="failed")
        assert (failed.id, failed.event_id, failed.resumer) == (due.id, event.id, "webhook")
        assert (failed.state, failed.attempts) == ("failed", 1)
        assert failed.last_error == "resumer unavailable: gone"
        assert store.list_deliveries(state="failed", error_prefix="resumer unavailable: ")
        assert store.list_deliveries(state="failed", error_prefix="other") == []
        assert store.list_deliveries(state="delivered") == []
        assert store.list_deliveries(resumer="prefect") == []

        retried = store.retry_delivery(due.id, actor="admin", channel="cli")
        assert (retried.state, retried.attempts) == ("pending", 1)
        assert retried.created_at >= failed.created_at  # the give-up clock starts again
        [again] = store.due_deliveries(datetime.now(timezone.utc) + timedelta(seconds=1))
        assert again.id == due.id
        with pytest.raises(Conflict):
            store.retry_delivery(due.id, actor="admin", channel="cli")
        with pytest.raises(NotFound):
            store.retry_delivery("dl_missing", actor="admin", channel="cli")
        [entry] = [a for a in store.audit(event.id) if a.action == "delivery_retried"]
        assert (entry.actor, entry.channel) == ("admin", "cli")
        assert entry.data["previous_error"] == "resumer unavailable: gone"
        assert store.verify_audit().ok

    def test_tokens(self, store: Store) -> None:
        assert store.count_tokens() == 0
        who = Identity(user="rita", groups=("ops", "data"), role="reviewer")
        token = store.create_token(who)
        assert store.identity_for(token) == who
        assert store.identity_for(token + "x") is None
        assert store.count_tokens() == 1
        assert store.create_token(who) != token

    def test_tokens_have_a_public_id_a_name_and_a_list(self, store: Store) -> None:
        audited = store.verify_audit().entries
        until = datetime.now(timezone.utc) + timedelta(days=30)
        token = store.create_token(Identity(user="rita", role="admin"), name="laptop",
                                   expires_at=until, actor="root", channel="api")
        assert store.verify_audit().entries == audited + 1  # token.created
        info = store.find_token(token)
        assert info is not None and info.id == token_id(token)
        assert token_id(token).startswith("tk_") and token[3:] not in info.id
        assert (info.identity.user, info.identity.role, info.name) == ("rita", "admin", "laptop")
        assert info.expires_at is not None and abs(info.expires_at - until) < timedelta(seconds=1)
        assert info.last_used_at is None and info.revoked_at is None
        assert info.state(datetime.now(timezone.utc)) == "active"
        assert store.get_token(info.id) == info
        assert store.get_token("tk_0000000000000000") is None
        assert store.find_token("so_unknown") is None
        other = store.create_token(Identity(user="flow", role="workflow"))
        assert [t.id for t in store.list_tokens()] == [info.id, token_id(other)]

    def test_the_first_token_is_minted_once(self, store: Store) -> None:
        first = store.create_first_token(Identity(user="admin", role="admin"), name="first")
        assert first is not None and store.identity_for(first) == Identity(user="admin",
                                                                           role="admin")
        assert store.create_first_token(Identity(user="eve", role="admin")) is None
        assert store.count_tokens() == 1

    def test_revoked_and_expired_tokens_stand_for_nobody(self, store: Store) -> None:
        now = datetime.now(timezone.utc)
        kept = store.create_token(Identity(user="kept"))
        gone = store.create_token(Identity(user="gone"))
        old = store.create_token(Identity(user="old"), expires_at=now - timedelta(seconds=1))
        assert store.identity_for(old) is None
        old_info = store.find_token(old)
        assert old_info is not None and old_info.state(now) == "expired"

        generation = store.token_generation()
        audited = store.verify_audit().entries
        revoked = store.revoke_token(token_id(gone), actor="root", channel="cli")
        assert revoked.revoked_at is not None and revoked.state(now) == "revoked"
        assert store.identity_for(gone) is None
        assert store.identity_for(kept) is not None
        assert store.token_generation() != generation
        assert store.verify_audit().entries == audited + 1  # token.revoked
        again = store.revoke_token(token_id(gone), actor="root", channel="cli")
        assert again.revoked_at == revoked.revoked_at  # a second revoke changes nothing
        assert store.verify_audit().entries == audited + 1
        with pytest.raises(NotFound):
            store.revoke_token("tk_nope", actor="root", channel="cli")

    def test_last_use_only_moves_forward(self, store: Store) -> None:
        token = store.create_token(Identity(user="rita"))
        later = datetime.now(timezone.utc).replace(microsecond=0)
        store.touch_tokens({token_id(token): later})
        store.touch_tokens({token_id(token): later - timedelta(minutes=5), "tk_nope": later})
        info = store.find_token(token)
        assert info is not None and info.last_used_at == later

    def test_login_links_are_single_use_and_expire(self, store: Store) -> None:
        now = datetime.now(timezone.utc)
        token = store.create_token(Identity(user="rita"))
        code = store.create_login_link(token_id(token), expires_at=now + timedelta(minutes=15))
        assert code not in (token, token_id(token))
        shown = store.login_link(code)
        assert shown is not None and shown.identity.user == "rita"
        assert store.login_link(code) == shown  # reading spends nothing
        used = store.use_login_link(code, session_expires_at=now + timedelta(days=1))
        assert used is not None
        session_id, session = used
        assert session.token.id == token_id(token)
        assert store.session_for(session_id) == session
        assert store.use_login_link(code, session_expires_at=now + timedelta(days=1)) is None
        assert store.login_link(code) is None

        stale = store.create_login_link(token_id(token), expires_at=now - timedelta(seconds=1))
        assert store.login_link(stale) is None
        assert store.use_login_link(stale, session_expires_at=now + timedelta(days=1)) is None
        with pytest.raises(NotFound):
            store.create_login_link("tk_nope", expires_at=now + timedelta(minutes=1))

    def test_sessions_end_at_logout_expiry_and_revocation(self, store: Store) -> None:
        now = datetime.now(timezone.utc)
        token = store.create_token(Identity(user="rita"))
        session_id, session = store.create_session(token_id(token),
                                                   expires_at=now + timedelta(days=1))
        assert session_id not in (token, token_id(token))
        assert len(session.csrf) >= 32
        assert store.session_for(session_id) == session
        assert store.session_for(session_id + "x") is None
        other_id, other = store.create_session(token_id(token),
                                               expires_at=now + timedelta(days=1))
        assert other.csrf != session.csrf
        store.end_session(session_id)
        assert store.session_for(session_id) is None
        assert store.session_for(other_id) is not None
        store.end_session("never-was")

        stale_id, _ = store.create_session(token_id(token), expires_at=now - timedelta(seconds=1))
        assert store.session_for(stale_id) is None
        link = store.create_login_link(token_id(token), expires_at=now + timedelta(minutes=5))
        store.revoke_token(token_id(token), actor="root", channel="cli")
        assert store.session_for(other_id) is None
        assert store.login_link(link) is None
        with pytest.raises(NotFound):
            store.create_session("tk_nope", expires_at=now + timedelta(days=1))

    def test_audit_trail_is_chained(self, store: Store) -> None:
        event = make_event()
        store.create_event(event, channel="api")
        store.decide(event.id, _approved(), response=Response(
            id="rs_a", event_id=event.id, by="rita", value=True, channel="cli", at=T0))
        trail = store.audit(event.id)
        assert [(a.action, a.actor, a.channel) for a in trail] == [
            ("created", "flow", "api"), ("responded", "rita", "cli"),
            ("approved", "rita", "api")]
        assert len({a.hash for a in trail}) == 3
        report = store.verify_audit()
        assert report.ok and report.entries >= 3

    def test_audit_covers_responses_decisions_deliveries_and_tokens(self, store: Store) -> None:
        store.create_token(Identity(user="ci-flow", role="workflow"))
        event = make_event(source={"orchestrator": "webhook"})
        store.create_event(event, channel="api")
        store.decide(event.id, _approved(), response=Response(
            id="rs_cov", event_id=event.id, by="rita", value=True, channel="web", at=T0),
            deliver_via="webhook")
        [due] = store.due_deliveries(T0 + timedelta(days=1))
        store.delivery_attempted(due.id, state="pending", error="connection refused",
                                 next_attempt_at=T0)
        store.delivery_attempted(due.id, state="failed", error="gave up")
        trail = store.audit(event.id)
        assert [a.action for a in trail] == ["created", "responded", "approved",
                                             "delivery_attempted", "delivery_failed"]
        assert trail[1].data["row"]["table"] == "responses"
        sealed = trail[2].data["row"]
        assert (sealed["table"], sealed["id"], len(sealed["sha256"])) == ("decisions", event.id,
                                                                          64)
        assert {"value", "outcome", "by", "channel", "at"} <= set(sealed["columns"])
        assert trail[2].data["delivery"]["resumer"] == "webhook"
        assert [a.data["attempts"] for a in trail[3:]] == [1, 2]
        head = store.audit_head()
        assert head is not None and head.seq == max(a.seq for a in trail)
        report = store.verify_audit(anchor=head)
        assert report.ok and report.problems == () and report.head == head
        store.check_audit_key()  # the key the log was written with

    def test_verify_with_an_anchor_ahead_of_the_log_fails(self, store: Store) -> None:
        store.record("note", actor="ops", channel="cli")
        head = store.audit_head()
        assert head is not None
        ahead = AuditAnchor(seq=head.seq + 5, hash=head.hash)
        [problem] = store.verify_audit(anchor=ahead).problems
        assert problem.kind == "anchor" and f"ends at entry {head.seq}" in problem.message
        other = AuditAnchor(seq=head.seq, hash="0" * 64)
        [problem] = store.verify_audit(anchor=other).problems
        assert problem.kind == "anchor" and not store.verify_audit(anchor=other).ok

    def test_secrets_are_stable(self, store: Store) -> None:
        assert store.secret("csrf") == store.secret("csrf") != store.secret("other")
        assert len(store.secret("csrf")) >= 32

    def test_created_decided_by_a_policy(self, store: Store) -> None:
        event = make_event()
        decision = Decision(value=True, outcome=Outcome.approved, by="policy", channel="policy",
                            at=T0, rule="route[0]: confidence >= 0.9 -> approve")
        stored, created = store.create_event(event, channel="api", decision=decision,
                                             notes=["policy file rule 0: quorum raised to 2"])
        assert created and stored.status == "decided" and stored.decision == decision
        assert [a.action for a in store.audit(event.id)] == ["created", "policy", "approved"]

    def test_responses_accumulate_until_settle_decides(self, store: Store) -> None:
        event = make_event()
        store.create_event(event, channel="api")

        def two_approvals(current: Event, responses: list[Response]) -> Decision | None:
            assert current.id == event.id
            if len({r.by for r in responses if r.value is True}) < 2:
                return None
            return _approved(by=responses[-1].by)

        def answer(by: str) -> Event:
            return store.add_response(event.id, Response(
                id=f"rs_{by}", event_id=event.id, by=by, value=True, channel="web", at=T0),
                settle=two_approvals, deliver_via="webhook")

        assert answer("ann").status == "pending"
        with pytest.raises(AlreadyAnswered):
            answer("ann")
        done = answer("bob")
        assert done.status == "decided" and done.decision is not None
        assert done.decision.by == "bob" and [r.by for r in done.responses] == ["ann", "bob"]
        assert [d.resumer for d in done.deliveries] == ["webhook"]
        with pytest.raises(AlreadyDecided):
            answer("cid")

    def test_a_response_built_from_the_event_in_the_transaction(self, store: Store) -> None:
        event = make_event(source={"orchestrator": "webhook"})
        store.create_event(event, channel="api")
        seen: list[list[str]] = []

        def two_approvals(current: Event, responses: list[Response]) -> Decision | None:
            return _approved(by=responses[-1].by) if len(responses) == 2 else None

        def answer_as(by: str, refuse: bool = False) -> Any:
            def build(current: Event) -> Response:
                seen.append([r.by for r in current.responses])
                if refuse:
                    raise InvalidInput("value", "true or false", "maybe")
                return Response(id=f"rs_{by}", event_id=current.id, by=by, value=True,
                                channel="web", at=T0)
            return build

        def route(current: Event) -> str | None:
            return current.source.orchestrator

        assert store.add_response(event.id, answer_as("ann"), settle=two_approvals,
                                  deliver_via=route).status == "pending"
        with pytest.raises(InvalidInput):
            store.add_response(event.id, answer_as("bob", refuse=True), settle=two_approvals)
        after = store.get_event(event.id)
        assert after is not None and [r.by for r in after.responses] == ["ann"]
        done = store.add_response(event.id, answer_as("cid"), settle=two_approvals,
                                  deliver_via=route)
        assert seen == [[], ["ann"], ["ann"]]
        assert done.status == "decided" and [d.resumer for d in done.deliveries] == ["webhook"]
        assert done == store.get_event(event.id)  # what it returns is what is stored
        with pytest.raises(NotFound):
            store.add_response("ev_missing", answer_as("dan"), settle=two_approvals)

    def test_relayed_answers_keep_their_attribution(self, store: Store) -> None:
        # issue 13, part 3: who relayed an answer, and that nobody verified the person
        event = make_event(source={"orchestrator": "argo"})
        store.create_event(event, channel="api")
        relayed = Response(id="rs_relay", event_id=event.id, by="argo:alice", value=True,
                           channel="argo", at=T0, relayed_from="argo", verified=False)

        def as_given(current: Event, responses: list[Response]) -> Decision:
            last = responses[-1]
            return Decision(value=True, outcome=Outcome.approved, by=last.by,
                            channel=last.channel, at=T0, relayed_from=last.relayed_from,
                            verified=last.verified)

        done = store.add_response(event.id, relayed, settle=as_given)
        stored = store.get_event(event.id)
        assert stored is not None and done == stored
        assert stored.responses == [relayed]
        assert stored.decision is not None
        assert (stored.decision.relayed_from, stored.decision.verified) == ("argo", False)
        trail = store.audit(event.id)
        assert trail[1].data["verified"] is False and trail[1].data["relayed_from"] == "argo"
        plain = make_event()
        store.create_event(plain, channel="api")
        store.decide(plain.id, _approved())
        decided = store.get_event(plain.id)
        assert decided is not None and decided.decision is not None
        assert (decided.decision.relayed_from, decided.decision.verified) == (None, True)

    def test_escalation_tiers(self, store: Store) -> None:
        policy = Policy(escalate=[
            Tier(after=timedelta(seconds=60), assignees=["group:leads"]),
            Tier(after=timedelta(seconds=120), assignees=["group:vp"], keep_previous=False)])
        event = make_event(assignees=["ann"], policy=policy)
        store.create_event(event, channel="api")
        assert store.next_escalation() == T0 + timedelta(seconds=60)
        assert store.claim_escalations(T0 + timedelta(seconds=59), 100, lease=30) == []
        [due] = store.claim_escalations(T0 + timedelta(seconds=60), 100, lease=30)
        assert due.escalation_level == 0
        moved = store.escalate(event.id, level=0, assignees=["ann", "group:leads"], data={})
        assert moved.escalation_level == 1 and moved.assignees == ["ann", "group:leads"]
        assert {e.id for e in store.list_events(visible_to={"group:leads"}).events} == {event.id}
        with pytest.raises(AlreadyDecided):
            store.escalate(event.id, level=0, assignees=[], data={})
        assert store.next_escalation() == T0 + timedelta(seconds=120)
        last = store.escalate(event.id, level=1, assignees=["group:vp"], data={"why": "late"})
        assert last.assignees == ["group:vp"] and store.next_escalation() is None
        assert store.list_events(visible_to={"ann"}).events == []
        assert store.audit(event.id)[-1].data["why"] == "late"

    def test_a_due_tier_is_claimed_once_until_its_lease_ends(self, store: Store) -> None:
        # issue 14/16: the sweep (of this hub or another) never takes a tier already in hand
        tier = Policy(escalate=[Tier(after=timedelta(seconds=60), assignees=["b"])])
        first, second = make_event(policy=tier), make_event(policy=tier)
        for event in (first, second):
            store.create_event(event, channel="api")
        due = T0 + timedelta(seconds=61)
        [taken] = store.claim_escalations(due, 1, lease=30)
        assert taken.escalation_level == 0 and taken.policy == tier
        [other] = store.claim_escalations(due, 10, lease=30)
        assert {taken.id, other.id} == {first.id, second.id}
        assert store.claim_escalations(due, 10, lease=30) == []  # both in hand
        assert store.claim_escalations(due + timedelta(seconds=29), 10, lease=30) == []
        store.escalate(taken.id, level=0, assignees=["b"], data={})  # applied: no longer due
        # the other's hub died before applying it: due again once its lease is over
        [again] = store.claim_escalations(due + timedelta(seconds=31), 10, lease=30)
        assert again.id == other.id and again.escalation_level == 0
        store.decide(other.id, _approved())
        assert store.claim_escalations(due + timedelta(days=1), 10, lease=30) == []

    def test_a_stopping_hub_gives_back_the_tiers_it_took(self, store: Store) -> None:
        tier = Policy(escalate=[Tier(after=timedelta(seconds=60), assignees=["b"]),
                                Tier(after=timedelta(seconds=120), assignees=["c"])])
        first, second = make_event(policy=tier), make_event(policy=tier)
        for event in (first, second):
            store.create_event(event, channel="api")
        due = T0 + timedelta(seconds=61)
        taken = [TakenTier(e.id, e.escalation_level, due + timedelta(seconds=30))
                 for e in store.claim_escalations(due, 10, lease=30)]
        assert sorted(t.event_id for t in taken) == sorted([first.id, second.id])
        store.escalate(first.id, level=0, assignees=["b"], data={})  # applied before the stop
        later = due + timedelta(seconds=2)
        assert store.release_escalations(taken, later) == 1  # only the one not applied
        [again] = store.claim_escalations(later, 10, lease=30)  # any hub takes it at once
        assert again.id == second.id and again.escalation_level == 0
        # the first taking is stale now: giving it back must not shorten the new lease
        assert store.release_escalations(taken, later) == 0
        assert store.claim_escalations(later, 10, lease=30) == []
        store.decide(second.id, _approved())
        assert store.release_escalations(
            [TakenTier(second.id, 0, later + timedelta(seconds=30))], later) == 0

    # the optional Batching capability ---------------------------------------------------
    def test_batched_writes_share_a_commit_and_fail_alone(self, store: Store) -> None:
        batching = _batching(store)
        first, doomed, last = make_event(), make_event(), make_event()

        def create_then_fail() -> None:
            store.create_event(doomed, channel="api")
            raise InvalidInput("value", "something else", "this")

        release, held = hold_writer(batching)
        created = [batching.submit(store.create_event, e, channel="api") for e in (first, last)]
        failed = batching.submit(create_then_fail)
        assert not failed.done() and not any(f.done() for f in created)  # nothing before the commit
        release.set()
        held.result(10)
        assert all(f.result(10)[1] is True for f in created)
        with pytest.raises(InvalidInput):
            failed.result(10)
        assert store.get_event(doomed.id) is None  # its savepoint was rolled back
        assert {e.id for e in store.list_events().events} == {first.id, last.id}
        assert [a.action for a in store.audit(doomed.id)] == []

    def test_a_batched_write_reads_its_own_batch(self, store: Store) -> None:
        batching = _batching(store)
        event = make_event()

        def create_and_read() -> Event | None:
            store.create_event(event, channel="api")
            return store.get_event(event.id)

        seen = batching.submit(create_and_read).result(10)
        assert seen is not None and seen.id == event.id

    def test_racing_batched_answers_make_exactly_one_decision(self, store: Store) -> None:
        batching = _batching(store)
        event = make_event()
        store.create_event(event, channel="api")

        def first_decides(current: Event, responses: list[Response]) -> Decision | None:
            return _approved(by=responses[-1].by)

        release, held = hold_writer(batching)
        futures = [batching.submit(store.add_response, event.id, Response(
            id=f"rs_{n}", event_id=event.id, by=f"r{n}", value=True, channel="api", at=T0),
            settle=first_decides) for n in range(20)]
        release.set()
        held.result(10)
        outcomes = [f.exception(10) for f in futures]
        assert outcomes[0] is None and all(isinstance(e, AlreadyDecided) for e in outcomes[1:])
        got = store.get_event(event.id)
        assert got is not None and got.decision is not None and got.decision.by == "r0"
        assert [r.by for r in got.responses] == ["r0"]

    # issue 18: what /metrics reads from the store --------------------------------------
    def test_pending_summary_by_priority_age_and_sla(self, store: Store) -> None:
        fresh = make_event(at=T0 - timedelta(seconds=30))
        old = make_event(at=T0 - timedelta(seconds=400), priority="urgent")
        late = make_event(at=T0 - timedelta(seconds=50), timeout=10)
        done = make_event(at=T0 - timedelta(seconds=5000))
        for event in (fresh, old, late, done):
            store.create_event(event, channel="api")
        store.decide(done.id, _approved(at=T0))
        summary = store.pending_summary(T0, [60, 300], {"urgent": 300, "normal": 3600})
        assert summary.counts == {("normal", 0): 2, ("urgent", 2): 1}
        assert summary.oldest == {"normal": late.created_at, "urgent": old.created_at}
        assert summary.past_sla == {"urgent": 1, "normal": 1}  # old by its SLA, late by deadline
        assert summary.deliveries_pending == 0
        empty = store.pending_summary(T0, [], {})
        assert empty.counts == {("normal", 0): 2, ("urgent", 0): 1} and empty.past_sla == {
            "normal": 1}

    def test_audit_completeness_counts_recent_decisions(self, store: Store) -> None:
        before = make_event()
        after = make_event()
        for event in (before, after):
            store.create_event(event, channel="api")
        store.decide(before.id, _approved(at=T0 - timedelta(hours=2)))
        store.decide(after.id, _approved(at=T0))
        assert store.audit_completeness(T0 - timedelta(hours=1)) == (1, 1)
        assert store.audit_completeness(T0 - timedelta(hours=3)) == (2, 2)
        assert store.audit_completeness(T0 + timedelta(hours=1)) == (0, 0)
