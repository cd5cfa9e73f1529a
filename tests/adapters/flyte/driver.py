"""The flytekit driver for the shared scenarios: a real local workflow execution, in a thread."""

from __future__ import annotations

import os
import threading
import uuid
from typing import Any

from flytekit import workflow

from signoff import Cancelled, Expired, Rejected, input_spec
from signoff.adapters.flyte import ask
from signoff.adapters.flyte._common import python_type_for
from signoff.testing import HubProcess

from ..scenarios import Outcome, Scenario


def outcome_of(error: BaseException) -> Outcome:
    """The scenario outcome for an exception a workflow raised (looking through wrappers)."""
    seen: BaseException | None = error
    while seen is not None:
        for cls, kind in ((Rejected, "rejected"), (Expired, "expired"), (Cancelled, "cancelled")):
            if isinstance(seen, cls):
                return Outcome(error=kind)
        seen = seen.__cause__ or seen.__context__
    raise error


def scenario_workflow(scenario: Scenario) -> Any:
    """A one-step workflow asking the scenario's question; it returns the answer."""
    answer_type = python_type_for(input_spec(scenario.input))

    def body() -> Any:
        return ask(f"Scenario {scenario.name}?", name=scenario.name.replace("_", "-"),
                   **scenario.kwargs)

    body.__annotations__ = {"return": answer_type}
    body.__name__ = body.__qualname__ = f"scenario_{scenario.name}"
    return workflow(body)


class LocalRun:
    """One local execution of a workflow in a background thread."""

    def __init__(self, wf: Any, key_prefix: str, **inputs: Any) -> None:
        self.key_prefix = key_prefix
        self._result: dict[str, Any] = {}
        self._thread = threading.Thread(target=self._run, args=(wf, inputs), daemon=True)
        self._thread.start()

    def _run(self, wf: Any, inputs: dict[str, Any]) -> None:
        try:
            self._result["value"] = wf(**inputs)
        except BaseException as exc:  # handed to the test thread
            self._result["error"] = exc

    def result(self, timeout: float) -> Outcome:
        self._thread.join(timeout)
        assert not self._thread.is_alive(), f"the workflow still runs after {timeout} s"
        if "error" in self._result:
            return outcome_of(self._result["error"])
        return Outcome(value=self._result["value"])


class FlytekitDriver:
    """Plays a scenario as a local flytekit workflow execution (no stdin, waits on the hub)."""

    def start(self, scenario: Scenario, hub: HubProcess) -> LocalRun:
        # a local run names itself with SIGNOFF_FLYTE_RUN (read when the step runs, right
        # after the start); the hub may hold earlier scenarios' events, so the key is unique
        run_id = f"scenario-{scenario.name.replace('_', '-')}-{uuid.uuid4().hex[:8]}"
        os.environ["SIGNOFF_FLYTE_RUN"] = run_id
        return LocalRun(scenario_workflow(scenario), key_prefix=f"flyte:local:local:{run_id}:")
