"""Durability under load: ``kill -9`` the hub while ``--clients`` clients create (one by one and
in batches) and answer events; after a restart on the same database, every acknowledged
creation and every acknowledged decision must be there, and the audit log must verify.

An answer counts as acknowledged when the client read its 2xx (201/200 for a creation, each
201/200 item of a batch, 200 for an answer). Requests in flight at the kill may or may not have
been written; they are not counted. The hub writes with group commit (``synchronous=FULL``, a
batch fsync'd before any of its answers), so the count of lost acknowledged writes must be 0.

Run: ``python bench/hub_durability.py [--seconds 3] [--clients 16] [--rounds 3] [--json]``
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import (
    EVENTS,
    NO_LIMITS,
    RawConnection,
    Report,
    event_body,
    fast_loop,
    hub_env,
    parser,
)

from signoff.store import open_store
from signoff.testing import HubProcess


class Load:
    """What the clients were told was written."""

    def __init__(self) -> None:
        self.created: set[str] = set()
        self.decided: set[str] = set()
        self.pending: list[str] = []
        self.errors = 0


async def drive(url: str, workflow: str, reviewer: str, clients: int, load: Load,
                stop: asyncio.Event) -> None:
    """Run the mixed load until ``stop`` is set or the hub is gone."""
    counter = iter(range(10**9))

    async def creator(conn: RawConnection) -> None:
        while not stop.is_set():
            if random.random() < 0.2:
                items = [event_body(next(counter)) for _ in range(50)]
                answer = await conn.request("POST", f"{EVENTS}:batch", {"events": items})
                if answer.status_code == 200:
                    for result in answer.json()["results"]:
                        if result["status"] in (200, 201):
                            load.created.add(result["event"]["id"])
                            load.pending.append(result["event"]["id"])
                continue
            answer = await conn.request("POST", EVENTS, event_body(next(counter)))
            if answer.status_code == 201:
                load.created.add(answer.json()["id"])
                load.pending.append(answer.json()["id"])

    async def responder(conn: RawConnection) -> None:
        while not stop.is_set():
            if not load.pending:
                await asyncio.sleep(0.001)
                continue
            event_id = load.pending.pop()
            answer = await conn.request("POST", f"{EVENTS}/{event_id}/responses",
                                        {"value": True})
            if answer.status_code == 200 and answer.json()["status"] == "decided":
                load.decided.add(event_id)

    async def guarded(work: asyncio.Future[None] | asyncio.Task[None]) -> None:
        try:
            await work
        except (OSError, asyncio.IncompleteReadError, ValueError):
            load.errors += 1  # the hub was killed under this request

    conns = [RawConnection(url, {"Authorization": f"Bearer {workflow}"})
             for _ in range(clients // 2)]
    conns += [RawConnection(url, {"Authorization": f"Bearer {reviewer}"})
              for _ in range(clients - clients // 2)]
    tasks = [asyncio.ensure_future(creator(c)) for c in conns[:clients // 2]]
    tasks += [asyncio.ensure_future(responder(c)) for c in conns[clients // 2:]]
    await asyncio.gather(*(guarded(t) for t in tasks))
    for c in conns:
        with contextlib.suppress(Exception):
            await c.close()


def one_round(database: Path, env: dict[str, str], clients: int, seconds: float,
              workflow: str | None, reviewer: str | None,
              admin: str | None) -> tuple[Load, int, int, str, str, str | None]:
    """One kill -9 under load; returns (load, lost creations, lost decisions, tokens...)."""
    hub = HubProcess(database, env=env)
    hub.admin_token = admin
    hub.start(timeout=60)
    assert hub.process is not None
    workflow = workflow or hub.token("durable-flow", role="workflow")
    reviewer = reviewer or hub.token("durable-reviewer", role="reviewer")
    load = Load()

    async def run() -> None:
        stop = asyncio.Event()
        driving = asyncio.ensure_future(drive(hub.url, workflow, reviewer, clients, load, stop))
        await asyncio.sleep(seconds)
        assert hub.process is not None
        os.kill(hub.process.pid, signal.SIGKILL)  # mid-load: requests are in flight
        stop.set()
        await driving

    asyncio.run(run())
    hub.process.wait()
    hub.stop()
    store = open_store(str(database))
    try:
        lost_created = lost_decided = 0
        for event_id in load.created:
            event = store.get_event(event_id)
            if event is None:
                lost_created += 1
            elif event_id in load.decided and (event.decision is None
                                               or event.decision.value is not True):
                lost_decided += 1
        lost_decided += sum(1 for e in load.decided if e not in load.created)
    finally:
        store.close()
    return load, lost_created, lost_decided, workflow, reviewer, hub.admin_token


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--seconds", type=float, default=3.0, help="load before the kill (3)")
    cli.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    cli.add_argument("--rounds", type=int, default=3, help="kill -9 rounds on one database (3)")
    args = cli.parse_args()
    if not 2 <= args.clients <= 1000 or not 1 <= args.rounds <= 100:
        cli.error("--clients must be 2..1000 and --rounds 1..100")
    fast_loop()
    report = Report("hub_durability")
    report.header(f"{args.rounds} rounds of kill -9 after {args.seconds:g} s of load, "
                  f"{args.clients} clients")
    where = Path(args.dir or tempfile.mkdtemp(prefix="signoff-bench-"))
    where.mkdir(parents=True, exist_ok=True)
    database = where / "hub.db"
    env = {**NO_LIMITS, **hub_env(args.hub_env)}
    workflow = reviewer = admin = None
    total_created = total_decided = lost_c = lost_d = 0
    for n in range(args.rounds):
        load, lc, ld, workflow, reviewer, admin = one_round(
            database, env, args.clients, args.seconds, workflow, reviewer, admin)
        total_created += len(load.created)
        total_decided += len(load.decided)
        lost_c, lost_d = lost_c + lc, lost_d + ld
        print(f"   round {n + 1}: {len(load.created)} creations and {len(load.decided)} "
              f"decisions acknowledged, {load.errors} requests cut by the kill; lost after "
              f"restart: {lc} creations, {ld} decisions")
    started = time.perf_counter()
    verify = subprocess.run(
        [str(Path(sys.executable).parent / "signoff"), "audit", "verify", "--db", str(database)],
        capture_output=True, text=True, env={**os.environ, **env}, timeout=600)
    print(f"   signoff audit verify: exit {verify.returncode} in "
          f"{time.perf_counter() - started:.1f} s: {verify.stdout.strip()[-300:]}"
          f"{verify.stderr.strip()[-300:]}")
    report.figures.update(rounds=args.rounds, seconds=args.seconds, clients=args.clients,
                          acknowledged_creations=total_created,
                          acknowledged_decisions=total_decided,
                          lost_creations=lost_c, lost_decisions=lost_d,
                          audit_verify_exit=verify.returncode)
    report.check("acknowledged creations lost after kill -9", lost_c == 0,
                 f"{lost_c} of {total_created}")
    report.check("acknowledged decisions lost after kill -9", lost_d == 0,
                 f"{lost_d} of {total_decided}")
    report.check("audit log verifies after kill -9", verify.returncode == 0,
                 f"exit {verify.returncode}")
    if not args.keep and args.dir is None:
        import shutil

        shutil.rmtree(where, ignore_errors=True)
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
