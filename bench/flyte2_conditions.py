"""Flyte 2 conditions through signoff: how long from an answer to the waiting side moving on.

Three figures, each from ``--n`` rounds against a real hub on loopback:

1. ``new_condition`` (signoff's drop-in) in a ``flyte.with_runcontext(mode="local")`` run:
   answer POSTed to the hub -> the task runs its next line.
2. A native condition (the tests' FAKE RunService, built from flyteidl2's Connect stubs: no
   Flyte 2 control plane runs here), raised by the bridge: answer POSTed -> the hub's
   ``flyte2`` resumer's ``SignalEvent`` has resolved the condition. A real control plane adds
   its own delivery to the task on top.
3. The reverse: a condition answered in Flyte (``SignalEvent``) -> its event decided in the
   hub, with the bridge running every ``--interval`` seconds (half the interval on average).

Run: ``python bench/flyte2_conditions.py [--n 20] [--interval 0.5]`` (``flyte2`` and ``hub``
extras).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import flyte
import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' fakes and tasks

import signoff.adapters.flyte.v2 as hitl  # noqa: E402
from signoff.adapters.flyte._runservice import RunServiceCalls  # noqa: E402
from signoff.adapters.flyte.conditions import ConditionBridge  # noqa: E402
from signoff.testing import HubProcess, until  # noqa: E402
from tests.adapters.flyte2.fake_runservice import TERMINAL, FakeControlPlane, _key  # noqa: E402

env = flyte.TaskEnvironment(name="signoff-bench-conditions")


@env.task
async def condition_wait(name: str) -> float:
    """Code written against ``flyte.new_condition``; when its next line runs."""
    condition = await hitl.new_condition.aio(name, prompt="Continue?", data_type=bool)
    await condition.wait.aio()
    return time.time()


def figures(name: str, values: list[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.9))]
    return (f"{name:<48} median {statistics.median(ordered) * 1000:7.1f} ms   "
            f"p90 {p90 * 1000:7.1f} ms   (n={len(ordered)})")


def _pending(hub: HubProcess, match: str) -> dict[str, Any]:
    def look() -> dict[str, Any] | None:
        events = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending"},
                           headers=hub.headers()).json()["events"]
        return next((e for e in events if match in (e["key"] or "")), None)
    return until(look, 60, f"an event {match}")


def drop_in(hub: HubProcess, n: int) -> list[float]:
    out = []
    for _ in range(n):
        name = f"b{uuid.uuid4().hex[:6]}"
        box: dict[str, float] = {}

        def run(name: str = name, box: dict[str, float] = box) -> None:
            box["ran"] = flyte.with_runcontext(mode="local", name=f"bench-{name}").run(
                condition_wait, name=name).outputs()[0]

        thread = threading.Thread(target=run, daemon=True)
        thread.start()
        event = _pending(hub, f":{name}")
        submitted = time.time()
        httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": True},
                   headers=hub.headers()).raise_for_status()
        thread.join(60)
        out.append(box["ran"] - submitted)
    return out


def native(hub: HubProcess, plane: FakeControlPlane, bridge: ConditionBridge,
           loop: asyncio.AbstractEventLoop, n: int) -> list[float]:
    out = []
    for i in range(n):
        action = plane.service.add_condition("bench", "dev", f"to-flyte-{i}", "a0", "go")
        loop.run_until_complete(bridge.sync_once())
        event = _pending(hub, f":to-flyte-{i}:")
        submitted = time.perf_counter()
        httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses", json={"value": True},
                   headers=hub.headers()).raise_for_status()
        while plane.service.actions[_key(action)].status.phase not in TERMINAL:
            time.sleep(0.001)
        out.append(time.perf_counter() - submitted)
    return out


def reverse(hub: HubProcess, plane: FakeControlPlane, settings: dict[str, Any], token: str,
            interval: float, n: int) -> list[float]:
    out: list[float] = []
    bridge = ConditionBridge(settings, [("bench", "rev")], hub_url=hub.url, hub_token=token,
                             interval=interval)
    flyte_user = RunServiceCalls(settings, "bench")

    async def go() -> None:
        runner = asyncio.create_task(bridge.run())
        for i in range(n):
            action = plane.service.add_condition("bench", "rev", f"from-flyte-{i}", "a0", "go")
            event = await asyncio.to_thread(_pending, hub, f":from-flyte-{i}:")
            answered = time.perf_counter()
            await flyte_user.signal(await flyte_user.details(action), True)
            while (await bridge.hub.get(event["id"])).decision is None:
                await asyncio.sleep(0.005)
            out.append(time.perf_counter() - answered)
        runner.cancel()
        await bridge.aclose()
        await flyte_user.aclose()

    asyncio.run(go())
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20)
    parser.add_argument("--interval", type=float, default=0.5)
    args = parser.parse_args()
    flyte.init()
    with FakeControlPlane({"hub": "hub@example.com"}) as plane:
        settings = {"endpoint": plane.endpoint, "token": "hub"}
        env = {"SIGNOFF_RESUMERS__FLYTE2__ENDPOINT": plane.endpoint,
               "SIGNOFF_RESUMERS__FLYTE2__TOKEN": "hub",
               "SIGNOFF_RESUMERS__FLYTE2__BRIDGE_USERS": "bench-bridge,bench-bridge-2"}
        with HubProcess(Path(tempfile.mkdtemp()) / "hub.db", env=env) as hub:
            import os

            os.environ["SIGNOFF_URL"] = hub.url
            os.environ["SIGNOFF_TOKEN"] = hub.token("bench-tasks", role="workflow")
            loop = asyncio.new_event_loop()
            bridge = ConditionBridge(settings, [("bench", "dev")], hub_url=hub.url,
                                     hub_token=hub.token("bench-bridge", role="workflow"))
            print(figures("new_condition (local run): answer -> task goes on",
                          drop_in(hub, args.n)))
            print(figures("native condition: answer -> condition signalled",
                          native(hub, plane, bridge, loop, args.n)))
            loop.run_until_complete(bridge.aclose())
            print(figures(f"answered in Flyte -> event decided ({args.interval} s rounds)",
                          reverse(hub, plane, settings,
                                  hub.token("bench-bridge-2", role="workflow"),
                                  args.interval, args.n)))


if __name__ == "__main__":
    main()
