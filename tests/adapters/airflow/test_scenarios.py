"""The shared scenarios, each a real ``dag.test()`` run of an Airflow DAG against a real hub."""

from __future__ import annotations

import pytest

from signoff.testing import HubProcess
from tests.adapters.scenarios import SCENARIOS, Scenario, play

from .harness import AirflowDriver


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, hub: HubProcess, driver: AirflowDriver) -> None:
    play(scenario, driver, hub)
    (run,) = driver.runs
    assert run.report is not None
    ask = run.report["tasks"]["ask"]
    assert ask["try_number"] == 1
    # the event the sensor asked is the one the hub decided, under the documented key
    assert ask["xcom"]["signoff_event"]["key"].startswith(run.key_prefix)
    assert ask["xcom"]["signoff_event"]["key"].endswith(":ask:-1")
