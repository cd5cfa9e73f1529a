"""Resume latency: a response's 200 → a parked long-poll client holding the decision.

For each of ``--n`` events, one after the other: create the event, park one waiter on
``GET /api/v1/events/{id}/decision?wait=30`` (confirmed parked through ``/healthz``), then
answer it with ``POST /api/v1/events/{id}/responses``. Both clients live in this process
and share one clock (``time.perf_counter``):

- wake delay = the waiter's receive time − the responder's 200 time. The hub wakes waiters
  before it sends the responder's answer, so a small negative value means the waiter had the
  decision first; that is reported as is, not clamped.
- end to end = the waiter's receive time − the moment the responder's POST was sent
  (includes the durable write); shown for context.

Run: ``python bench/hub_latency.py [--n 300] [--json]``
"""

from __future__ import annotations

import asyncio
import sys
import time

import httpx
from _common import (
    EVENTS,
    Report,
    bench_replicas,
    event_body,
    hub_env,
    parser,
    summarize,
    wait_parked,
)

# Quoted from ../shared/ORCHESTRATORS.md (measured there, on this kind of machine), not here.
NATIVE = [
    ("Prefect pause_flow_run, poll_interval=10 s (default)", "1.6-8.7 s measured, 0..10 s"),
    ("Prefect pause_flow_run, poll_interval=1 s", "0.03-0.83 s measured"),
    ("Flyte 2 flyteplugins-hitl, polls storage every 5 s", "median 3.0 s submit to resume"),
]


async def _wait(http: httpx.AsyncClient, event_id: str,
                headers: dict[str, str]) -> tuple[float, httpx.Response]:
    answer = await http.get(f"{EVENTS}/{event_id}/decision", params={"wait": 30},
                            headers=headers)
    return time.perf_counter(), answer


async def one(http: httpx.AsyncClient, waiter_http: httpx.AsyncClient, workflow: dict[str, str],
              reviewer: dict[str, str], i: int) -> tuple[float, float, float]:
    """One event: create, park a waiter, answer; returns (wake delay, end to end, POST time)."""
    created = await http.post(EVENTS, json=event_body(i), headers=workflow)
    created.raise_for_status()
    event_id = created.json()["id"]
    waiter = asyncio.create_task(_wait(waiter_http, event_id, workflow))
    await wait_parked(waiter_http, 1, timeout=5, watch=[waiter])
    # /healthz counts a waiter as soon as it registers; give its read of the store (a worker
    # thread) time to finish so it is truly asleep in the long-poll when the answer comes
    await asyncio.sleep(0.005)
    if waiter.done():
        raise RuntimeError(f"event {event_id}: the waiter returned before any answer: "
                           f"{waiter.result()[1].status_code}")
    sent = time.perf_counter()
    answered = await http.post(f"{EVENTS}/{event_id}/responses", json={"value": True},
                               headers=reviewer)
    ok_at = time.perf_counter()
    answered.raise_for_status()
    received, decision = await asyncio.wait_for(waiter, timeout=35)
    if decision.status_code != 200 or decision.json()["outcome"] != "approved":
        raise RuntimeError(f"event {event_id}: waiter got {decision.status_code} "
                           f"{decision.text[:200]}")
    return received - ok_at, received - sent, ok_at - sent


async def run(urls: list[str], workflow_token: str, reviewer_token: str, n: int,
              warmup: int) -> tuple[list[float], list[float], list[float], float]:
    workflow = {"Authorization": f"Bearer {workflow_token}"}
    reviewer = {"Authorization": f"Bearer {reviewer_token}"}
    # separate connections for the waiter and the responder, as in real life; with replicas
    # the waiter parks on the last one and the responder answers on the first
    async with httpx.AsyncClient(base_url=urls[0], timeout=40) as http, \
            httpx.AsyncClient(base_url=urls[-1], timeout=40) as waiter_http:
        for i in range(warmup):
            await one(http, waiter_http, workflow, reviewer, -1 - i)
        wake, e2e, post = [], [], []
        began = time.monotonic()
        for i in range(n):
            w, e, p = await one(http, waiter_http, workflow, reviewer, i)
            wake.append(w)
            e2e.append(e)
            post.append(p)
        return wake, e2e, post, time.monotonic() - began


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--n", type=int, default=300, help="events measured (>= 200; default 300)")
    cli.add_argument("--warmup", type=int, default=20, help="events run first, not counted")
    args = cli.parse_args()
    if not 1 <= args.n <= 100_000:
        cli.error("--n must be between 1 and 100000")
    report = Report("hub_latency")
    report.header(f"{args.n} sequential events, one parked long-poll waiter each"
                  + (f"; waiter and responder on different replicas (of {args.replicas})"
                     if args.replicas > 1 else ""))
    if args.n < 200:
        report.note(f"--n {args.n} is below the 200 events the target asks for")
    with bench_replicas(args, hub_env(args.hub_env)) as hubs:
        workflow = hubs[0].token("bench-flow", role="workflow")
        reviewer = hubs[0].token("bench-reviewer", role="reviewer")
        wake, e2e, post, took = asyncio.run(run([h.url for h in hubs], workflow, reviewer,
                                                args.n, args.warmup))
    s_wake, s_e2e, s_post = summarize(wake), summarize(e2e), summarize(post)
    first = sum(1 for w in wake if w < 0)
    print(f"   {args.n} events in {took:.1f} s")
    print(f"   wake delay (waiter receive - responder 200): {s_wake.line()}")
    print(f"     the waiter had the decision before the responder's 200 in {first} of {args.n}")
    print(f"   responder POST (send -> 200):                {s_post.line()}")
    print(f"   end to end (POST sent -> waiter receive):    {s_e2e.line()}")
    print("   for comparison, the native mechanisms (QUOTED from ORCHESTRATORS.md, not "
          "measured here):")
    for what, figure in NATIVE:
        print(f"     {what}: {figure}")
    report.figures.update(n=args.n, seconds=took, waiter_first=first, replicas=args.replicas,
                          wake_ms=s_wake.__dict__, post_ms=s_post.__dict__,
                          end_to_end_ms=s_e2e.__dict__,
                          native_quoted_from_orchestrators_md=dict(NATIVE))
    report.check("wake delay p50 < 5 ms", s_wake.p50 < 5, f"{s_wake.p50:.2f} ms")
    report.check("wake delay p99 < 20 ms", s_wake.p99 < 20, f"{s_wake.p99:.2f} ms")
    return report.finish(args.json)


if __name__ == "__main__":
    sys.exit(main())
