"""A real `signoff serve --db postgresql://...` on a real PostgreSQL server: create, answer, a
long-poll woken by the decision, racing answers, and a restart that keeps everything."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import Client
from signoff.testing import HubProcess

from ..conftest import PG_AUDIT_KEY, PG_SIGNING_KEYS
from ..postgres import PostgresServer, find_bin, wide_text


@pytest.fixture
def pg_hub(pg_url: str, tmp_path: Path) -> Iterator[HubProcess]:
    process = HubProcess(pg_url, env={"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY,
                                      "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS,
                                      "SIGNOFF_SWEEP_INTERVAL": "0.2"}, log_dir=tmp_path)
    with process:
        yield process


def _call(hub: HubProcess, method: str, path: str, token: str, **kwargs: Any) -> httpx.Response:
    return httpx.request(method, f"{hub.url}/api/v1{path}", headers=hub.headers(token),
                         timeout=30, **kwargs)


def test_the_password_never_reaches_the_command_line(pg_hub: HubProcess) -> None:
    assert pg_hub.process is not None
    assert ":" not in pg_hub.database.split("://", 1)[1].split("@", 1)[0]  # no user:password
    cmdline = Path(f"/proc/{pg_hub.process.pid}/cmdline").read_bytes().decode()
    assert pg_hub.env["PGPASSWORD"] not in cmdline


def test_the_whole_url_may_come_from_a_file(postgres: PostgresServer, pg_url: str,
                                           tmp_path: Path) -> None:
    """SIGNOFF_DATABASE_FILE: the URL with its password in a file (a mounted secret); with no
    PGPASSWORD and no password file, the hub's commands reach the database by it alone."""
    import os
    import subprocess
    import sys

    user, rest = pg_url.split("://", 1)[1].split("@", 1)
    secret = tmp_path / "database-url"
    secret.write_text(f"postgresql://{user}:{postgres.password}@{rest}\n")
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("SIGNOFF_", "PG"))}
    env.update(SIGNOFF_AUDIT_KEY=PG_AUDIT_KEY, SIGNOFF_SIGNING_KEYS=PG_SIGNING_KEYS,
               PGPASSFILE=str(tmp_path / "no-pgpass"))

    def migrate(**extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-c", "from signoff.cli import run; run()",
                               "migrate"], capture_output=True, text=True, timeout=120,
                              env={**env, **extra})

    done = migrate(SIGNOFF_DATABASE_FILE=str(secret))
    assert done.returncode == 0, done.stderr
    assert "migrated" in done.stdout
    assert postgres.password not in done.stdout + done.stderr
    without = migrate(SIGNOFF_DB=pg_url)  # the same URL without its password: refused
    assert without.returncode == 1 and "cannot connect" in without.stderr


def test_create_answer_wake_and_restart(pg_hub: HubProcess) -> None:
    flow = pg_hub.token("flow", role="workflow")
    rita = pg_hub.token("rita", role="reviewer")
    created = _call(pg_hub, "POST", "/events", flow,
                    json={"name": "deploy", "prompt": "Ship v3?", "key": "run-1",
                          "context": {"rows": 12}, "timeout": 600})
    assert created.status_code == 201, created.text
    event = created.json()
    again = _call(pg_hub, "POST", "/events", flow,
                  json={"name": "deploy", "prompt": "Ship v3?", "key": "run-1",
                        "context": {"rows": 12}})
    assert again.status_code == 200 and again.json()["id"] == event["id"]
    other = _call(pg_hub, "POST", "/events", flow,
                  json={"name": "deploy", "prompt": "other", "key": "run-1"})
    assert other.status_code == 409 and other.json()["error"]["changed"] == ["prompt", "context"]

    async def scenario() -> tuple[httpx.Response, float, float]:
        async with httpx.AsyncClient(base_url=pg_hub.url, timeout=30) as client:
            waiter = asyncio.create_task(client.get(
                f"/api/v1/events/{event['id']}/decision", params={"wait": 20},
                headers=pg_hub.headers(flow)))
            await asyncio.sleep(0.3)
            assert not waiter.done()
            answered = await client.post(f"/api/v1/events/{event['id']}/responses",
                                         json={"value": True, "comment": "ok"},
                                         headers=pg_hub.headers(rita))
            at = time.perf_counter()
            assert answered.status_code == 200, answered.text
            return await waiter, at, time.perf_counter()

    got, answered_at, woken_at = asyncio.run(scenario())
    assert got.status_code == 200 and got.json()["outcome"] == "approved"
    assert woken_at - answered_at < 0.5  # woken by the decision, not by a poll
    assert _call(pg_hub, "POST", f"/events/{event['id']}/responses", rita,
                 json={"value": False}).status_code == 409

    pg_hub.restart()
    after = _call(pg_hub, "GET", f"/events/{event['id']}", flow)
    assert after.status_code == 200
    stored = after.json()
    assert stored["status"] == "decided" and stored["decision"]["by"] == "rita"
    assert stored["context"] == {"rows": 12} and len(stored["responses"]) == 1
    trail = _call(pg_hub, "GET", f"/events/{event['id']}/audit", flow).json()["entries"]
    assert [line["action"] for line in trail] == ["created", "responded", "approved"]


def test_a_line_logged_by_store_code_on_the_loop_carries_the_request_id(
        pg_url: str, tmp_path: Path) -> None:
    """Store code runs on the event loop (in a greenlet, not a worker thread): what it logs (the
    giving of a balanced event to a member) still names the request that caused it."""
    import json

    env = {"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY, "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS,
           "SIGNOFF_LOG_FORMAT": "json",
           "SIGNOFF_GROUP_MEMBERS": json.dumps({"ops": ["ann", "bob"]})}
    with HubProcess(pg_url, env=env, log_dir=tmp_path) as hub:
        flow = hub.token("flow", role="workflow")
        made = httpx.post(f"{hub.url}/api/v1/events",
                          headers={**hub.headers(flow), "X-Request-Id": "trace-42"},
                          json={"name": "n", "prompt": "?", "assignees": ["group:ops"],
                                "policy": {"balance": "round_robin"}}, timeout=30)
        assert made.status_code == 201, made.text
        event_id = made.json()["id"]

        def events_lines() -> list[dict[str, Any]]:
            return [line for line in (json.loads(text) for text in
                                      hub.log_path.read_text().splitlines()
                                      if text.startswith("{"))
                    if line.get("logger") == "signoff.events" and line["event_id"] == event_id]

        deadline = time.monotonic() + 10
        while {line["msg"] for line in events_lines()} != {"created", "assigned"}:
            assert time.monotonic() < deadline, events_lines()
            time.sleep(0.05)
    assert {line["msg"]: line["request_id"] for line in events_lines()} == {
        "created": "trace-42", "assigned": "trace-42"}


def test_a_decision_committed_after_its_503_still_wakes_the_waiters(pg_url: str,
                                                                    tmp_path: Path) -> None:
    """An answer the database holds longer than ``database_timeout`` is answered 503, but the
    call runs on: when it commits the decision, the long-poll on it is woken at once (not at
    the end of its wait), as it is for any decision."""
    import psycopg

    env = {"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY, "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS,
           "SIGNOFF_DATABASE_TIMEOUT": "1"}
    with HubProcess(pg_url, env=env, log_dir=tmp_path) as hub, \
            concurrent.futures.ThreadPoolExecutor(1) as pool, \
            psycopg.connect(pg_url, autocommit=True) as locker:
        flow, rita = hub.token("flow", role="workflow"), hub.token("rita")
        event_id = _call(hub, "POST", "/events", flow, json={"name": "n", "prompt": "?"}
                         ).json()["id"]
        waiting = pool.submit(_call, hub, "GET", f"/events/{event_id}/decision", flow,
                              params={"wait": 25})
        time.sleep(0.5)  # the long-poll is parked
        locker.execute("SELECT pg_advisory_lock(%s)", (0x5166_0FF3,))  # the audit lock
        answered = _call(hub, "POST", f"/events/{event_id}/responses", rita,
                         json={"value": True})
        assert answered.status_code == 503, answered.text  # held past database_timeout
        released = time.monotonic()
        locker.execute("SELECT pg_advisory_unlock_all()")  # the answer commits now
        woken = waiting.result(timeout=30)
        assert woken.status_code == 200, woken.text
        assert woken.json()["outcome"] == "approved"
        assert time.monotonic() - released < 5  # woken by the decision, not by its wait's end


def test_racing_answers_make_exactly_one_decision(pg_hub: HubProcess) -> None:
    flow = pg_hub.token("flow", role="workflow")
    admin = pg_hub.admin_token or ""
    event = _call(pg_hub, "POST", "/events", flow,
                  json={"name": "n", "prompt": "How many?", "input": {"kind": "int"}}).json()

    async def race() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=pg_hub.url, timeout=30) as client:
            return await asyncio.gather(*(client.post(
                f"/api/v1/events/{event['id']}/responses", json={"value": n},
                headers=pg_hub.headers(admin)) for n in range(10)))

    codes = sorted(a.status_code for a in asyncio.run(race()))
    assert codes == [200] + [409] * 9
    final = _call(pg_hub, "GET", f"/events/{event['id']}", flow).json()
    assert len(final["responses"]) == 1


def test_a_deadline_is_applied_by_the_sweeper(pg_hub: HubProcess) -> None:
    flow = pg_hub.token("flow", role="workflow")
    event = _call(pg_hub, "POST", "/events", flow,
                  json={"name": "n", "prompt": "Quick?", "timeout": 1,
                        "on_timeout": "reject"})
    assert event.status_code == 201, event.text
    got = _call(pg_hub, "GET", f"/events/{event.json()['id']}/decision", flow,
                params={"wait": 10})
    assert got.status_code == 200, got.text
    assert (got.json()["outcome"], got.json()["by"]) == ("rejected", "timeout")


@contextlib.contextmanager
def _own_server_hub(tmp_path: Path, **env: str) -> Iterator[tuple[PostgresServer, HubProcess]]:
    """A hub on a PostgreSQL server of its own (for a test that stops or freezes the server)."""
    bin_dir = find_bin()
    if bin_dir is None:
        pytest.skip("no PostgreSQL server installed (apt-get install postgresql-15)")
    with PostgresServer(bin_dir).running() as server:
        url = server.create_database()
        with HubProcess(url, env={"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY,
                                  "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS,
                                  "PGPASSWORD": server.password, **env},
                        log_dir=tmp_path) as hub:
            yield server, hub


def test_postgresql_down_is_503_with_retry_after_then_the_hub_recovers(
        tmp_path: Path) -> None:
    with _own_server_hub(tmp_path) as (server, hub):  # its own server: this test stops it
        flow = hub.token("flow", role="workflow")
        rita = hub.token("rita", role="reviewer")
        event = _call(hub, "POST", "/events", flow,
                      json={"name": "n", "prompt": "Go?"}).json()

        # a workflow's client: it waits through the outage (a 503 says "come back", and
        # it does, after Retry-After) and gets the decision made after it
        client = Client(hub.url, flow, retry_for=60)
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            waiter = pool.submit(client.wait, event["id"], 60)
            parked_by = time.monotonic() + 10
            while httpx.get(f"{hub.url}/healthz").json()["waiting"] < 1:
                assert time.monotonic() < parked_by and not waiter.done()
                time.sleep(0.02)
            server.stop("immediate")  # as a crash would
            started = time.monotonic()
            down = _call(hub, "POST", "/events", flow, json={"name": "n", "prompt": "?"})
            took = time.monotonic() - started
            assert down.status_code == 503, down.text
            assert int(down.headers["Retry-After"]) >= 1
            assert down.json()["error"]["code"] == "store_unavailable"
            assert took < 10  # an answer, not a hang
            server.start()
            deadline = time.monotonic() + 30
            while True:  # the hub reconnects by itself
                answered = _call(hub, "POST", f"/events/{event['id']}/responses", rita,
                                 json={"value": True})
                if answered.status_code != 503 or time.monotonic() > deadline:
                    break
            assert answered.status_code == 200, answered.text
            decision = waiter.result(timeout=60)
        client.close()
        assert decision.outcome == "approved" and decision.by == "rita"


def _server_processes(server: PostgresServer) -> list[int]:
    """The postmaster and every process it started."""
    postmaster = int((server.data / "postmaster.pid").read_text().split()[0])
    children = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # gone meanwhile
        if int(fields[1]) == postmaster:
            children.append(int(stat.parent.name))
    return [*children, postmaster]


def test_a_database_that_stops_answering_is_503_within_database_timeout(
        tmp_path: Path) -> None:
    """A frozen server keeps its connections open and answers nothing (a hung host looks the
    same): each request gives up after ``database_timeout`` with 503, and once the server
    answers again, so does the hub."""
    import os
    import signal

    with _own_server_hub(tmp_path, SIGNOFF_DATABASE_TIMEOUT="2") as (server, hub):
        flow = hub.token("flow", role="workflow")
        assert _call(hub, "GET", "/events", flow).status_code == 200
        frozen = _server_processes(server)
        for pid in frozen:
            os.kill(pid, signal.SIGSTOP)
        try:
            for method, path, body in (("POST", "/events", {"name": "n", "prompt": "?"}),
                                       ("GET", "/events", None)):
                started = time.monotonic()
                late = _call(hub, method, path, flow, json=body)
                took = time.monotonic() - started
                assert late.status_code == 503, late.text
                assert late.json()["error"]["code"] == "store_unavailable"
                assert "did not answer within 2 s" in late.json()["error"]["message"]
                assert int(late.headers["Retry-After"]) >= 1
                assert 1.5 < took < 8, took
            assert httpx.get(f"{hub.url}/readyz", timeout=10).status_code == 503
        finally:
            for pid in reversed(frozen):
                os.kill(pid, signal.SIGCONT)
        deadline = time.monotonic() + 30
        while _call(hub, "GET", "/events", flow).status_code != 200:
            assert time.monotonic() < deadline, "the hub did not answer again"
            time.sleep(0.2)
        made = _call(hub, "POST", "/events", flow, json={"name": "n", "prompt": "?"})
        assert made.status_code == 201, made.text


def test_a_database_that_only_reads_is_503_and_not_ready(postgres: PostgresServer,
                                                          pg_hub: HubProcess) -> None:
    """A failover that lands on a standby (or a database set read-only) refuses every write:
    the hub says 503 (come back), not 500, and `/readyz` takes the replica out of rotation."""
    name = pg_hub.database.rsplit("/", 1)[1]
    flow = pg_hub.token("flow", role="workflow")

    def read_only(on: bool) -> None:
        postgres.sql(f"ALTER DATABASE {name} SET default_transaction_read_only = "
                     f"{'on' if on else 'off'}")
        postgres.sql(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname"
                     f" = '{name}' AND pid <> pg_backend_pid()")  # the setting is per session

    read_only(True)
    try:
        deadline = time.monotonic() + 30
        while True:  # (a first call may meet a connection the termination cut: 503 too)
            refused = _call(pg_hub, "POST", "/events", flow, json={"name": "n", "prompt": "?"})
            assert refused.status_code == 503, refused.text
            assert refused.json()["error"]["code"] == "store_unavailable"
            assert refused.headers["Retry-After"]
            if "ReadOnlySqlTransaction" in refused.json()["error"]["message"]:
                break
            assert time.monotonic() < deadline, refused.text
        assert httpx.get(f"{pg_hub.url}/readyz", timeout=10).status_code == 503
        assert _call(pg_hub, "GET", "/events", flow).status_code == 200  # reads still work
    finally:
        read_only(False)
    deadline = time.monotonic() + 30
    while httpx.get(f"{pg_hub.url}/readyz", timeout=10).status_code != 200:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    made = _call(pg_hub, "POST", "/events", flow, json={"name": "n", "prompt": "?"})
    assert made.status_code == 201, made.text


def test_a_batch_item_the_database_refuses_is_that_items_result_alone(
        pg_hub: HubProcess) -> None:
    """One item of a batch that PostgreSQL itself refuses (a key that, with its requester,
    is too large to index: the request validation lets it through) is that item's 422; the
    items before and after it are created, and the answer says exactly which were."""
    flow = pg_hub.token(wide_text(200, 1), role="workflow")
    items = [{"name": "gate", "prompt": f"Ship {key}?", "key": key}
             for key in ("g1", "g2", wide_text(500, 2), "g3")]
    answer = _call(pg_hub, "POST", "/events:batch", flow, json={"events": items})
    assert answer.status_code == 200, answer.text
    results = answer.json()["results"]
    assert [r["status"] for r in results] == [201, 201, 422, 201]
    assert results[2]["error"]["field"] == "key" and "event" not in results[2]
    made = {r["event"]["key"]: r["event"]["id"] for r in results if r["status"] == 201}
    # exactly g1, g2 and g3 are stored: each comes back as itself (200), nothing else exists
    again = _call(pg_hub, "POST", "/events:batch", flow,
                  json={"events": [items[0], items[1], items[3]]}).json()["results"]
    assert [(r["status"], r["event"]["id"]) for r in again] == \
        [(200, made["g1"]), (200, made["g2"]), (200, made["g3"])]
    listed = _call(pg_hub, "GET", "/events", flow, params={"limit": 50}).json()["events"]
    assert sorted(e["id"] for e in listed) == sorted(made.values())


def test_an_argo_workflow_name_too_long_is_a_422_not_a_503(pg_url: str, tmp_path: Path) -> None:
    """3,000 random hex characters as the workflow made a resume target PostgreSQL could not
    index, answered 503 "cannot be reached" (Retry-After: 2) for ever: it is a 422 naming the
    param, what it may be and what came, and nothing is stored."""
    import secrets

    env = {"SIGNOFF_AUDIT_KEY": PG_AUDIT_KEY, "SIGNOFF_SIGNING_KEYS": PG_SIGNING_KEYS,
           "SIGNOFF_RESUMERS__ARGO__URL": "http://127.0.0.1:9"}  # configured, never reached
    with HubProcess(pg_url, env=env, log_dir=tmp_path) as hub:
        flow = hub.token("flow", role="workflow")
        params = {"namespace": "argo", "workflow": secrets.token_hex(1500)}
        refused = _call(hub, "POST", "/events", flow,
                        json={"name": "gate", "prompt": "Ship it?",
                              "source": {"orchestrator": "argo", "params": params}})
        assert refused.status_code == 422, refused.text
        assert "retry-after" not in refused.headers
        error = refused.json()["error"]
        assert error["field"] == "source.params.workflow"
        assert (error["expected"], error["got"]) == ("at most 253 characters (a Kubernetes name)",
                                                     "3000 characters")
        assert _call(hub, "GET", "/events", flow).json()["events"] == []
