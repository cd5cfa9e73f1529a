"""Response-to-task-continues latency on Flyte: signoff's long-poll against the plugin's poll.

Three waits, each answered many times at a random moment, each timed from the moment the answer
is submitted (just before the POST to the hub, or before the plugin's response file is written)
to the moment the waiting task runs its next line:

1. Flyte 2, ``signoff.adapters.flyte.v2`` (``new_event`` + ``await event.wait.aio()``) in a
   ``flyte.with_runcontext(mode="local")`` run, answered through the hub's API.
2. Flyte 2, ``flyteplugins-hitl``'s own wait (``wait_for_input_event``: object-storage poll,
   default ``poll_interval_seconds=5``) in the same kind of local run. The plugin's
   ``new_event`` cannot run locally (it deploys its form app to a cluster first), so the bench
   calls the plugin's wait directly and writes the response file the way its form app does.
   Skipped, with a note, when the plugin is not installed.
3. flytekit, a task-mode waiting step (``ask`` waiting on the hub's long-poll), local execution.

    .venvs/flyte/bin/python bench/flyte_latency.py [--rounds 20] [--plugin-rounds 8]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import tempfile
import threading
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import flyte
import httpx
from flytekit import task, workflow

import signoff.adapters.flyte.v2 as hitl
from signoff.adapters.flyte import ask
from signoff.testing import HubProcess

env = flyte.TaskEnvironment(name="signoff-bench")


@env.task
async def signoff_wait(name: str) -> float:
    event = await hitl.new_event.aio(name, data_type=bool, prompt="Continue?",
                                     timeout_seconds=600)
    await event.wait.aio()
    return time.time()


@env.task
async def plugin_wait(response_path: str, started_path: str, poll: int) -> float:
    from flyteplugins.hitl._event import wait_for_input_event

    Path(started_path).write_text(str(time.time()))
    await wait_for_input_event(name="bench", request_id=Path(response_path).parent.name,
                               response_path=response_path, timeout_seconds=120,
                               poll_interval_seconds=poll)
    return time.time()


def _in_thread(fn: Callable[[], Any]) -> tuple[threading.Thread, dict[str, Any]]:
    box: dict[str, Any] = {}

    def go() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    return thread, box


def _pending(hub: HubProcess, prefix: str) -> dict[str, Any]:
    for _ in range(1200):
        events = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending"},
                           headers=hub.headers()).json()["events"]
        found = [e for e in events if e["key"].startswith(prefix)]
        if found:
            return found[0]
        time.sleep(0.02)
    raise RuntimeError(f"no pending event {prefix}*")


def _answer(hub: HubProcess, event: dict[str, Any], value: Any) -> tuple[float, float]:
    """Answer through the hub's API; when it was submitted and when the hub's answer came."""
    time.sleep(random.uniform(0.1, 1.0))  # the reviewer takes a moment
    submitted = time.time()
    answered = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                          json={"value": value}, headers=hub.headers())
    answered.raise_for_status()
    return submitted, time.time()


def bench_flyte2_signoff(hub: HubProcess, rounds: int) -> tuple[list[float], list[float]]:
    out, after = [], []
    for i in range(rounds):
        name = f"bench-{i}-{uuid.uuid4().hex[:6]}"
        thread, box = _in_thread(lambda name=name: flyte.with_runcontext(
            mode="local", name=name).run(signoff_wait, name="go").outputs()[0])
        submitted, returned = _answer(hub, _pending(hub, f"flyte2:local:local:{name}:"), True)
        thread.join(120)
        if "error" in box:
            raise box["error"]
        out.append(box["value"] - submitted)
        after.append(box["value"] - returned)
    return out, after


def bench_flyte2_plugin(rounds: int, poll: int, tmp: Path) -> list[float]:
    out = []
    for i in range(rounds):
        request_dir = tmp / f"hitl-requests/{uuid.uuid4()}"
        request_dir.mkdir(parents=True)
        response, started = request_dir / "response.json", request_dir / "started"
        thread, box = _in_thread(lambda i=i, response=response, started=started: (
            flyte.with_runcontext(mode="local", name=f"plugin-{i}").run(
                plugin_wait, response_path=str(response), started_path=str(started),
                poll=poll).outputs()[0]))
        while not started.exists():
            time.sleep(0.01)
        # answer at a random phase of the poll cycle, as the form app writes it
        time.sleep(random.uniform(0.1, poll + 0.5))
        answered = time.time()
        partial = response.with_suffix(".tmp")
        partial.write_text(json.dumps({"value": True, "status": "completed",
                                       "request_id": request_dir.name, "data_type": "bool"}))
        partial.rename(response)
        thread.join(poll * 3 + 60)
        if "error" in box:
            raise box["error"]
        out.append(box["value"] - answered)
    return out


def bench_flytekit_task_mode(hub: HubProcess, rounds: int) -> tuple[list[float], list[float]]:
    out, after = [], []
    for i in range(rounds):
        os.environ["SIGNOFF_FLYTE_RUN"] = run = f"kit-{i}-{uuid.uuid4().hex[:6]}"
        thread, box = _in_thread(kit_step)
        submitted, returned = _answer(hub, _pending(hub, f"flyte:local:local:{run}:go"), True)
        thread.join(120)
        if "error" in box:
            raise box["error"]
        out.append(box["value"] - submitted)
        after.append(box["value"] - returned)
    os.environ.pop("SIGNOFF_FLYTE_RUN", None)
    return out, after


@task
def waiting_step() -> float:
    # the body of a task-mode waiting task: create the event, long-poll the hub
    ask("Continue?", input=bool, name="go")
    return time.time()


@workflow
def kit_step() -> float:
    return waiting_step()


def show(label: str, samples: list[float]) -> None:
    ms = sorted(s * 1000 for s in samples)
    p90 = ms[min(len(ms) - 1, int(round(0.9 * (len(ms) - 1))))]
    print(f"{label:<58} n={len(ms):>3}  median {statistics.median(ms):8.1f} ms  "
          f"p90 {p90:8.1f} ms  min {ms[0]:7.1f}  max {ms[-1]:8.1f}")


def main() -> None:
    args = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    args.add_argument("--rounds", type=int, default=20)
    args.add_argument("--plugin-rounds", type=int, default=8)
    args.add_argument("--plugin-poll", type=int, default=5)
    opts = args.parse_args()
    flyte.init()
    with tempfile.TemporaryDirectory() as tmp, \
            HubProcess(Path(tmp) / "hub.db") as hub:
        os.environ["SIGNOFF_URL"] = hub.url
        os.environ["SIGNOFF_TOKEN"] = hub.token("bench", role="workflow")
        print(f"response -> task continues, {os.cpu_count()} cores, hub on SQLite, loopback")
        submit, after = bench_flyte2_signoff(hub, opts.rounds)
        show("Flyte 2 local run, signoff v2 (hub long-poll)", submit)
        show("  of which after the hub's HTTP answer returned", after)
        try:
            import flyteplugins.hitl  # noqa: F401
        except ImportError:
            print("flyteplugins-hitl is not installed: not measured here; ORCHESTRATORS.md "
                  "quotes a median of 3.0 s (5 s storage poll)")
        else:
            show(f"Flyte 2 local run, flyteplugins-hitl wait ({opts.plugin_poll} s poll)",
                 bench_flyte2_plugin(opts.plugin_rounds, opts.plugin_poll, Path(tmp)))
        submit, after = bench_flytekit_task_mode(hub, opts.rounds)
        show("flytekit local run, task-mode wait (hub long-poll)", submit)
        show("  of which after the hub's HTTP answer returned", after)
        print("ORCHESTRATORS.md, measured earlier: flyteplugins-hitl median 3.0 s submit to resume")


if __name__ == "__main__":
    main()
