"""Decision throughput: ``--clients`` concurrent responders answering ``--n`` pending events.

First, untimed: create ``--n`` pending approval events through the API. Then, timed: the
responders (asyncio tasks in this process, each on its own keep-alive connection) take event
ids from one queue and ``POST /api/v1/events/{id}/responses`` until none are left.
decisions/s = n / elapsed. Every answer must be 200 with the event decided.

The client shares the machine's cores with the hub; the CPU seconds each side used during
the timed phase are printed so you can see who was busy. By default it is a minimal
keep-alive HTTP/1.1 client on uvloop (``--client raw``): httpx (``--client httpx``) spends
more CPU per request than the hub does, which on 2 cores measures the client.

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
    RawConnection,
    Report,
    bench_hub,
    cpu_seconds,
    cpu_times,
    event_body,
    fast_loop,
    hub_env,
    parser,
    profiled,
    summarize,
)


async def create_all(url: str, token: str, n: int, concurrency: int) -> list[str]:
    """Create ``n`` pending events, ``concurrency`` at a time; returns their ids."""
    headers = {"Authorization": f"Bearer {token}"}
    ids: list[str] = []
    todo = iter(range(n))
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits) as http:
        async def worker() -> None:
            for i in todo:
                answer = await http.post(EVENTS, json=event_body(i), headers=headers)
                answer.raise_for_status()
                ids.append(answer.json()["id"])
        await asyncio.gather(*(worker() for _ in range(concurrency)))
    return ids


async def answer_all(url: str, token: str, ids: list[str], clients: int, budget: float,
                     client: str) -> tuple[float, list[float]]:
    """Answer every event with ``clients`` concurrent responders; returns (elapsed, latencies)."""
    headers = {"Authorization": f"Bearer {token}"}
    queue = iter(ids)
    latencies: list[float] = []

    def check(event_id: str, status: int, answer: Any) -> None:
        if status != 200 or answer.json()["status"] != "decided":
            raise RuntimeError(f"{event_id}: {status} {answer.text[:200]}")

    if client == "raw":
        connections = [RawConnection(url, headers) for _ in range(clients)]
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
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=limits,
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


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--n", type=int, default=3000, help="events to decide (default 3000)")
    cli.add_argument("--clients", type=int, default=16, help="concurrent responders (16)")
    cli.add_argument("--budget", type=float, default=300,
                     help="give up when the timed phase takes longer (seconds)")
    cli.add_argument("--client", choices=("raw", "httpx"), default="raw",
                     help="raw: a minimal keep-alive HTTP/1.1 client on uvloop (default; "
                          "leaves the CPU to the hub); httpx: httpx.AsyncClient")
    cli.add_argument("--profile", metavar="PATH", default=None,
                     help="record the hub with py-spy during the timed phase (raw format)")
    args = cli.parse_args()
    if not 1 <= args.n <= 1_000_000 or not 1 <= args.clients <= 1000:
        cli.error("--n must be 1..1000000 and --clients 1..1000")
    if args.client == "raw":
        fast_loop()
    report = Report("hub_throughput")
    report.header(f"{args.n} pending events, {args.clients} concurrent responders")
    with bench_hub(args.dir, args.keep, env=hub_env(args.hub_env), url=args.db) as hub:
        workflow = hub.token("bench-flow", role="workflow")
        reviewer = hub.token("bench-reviewer", role="reviewer")
        assert hub.process is not None
        pid = hub.process.pid
        made = time.perf_counter()
        ids = asyncio.run(create_all(hub.url, workflow, args.n, args.clients))
        made = time.perf_counter() - made
        print(f"   created {len(ids)} events in {made:.1f} s (untimed; {len(ids) / made:.0f}/s)")
        with profiled(pid, args.profile):
            hub_cpu, own_cpu, hub_split = cpu_seconds(pid), time.process_time(), cpu_times(pid)
            elapsed, latencies = asyncio.run(answer_all(hub.url, reviewer, ids, args.clients,
                                                        args.budget, args.client))
            hub_cpu, own_cpu = cpu_seconds(pid) - hub_cpu, time.process_time() - own_cpu
            hub_user, hub_sys = (a - b for a, b in zip(cpu_times(pid), hub_split, strict=True))
    rate = len(ids) / elapsed
    s = summarize(latencies)
    print(f"   decided {len(ids)} events in {elapsed:.2f} s: {rate:.0f} decisions/s")
    print(f"   per request (send -> 200): {s.line()}")
    print(f"   CPU during the timed phase: hub {hub_cpu:.1f} s ({hub_cpu / elapsed:.0%} of one "
          f"core; user {hub_user:.1f} s, system {hub_sys:.1f} s), this client {own_cpu:.1f} s "
          f"({own_cpu / elapsed:.0%} of one core)")
    print(f"   hub CPU per decision: {hub_cpu / len(ids) * 1000:.2f} ms (one event loop: "
          f"{1 / max(hub_cpu / len(ids), 1e-9):.0f}/s if it had a core to itself)")
    report.note(f"the client runs on the same cores as the hub (one asyncio process, "
                f"{args.client} client)")
    report.figures.update(n=len(ids), clients=args.clients, client=args.client, seconds=elapsed,
                          decisions_per_second=rate, request_ms=s.__dict__,
                          hub_cpu_seconds=hub_cpu, client_cpu_seconds=own_cpu,
                          create_per_second=len(ids) / made)
    report.check(f"decisions/s with {args.clients} clients >= 500", rate >= 500,
                 f"{rate:.0f}/s")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
