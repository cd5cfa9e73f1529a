"""Airflow: how fast a decision resumes the DAG, and what waiting costs the triggerer.

1. ``dag.test()``: signoff's ApprovalSensor and Airflow's own ApprovalOperator (providers-standard
   HITL) in the same DAG run; the sensor answered through the hub's API, the operator through
   Airflow's REST API (``PATCH .../hitlDetails``, served by an api-server on the same database).
   Latency = the approval task's end time minus the moment the answer was sent.
2. The same DAG under a real scheduler, triggerer, dag-processor and api-server.
3. The triggerer's CPU and memory while N signoff sensors (one mapped task) wait deferred,
   against the same triggerer idle; and the hub's, which holds their long-polls. For
   comparison, N of the same triggers in a bare asyncio loop, without Airflow around them.

    .venvs/airflow/bin/python bench/airflow_latency.py --rounds 5 --waiting 1000

Run from the repository root (the bench reuses tests/adapters/airflow's harness). It starts
every process it measures and stops them all at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from signoff import Client  # noqa: E402
from signoff.testing import HubProcess  # noqa: E402
from tests.adapters.airflow.harness import (  # noqa: E402
    TEST_DAGS,
    DagTestRunner,
    compile_site_packages,
    connection_env,
)
from tests.adapters.airflow.services import AirflowServices  # noqa: E402

DAGS = Path(__file__).with_name("airflow_bench_dags.py")
DAG_ID = "signoff_bench_latency"
READ = 2.0  # seconds between a task waiting and its answer, the same for both


def _wait(what: str, check: Any, timeout: float = 300.0, every: float = 0.1) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found:
            return found
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what}: nothing after {timeout} s")
        time.sleep(every)


def _pending_event(hub: HubProcess, prefix: str) -> dict[str, Any] | None:
    page = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending", "limit": 500},
                     headers=hub.headers()).json()
    found = [e for e in page["events"] if (e["key"] or "").startswith(prefix)]
    return max(found, key=lambda e: e["created_at"]) if found else None


def _answer_signoff(hub: HubProcess, event_id: str) -> float:
    sent = time.time()
    answer = httpx.post(f"{hub.url}/api/v1/events/{event_id}/responses",
                        json={"value": True}, headers=hub.headers())
    answer.raise_for_status()
    return sent


def _answer_native(services: AirflowServices, run_id: str) -> float:
    sent = time.time()
    answer = services.api("PATCH", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/"
                          f"native_approve/-1/hitlDetails",
                          json={"chosen_options": ["Approve"], "params_input": {}})
    answer.raise_for_status()
    return sent


def _latest_run(services: AirflowServices) -> str | None:
    runs = services.api("GET", f"/dags/{DAG_ID}/dagRuns",
                        params={"order_by": "-run_after", "limit": 1}).json()
    return runs["dag_runs"][0]["dag_run_id"] if runs.get("dag_runs") else None


def _ti_state(services: AirflowServices, run_id: str, task_id: str) -> str | None:
    answer = services.api("GET", f"/dags/{DAG_ID}/dagRuns/{run_id}/taskInstances/{task_id}")
    return answer.json().get("state") if answer.status_code == 200 else None


def _end(ti: dict[str, Any]) -> float:
    return datetime.fromisoformat(ti["end_date"].replace("Z", "+00:00")).timestamp()


def _summary(name: str, values: list[float]) -> str:
    values = sorted(values)
    return (f"{name:<44} median {statistics.median(values):6.2f} s   "
            f"min {values[0]:6.2f}   max {values[-1]:6.2f}   (n={len(values)})")


def bench_dag_test(base: Path, hub: HubProcess, env: dict[str, str], rounds: int) -> None:
    """Phase 1: dag.test(), with an api-server on the same database for the native answers."""
    api = AirflowServices(base / "dagtest", components=("api-server",), extra_dags=(DAGS,),
                          env=env).start()
    runner = DagTestRunner(api.home, api.env).start()
    signoff, native = [], []
    try:
        runner.submit(TEST_DAGS / "signoff_warmup.py", "signoff_warmup").wait(900)
        for _ in range(rounds):
            handle = runner.submit(DAGS, DAG_ID, env=env)
            event = _wait("signoff event", lambda: _pending_event(hub, f"airflow:{DAG_ID}:"))
            # the sensor's trigger runs inline and blocks dag.test's loop: answer it first
            _wait("trigger running", lambda e=event["id"]: "running trigger in line" in
                  runner.log_text().split(e)[-1], timeout=120)
            time.sleep(1.0)
            sent_signoff = _answer_signoff(hub, event["id"])
            run_id = _wait("dag run", lambda: _latest_run(api))
            _wait("native awaiting input",
                  lambda r=run_id: _ti_state(api, r, "native_approve") == "awaiting_input")
            time.sleep(1.0)
            sent_native = _answer_native(api, run_id)
            report = handle.wait(300)
            tasks = report["tasks"]
            assert tasks["after_signoff"]["state"] == "success", report
            assert tasks["after_native"]["state"] == "success", report
            signoff.append(tasks["signoff_approve"]["end"] - sent_signoff)
            native.append(tasks["native_approve"]["end"] - sent_native)
    finally:
        runner.stop()
        api.stop()
    print("\n== dag.test(): answer sent -> approval task ended")
    print(_summary("signoff ApprovalSensor (hub API)", signoff))
    print(_summary("Airflow ApprovalOperator (REST hitlDetails)", native))


def bench_triggerer(services: AirflowServices, hub: HubProcess, rounds: int) -> None:
    """Phase 2: the same DAG under the scheduler and the triggerer."""
    services.wait_for_dag(DAG_ID)
    signoff, native = [], []
    for _ in range(rounds):
        run_id = services.trigger(DAG_ID)
        event = _wait("signoff event", lambda: _pending_event(hub, f"airflow:{DAG_ID}:"),
                      timeout=600)
        _wait("deferred", lambda r=run_id: _ti_state(services, r, "signoff_approve") == "deferred",
              timeout=600)
        time.sleep(READ)  # a person reads the question
        sent_signoff = _answer_signoff(hub, event["id"])
        _wait("native awaiting input",
              lambda r=run_id: _ti_state(services, r, "native_approve") == "awaiting_input",
              timeout=600)
        time.sleep(READ)
        sent_native = _answer_native(services, run_id)
        run = services.wait_run(DAG_ID, run_id, timeout=600)
        assert run["state"] == "success", run
        signoff.append(_end(services.task_instance(DAG_ID, run_id, "signoff_approve"))
                       - sent_signoff)
        native.append(_end(services.task_instance(DAG_ID, run_id, "native_approve"))
                      - sent_native)
    print("\n== scheduler + triggerer: answer sent -> approval task ended")
    print(_summary("signoff ApprovalSensor (hub API)", signoff))
    print(_summary("Airflow ApprovalOperator (REST hitlDetails)", native))


def _tree(pid: int, children: bool) -> list[psutil.Process]:
    parent = psutil.Process(pid)
    return [parent, *parent.children(recursive=True)] if children else [parent]


def _sample(pid: int, seconds: float, children: bool = True) -> tuple[float, float]:
    """CPU (percent of one core) and RSS (MiB) of a process (and its children) over ``seconds``."""
    procs = _tree(pid, children)
    before = sum(p.cpu_times().user + p.cpu_times().system for p in procs)
    time.sleep(seconds)
    after, rss = 0.0, 0
    for p in procs:
        try:
            times = p.cpu_times()
            after += times.user + times.system
            rss += p.memory_info().rss
        except psutil.NoSuchProcess:
            pass
    return 100.0 * (after - before) / seconds, rss / 2**20


def bench_waiting(services: AirflowServices, hub: HubProcess, count: int, window: float) -> None:
    """Phase 3: N deferred signoff triggers in one triggerer."""
    triggerer, hub_pid = services.pid("triggerer"), hub.process.pid if hub.process else 0
    idle_cpu, idle_rss = _sample(triggerer, window)
    hub_idle_cpu, hub_idle_rss = _sample(hub_pid, 10.0)
    services.wait_for_dag("signoff_bench_waiting")
    started = time.monotonic()
    run_id = services.trigger("signoff_bench_waiting")

    def deferred() -> int:
        answer = services.api("GET", f"/dags/signoff_bench_waiting/dagRuns/{run_id}/"
                              f"taskInstances", params={"state": "deferred", "limit": 1})
        return int(answer.json().get("total_entries", 0))

    last = -1
    while (now := deferred()) < count:
        if now != last:
            print(f"   {now}/{count} deferred after {time.monotonic() - started:.0f} s",
                  flush=True)
            last = now
        if time.monotonic() - started > 3600:
            raise TimeoutError(f"only {now} of {count} deferred after an hour")
        time.sleep(5.0)
    spent = time.monotonic() - started
    time.sleep(10.0)  # let the triggerer pick up the last ones
    busy_cpu, busy_rss = _sample(triggerer, window)
    hub_cpu, hub_rss = _sample(hub_pid, window)
    with Client(hub.url, hub.admin_token) as client:
        pending = sum(1 for e in client.iter_events(status="pending")
                      if (e.key or "").startswith("airflow:signoff_bench_waiting:"))
    running = re.findall(r"(\d+) triggers currently running", services.log("triggerer"))
    print(f"\n== {count} deferred signoff sensors (all deferred {spent:.0f} s after the run "
          f"started; {pending} pending events in the hub)")
    print(f"triggerer (process tree), idle:        CPU {idle_cpu:5.1f} % of a core, "
          f"RSS {idle_rss:7.1f} MiB")
    print(f"triggerer with {count} waiting:        CPU {busy_cpu:5.1f} % of a core, "
          f"RSS {busy_rss:7.1f} MiB  ({(busy_rss - idle_rss) * 1024 / count:.1f} KiB a trigger)")
    print(f"hub holding their long-polls:          CPU {hub_cpu:5.1f} % of a core "
          f"(idle {hub_idle_cpu:.1f}), RSS {hub_rss:7.1f} MiB (idle {hub_idle_rss:.1f})")
    if running:
        print(f"the triggerer's own log, last count: {running[-1]} triggers currently running")


def bench_loop(hub: HubProcess, token: str, count: int, window: float) -> None:
    """Phase 0: the same triggers in a bare asyncio loop (this process), without Airflow's
    triggerer around them: what the trigger itself costs."""
    import asyncio
    import threading

    from signoff.adapters.airflow.triggers import SignoffTrigger

    with Client(hub.url, token) as client:
        ids = [client.create(name="bench", prompt=f"loop {i}?", input=int).id
               for i in range(count)]
    loop = asyncio.new_event_loop()

    async def first(trigger: SignoffTrigger) -> Any:
        async for event in trigger.run():
            return event

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    futures = [asyncio.run_coroutine_threadsafe(first(SignoffTrigger(
        hub_url=hub.url, event_id=i, token=token)), loop) for i in ids]
    time.sleep(10.0)
    me = psutil.Process()
    rss_before = me.memory_info().rss
    cpu, rss = _sample(me.pid, window, children=False)  # not the hub, a child of this process
    print(f"\n== {count} signoff triggers in a bare asyncio loop (no Airflow): CPU {cpu:5.1f} % "
          f"of a core, RSS {rss:7.1f} MiB")
    with Client(hub.url, hub.admin_token) as admin:
        started = time.monotonic()
        for n, event_id in enumerate(ids):
            admin.respond(event_id, n)
    for future in futures:
        future.result(timeout=120)
    print(f"   all {count} answered and fired {time.monotonic() - started:.1f} s after the first "
          f"answer (answers sent one by one); RSS before sampling {rss_before / 2**20:.1f} MiB")
    loop.call_soon_threadsafe(loop.stop)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--waiting", type=int, default=1000)
    parser.add_argument("--window", type=float, default=60.0, help="CPU sampling window, s")
    parser.add_argument("--parallelism", type=int, default=8)
    parser.add_argument("--skip", action="append", default=[],
                        choices=["loop", "dagtest", "triggerer", "waiting"])
    args = parser.parse_args()
    compile_site_packages()
    with tempfile.TemporaryDirectory(prefix="signoff-airflow-bench-") as tmp:
        base = Path(tmp)
        # this process imports Airflow for phase 0: never let it create ~/airflow
        os.environ["AIRFLOW_HOME"] = str(base / "bench-process-home")
        with HubProcess(base / "hub.db") as hub:
            token = hub.token("airflow", role="workflow")
            env = connection_env(hub, token)
            if "loop" not in args.skip:
                bench_loop(hub, token, args.waiting, args.window)
            if "dagtest" not in args.skip:
                bench_dag_test(base, hub, env, args.rounds)
            if {"triggerer", "waiting"} - set(args.skip):
                services = AirflowServices(
                    base / "services", extra_dags=(DAGS,), env={
                        **env, "SIGNOFF_BENCH_WAITING": str(args.waiting),
                        "AIRFLOW__CORE__PARALLELISM": str(args.parallelism),
                        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": "64"})
                with services:
                    if "triggerer" not in args.skip:
                        bench_triggerer(services, hub, args.rounds)
                    if "waiting" not in args.skip:
                        bench_waiting(services, hub, args.waiting, args.window)
    print(json.dumps({"argv": sys.argv[1:]}))


if __name__ == "__main__":
    main()
