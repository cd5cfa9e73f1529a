"""Run Prefect flows in the background for tests, and poke at them through Prefect's REST API."""

from __future__ import annotations

import asyncio
import inspect
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
from prefect import flow
from prefect.context import FlowRunContext

from signoff import Cancelled, Expired, Rejected
from signoff.testing import HubProcess
from tests.adapters.scenarios import Outcome, Scenario

from .conftest import PREFECT_API

ERRORS = {Rejected: "rejected", Expired: "expired", Cancelled: "cancelled"}


class FlowThread:
    """A flow run in a thread of the test process; ``step`` runs inside the flow."""

    def __init__(self, step: Callable[[], Any], name: str = "signoff-test", **options: Any):
        self.box: dict[str, Any] = {}
        self._started = threading.Event()

        if inspect.iscoroutinefunction(step):
            async def body() -> Any:
                self._mark()
                return await step()
        else:
            def body() -> Any:  # type: ignore[misc]
                self._mark()
                return step()

        self.flow = flow(name=name, **options)(body)
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _mark(self) -> None:
        self.box["flow_run_id"] = str(FlowRunContext.get().flow_run.id)  # type: ignore[union-attr]
        self.box.setdefault("starts", 0)
        self.box["starts"] += 1
        self._started.set()

    def _run(self) -> None:
        try:
            result = self.flow()
            if inspect.iscoroutine(result):
                result = asyncio.run(result)
            self.box["value"] = result
        except BaseException as exc:  # noqa: BLE001 - reported to the test
            self.box["error"] = exc
        finally:
            self.box["done_at"] = time.time()
            self._started.set()

    def start(self, timeout: float = 120.0) -> FlowThread:
        """Start the flow and wait until its run exists."""
        self.thread.start()
        if not self._started.wait(timeout):
            raise AssertionError(f"the flow did not start in {timeout} s")
        if "flow_run_id" not in self.box:
            raise AssertionError(f"the flow failed before it started: {self.box.get('error')!r}")
        return self

    @property
    def flow_run_id(self) -> str:
        return str(self.box["flow_run_id"])

    @property
    def key_prefix(self) -> str:
        return f"prefect:{self.flow_run_id}:"

    def join(self, timeout: float) -> dict[str, Any]:
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise AssertionError(f"flow run {self.flow_run_id} still runs after {timeout} s; "
                                 f"state {flow_state(self.flow_run_id)}")
        return self.box

    def result(self, timeout: float) -> Outcome:
        box = self.join(timeout)
        error = box.get("error")
        if error is None:
            return Outcome(value=box.get("value"))
        for cls, kind in ERRORS.items():
            if isinstance(error, cls):
                return Outcome(error=kind)
        raise error


class SyncDriver:
    """Plays a scenario with ``approve`` (approvals) or ``ask`` (everything else)."""

    is_async = False

    def __init__(self, token: str, **step_options: Any):
        self.token = token
        self.step_options = step_options

    def start(self, scenario: Scenario, hub: HubProcess) -> FlowThread:
        from signoff.adapters.prefect import aapprove, aask, approve, ask

        kwargs = {**scenario.kwargs, "hub_url": hub.url, "hub_token": self.token,
                  **self.step_options}
        spec = kwargs.pop("input")
        approval = spec["kind"] == "approval"
        prompt = f"scenario {scenario.name}?"
        if self.is_async:
            async def step() -> Any:
                if approval:
                    return await aapprove(prompt, **kwargs)
                return await aask(prompt, input=spec, **kwargs)
            return FlowThread(step, name=f"scenario-{scenario.name}").start()

        def sync_step() -> Any:
            if approval:
                return approve(prompt, **kwargs)
            return ask(prompt, input=spec, **kwargs)
        return FlowThread(sync_step, name=f"scenario-{scenario.name}").start()


class AsyncDriver(SyncDriver):
    """The same with ``aapprove``/``aask`` in an async flow."""

    is_async = True


def flow_run(flow_run_id: str) -> dict[str, Any]:
    """A flow run as Prefect's API returns it."""
    answer = httpx.get(f"{PREFECT_API}/flow_runs/{flow_run_id}", timeout=10)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def flow_state(flow_run_id: str) -> str:
    """The run's state type and name, e.g. ``PAUSED/Paused``."""
    state = flow_run(flow_run_id)["state"] or {}
    return f"{state.get('type')}/{state.get('name')}"


def wait_for_state(flow_run_id: str, state_type: str, timeout: float = 60.0) -> dict[str, Any]:
    """Wait until the run is in ``state_type`` (and its form is stored, for a pause)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        run = flow_run(flow_run_id)
        state = run["state"] or {}
        if state.get("type") == state_type:
            keyset = (state.get("state_details") or {}).get("run_input_keyset") or {}
            if not keyset or prefect_input(flow_run_id, keyset["schema"]) is not None:
                return run
        time.sleep(0.1)
    raise AssertionError(f"flow run {flow_run_id} not {state_type} in {timeout} s: "
                         f"{flow_state(flow_run_id)}")


def prefect_input(flow_run_id: str, key: str) -> Any:
    """A stored run input, or ``None``."""
    answer = httpx.get(f"{PREFECT_API}/flow_runs/{flow_run_id}/input/{key}", timeout=10)
    if answer.status_code == 404:
        return None
    answer.raise_for_status()
    return answer.json()


def prefect_post(path: str, body: dict[str, Any]) -> Any:
    """POST to Prefect's API, again while it answers 503 (Prefect on SQLite does when its
    database is busy; its own clients retry too)."""
    for _ in range(40):
        answer = httpx.post(f"{PREFECT_API}{path}", json=body, timeout=10)
        if answer.status_code != 503:
            break
        time.sleep(0.25)
    answer.raise_for_status()
    return answer.json()


def resume_in_prefect(flow_run_id: str, run_input: dict[str, Any] | None) -> dict[str, Any]:
    """Resume the run through Prefect's own REST API, as Prefect's UI does."""
    body = {} if run_input is None else {"run_input": run_input}
    return prefect_post(f"/flow_runs/{flow_run_id}/resume", body)  # type: ignore[no-any-return]


def hub_event(hub: HubProcess, event_id: str) -> dict[str, Any]:
    """One event as the hub's admin sees it."""
    answer = httpx.get(f"{hub.url}/api/v1/events/{event_id}", headers=hub.headers(), timeout=10)
    answer.raise_for_status()
    return answer.json()  # type: ignore[no-any-return]


def events_with(hub: HubProcess, key_prefix: str) -> list[dict[str, Any]]:
    """Every event whose key starts with ``key_prefix``."""
    page = httpx.get(f"{hub.url}/api/v1/events", params={"limit": 500},
                     headers=hub.headers(), timeout=10).json()
    return [e for e in page["events"] if (e["key"] or "").startswith(key_prefix)]


def wait_delivery(hub: HubProcess, event_id: str, state: str, timeout: float = 30.0
                  ) -> dict[str, Any]:
    """Wait until the event's delivery reaches ``state``; returns the delivery."""
    deadline = time.monotonic() + timeout
    seen: Any = None
    while time.monotonic() < deadline:
        deliveries = hub_event(hub, event_id)["deliveries"]
        seen = deliveries
        if deliveries and deliveries[0]["state"] == state:
            return deliveries[0]  # type: ignore[no-any-return]
        time.sleep(0.1)
    raise AssertionError(f"delivery of {event_id} not {state} in {timeout} s: {seen}")


def respond(hub: HubProcess, event_id: str, value: Any, token: str | None = None,
            comment: str | None = None) -> httpx.Response:
    """Answer in the hub as a reviewer (the admin unless ``token``)."""
    return httpx.post(f"{hub.url}/api/v1/events/{event_id}/responses",
                      json={"value": value, "comment": comment},
                      headers=hub.headers(token), timeout=10)


def logged(flow_run_id: str, text: str, timeout: float = 20.0) -> list[str]:
    """The flow run's log lines (as stored in Prefect) containing ``text``, once there are any;
    Prefect ships run logs to its API in batches."""
    deadline = time.monotonic() + timeout
    while True:
        answer = httpx.post(f"{PREFECT_API}/logs/filter", timeout=10, json={
            "logs": {"flow_run_id": {"any_": [flow_run_id]}}, "limit": 200})
        answer.raise_for_status()
        found = [line["message"] for line in answer.json() if text in line["message"]]
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)
