"""The store alone, without HTTP: creations and decisions per second, and the client CPU each
costs, with ``--threads`` writers in each of ``--processes`` processes (each process its own
store, as each hub replica has).

What it separates: how much of a hub's CPU per decision is the store's (its statements through
the database driver) and how far writes from several processes run side by side on one
database. On SQLite (the default, a temporary file) writes run one at a time whatever the
number of writers; on PostgreSQL (``--db``) creations and decisions run side by side and only
their audit entries are put in order as they commit.

Run: ``python bench/store_writes.py [--db postgresql://...] [--n 4000] [--threads 8]
[--processes 2]``
"""

from __future__ import annotations

import argparse
import concurrent.futures
import multiprocessing
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from _common import Report, die

from signoff._model import Decision, Event, Outcome, Response
from signoff.store import open_store
from signoff.store.contract import T0, make_event

KEY = b"bench-audit-key-32-bytes-long!!!"


def _settle(event: Event, responses: list[Response]) -> Decision:
    return Decision(value=True, outcome=Outcome.approved, by=responses[-1].by, channel="web",
                    at=responses[-1].at)


def _worker(target: str, n: int, threads: int, start: Any, done: Any, out: Any) -> None:
    store = open_store(target, audit_key=KEY)
    events = [make_event() for _ in range(n)]

    def create(event: Event) -> None:
        store.create_event(event, channel="api")

    def decide(event: Event) -> None:
        store.add_response(event.id, Response(
            id=f"rs_{event.id}", event_id=event.id, by="ann", value=True, channel="web", at=T0),
            settle=_settle, deliver_via="webhook")

    cpu: dict[str, float] = {}
    with concurrent.futures.ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: store.token_generation(), range(threads * 4)))  # warm the pool
        for phase, work in (("create", create), ("decide", decide)):
            start.wait()
            begin = time.process_time()
            list(pool.map(work, events))
            cpu[phase] = time.process_time() - begin
            done.wait()
    out.put(cpu)
    store.close()


def main() -> int:
    cli = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    cli.add_argument("--db", default=None, metavar="URL",
                     help="an empty PostgreSQL database (password in PGPASSWORD or PGPASSFILE); "
                          "default: a temporary SQLite file")
    cli.add_argument("--n", type=int, default=4000, help="events to create, then decide (4000)")
    cli.add_argument("--threads", type=int, default=8, help="writers in each process (8)")
    cli.add_argument("--processes", type=int, default=1, help="processes, each a store (1)")
    cli.add_argument("--json", action="store_true",
                     help="also write the figures to bench/results/store_writes.json")
    args = cli.parse_args()
    if args.n < args.processes or args.threads < 1:
        die("--n must be at least --processes, and --threads at least 1")
    report = Report("store_writes")
    with tempfile.TemporaryDirectory(prefix="signoff-bench-") as folder:
        target = args.db or str(Path(folder) / "store.db")
        open_store(target, audit_key=KEY).close()  # migrated once, before the writers start
        report.header(f"{'PostgreSQL' if args.db else 'SQLite'}, {args.processes} process(es) "
                      f"x {args.threads} threads, {args.n} events")
        ctx = multiprocessing.get_context("spawn")
        start, done = ctx.Barrier(args.processes + 1), ctx.Barrier(args.processes + 1)
        out = ctx.Queue()
        share = [args.n // args.processes + (i < args.n % args.processes)
                 for i in range(args.processes)]
        workers = [ctx.Process(target=_worker, args=(target, k, args.threads, start, done, out))
                   for k in share]
        for worker in workers:
            worker.start()
        walls = {}
        for phase in ("create", "decide"):
            start.wait(timeout=120)
            begin = time.perf_counter()
            done.wait(timeout=600)
            walls[phase] = time.perf_counter() - begin
        cpus = [out.get(timeout=60) for _ in workers]
        for worker in workers:
            worker.join(timeout=30)
        for phase, noun in (("create", "creations"), ("decide", "decisions")):
            rate = args.n / walls[phase]
            cpu_ms = sum(c[phase] for c in cpus) / args.n * 1000
            print(f"   {noun}: {args.n} in {walls[phase]:.2f} s: {rate:,.0f}/s; "
                  f"client CPU {cpu_ms:.2f} ms each (all processes)")
            report.figures[phase] = {"per_second": round(rate), "cpu_ms": round(cpu_ms, 3)}
            report.info(f"{noun}/s, {args.processes} x {args.threads} writers",
                        f"{rate:,.0f}/s, {cpu_ms:.2f} ms client CPU each")
    return report.finish(write_json=args.json)


if __name__ == "__main__":
    sys.exit(main())
