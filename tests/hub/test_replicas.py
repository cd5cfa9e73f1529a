"""Several `signoff serve` processes on one real PostgreSQL database behave as one hub: a
long-poll on one replica is woken by a decision on another (also after its listening
connection was cut), racing answers end in one decision, each deadline is applied once by three
sweeping replicas, and a delivery held by a replica killed mid-call is made by another."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest

from signoff import Client
from signoff.store import token_id
from signoff.testing import HubProcess, free_port, until

from ..conftest import PG_AUDIT_KEY, PG_SIGNING_KEYS
from ..postgres import PostgresServer, find_bin
from .test_inbox import _frames
from .test_web import sign_in

LOOPBACK = {"SIGNOFF_EGRESS_ALLOW": '["http://127.0.0.1:*"]',
            "SIGNOFF_EGRESS_ALLOW_PRIVATE": '["127.0.0.1/32"]'}
DECIDED = {"approved", "rejected", "answered", "timed_out", "expired", "cancelled"}


@contextmanager
def replicas(url: str, tmp: Path, n: int, admin: str | None = None,
             **env: str) -> Iterator[list[HubProcess]]:
    """``n`` hubs on the database at ``url``, started one after another, stopped at the end
    (``admin``: the admin token of a store some hub started already)."""
    settings = {"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY, "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS,
                "SIGNOFF_SWEEP_INTERVAL": "0.2", **env}
    with ExitStack() as stack:
        hubs: list[HubProcess] = []
        for _ in range(n):
            hub = HubProcess(url, env=settings, log_dir=tmp)
            # a store that has its admin prints no login link again
            hub.admin_token = hubs[0].admin_token if hubs else admin
            stack.enter_context(hub)
            hubs.append(hub)
        yield hubs


def _wait_then_answer(waiter_hub: HubProcess, answer_hub: HubProcess, flow: str,
                      reviewer: str, event_id: str, before: Any = None) -> tuple[int, float]:
    """Park a long-poll on ``waiter_hub``, answer on ``answer_hub``; returns the long-poll's
    status and how long after the answer it came back."""
    async def scenario() -> tuple[int, float]:
        async with httpx.AsyncClient(timeout=30) as client:
            waiter = asyncio.create_task(client.get(
                f"{waiter_hub.url}/api/v1/events/{event_id}/decision", params={"wait": 20},
                headers=waiter_hub.headers(flow)))
            await asyncio.sleep(0.5)
            assert not waiter.done()
            if before is not None:
                await asyncio.to_thread(before)
            answered = await client.post(f"{answer_hub.url}/api/v1/events/{event_id}/responses",
                                         json={"value": True}, headers=answer_hub.headers(reviewer))
            at = time.perf_counter()
            assert answered.status_code == 200, answered.text
            got = await waiter
            assert got.status_code != 200 or got.json()["outcome"] == "approved"
            return got.status_code, time.perf_counter() - at

    return asyncio.run(scenario())


def test_a_long_poll_on_one_replica_is_woken_by_a_decision_on_another(
        pg_url: str, tmp_path: Path) -> None:
    with replicas(pg_url, tmp_path, 2) as (a, b):
        flow, rita = a.token("flow", role="workflow"), a.token("rita")
        for _ in range(3):
            event = Client(a.url, flow).create(name="deploy", prompt="Ship?")
            status, after = _wait_then_answer(a, b, flow, rita, event.id)
            assert status == 200
            assert after < 1.0, f"woken {after:.2f} s after the answer: by a poll, not a notice"


def test_a_cut_listening_connection_resyncs_and_misses_no_wake(
        pg_url: str, postgres: PostgresServer, tmp_path: Path) -> None:
    with replicas(pg_url, tmp_path, 2) as (a, b):
        flow, rita = a.token("flow", role="workflow"), a.token("rita")
        event = Client(a.url, flow).create(name="deploy", prompt="Ship?")
        database = pg_url.rsplit("/", 1)[1]

        def listeners(terminate: bool = False) -> int:
            with psycopg.connect(postgres.url(), autocommit=True) as admin:
                found = admin.execute(
                    f"SELECT {'pg_terminate_backend(pid)' if terminate else 'pid'}"
                    " FROM pg_stat_activity WHERE datname = %s"
                    " AND application_name = 'signoff-listen'", (database,)).fetchall()
            return len(found)

        def cut() -> None:  # every listening connection on this database: the notice is lost
            until(lambda: listeners() == 2, 10, "one listener per replica")
            assert listeners(terminate=True) == 2

        status, after = _wait_then_answer(a, b, flow, rita, event.id, before=cut)
        assert status == 200
        assert after < 10.0  # the listener reconnects within its backoff and re-reads
        until(lambda: "resyncing" in a.log_path.read_text(), 5, "the resync in A's log")


def test_racing_answers_on_two_replicas_end_in_exactly_one_decision(
        pg_url: str, tmp_path: Path) -> None:
    with replicas(pg_url, tmp_path, 2) as (a, b):
        flow = Client(a.url, a.token("flow", role="workflow"))
        rita, sam = a.token("rita"), a.token("sam")
        events = [flow.create(name="deploy", prompt=f"Ship {i}?") for i in range(15)]

        def answer(hub: HubProcess, token: str, event_id: str, value: bool) -> int:
            return httpx.post(f"{hub.url}/api/v1/events/{event_id}/responses",
                              json={"value": value}, headers=hub.headers(token),
                              timeout=30).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            races = [(pool.submit(answer, a, rita, e.id, True),
                      pool.submit(answer, b, sam, e.id, False)) for e in events]
            codes = [(x.result(), y.result()) for x, y in races]
        assert all(sorted(pair) == [200, 409] for pair in codes), codes
        for event, (rita_code, _) in zip(events, codes, strict=True):
            got = flow.get(event.id)
            assert got.decision is not None
            assert got.decision.by == ("rita" if rita_code == 200 else "sam")
            decided = [e for e in flow.audit(event.id) if e["action"] in DECIDED]
            assert len(decided) == 1, decided


def test_each_deadline_is_applied_once_by_three_replicas(pg_url: str, tmp_path: Path) -> None:
    with replicas(pg_url, tmp_path, 3) as hubs:
        flow = Client(hubs[0].url, hubs[0].token("flow", role="workflow"))
        events = [flow.create(name="deploy", prompt=f"Ship {i}?", timeout=1.5)
                  for i in range(12)]
        for event in events:
            got = until(lambda e=event: flow.get(e.id).decision, 30, "the timeout")
            assert (got.by, got.outcome.value) == ("timeout", "rejected"), got
        time.sleep(1.0)  # every replica has swept again since
        for event in events:
            decided = [e for e in flow.audit(event.id) if e["action"] in DECIDED]
            assert len(decided) == 1, decided


class _HangOnce:
    """A webhook receiver that holds its first call (the replica dies meanwhile) and answers
    every later one."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.calls = 0
        self.release = threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.calls += 1
                if outer.calls == 1:
                    outer.release.wait(60)
                    return
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()


def test_a_delivery_held_by_a_killed_replica_is_made_by_another(
        pg_url: str, tmp_path: Path) -> None:
    receiver = _HangOnce()
    # A's call must still hang when B is up and A is killed (B starts within the 8 s), and B
    # takes the delivery over when the lease of 2 * 8 + 8 s ends
    env = {**LOOPBACK, "SIGNOFF_DELIVERY_TIMEOUT": "8"}
    try:
        with replicas(pg_url, tmp_path, 1, **env) as (a,):
            admin = Client(a.url, a.admin_token)
            event = admin.create(name="hooked", prompt="p", source={
                "orchestrator": "webhook", "params": {"url": f"{receiver.url}/hook"}})
            admin.respond(event.id, True)
            until(lambda: receiver.calls == 1, 20, "replica A's delivery call")
            with replicas(pg_url, tmp_path, 1, admin=a.admin_token, **env) as (b,):
                time.sleep(1.0)  # B sweeps its outbox several times meanwhile
                assert receiver.calls == 1  # and leaves alone the delivery A holds
                a.stop(kill=True)  # SIGKILL, mid-call: A never records the attempt
                killed = time.monotonic()
                other = Client(b.url, a.admin_token)
                until(lambda: other.get(event.id).deliveries[0].state == "delivered", 45,
                      "replica B taking the delivery over")
                assert time.monotonic() - killed < 30
                assert receiver.calls == 2
                trail = [e["action"] for e in other.audit(event.id)]
                assert trail.count("delivery_delivered") == 1
    finally:
        receiver.stop()


def test_replicas_starting_together_on_a_new_database_mint_one_first_admin(
        pg_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY, "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS}
    hubs = [subprocess.Popen([sys.executable, "-c", "from signoff.cli import run; run()",
                              "serve", "--port", str(free_port()), "--db", pg_url],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                             env=env) for _ in range(3)]
    try:
        until(lambda: _count_tokens(pg_url) >= 1, 30, "a first admin")
        time.sleep(2.0)  # the others have started too (or lost the race) by now
        for hub in hubs:
            hub.terminate()
        printed = [hub.communicate(timeout=20)[0] for hub in hubs]
    finally:
        for hub in hubs:
            hub.kill()
    assert sum("one-time link" in out for out in printed) == 1, printed
    assert _count_tokens(pg_url) == 1


def _count_tokens(url: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute("SELECT COUNT(*) FROM tokens").fetchone()
    return int(row[0]) if row else 0


def test_a_replica_killed_under_load_loses_no_acknowledged_answer(
        pg_url: str, tmp_path: Path) -> None:
    with replicas(pg_url, tmp_path, 2) as (a, b):
        flow = Client(a.url, a.token("flow", role="workflow"))
        rita = a.token("rita")
        events = [e for e in flow.create_events(
            [{"name": "deploy", "prompt": f"Ship {i}?"} for i in range(180)])]
        ids = [e.id for e in events if not isinstance(e, Exception)]
        assert len(ids) == 180
        acknowledged: list[str] = []

        def answer(hub: HubProcess, event_id: str) -> None:
            try:
                got = httpx.post(f"{hub.url}/api/v1/events/{event_id}/responses",
                                 json={"value": True}, headers=hub.headers(rita), timeout=30)
            except httpx.HTTPError:
                return  # the replica died before it answered: not acknowledged
            if got.status_code == 200:
                acknowledged.append(event_id)

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            jobs = [pool.submit(answer, a if i % 2 else b, event_id)
                    for i, event_id in enumerate(ids)]
            until(lambda: len(acknowledged) >= 60, 60, "answers flowing")
            a.stop(kill=True)  # SIGKILL under load
            for job in jobs:
                job.result()
        assert len(acknowledged) >= 60
        survivor = Client(b.url, b.admin_token)
        for event_id in acknowledged:
            decision = survivor.get(event_id).decision
            assert decision is not None and decision.by == "rita", event_id


def test_postgresql_restarted_under_traffic_wakes_waiters_on_every_replica(
        tmp_path: Path) -> None:
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql-15)")
    with PostgresServer(bin_dir).running() as server:  # its own: this test stops it
        url = server.create_database()
        with replicas(url, tmp_path, 2, PGPASSWORD=server.password) as (a, b):
            flow, rita = a.token("flow", role="workflow"), a.token("rita")
            events = [Client(a.url, flow).create(name="n", prompt=f"Go {i}?") for i in range(4)]
            client = Client(a.url, flow, retry_for=90)
            with concurrent.futures.ThreadPoolExecutor(4) as pool:
                waiters = [pool.submit(client.wait, e.id, 90) for e in events]
                until(lambda: httpx.get(f"{a.url}/healthz").json()["waiting"] >= 4, 20,
                      "the long-polls parked on replica A")
                server.stop("immediate")  # as a crash would, under the waiters' feet
                down = httpx.post(f"{b.url}/api/v1/events", json={"name": "n", "prompt": "?"},
                                  headers=b.headers(flow), timeout=30)
                assert down.status_code == 503 and int(down.headers["Retry-After"]) >= 1
                server.start()
                for event in events:  # answered on replica B once the database is back
                    until(lambda e=event: httpx.post(
                        f"{b.url}/api/v1/events/{e.id}/responses", json={"value": True},
                        headers=b.headers(rita), timeout=30).status_code in (200, 409), 60,
                        "an answer on replica B after the restart")
                decisions = [w.result(timeout=60) for w in waiters]
            client.close()
            assert all(d.outcome == "approved" and d.by == "rita" for d in decisions)


def test_a_token_gets_its_rate_limit_in_all_whichever_replicas_it_calls(
        pg_url: str, tmp_path: Path) -> None:
    # a burst of 4 and a refill too slow to matter: across two replicas, 4 creations in all
    limits = {"SIGNOFF_CREATE_RATE": "0.01", "SIGNOFF_CREATE_BURST": "4"}
    with replicas(pg_url, tmp_path, 2, **limits) as hubs:
        until(lambda: all(httpx.get(f"{h.url}/healthz").json()["replicas"] == 2 for h in hubs),
              20, "each replica counting two hubs")
        flow = hubs[0].token("flow", role="workflow")
        codes = [httpx.post(f"{hubs[i % 2].url}/api/v1/events", headers=hubs[0].headers(flow),
                            json={"name": "n", "prompt": f"p{i}"}, timeout=30).status_code
                 for i in range(8)]
        assert sorted(codes) == [201] * 4 + [429] * 4, codes
        refused = httpx.post(f"{hubs[0].url}/api/v1/events", headers=hubs[0].headers(flow),
                             json={"name": "n", "prompt": "again"}, timeout=30).json()
        assert "create_rate" in refused["error"]["message"]
        assert "shared by 2 hubs" in refused["error"]["message"]


def test_the_live_inbox_on_one_replica_shows_an_event_created_on_another(
        pg_url: str, tmp_path: Path) -> None:
    # a recheck far away: only the other replica's notice can bring the event in time
    with replicas(pg_url, tmp_path, 2, SIGNOFF_LIVE_RECHECK_SECONDS="60") as (a, b):
        flow = a.token("flow", role="workflow")
        ivy = sign_in(b, a.token("ivy"), "ivy")  # signed in on replica B
        with ivy.client.stream("GET", "/live", timeout=30) as stream:
            assert stream.status_code == 200
            frames = _frames(stream.iter_lines())
            time.sleep(0.5)  # B's stream has read its first page
            began = time.monotonic()
            made = Client(a.url, flow).create(name="deploy", prompt="Ship?", assignees=["ivy"])
            assert next(frames) == ("inbox", {"added": [made.id], "removed": [], "pending": 1})
            assert time.monotonic() - began < 5


def test_a_token_revoked_on_one_replica_is_refused_at_once_by_another_under_load(
        pg_url: str, tmp_path: Path) -> None:
    # sixteen requests at a time share the token generation reads on replica B: still, every
    # request sent after the revocation's 200 (on replica A) is refused
    with replicas(pg_url, tmp_path, 2) as (a, b):
        token = a.token("rory")

        async def scenario() -> tuple[int, float, list[tuple[float, int]]]:
            seen: list[tuple[float, int]] = []
            stop = asyncio.Event()
            async with httpx.AsyncClient(base_url=b.url, headers=b.headers(token),
                                         timeout=30) as client:
                async def ask() -> None:
                    while not stop.is_set():
                        sent = time.monotonic()
                        seen.append((sent, (await client.get("/api/v1/me")).status_code))

                askers = [asyncio.create_task(ask()) for _ in range(16)]
                await asyncio.sleep(1.0)
                async with httpx.AsyncClient(base_url=a.url, headers=a.headers()) as admin:
                    gone = await admin.post(f"/api/v1/tokens/{token_id(token)}/revoke")
                revoked = time.monotonic()
                await asyncio.sleep(1.0)
                stop.set()
                await asyncio.gather(*askers)
            return gone.status_code, revoked, seen

        status, revoked, seen = asyncio.run(scenario())
    assert status == 200
    before = [code for sent, code in seen if sent < revoked]
    after = [code for sent, code in seen if sent > revoked]
    assert before.count(200) > 50, before  # the load ran, with the token cached
    assert after and set(after) == {401}, sorted(set(after))
