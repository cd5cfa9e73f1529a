"""The shared scenario table, played through a rendered gate, the real hub and its resumer.

Per scenario: the gate is rendered with hera, submitted to the fake Argo Server, its register
template POSTs the event to the real hub, the suspend node waits; the reviewer's part goes
through the hub's API (``play``); the hub's ArgoResumer sets the node through ``/set``. What the
step "continued with" is read from the suspend node, as the next step would: a node that
succeeded continues with its ``value`` output, one that failed stops with its ``outcome``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from signoff.adapters.argo import input_step, standalone_workflow
from tests.adapters.scenarios import SCENARIOS, Outcome, Scenario, play

from .conftest import ArgoWorld
from .fake_controller import GateRun


def decode(kind: str, text: str) -> Any:
    """What a downstream step makes of the ``value`` output, by the input's kind."""
    if kind in ("text", "choice"):
        return text
    return json.loads(text)


@dataclass
class ArgoRun:
    gate_run: GateRun
    kind: str

    @property
    def key_prefix(self) -> str:
        return self.gate_run.key

    def result(self, timeout: float) -> Outcome:
        node = self.gate_run.finished(timeout)
        outputs = {p["name"]: p["value"] for p in node["outputs"]["parameters"]}
        if node["phase"] == "Succeeded":
            return Outcome(value=decode(self.kind, outputs["value"]))
        return Outcome(error=outputs["outcome"])


class ArgoDriver:
    """Renders a gate for the scenario and runs it; rejections continue with ``false``
    (``on_reject="continue"``), as the table expects of an approval."""

    def __init__(self, world: ArgoWorld) -> None:
        self.world = world
        self.runs: list[ArgoRun] = []

    def start(self, scenario: Scenario, hub: Any) -> ArgoRun:
        gate = input_step(f"step-{scenario.name.replace('_', '-')}", f"Scenario {scenario.name}",
                          hub=self.world.hub_connection(), on_reject="continue",
                          **scenario.kwargs)
        self.runs.append(ArgoRun(self.world.run(standalone_workflow(gate), gate.name),
                                 gate.kind))
        return self.runs[-1]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, argo_world: ArgoWorld) -> None:
    driver = ArgoDriver(argo_world)
    outcome = play(scenario, driver, argo_world.hub, timeout=30)
    assert outcome == scenario.expect
    # the decision reached the node through exactly one /set with WorkflowSetRequest's fields
    name = driver.runs[0].gate_run.workflow["metadata"]["name"]
    sets = [c for c in argo_world.argo.calls_to("/set") if f"/{name}/" in c.path]
    assert [c.status for c in sets] == [200]
    assert sets[0].unknown_fields == []
    assert set(sets[0].body) == {"name", "namespace", "nodeFieldSelector", "outputParameters",
                                 "phase", "message"}
    assert set(json.loads(sets[0].body["outputParameters"])) == {"value", "outcome"}
