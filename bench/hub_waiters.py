"""Many parked long-polls: ``--n`` waiters held by one hub process, then all decided.

1. Create ``--n`` pending events (untimed). Read the hub's RSS (``/proc/<pid>/status``).
2. Park one ``GET /api/v1/events/{id}/decision?wait=60`` per event, all at once, each on its
   own connection; ``/healthz`` must report all of them waiting. Read the RSS again. A waiter
   whose 60 s run out (204) asks again, as ``signoff.Client.wait`` does.
3. Answer every event as fast as ``--responders`` concurrent connections can (a minimal
   HTTP/1.1 client, so the client's CPU goes to the waiters, not the load). For each event,
   wake delay = the waiter's receive time − its answer's 200 time (one clock, this process).
4. Every waiter must get 200 with its decision within 1 s of that 200. Read the RSS again.

Run: ``python bench/hub_waiters.py [--n 2000] [--responders 16] [--json]``
"""

from __future__ import annotations

import asyncio
import contextlib
import sys
import time
from typing import Any

import httpx
from _common import (
    EVENTS,
    RawConnection,
    Report,
    bench_replicas,
    cpu_seconds,
    fast_loop,
    hub_env,
    parser,
    raise_nofile,
    rss_kib,
    summarize,
    wait_parked,
)
from hub_throughput import create_all

WAIT = 60  # the hub's longest long-poll


class _HttpxWaiter:
    """One waiter on its own httpx.AsyncClient (one connection).

    A single AsyncClient with a pool of n + 100 connections works too, but httpcore's pool
    rescans its connections and requests whenever a request starts or ends (quadratic once
    connections go idle): with 2,000 of them this client, not the hub, ran out of CPU.
    """

    def __init__(self, url: str, headers: dict[str, str], tls: Any) -> None:
        self.http = httpx.AsyncClient(base_url=url, timeout=WAIT + 30, verify=tls,
                                      headers=headers, limits=httpx.Limits(max_connections=1))

    async def get(self, path: str) -> Any:
        return await self.http.get(path)

    async def close(self) -> None:
        await self.http.aclose()


class _RawWaiter:
    """One waiter on a :class:`RawConnection` (far less client CPU per answer)."""

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        self.conn = RawConnection(url, headers)

    async def get(self, path: str) -> Any:
        return await asyncio.wait_for(self.conn.request("GET", path), WAIT + 30)

    async def close(self) -> None:
        await self.conn.close()


def _rss(pids: list[int]) -> int:
    return sum(rss_kib(pid) for pid in pids)


def _cpu(pids: list[int]) -> float:
    return sum(cpu_seconds(pid) for pid in pids)


async def run(urls: list[str], workflow: str, reviewer: str, ids: list[str], responders: int,
              pids: list[int], budget: int, client: str, report: Report) -> None:
    wf = {"Authorization": f"Bearer {workflow}"}
    rv = {"Authorization": f"Bearer {reviewer}"}
    n = len(ids)
    received: dict[str, float] = {}
    answered: dict[str, float] = {}
    problems: list[str] = []
    rss: dict[str, float] = {"before_kib": _rss(pids)}

    repolls = 0
    began = time.perf_counter()
    cpu: dict[str, Any] = {"hub": _cpu(pids), "own": time.process_time()}

    async def waiter(conn: _HttpxWaiter | _RawWaiter, event_id: str) -> None:
        # like signoff.Client.wait: a 204 (the hub's 60 s ran out) means ask again
        nonlocal repolls
        for _ in range(budget // WAIT + 1):
            try:
                answer = await conn.get(f"{EVENTS}/{event_id}/decision?wait={WAIT}")
            except (httpx.HTTPError, OSError, asyncio.IncompleteReadError,
                    asyncio.TimeoutError) as exc:
                problems.append(f"{event_id}: waiter failed after "
                                f"{time.perf_counter() - began:.1f} s: {exc!r}")
                return
            if answer.status_code != 204:
                break
            repolls += 1
        received[event_id] = time.perf_counter()
        if answer.status_code != 200 or answer.json().get("outcome") != "approved":
            problems.append(f"{event_id}: waiter got {answer.status_code} {answer.text[:120]}")

    tls = httpx.create_ssl_context() if client == "httpx" else None
    # waiter i parks on replica i % N, and responder j answers on replica j % N: with
    # replicas, half the wakes cross from one to the other
    parked = [_HttpxWaiter(urls[i % len(urls)], wf, tls) if client == "httpx"
              else _RawWaiter(urls[i % len(urls)], wf) for i in range(n)]
    # the answers are only load here: cheap raw connections leave the CPU to the hub
    answering = [RawConnection(urls[j % len(urls)], rv) for j in range(responders)]
    tasks = [asyncio.create_task(waiter(conn, event_id))
             for conn, event_id in zip(parked, ids, strict=True)]
    async with contextlib.AsyncExitStack() as stack:
        https = [await stack.enter_async_context(httpx.AsyncClient(base_url=url, timeout=60))
                 for url in urls]
        try:
            for k, http in enumerate(https):
                await wait_parked(http, len(range(k, n, len(urls))), timeout=budget,
                                  watch=tasks[:50])
            parked_in = time.perf_counter() - began
            cpu["park"] = (_cpu(pids) - cpu["hub"], time.process_time() - cpu["own"])
            print(f"   {n} long-polls parked in {parked_in:.1f} s (CPU: hub "
                  f"{cpu['park'][0]:.1f} s, this client {cpu['park'][1]:.1f} s)")
            await asyncio.sleep(1.0)  # let the hub settle before reading its memory
            rss["parked_kib"] = _rss(pids)

            queue = iter(ids)

            async def responder(conn: RawConnection) -> None:
                for event_id in queue:
                    answer = await conn.request("POST", f"{EVENTS}/{event_id}/responses",
                                                {"value": True})
                    answered[event_id] = time.perf_counter()
                    if answer.status_code != 200:
                        problems.append(f"{event_id}: answer got {answer.status_code}")

            deciding = time.perf_counter()
            cpu.update(hub=_cpu(pids), own=time.process_time())
            left = budget - (deciding - began)
            await asyncio.wait_for(asyncio.gather(*(responder(c) for c in answering)),
                                   timeout=left)
            decided_in = time.perf_counter() - deciding
            cpu["decide"] = (_cpu(pids) - cpu["hub"], time.process_time() - cpu["own"])
            await asyncio.wait_for(asyncio.gather(*tasks), timeout=max(left - decided_in, 5))
        finally:
            # on a failure, stop the waiters before the hub goes away under them
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            await asyncio.gather(*(c.close() for c in [*parked, *answering]))
        await asyncio.sleep(1.0)
        rss["after_kib"] = _rss(pids)

    delays = [received[i] - answered[i] for i in ids if i in received and i in answered]
    late = sum(1 for d in delays if d > 1.0)
    s = summarize(delays)
    print(f"   decided {n} events in {decided_in:.1f} s ({n / decided_in:.0f}/s, "
          f"{responders} responders) while {n} waited (CPU: hub {cpu['decide'][0]:.1f} s, "
          f"this client {cpu['decide'][1]:.1f} s)")
    print(f"   wake delay (waiter receive - its answer's 200): {s.line()}")
    print(f"   waiters woken later than 1 s: {late}; problems: {len(problems)}; "
          f"re-polls after a 204: {repolls}")
    for problem in problems[:10]:
        print(f"     {problem}")
    mib = {k.removesuffix("_kib"): v / 1024 for k, v in rss.items()}
    growth = mib["parked"] - mib["before"]
    print(f"   hub RSS{' (all replicas)' if len(urls) > 1 else ''}: before parking {mib['before']:.1f} MiB, with {n} parked "
          f"{mib['parked']:.1f} MiB (+{growth:.1f} MiB, "
          f"{growth * 1024 / n:.1f} KiB per waiter), after {mib['after']:.1f} MiB")
    report.note(f"waiters' client: {client}")
    report.figures.update(n=n, replicas=len(urls), responders=responders, client=client,
                          parked_seconds=parked_in,
                          decide_seconds=decided_in, wake_ms=s.__dict__, late=late,
                          repolls=repolls, cpu_seconds_hub_client={
                              k: v for k, v in cpu.items() if k in ("park", "decide")},
                          problems=problems[:50], rss_kib=rss)
    ok = not problems and len(delays) == n and late == 0
    report.check(f"all {n} waiters woken within 1 s of their 200", ok,
                 f"worst {s.max:.1f} ms, {late} late, {len(problems)} problems, "
                 f"{n - len(delays)} missing")
    report.info("hub memory growth",
                f"+{growth:.1f} MiB with {n} parked ({mib['before']:.1f} -> "
                f"{mib['parked']:.1f} -> {mib['after']:.1f} MiB, {growth * 1024 / n:.1f} KiB "
                f"per waiter)")


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--n", type=int, default=2000, help="parked waiters, one event each (2000)")
    cli.add_argument("--responders", type=int, default=16, help="concurrent answering clients")
    cli.add_argument("--client", choices=("httpx", "raw"), default="httpx",
                     help="the waiters' client: httpx.AsyncClient (default) or a minimal "
                          "keep-alive HTTP/1.1 client; the answers always use the latter")
    cli.add_argument("--budget", type=int, default=600,
                     help="give up when parking and deciding take longer (seconds)")
    args = cli.parse_args()
    if not 1 <= args.n <= 20_000 or not 1 <= args.responders <= 256:
        cli.error("--n must be 1..20000 and --responders 1..256")
    limit = raise_nofile()
    if limit < args.n + 200:
        cli.error(f"open-file limit {limit} is too low for {args.n} connections")
    fast_loop()
    report = Report("hub_waiters")
    report.header(f"{args.n} parked long-polls in one hub, then all decided"
                  if args.replicas == 1 else f"{args.n} parked long-polls spread over "
                  f"{args.replicas} replicas, answered on all of them, then all decided")
    with bench_replicas(args, hub_env(args.hub_env)) as hubs:
        workflow = hubs[0].token("bench-flow", role="workflow")
        reviewer = hubs[0].token("bench-reviewer", role="reviewer")
        _, ids, _ = asyncio.run(create_all([h.url for h in hubs], workflow, args.n, 16,
                                           args.budget, "raw"))
        asyncio.run(run([h.url for h in hubs], workflow, reviewer, ids, args.responders,
                        [h.process.pid for h in hubs if h.process is not None],
                        args.budget, args.client, report))
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
