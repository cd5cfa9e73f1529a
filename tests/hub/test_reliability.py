"""Deadlines across restarts, webhook deliveries across a receiver outage, waits across a hub
restart: each against a real `signoff serve`, stopped and started for real."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Client, Decision, EventCreate, Identity, Outcome, Policy, Tier
from signoff.hub import Hub, load_settings
from signoff.store import SQLiteStore, open_store
from signoff.store.contract import hold_writer, make_event
from signoff.testing import HubProcess, free_port, until

SECRET = "shared-secret"


class Receiver:
    """A real HTTP receiver on loopback that records what it is sent."""

    def __init__(self, port: int, status: int = 200) -> None:
        self.port = port
        self.status = status
        self.calls: list[tuple[dict[str, str], bytes]] = []
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.calls.append((dict(self.headers), body))
                self.send_response(receiver.status)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@pytest.fixture
def fast_hub(tmp_path: Path) -> Iterator[HubProcess]:
    env = {"SIGNOFF_SWEEP_INTERVAL": "0.2", "SIGNOFF_DELIVERY_BACKOFF": "0.2",
           "SIGNOFF_DELIVERY_BACKOFF_MAX": "0.5", "SIGNOFF_RESUMERS__WEBHOOK__SECRET": SECRET,
           # a lease of 6 s (2 x timeout + timeout): a delivery a stop could not give back
           # (the store failing just then) is still made within the tests' 15 s
           "SIGNOFF_DELIVERY_TIMEOUT": "2",
           # the receivers here are on loopback, which egress refuses unless allowed
           "SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
           "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'}
    with HubProcess(tmp_path / "hub.db", env=env) as hub:
        yield hub



_until = until


def test_deadline_applies_each_on_timeout(fast_hub: HubProcess) -> None:
    client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
    cases = {
        "default": ({"kind": "int", "default": 7}, "timed_out", 7),
        "reject": ({"kind": "approval"}, "rejected", False),
        "fail": ({"kind": "approval"}, "expired", None),
    }
    made = {action: client.create(name=f"t-{action}", prompt="p", input=spec, timeout=0.5,
                                  on_timeout=action)
            for action, (spec, _, _) in cases.items()}
    for action, event in made.items():
        decision = client.wait(event.id, timeout=10)
        _, outcome, value = cases[action]
        assert (decision.outcome.value, decision.value, decision.by) == (outcome, value, "timeout")
    trail = client.audit(made["fail"].id)
    assert [(e["action"], e["actor"], e["channel"]) for e in trail][-1] == (
        "expired", "timeout", "sweeper")


def test_deadline_passed_while_the_hub_was_down_is_caught_up(fast_hub: HubProcess) -> None:
    client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
    event = client.create(name="overnight", prompt="p", timeout=1.5, on_timeout="reject")
    fast_hub.stop()
    time.sleep(2.0)  # the deadline passes with no hub running
    started = time.monotonic()
    fast_hub.start()
    decision = client.wait(event.id, timeout=10)
    assert decision.outcome.value == "rejected" and decision.by == "timeout"
    assert time.monotonic() - started < 30


def test_webhook_is_retried_until_the_receiver_is_back(fast_hub: HubProcess) -> None:
    port = free_port()
    client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
    event = client.create(name="hooked", prompt="p", source={
        "orchestrator": "webhook", "params": {"url": f"http://127.0.0.1:{port}/signoff"}})
    admin = Client(fast_hub.url, fast_hub.admin_token)
    admin.respond(event.id, True, "go")

    # nobody listens yet: the delivery stays pending and records why
    def retried() -> Any:
        [delivery] = client.get(event.id).deliveries
        return delivery if delivery.attempts >= 3 else None

    delivery = _until(retried, 15, "three failed attempts")
    assert delivery.state == "pending" and "ConnectError" in (delivery.last_error or "")

    receiver = Receiver(port).start()
    try:
        _until(lambda: client.get(event.id).deliveries[0].state == "delivered", 15, "delivery")
    finally:
        receiver.stop()
    headers, body = receiver.calls[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Signoff-Signature"] == expected
    assert headers["X-Signoff-Event"] == event.id
    sent = json.loads(body)
    assert sent["event_id"] == event.id and sent["decision"]["value"] is True
    assert sent["decision"]["by"] == "admin"
    actions = [e["action"] for e in client.audit(event.id)]
    assert actions[-1] == "delivery_delivered"


def test_pending_delivery_survives_a_hub_restart(fast_hub: HubProcess) -> None:
    port = free_port()
    client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
    event = client.create(name="hooked", prompt="p", source={
        "orchestrator": "webhook", "params": {"url": f"http://127.0.0.1:{port}/"}})
    Client(fast_hub.url, fast_hub.admin_token).respond(event.id, False)
    _until(lambda: client.get(event.id).deliveries[0].attempts >= 1, 10, "a first attempt")
    fast_hub.stop()
    receiver = Receiver(port).start()
    try:
        fast_hub.start()
        _until(lambda: client.get(event.id).deliveries[0].state == "delivered", 15, "delivery")
        assert json.loads(receiver.calls[0][1])["decision"]["outcome"] == "rejected"
    finally:
        receiver.stop()


def test_receiver_refusing_for_good_fails_the_delivery_with_the_reason(
        fast_hub: HubProcess) -> None:
    port = free_port()
    receiver = Receiver(port, status=410).start()
    try:
        client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
        event = client.create(name="gone", prompt="p", source={
            "orchestrator": "webhook", "params": {"url": f"http://127.0.0.1:{port}/"}})
        Client(fast_hub.url, fast_hub.admin_token).respond(event.id, True)
        delivery = _until(lambda: next((d for d in client.get(event.id).deliveries
                                        if d.state == "failed"), None), 10, "a failed delivery")
        assert "410" in (delivery.last_error or "") and delivery.attempts == 1
    finally:
        receiver.stop()


def test_client_wait_rides_out_a_hub_restart(fast_hub: HubProcess) -> None:
    client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
    event = client.create(name="long", prompt="p")
    got: dict[str, Any] = {}
    waiter = threading.Thread(target=lambda: got.update(d=client.wait(event.id, timeout=60)))
    waiter.start()
    time.sleep(0.5)
    fast_hub.restart()
    assert waiter.is_alive()
    Client(fast_hub.url, fast_hub.admin_token).respond(event.id, True)
    waiter.join(30)
    assert got["d"].outcome.value == "approved"


def test_first_start_prints_the_login_url_once(tmp_path: Path) -> None:
    hub = HubProcess(tmp_path / "once.db")
    hub.start()
    assert hub.login_url is not None and hub.admin_token
    me = httpx.get(f"{hub.url}/api/v1/me", headers=hub.headers()).json()
    assert me == {"user": "admin", "groups": [], "role": "admin"}
    hub.stop()
    # the store has a token now: a second start prints no login URL, anywhere
    second = subprocess.Popen(
        [sys.executable, "-c", "from signoff.cli import run; run()", "serve", "--port",
         str(hub.port), "--db", hub.database], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True)
    try:
        _until(lambda: _healthy(hub.url), 60, "the second start")
    finally:
        second.terminate()
        out, err = second.communicate(timeout=15)
    assert "token=" not in out + err and "/login/link/" not in out + err
    assert hub.admin_token not in out + err
    assert "serving on" in err


def _healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


def test_an_answer_whose_request_is_cancelled_still_wakes_the_waiters(tmp_path: Path) -> None:
    """Once an answer is queued for the store's writer it is written, and the waiters hear of
    it, even if the request that sent it is cancelled meanwhile (a client gone, a shutdown)."""

    async def main() -> None:
        store = open_store(str(tmp_path / "hub.db"))
        assert isinstance(store, SQLiteStore)
        hub = Hub(load_settings(database=str(tmp_path / "hub.db")), store)
        flow = Identity(user="flow", role="workflow")
        rita = Identity(user="rita", role="reviewer")
        warm, _ = await hub.create(flow, EventCreate(name="warm", prompt="First?"), "api")
        await hub.respond(rita, warm.id, True, None, "api")  # its resumer is now loaded
        event, _ = await hub.create(flow, EventCreate(name="gate", prompt="Ship?"), "api")
        waiter = asyncio.create_task(hub.wait_decision(flow, event.id, 10))
        await asyncio.sleep(0.05)
        assert hub.waiting == 1
        release, held = hold_writer(store)  # the answer queues behind this
        answer = asyncio.create_task(hub.respond(rita, event.id, True, "ok", "api"))
        await asyncio.sleep(0.05)
        answer.cancel()
        release.set()
        decision = await asyncio.wait_for(waiter, 5)
        assert decision.by == "rita" and decision.value is True and decision.comment == "ok"
        with pytest.raises(asyncio.CancelledError):
            await answer
        stored = store.get_event(event.id)
        assert stored is not None and stored.decision == decision
        held.result(5)
        store.close()

    asyncio.run(main())


async def _stop_while_claiming(hub: Hub, store: Any, claim_name: str,
                               step: Callable[[], Coroutine[Any, Any, Any]]) -> None:
    """Run one ``step`` of a hub loop and stop the hub while the store's ``claim_name`` runs in
    its worker thread, as a SIGTERM lands while the loop waits for its claim."""
    claiming, finish = threading.Event(), threading.Event()
    claim = getattr(store, claim_name)

    def slow_claim(*args: Any) -> Any:
        taken = claim(*args)
        claiming.set()
        finish.wait(5)
        return taken

    setattr(store, claim_name, slow_claim)
    running = asyncio.create_task(step())
    assert await asyncio.to_thread(claiming.wait, 5)
    running.cancel()  # as stop() cancels the loop
    finish.set()
    with pytest.raises(asyncio.CancelledError):
        await running
    await hub.stop()


def test_deliveries_claimed_as_a_stop_cancels_the_claim_are_given_back(tmp_path: Path) -> None:
    """The stop lands while the dispatcher waits for its claim (taken in a worker thread, which
    finishes it): what it took is given back at once, not left leased for twice the delivery
    timeout. Before, only attempts already running were given back."""
    async def main() -> None:
        store = open_store(str(tmp_path / "hub.db"))
        hub = Hub(load_settings(database=str(tmp_path / "hub.db"),
                                egress_allow=["http://127.0.0.1:*"],
                                egress_allow_private=["127.0.0.1/32"]), store)
        flow = Identity(user="flow", role="workflow")
        events = [(await hub.create(flow, EventCreate(name="gate", prompt="Ship?", source={
            "orchestrator": "webhook", "params": {"url": "http://127.0.0.1:9/x"}}), "api"))[0]
            for _ in range(2)]
        for event in events:
            store.decide(event.id, Decision(value=True, outcome=Outcome.approved, by="rita",
                                            channel="api", at=hub.clock()),
                         deliver_via="webhook")
        await _stop_while_claiming(hub, store, "claim_deliveries", hub.dispatcher.dispatch)
        due = store.due_deliveries(hub.clock() + timedelta(seconds=1))
        assert sorted(d.event_id for d in due) == sorted(e.id for e in events)
        store.close()

    asyncio.run(main())


def test_tiers_claimed_as_a_stop_cancels_the_claim_are_given_back(tmp_path: Path) -> None:
    """The same for escalation tiers: taken with a lease of twice the decider's time and 30 s,
    given back at the stop, so another replica applies them at once."""
    async def main() -> None:
        store = open_store(str(tmp_path / "hub.db"))
        hub = Hub(load_settings(database=str(tmp_path / "hub.db")), store)
        tier = Policy(escalate=[Tier(after=timedelta(seconds=60), assignees=["b"])])
        event = make_event(policy=tier, at=hub.clock() - timedelta(minutes=5))
        store.create_event(event, channel="api")
        claim = store.claim_escalations
        await _stop_while_claiming(hub, store, "claim_escalations", hub.sweeper.sweep)
        [again] = claim(hub.clock() + timedelta(seconds=1), 10, 30)
        assert again.id == event.id and again.escalation_level == 0
        store.close()

    asyncio.run(main())


def test_a_stopping_hub_answers_its_parked_long_polls_at_once(fast_hub: HubProcess) -> None:
    """SIGTERM with long-polls parked: each gets its 204 at once (the client asks again) and
    the hub exits in a moment. uvicorn waits for requests in flight, so before, the hub held
    the SIGTERM for the longest wait (and HubProcess, like Kubernetes, killed it after 15 s)."""
    client = Client(fast_hub.url, fast_hub.token("flow", role="workflow"))
    event = client.create(name="parked", prompt="p")
    headers = {"Authorization": f"Bearer {fast_hub.admin_token}"}
    answers: list[httpx.Response] = []

    def park() -> None:
        answers.append(httpx.get(f"{fast_hub.url}/api/v1/events/{event.id}/decision",
                                 params={"wait": 60}, headers=headers, timeout=90))

    parked = [threading.Thread(target=park) for _ in range(3)]
    for thread in parked:
        thread.start()
    _until(lambda: httpx.get(f"{fast_hub.url}/healthz").json()["waiting"] == 3, 10,
           "three parked long-polls")
    began = time.monotonic()
    fast_hub.stop()
    took = time.monotonic() - began
    for thread in parked:
        thread.join(timeout=10)
    assert [a.status_code for a in answers] == [204, 204, 204]
    assert took < 5, f"the hub took {took:.1f} s to stop"
