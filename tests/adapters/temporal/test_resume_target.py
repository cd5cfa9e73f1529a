"""The temporal resumer names its target, so the hub guards it (see
tests/hub/test_resume_targets.py, whose temporal case needs this extra in the hub's
environment: the core suite runs without it, this suite with it)."""

from __future__ import annotations

from pathlib import Path

from signoff import Source
from signoff.adapters.temporal.resumer import TemporalResumer
from signoff.store.contract import make_event
from signoff.testing import HubProcess
from tests.hub.test_resume_targets import SHAPES, check_target_is_guarded


def test_a_second_workflow_cannot_signal_the_first_ones_run(tmp_path: Path) -> None:
    mine, theirs = SHAPES["temporal"]
    with HubProcess(tmp_path / "hub.db") as hub:
        check_target_is_guarded(hub, hub.token("flow-a", role="workflow"),
                                hub.token("flow-b", role="workflow"), "temporal", mine, theirs)


def test_target_is_namespace_and_workflow_id_unambiguously() -> None:
    resumer = TemporalResumer({})

    def target(**params: str) -> str | None:
        return resumer.target(make_event(source=Source(orchestrator="temporal", params=params)))

    assert target(namespace="default", workflow_id="order-1", run_id="r1") == \
        target(namespace="default", workflow_id="order-1", run_id="r2") == "default/order-1"
    assert target(namespace="a/b", workflow_id="c") != target(namespace="a", workflow_id="b/c")
    assert target(namespace="default") is None
