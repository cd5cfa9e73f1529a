"""The five "the hub never stalls" cases of issue 14, shared by ``tests/hub/test_stall.py`` (which
asserts) and ``bench/hub_stall.py`` (which prints the figures).

Each case starts a real ``signoff serve`` (:class:`~signoff.testing.HubProcess`), starts one
slow or broken integration, and meanwhile:

- probes ``/healthz`` every 20 ms and a long-poll wake (a waiter parked on an event, woken by
  an answer) over and over, keeping the worst latency of each;
- watches a *witness* event whose escalation tier falls due 1 s and whose deadline 2.5 s after
  the trouble starts, and measures how late each is applied (the tier: the audit line's time;
  the deadline: when a parked waiter receives the timeout decision).

The cases: ``first-notification`` (apprise's first use), ``slow-decider`` (a fallback decider
that takes 10 s), ``hung-webhook`` (a delivery receiver that never answers),
``engine-unreachable`` (deliveries to an engine that never completes a connection, retried), ``notify-1000``
(1,000 escalation notifications falling due at once).
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

from signoff import Client
from signoff.testing import HubProcess, free_port

__all__ = ["CASES", "Figures", "Server", "run_case"]

TIER_AFTER = 1.0  # the witness's escalation tier, seconds after the trouble starts
DEADLINE_AFTER = 2.5  # and its deadline


class Server:
    """A loopback HTTP server that answers ``answer`` after ``delay`` seconds (``None``: never,
    until stopped); counts the requests it got."""

    def __init__(self, delay: float | None = 0.0, answer: Any = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.delay = delay
        self.answer = answer
        self.calls = 0
        self.released = threading.Event()
        self.lock = threading.Lock()
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Server:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer.lock:
                    outer.calls += 1
                outer.released.wait(outer.delay)  # None: until stop()
                if outer.released.is_set():
                    return  # stopping: the caller is gone
                body = json.dumps(outer.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 1024
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.released.set()
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()


@dataclass
class Figures:
    """What one case measured (seconds)."""

    case: str
    healthz_worst: float = 0.0
    wake_worst: float = 0.0
    answer_worst: float = 0.0
    healthz_p99: float = 0.0
    probes: int = 0
    tier_late: float | None = None
    deadline_late: float | None = None
    loop_lag_max: float | None = None
    notes: dict[str, Any] = field(default_factory=dict)

    @property
    def probe_worst(self) -> float:
        return max(self.healthz_worst, self.wake_worst)

    @property
    def deadline_worst(self) -> float | None:
        found = [x for x in (self.tier_late, self.deadline_late) if x is not None]
        return max(found) if found else None


class _Probe:
    """A separate process (so that this one's receivers and clients do not compete with it for
    the GIL) with two threads: one GETs ``/healthz`` every 20 ms, one parks a long-poll waiter
    on a fresh event, answers it, and times the wake-up (from the answer's 200 to the waiter's
    200, as ``bench/hub_waiters.py`` does) and the answer itself."""

    def __init__(self, hub: HubProcess, token: str) -> None:
        self.args = [sys.executable, "-m", "tests.hub.stall_cases", "probe", hub.url, token]
        self.healthz: list[float] = []
        self.wakes: list[float] = []
        self.answers: list[float] = []
        self.process: subprocess.Popen[str] | None = None

    def __enter__(self) -> _Probe:
        self.process = subprocess.Popen(self.args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        text=True, cwd=str(Path(__file__).parents[2]))
        assert self.process.stdout is not None
        if self.process.stdout.readline().strip() != "probing":
            raise AssertionError("the probe process did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        assert self.process is not None
        out, _ = self.process.communicate("stop\n", timeout=120)
        found = json.loads(out.strip().splitlines()[-1])
        self.healthz, self.wakes, self.answers = found["healthz"], found["wakes"], found["answers"]


def _probe_main(url: str, token: str) -> None:
    """The probe process: probe until a line arrives on stdin, then print the figures."""
    stop = threading.Event()
    healthz: list[float] = []
    wakes: list[float] = []
    answers: list[float] = []

    def probe_healthz() -> None:
        with httpx.Client(base_url=url, timeout=60) as http:
            while not stop.is_set():
                began = time.perf_counter()
                http.get("/healthz").raise_for_status()
                healthz.append(time.perf_counter() - began)
                stop.wait(0.02)

    def probe_wake() -> None:
        headers = {"Authorization": f"Bearer {token}"}
        with httpx.Client(base_url=url, timeout=60, headers=headers) as http, \
                httpx.Client(base_url=url, timeout=60, headers=headers) as waiter:
            while not stop.is_set():
                event_id = http.post("/api/v1/events",
                                     json={"name": "probe", "prompt": "wake?"}).json()["id"]
                woke: list[float] = []

                def wait(event_id: str = event_id, woke: list[float] = woke) -> None:
                    answer = waiter.get(f"/api/v1/events/{event_id}/decision",
                                        params={"wait": 30})
                    if answer.status_code == 200:
                        woke.append(time.perf_counter())

                thread = threading.Thread(target=wait, daemon=True)
                thread.start()
                # parked for real once the hub counts the waiter (a condition, not a sleep)
                deadline = time.monotonic() + 10
                while http.get("/healthz").json()["waiting"] < 1:
                    if time.monotonic() > deadline:
                        raise AssertionError("the probe's waiter never parked")
                    time.sleep(0.005)
                began = time.perf_counter()
                http.post(f"/api/v1/events/{event_id}/responses", json={"value": True})
                answered = time.perf_counter()
                thread.join(60)
                answers.append(answered - began)
                if woke:
                    wakes.append(max(woke[0] - answered, 0.0))
                stop.wait(0.02)

    threads = [threading.Thread(target=probe_healthz, daemon=True),
               threading.Thread(target=probe_wake, daemon=True)]
    for thread in threads:
        thread.start()
    print("probing", flush=True)
    sys.stdin.readline()
    stop.set()
    for thread in threads:
        thread.join(60)
    print(json.dumps({"healthz": healthz, "wakes": wakes, "answers": answers}), flush=True)


def _parse(at: str) -> float:
    return datetime.fromisoformat(at.replace("Z", "+00:00")).astimezone(timezone.utc).timestamp()


class _Witness:
    """An event whose tier and deadline must be applied on time whatever else is in flight."""

    def __init__(self, hub: HubProcess, token: str) -> None:
        self.client = Client(hub.url, token)
        self.hub = hub
        self.token = token
        started = time.time()
        self.event = self.client.create(
            name="witness", prompt="on time?", timeout=DEADLINE_AFTER,
            policy={"escalate": [{"after": TIER_AFTER, "assignees": ["group:later"]}]})
        self.created = _parse(self.event.created_at.isoformat())
        self.decided_at: float | None = None
        self.offset = started - self.created  # this process's clock against the hub's
        self.thread = threading.Thread(target=self._wait, daemon=True)
        self.thread.start()

    def _wait(self) -> None:
        with Client(self.hub.url, self.token) as client:
            decision = client.decision(self.event.id, wait=DEADLINE_AFTER + 30)
            if decision is not None:
                self.decided_at = time.time()

    def measure(self, figures: Figures) -> None:
        self.thread.join(DEADLINE_AFTER + 40)
        trail = self.client.audit(self.event.id)
        tier = [e for e in trail if e["action"] == "escalated"]
        if tier:
            figures.tier_late = _parse(tier[0]["at"]) - (self.created + TIER_AFTER)
        if self.decided_at is not None:
            figures.deadline_late = self.decided_at - (self.created + DEADLINE_AFTER)
        self.client.close()


@contextmanager
def _hub(tmp: Path, name: str, config: str = "", env: dict[str, str] | None = None
         ) -> Iterator[HubProcess]:
    path = tmp / f"{name}.toml"
    path.write_text(config)
    # the receivers here are on loopback, which egress refuses unless allowed
    loopback = {"SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
                "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]',
                "SIGNOFF_CREATE_RATE": "0"}  # a burst of 1,000 creations is the point
    hub = HubProcess(tmp / f"{name}.db", config=path, env={**loopback, **(env or {})})
    hub.start(timeout=60)
    try:
        yield hub
    finally:
        hub.stop()


Trouble = Callable[[HubProcess, Client], dict[str, Any]]


def _measure(hub: HubProcess, name: str, trouble: Trouble,
             after: Callable[[HubProcess, Client], dict[str, Any]] | None = None) -> Figures:
    figures = Figures(name)
    token = hub.token("stall-flow", role="admin")
    client = Client(hub.url, token)
    try:
        with _Probe(hub, token) as probe:
            figures.notes.update(trouble(hub, client))
            witness = _Witness(hub, token)
            witness.measure(figures)
            if after is not None:
                figures.notes.update(after(hub, client))
        figures.healthz_worst = max(probe.healthz, default=0.0)
        figures.wake_worst = max(probe.wakes, default=0.0)
        figures.answer_worst = max(probe.answers, default=0.0)
        ordered = sorted(probe.healthz)
        figures.healthz_p99 = ordered[int(len(ordered) * 0.99)] if ordered else 0.0
        figures.probes = len(probe.healthz) + len(probe.wakes)
        lag = httpx.get(f"{hub.url}/healthz").json().get("loop_lag")
        if lag is not None:
            figures.loop_lag_max = lag["max"]
    finally:
        client.close()
    return figures


def _until(check: Callable[[], Any], timeout: float, what: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"{what} did not happen within {timeout} s")


def case_first_notification(tmp: Path, env: dict[str, str] | None = None) -> Figures:
    """The hub's first notification (apprise's import and plugin load) while others work."""
    receiver = Server(answer={}).start()
    try:
        channel = f'[notify_channels]\nn = ["json://127.0.0.1:{receiver.port}/n"]\n'
        with _hub(tmp, "first-notification", channel, env=env) as hub:
            def trouble(hub: HubProcess, client: Client) -> dict[str, Any]:
                client.create(name="told", prompt="tell them", policy={"notify": ["n"]})
                return {}

            def after(hub: HubProcess, client: Client) -> dict[str, Any]:
                _until(lambda: receiver.calls >= 1, 30, "the first notification")
                return {"notified": receiver.calls}

            return _measure(hub, "first-notification", trouble, after)
    finally:
        receiver.stop()


def case_slow_decider(tmp: Path, env: dict[str, str] | None = None) -> Figures:
    """A fallback decider that takes 10 s to answer, asked just before the witness's tier."""
    decider = Server(delay=10.0, answer={"value": True, "comment": "slow but sure"}).start()
    config = f'[deciders.slow]\nurl = "{decider.url}/decide"\n'
    try:
        with _hub(tmp, "slow-decider", config, env=env) as hub:
            def trouble(hub: HubProcess, client: Client) -> dict[str, Any]:
                for _ in range(3):
                    client.create(name="hard", prompt="ask the machine", policy={
                        "escalate": [{"after": 0.2, "fallback": "slow"}]})
                _until(lambda: decider.calls >= 1, 10, "the decider being asked")
                return {}

            return _measure(hub, "slow-decider", trouble)
    finally:
        decider.stop()


def _delivered_on_time(healthy: Server, pending: list[str]) -> Callable[[HubProcess, Client],
                                                                       dict[str, Any]]:
    """Answer an event that delivers to a healthy receiver; time its delivery."""

    def after(hub: HubProcess, client: Client) -> dict[str, Any]:
        event = client.create(name="other", prompt="deliver me", source={
            "orchestrator": "webhook", "params": {"url": f"{healthy.url}/ok"}})
        began = time.perf_counter()
        client.respond(event.id, True)
        _until(lambda: healthy.calls >= 1, 60, "the healthy delivery")
        took = time.perf_counter() - began
        stuck = [client.get(i).deliveries for i in pending]
        return {"other_delivery": round(took, 3),
                "stuck_states": sorted({d.state for ds in stuck for d in ds}),
                "stuck_error": next((d.last_error for ds in stuck for d in ds if d.last_error),
                                    None)}

    return after


def case_hung_webhook(tmp: Path, env: dict[str, str] | None = None) -> Figures:
    """A webhook receiver that takes the request and never answers."""
    hung = Server(delay=None).start()
    healthy = Server().start()
    config = "[resumers.webhook]\ntimeout = 30\n"
    pending: list[str] = []
    try:
        with _hub(tmp, "hung-webhook", config, env={**(env or {}),
                                                    "SIGNOFF_DELIVERY_TIMEOUT": "2"}) as hub:
            def trouble(hub: HubProcess, client: Client) -> dict[str, Any]:
                for _ in range(5):
                    event = client.create(name="hung", prompt="deliver me", source={
                        "orchestrator": "webhook", "params": {"url": f"{hung.url}/hang"}})
                    client.respond(event.id, True)
                    pending.append(event.id)
                _until(lambda: hung.calls >= 1, 10, "the hung receiver being called")
                return {}

            return _measure(hub, "hung-webhook", trouble, _delivered_on_time(healthy, pending))
    finally:
        hung.stop()
        healthy.stop()


def case_engine_unreachable(tmp: Path, env: dict[str, str] | None = None) -> Figures:
    """Deliveries to an engine that does not answer a connection (a listening socket whose
    accept queue is full: the SYN is dropped, as on a dead host), retried with backoff."""
    healthy = Server().start()
    sink = socket.socket()
    sink.bind(("127.0.0.1", 0))
    sink.listen(0)
    address = sink.getsockname()
    fillers = []
    for _ in range(4):  # fill the accept queue: later connections hang in the handshake
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(address)
        fillers.append(filler)
    pending: list[str] = []
    try:
        with _hub(tmp, "engine-unreachable", "[resumers.webhook]\ntimeout = 30\n",
                  env={**(env or {}), "SIGNOFF_DELIVERY_TIMEOUT": "1",
                       "SIGNOFF_DELIVERY_BACKOFF": "0.1",
                       "SIGNOFF_DELIVERY_BACKOFF_MAX": "0.5"}) as hub:
            def trouble(hub: HubProcess, client: Client) -> dict[str, Any]:
                for _ in range(20):
                    event = client.create(name="gone", prompt="deliver me", source={
                        "orchestrator": "webhook",
                        "params": {"url": f"http://127.0.0.1:{address[1]}/engine"}})
                    client.respond(event.id, True)
                    pending.append(event.id)
                return {}

            return _measure(hub, "engine-unreachable", trouble,
                            _delivered_on_time(healthy, pending))
    finally:
        healthy.stop()
        for filler in fillers:
            filler.close()
        sink.close()


def case_notify_1000(tmp: Path, env: dict[str, str] | None = None, count: int = 1000) -> Figures:
    """1,000 events whose escalation tier, with a notification, falls due at the same moment."""
    receiver = Server(answer={}).start()
    try:
        channel = f'[notify_channels]\nbulk = ["json://127.0.0.1:{receiver.port}/bulk"]\n'
        with _hub(tmp, "notify-1000", channel, env=env) as hub:
            url = "bulk"  # the channel's name
            token = hub.token("bulk-flow", role="workflow")
            at = time.time() + 10.0 + count / 100  # after they are all created

            async def create_all() -> None:
                async with httpx.AsyncClient(base_url=hub.url, headers=hub.headers(token),
                                             timeout=60) as http:
                    gate = asyncio.Semaphore(16)

                    async def one(i: int) -> None:
                        async with gate:
                            tier = {"after": at - time.time(), "assignees": ["group:bulk"],
                                    "notify": [url]}
                            answer = await http.post("/api/v1/events", json={
                                "name": f"bulk-{i}", "prompt": "many",
                                "policy": {"escalate": [tier]}})
                            if answer.status_code != 201:
                                raise AssertionError(f"creating bulk-{i}: {answer.text}")

                    await asyncio.gather(*(one(i) for i in range(count)))

            asyncio.run(create_all())
            if time.time() > at - 0.5:
                raise AssertionError("creating the events took longer than planned")

            def trouble(hub: HubProcess, client: Client) -> dict[str, Any]:
                while time.time() < at - 0.2:  # the witness starts just before they fall due
                    time.sleep(0.01)
                return {}

            def after(hub: HubProcess, client: Client) -> dict[str, Any]:
                _until(lambda: receiver.calls >= count, 120, f"{count} notifications")
                return {"notified": receiver.calls, "all_sent_after": round(time.time() - at, 2)}

            return _measure(hub, "notify-1000", trouble, after)
    finally:
        receiver.stop()


CASES: dict[str, Callable[..., Figures]] = {
    "first-notification": case_first_notification,
    "slow-decider": case_slow_decider,
    "hung-webhook": case_hung_webhook,
    "engine-unreachable": case_engine_unreachable,
    "notify-1000": case_notify_1000,
}


def run_case(name: str, tmp: Path, env: dict[str, str] | None = None) -> Figures:
    """Run one case in its own hub; returns its figures."""
    return CASES[name](tmp, env=env)


if __name__ == "__main__" and sys.argv[1:2] == ["probe"]:
    _probe_main(sys.argv[2], sys.argv[3])
