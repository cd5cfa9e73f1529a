"""The shared scenario table, played on the dev server and on the time-skipping server."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from temporalio.testing import WorkflowEnvironment

from ..scenarios import SCENARIOS, Scenario, play
from .harness import LoopThread, Stack, TemporalDriver, stack_on, start_time_skipping


@pytest.fixture(scope="module", params=["dev", "time-skipping"])
def stack(request: pytest.FixtureRequest, loop: LoopThread, dev_server: WorkflowEnvironment,
          tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    env = dev_server if request.param == "dev" else loop.run(start_time_skipping())
    try:
        with stack_on(loop, env, tmp_path_factory.mktemp("hub") / "hub.db") as stack:
            yield stack
    finally:
        if env is not dev_server:
            loop.run(env.shutdown())


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, stack: Stack) -> None:
    outcome = play(scenario, TemporalDriver(stack), stack.hub)
    assert outcome == scenario.expect

