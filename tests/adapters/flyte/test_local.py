"""flytekit local execution against a real hub: the shared scenarios, and approve's own cases."""

from __future__ import annotations

import logging
import time

import httpx
import pytest
from flytekit import task, workflow

from signoff import HubNotConfigured, Rejected
from signoff.adapters.flyte import approve, ask
from signoff.testing import HubProcess

from ..scenarios import SCENARIOS, Scenario, find_event, play
from .driver import FlytekitDriver, LocalRun


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario: Scenario, module_flow: HubProcess,
                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNOFF_FLYTE_RUN", raising=False)  # the driver sets it per run
    play(scenario, FlytekitDriver(), module_flow)


@task
def make_report(rows: int) -> dict:
    return {"rows": rows, "anomalies": 3}


@task
def publish(report: dict, title: str) -> str:
    return f"{title}: {report['rows']} rows published"


@workflow
def report_flow(rows: int) -> str:
    report = make_report(rows=rows)
    title = ask("Title for the report?", input={"kind": "text", "max_length": 30},
                name="title", upstream=report)
    ok = approve(report, "Publish it?", name="publish", context={"rows": 10})
    return publish(report=ok, title=title)


def _answer(hub: HubProcess, key_prefix: str, value: object) -> dict:
    event = find_event(hub, key_prefix)
    answered = httpx.post(f"{hub.url}/api/v1/events/{event['id']}/responses",
                          json={"value": value}, headers=hub.headers())
    assert answered.status_code == 200, answered.text
    return event


def _pending(hub: HubProcess, key_suffix: str) -> dict:
    """The pending event whose key ends with ``key_suffix`` (waiting for it to appear)."""
    import time

    for _ in range(600):
        page = httpx.get(f"{hub.url}/api/v1/events", params={"status": "pending"},
                         headers=hub.headers()).json()
        found = [e for e in page["events"] if e["key"].endswith(key_suffix)]
        if found:
            return found[0]
        time.sleep(0.1)
    raise AssertionError(f"no pending event *{key_suffix}")


def test_approve_lets_the_upstream_value_through(flow: HubProcess) -> None:
    run = LocalRun(report_flow, "flyte:local:local:local-", rows=10)
    title = _pending(flow, ":title")
    assert title["input"] == {"kind": "text", "max_length": 30, "pattern": None,
                              "multiline": False, "default": None}
    httpx.post(f"{flow.url}/api/v1/events/{title['id']}/responses", json={"value": "Q3"},
               headers=flow.headers()).raise_for_status()
    gate = _pending(flow, ":publish")
    # both steps of one local run share its run id
    assert gate["key"].rsplit(":", 1)[0] == title["key"].rsplit(":", 1)[0]
    assert gate["source"]["orchestrator"] == "flyte"
    assert gate["context"] == {"rows": 10}
    httpx.post(f"{flow.url}/api/v1/events/{gate['id']}/responses", json={"value": True},
               headers=flow.headers()).raise_for_status()
    assert run.result(60).value == "Q3: 10 rows published"


def test_rejected_approval_fails_and_nothing_downstream_runs(flow: HubProcess) -> None:
    run = LocalRun(report_flow, "flyte:local:local:local-", rows=10)
    title = _pending(flow, ":title")
    httpx.post(f"{flow.url}/api/v1/events/{title['id']}/responses", json={"value": "Q3"},
               headers=flow.headers()).raise_for_status()
    gate = _pending(flow, ":publish")
    httpx.post(f"{flow.url}/api/v1/events/{gate['id']}/responses",
               json={"value": False, "comment": "numbers look off"},
               headers=flow.headers()).raise_for_status()
    run._thread.join(60)
    error = run._result.get("error")
    assert isinstance(error, Rejected), run._result
    assert "'publish'" in str(error) and "numbers look off" in str(error)
    assert "value" not in run._result


def test_a_rerun_with_the_same_run_id_reuses_the_event(flow: HubProcess,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SIGNOFF_FLYTE_RUN", "nightly-2024-06-01")
    first = LocalRun(report_flow, "flyte:local:local:nightly-2024-06-01:", rows=5)
    title = _pending(flow, ":title")
    assert title["key"] == "flyte:local:local:nightly-2024-06-01:title"
    httpx.post(f"{flow.url}/api/v1/events/{title['id']}/responses", json={"value": "Night"},
               headers=flow.headers()).raise_for_status()
    gate = _pending(flow, ":publish")
    httpx.post(f"{flow.url}/api/v1/events/{gate['id']}/responses", json={"value": True},
               headers=flow.headers()).raise_for_status()
    assert first.result(60).value == "Night: 5 rows published"
    # the restarted run is answered from the same events: nobody is asked twice
    again = LocalRun(report_flow, "flyte:local:local:nightly-2024-06-01:", rows=5)
    assert again.result(60).value == "Night: 5 rows published"
    events = httpx.get(f"{flow.url}/api/v1/events", headers=flow.headers()).json()["events"]
    assert sorted(e["key"] for e in events) == ["flyte:local:local:nightly-2024-06-01:publish",
                                                "flyte:local:local:nightly-2024-06-01:title"]


@task
def triage(count: int) -> str:
    # ask() inside a task body waits right there (task mode without a separate node)
    level = ask(f"{count} anomalies: which level?", input={"kind": "choice",
                "options": ["low", "high"]}, name="level")
    return f"{count}:{level}"


@workflow
def triage_flow(count: int) -> str:
    return triage(count=count)


def test_ask_inside_a_task_waits_on_the_hub(flow: HubProcess) -> None:
    run = LocalRun(triage_flow, "flyte:local:local:", count=3)
    event = _pending(flow, ":level")
    refused = httpx.post(f"{flow.url}/api/v1/events/{event['id']}/responses",
                         json={"value": "medium"}, headers=flow.headers())
    assert refused.status_code == 422
    assert refused.json()["error"]["field"] == "value"
    httpx.post(f"{flow.url}/api/v1/events/{event['id']}/responses", json={"value": "high"},
               headers=flow.headers()).raise_for_status()
    assert run.result(60).value == "3:high"


def test_bad_arguments_fail_when_the_workflow_is_compiled() -> None:
    @workflow
    def bad_name() -> str:
        return ask("Title?", name="Has Spaces")

    @workflow
    def bad_timeout() -> str:
        return ask("Title?", timeout=-5)

    @workflow
    def bad_upstream(rows: int) -> int:
        return approve(rows, "Go?")

    @workflow
    def bad_spec() -> int:
        return ask("How many?", input={"kind": "int", "min": 5, "max": 1})

    for wf, message in ((bad_name, "name: expected 1-63"), (bad_timeout, "timeout: expected a "
                        "positive"), (bad_upstream, "approve: upstream must be one output"),
                        (bad_spec, "min is above max")):
        with pytest.raises(Exception, match=message):
            wf.compile()


WAITING = "signoff: waiting for an answer in the inbox: "


def test_the_task_log_shows_the_inbox_url_once(flow: HubProcess,
                                                caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="user_space.signoff")
    run = LocalRun(triage_flow, "flyte:local:local:", count=2)
    event = _pending(flow, ":level")
    inbox = f"{flow.url}/events/{event['id']}"
    httpx.post(f"{flow.url}/api/v1/events/{event['id']}/responses", json={"value": "low"},
               headers=flow.headers()).raise_for_status()
    assert run.result(60).value == "2:low"
    assert [r.getMessage() for r in caplog.records if WAITING in r.getMessage()] == [
        WAITING + inbox]


def test_no_hub_configured_fails_at_once_naming_the_setting(
        flow: HubProcess, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SIGNOFF_URL")
    started = time.monotonic()
    with pytest.raises(Exception) as failed:
        LocalRun(triage_flow, "flyte:local:local:", count=1).result(30)
    assert time.monotonic() - started < 30
    chain: list[BaseException] = []
    seen: BaseException | None = failed.value
    while seen is not None:
        chain.append(seen)
        seen = seen.__cause__ or seen.__context__
    assert any(isinstance(e, HubNotConfigured) for e in chain) or \
        "HubNotConfigured" in str(failed.value), repr(failed.value)
    assert "no signoff hub configured: set SIGNOFF_URL" in str(failed.value)
