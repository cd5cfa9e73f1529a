"""Waiting is visible in Prefect: the flow run's log shows the inbox URL once, the event links
back to the flow run, and a flow with no hub configured fails at once naming the setting."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator

import pytest

from signoff import HubNotConfigured
from signoff.adapters.prefect import approve
from signoff.testing import HubProcess, until

from .conftest import ENV
from .helpers import FlowThread, events_with, logged, respond

WAITING = "signoff: waiting for an answer in the inbox: "


@pytest.fixture
def info_logs() -> Iterator[None]:
    """The suite ships only warnings to Prefect (``PREFECT_LOGGING_LEVEL``); the waiting line is
    info, as it is in a default Prefect setup."""
    logger = logging.getLogger("prefect.flow_runs")
    level = logger.level
    logger.setLevel(logging.INFO)
    yield
    logger.setLevel(level)


@pytest.mark.usefixtures("info_logs")
def test_the_flow_log_shows_the_inbox_url_once_and_the_event_links_the_run(
        prefect_hub: HubProcess, flow_token: str) -> None:
    run = FlowThread(lambda: approve("Ship it?", hub_url=prefect_hub.url, hub_token=flow_token),
                     name="visible").start()
    event = until(lambda: events_with(prefect_hub, run.key_prefix), what="the event")[0]
    inbox = f"{prefect_hub.url}/events/{event['id']}"
    lines = until(lambda: logged(run.flow_run_id, WAITING), what="the waiting line")
    assert lines == [WAITING + inbox]
    assert event["source"]["link"] == f"{ENV['PREFECT_UI_URL']}/runs/flow-run/{run.flow_run_id}"
    assert respond(prefect_hub, event["id"], True).status_code == 200
    assert run.result(90).value is True
    assert logged(run.flow_run_id, WAITING) == [WAITING + inbox]  # once per wait, not per poll


def test_no_hub_configured_fails_at_once_naming_the_setting(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNOFF_URL", raising=False)
    started = time.monotonic()
    run = FlowThread(lambda: approve("Ship it?"), name="no-hub").start()
    error = run.join(60).get("error")
    assert isinstance(error, HubNotConfigured), error
    assert "SIGNOFF_URL" in str(error) and "hub_url=" in str(error)
    assert time.monotonic() - started < 30
