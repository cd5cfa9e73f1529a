"""Creation and decision throughput: ``--clients`` concurrent clients creating, then answering,
``--n`` events; then the batch endpoint.

Three timed phases, each with the hub's CPU measured for that phase alone:

1. creations: ``--clients`` workflows (asyncio tasks in this process, each on its own
   keep-alive connection) ``POST /api/v1/events`` until ``--n`` pending approval events exist.
   creations/s = n / elapsed. Every answer must be 201.
2. decisions: ``--clients`` responders take the event ids from one queue and
   ``POST /api/v1/events/{id}/responses`` until none are left. decisions/s = n / elapsed.
   Every answer must be 200 with the event decided.
3. batch creations (``--batch`` items per request, 0 skips it): ``--clients`` workflows send
   ``POST /api/v1/events:batch`` until ``--n`` more events exist. events/s = n / elapsed.

The client shares the machine's cores with the hub; the CPU seconds each side used during
the timed phase are printed so you can see who was busy. By default it is a minimal
keep-alive HTTP/1.1 client on uvloop (``--client raw``): httpx (``--client httpx``) spends
more CPU per request than the hub does, which on 2 cores measures the client.

With ``--db postgresql://... --replicas N``, N hubs share the database and the clients'
connections are spread over them in turn; the CPU figures add up every replica.

Run: ``python bench/hub_throughput.py [--n 3000] [--clients 16] [--json]``
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import Any

import httpx
from _common import (
    EVENTS,
    LockWaits,
    RawConnection,
    Report,
    bench_replicas,
    cpu_times,
    event_body,
    fast_loop,
    hub_env,
    parser,
    profiled,
    summarize,
)


def _connections(urls: list[str], headers: dict[str, str], clients: int) -> list[RawConnection]:
    """``clients`` keep-alive connections, spread over the replicas in turn."""
    return [RawConnection(urls[i % len(urls)], headers) for i in range(clients)]


async def create_all(urls: list[str], token: str, n: int, clients: int, budget: float,
                     client: str) -> tuple[float, list[str], list[float]]:
    """Create ``n`` pending events with ``clients`` concurrent workflows.

    Returns (elapsed, ids, latencies).
    """
    headers = {"Authorization": f"Bearer {token}"}
    ids: list[str] = []
    latencies: list[float] = []
    todo = iter(range(n))

    def check(i: int, status: int, answer: Any) -> None:
        if status != 201:
            raise RuntimeError(f"creating event {i}: {status} {answer.text[:200]}")
        ids.append(answer.json()["id"])

    if client == "raw":
        connections = _connections(urls, headers, clients)
        await asyncio.gather(*(c.request("GET", "/healthz") for c in connections))

        async def workflow(conn: RawConnection) -> None:
            for i in todo:
                sent = time.perf_counter()
                answer = await conn.request("POST", EVENTS, event_body(i))
                latencies.append(time.perf_counter() - sent)
                check(i, answer.status_code, answer)

        try:
            began = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(workflow(c) for c in connections)),
                                   timeout=budget)
            return time.perf_counter() - began, ids, latencies
        finally:
            await asyncio.gather(*(c.close() for c in connections))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=urls[0], timeout=60, limits=limits,
                                 headers=headers) as http:
        await asyncio.gather(*(http.get("/healthz") for _ in range(clients)))

        async def http_workflow() -> None:
            for i in todo:
                sent = time.perf_counter()
                answer = await http.post(EVENTS, json=event_body(i))
                latencies.append(time.perf_counter() - sent)
                check(i, answer.status_code, answer)

        began = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(http_workflow() for _ in range(clients))),
                               timeout=budget)
        return time.perf_counter() - began, ids, latencies


async def create_batches(urls: list[str], token: str, n: int, clients: int, size: int,
                         budget: float) -> tuple[float, int, list[float]]:
    """Create ``n`` events through the batch endpoint, ``size`` per request, ``clients`` at a
    time. Returns (elapsed, events created, latencies per request).
    """
    headers = {"Authorization": f"Bearer {token}"}
    latencies: list[float] = []
    made = 0
    starts = iter(range(0, n, size))
    connections = _connections(urls, headers, clients)
    await asyncio.gather(*(c.request("GET", "/healthz") for c in connections))

    async def workflow(conn: RawConnection) -> None:
        nonlocal made
        for start in starts:
            items = [event_body(1_000_000 + i) for i in range(start, min(start + size, n))]
            sent = time.perf_counter()
            answer = await conn.request("POST", f"{EVENTS}:batch", {"events": items})
            latencies.append(time.perf_counter() - sent)
            if answer.status_code != 200:
                raise RuntimeError(f"batch at {start}: {answer.status_code} {answer.text[:200]}")
            results = answer.json()["results"]
            bad = [r for r in results if r["status"] != 201]
            if len(results) != len(items) or bad:
                raise RuntimeError(f"batch at {start}: {len(results)} results, {bad[:1]}")
            made += len(results)

    try:
        began = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(workflow(c) for c in connections)),
                               timeout=budget)
        return time.perf_counter() - began, made, latencies
    finally:
        await asyncio.gather(*(c.close() for c in connections))


async def answer_all(urls: list[str], token: str, ids: list[str], clients: int, budget: float,
                     client: str) -> tuple[float, list[float]]:
    """Answer every event with ``clients`` concurrent responders; returns (elapsed, latencies)."""
    headers = {"Authorization": f"Bearer {token}"}
    queue = iter(ids)
    latencies: list[float] = []

    def check(event_id: str, status: int, answer: Any) -> None:
        if status != 200 or answer.json()["status"] != "decided":
            raise RuntimeError(f"{event_id}: {status} {answer.text[:200]}")

    if client == "raw":
        connections = _connections(urls, headers, clients)
        # open every connection before the clock starts
        await asyncio.gather(*(c.request("GET", "/healthz") for c in connections))

        async def responder(conn: RawConnection) -> None:
            for event_id in queue:
                sent = time.perf_counter()
                answer = await conn.request("POST", f"{EVENTS}/{event_id}/responses",
                                            {"value": True})
                latencies.append(time.perf_counter() - sent)
                check(event_id, answer.status_code, answer)

        try:
            began = time.perf_counter()
            await asyncio.wait_for(asyncio.gather(*(responder(c) for c in connections)),
                                   timeout=budget)
            return time.perf_counter() - began, latencies
        finally:
            await asyncio.gather(*(c.close() for c in connections))

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=urls[0], timeout=60, limits=limits,
                                 headers=headers) as http:
        await asyncio.gather(*(http.get("/healthz") for _ in range(clients)))

        async def http_responder() -> None:
            for event_id in queue:
                sent = time.perf_counter()
                answer = await http.post(f"{EVENTS}/{event_id}/responses", json={"value": True})
                latencies.append(time.perf_counter() - sent)
                check(event_id, answer.status_code, answer)

        began = time.perf_counter()
        await asyncio.wait_for(asyncio.gather(*(http_responder() for _ in range(clients))),
                               timeout=budget)
        return time.perf_counter() - began, latencies


class Phase:
    """The hubs' (every replica's) and this process's CPU seconds over one timed phase."""

    def __init__(self, pids: list[int]) -> None:
        self.pids = pids

    def _times(self) -> tuple[float, float]:
        split = [cpu_times(pid) for pid in self.pids]
        return sum(u for u, _ in split), sum(s for _, s in split)

    def __enter__(self) -> Phase:
        self._own, self._split = time.process_time(), self._times()
        return self

    def __exit__(self, *exc: object) -> None:
        self.own = time.process_time() - self._own
        self.user, self.sys = (a - b for a, b in zip(self._times(), self._split, strict=True))
        self.hub = self.user + self.sys

    def lines(self, elapsed: float, n: int, what: str) -> float:
        """Print the CPU figures; returns hub CPU per ``what`` in milliseconds."""
        print(f"   CPU during the phase: hub {self.hub:.1f} s ({self.hub / elapsed:.0%} of one "
              f"core; user {self.user:.1f} s, system {self.sys:.1f} s), this client "
              f"{self.own:.1f} s ({self.own / elapsed:.0%} of one core)")
        per = self.hub / n * 1000
        print(f"   hub CPU per {what}: {per:.2f} ms (one event loop: "
              f"{1000 / max(per, 1e-6):.0f}/s if it had a core to itself)")
        return per


def _profile_path(base: str | None, phase: str) -> str | None:
    if base is None:
        return None
    stem, dot, ext = base.rpartition(".")
    return f"{stem}-{phase}.{ext}" if dot else f"{base}-{phase}"


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--n", type=int, default=3000,
                     help="events to create, then decide (default 3000)")
    cli.add_argument("--clients", type=int, default=16, help="concurrent clients (16)")
    cli.add_argument("--batch", type=int, default=500,
                     help="items per batch request in the third phase (500; 0 skips it)")
    cli.add_argument("--budget", type=float, default=300,
                     help="give up when a timed phase takes longer (seconds)")
    cli.add_argument("--client", choices=("raw", "httpx"), default="raw",
                     help="raw: a minimal keep-alive HTTP/1.1 client on uvloop (default; "
                          "leaves the CPU to the hub); httpx: httpx.AsyncClient")
    cli.add_argument("--profile", metavar="PATH", default=None,
                     help="record the hub with py-spy during each timed phase (raw format; "
                          "PATH gets -create/-decide/-batch before its extension)")
    args = cli.parse_args()
    if not 1 <= args.n <= 1_000_000 or not 1 <= args.clients <= 1000:
        cli.error("--n must be 1..1000000 and --clients 1..1000")
    if not 0 <= args.batch <= 500:
        cli.error("--batch must be 0..500")
    if args.client == "raw":
        fast_loop()
    report = Report("hub_throughput")
    report.header(f"{args.n} events, {args.clients} concurrent clients"
                  + (f" over {args.replicas} replicas" if args.replicas > 1 else ""))
    if args.replicas > 1 and args.client != "raw":
        cli.error("--replicas needs the raw client")
    with bench_replicas(args, hub_env(args.hub_env)) as hubs:
        hub = hubs[0]
        workflow = hub.token("bench-flow", role="workflow")
        reviewer = hub.token("bench-reviewer", role="reviewer")
        pids = [h.process.pid for h in hubs if h.process is not None]
        urls = [h.url for h in hubs]
        pid = pids[0]  # the profile follows the first replica
        with profiled(pid, _profile_path(args.profile, "create")), Phase(pids) as made_cpu:
            made, ids, made_latencies = asyncio.run(create_all(
                urls, workflow, args.n, args.clients, args.budget, args.client))
        create_rate = len(ids) / made
        print(f"   created {len(ids)} events in {made:.2f} s: {create_rate:.0f} creations/s")
        print(f"   per request (send -> 201): {summarize(made_latencies).line()}")
        create_ms = made_cpu.lines(made, len(ids), "creation")
        with profiled(pid, _profile_path(args.profile, "decide")), Phase(pids) as cpu, \
                LockWaits(args.db) as locks:
            elapsed, latencies = asyncio.run(answer_all(urls, reviewer, ids, args.clients,
                                                        args.budget, args.client))
        batch_rate = batch_ms = None
        if args.batch:
            with profiled(pid, _profile_path(args.profile, "batch")), Phase(pids) as batch_cpu:
                batched, batch_n, batch_latencies = asyncio.run(create_batches(
                    urls, workflow, args.n, args.clients, args.batch, args.budget))
    rate = len(ids) / elapsed
    s = summarize(latencies)
    print(f"   decided {len(ids)} events in {elapsed:.2f} s: {rate:.0f} decisions/s")
    print(f"   per request (send -> 200): {s.line()}")
    decide_ms = cpu.lines(elapsed, len(ids), "decision")
    if locks.line() is not None:
        print(f"   {locks.line()}")
    if args.batch:
        batch_rate = batch_n / batched
        print(f"   batch: created {batch_n} events in {batched:.2f} s, {args.batch} per request: "
              f"{batch_rate:.0f} events/s")
        print(f"   per batch request (send -> 200): {summarize(batch_latencies).line()}")
        batch_ms = batch_cpu.lines(batched, batch_n, "batched creation")
    report.note(f"the client runs on the same cores as the hub (one asyncio process, "
                f"{args.client} client)")
    report.figures.update(n=len(ids), clients=args.clients, client=args.client, seconds=elapsed,
                          replicas=args.replicas,
                          decisions_per_second=rate, request_ms=s.__dict__,
                          hub_cpu_seconds=cpu.hub, client_cpu_seconds=cpu.own,
                          hub_cpu_ms_per_decision=decide_ms,
                          create_per_second=create_rate, create_seconds=made,
                          create_request_ms=summarize(made_latencies).__dict__,
                          hub_cpu_ms_per_creation=create_ms,
                          batch_size=args.batch, batch_events_per_second=batch_rate,
                          hub_cpu_ms_per_batched_creation=batch_ms)
    report.check(f"creations/s with {args.clients} clients >= 1000", create_rate >= 1000,
                 f"{create_rate:.0f}/s")
    report.check(f"decisions/s with {args.clients} clients >= 1000", rate >= 1000,
                 f"{rate:.0f}/s")
    report.check("hub CPU per creation <= 1 ms", create_ms <= 1.0, f"{create_ms:.2f} ms")
    report.check("hub CPU per decision <= 1 ms", decide_ms <= 1.0, f"{decide_ms:.2f} ms")
    if batch_rate is not None:
        report.check(f"batch endpoint ({args.batch} per request) >= 5000 events/s",
                     batch_rate >= 5000, f"{batch_rate:.0f}/s")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
