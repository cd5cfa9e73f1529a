"""The hub-side resumer against the real Prefect API, one answer of Prefect at a time.

Flow runs are made directly through Prefect's REST API in the state each case needs.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from signoff import ApprovalInput, Decision, Event, IntInput, Outcome, Source
from signoff.adapters.prefect.resumer import PrefectResumer
from signoff.resumers import DeliveryFailed, RetryDelivery
from signoff.testing import free_port

from .helpers import prefect_input, prefect_post

NOW = datetime.now(timezone.utc)


def _event(flow_run_id: str, *, pause_key: str = "signoff-1", value: Any = True,
           outcome: Outcome = Outcome.approved, channel: str = "api",
           params: dict[str, Any] | None = None, kind: Any = None) -> Event:
    source = Source(orchestrator="prefect", run=flow_run_id, step=pause_key, params=params
                    if params is not None else {"flow_run_id": flow_run_id,
                                                "pause_key": pause_key, "mode": "pause"})
    return Event(id=f"ev_{uuid.uuid4().hex}", key=None, name="t", prompt="?",
                 input=kind or ApprovalInput(), context={}, assignees=[], priority="normal",
                 timeout=None, on_timeout="reject", source=source, labels={},
                 requested_by="prefect-flows", status="decided", created_at=NOW, deadline=None,
                 decision=Decision(value=value, outcome=outcome, by="ana", channel=channel,
                                   at=NOW))


def _deliver(api: str | None, event: Event, **settings: Any) -> None:
    """One delivery, as the hub's dispatcher makes it; Prefect on SQLite answers 503 when its
    database is busy, which the dispatcher retries (and so does this)."""
    async def go() -> None:
        resumer = PrefectResumer({"api_url": api, **settings} if api else settings)
        try:
            for _ in range(20):
                try:
                    await resumer.deliver(event)
                    return
                except RetryDelivery as exc:
                    if "answered 503" not in str(exc):
                        raise
                    await asyncio.sleep(0.5)
        finally:
            await resumer.aclose()

    asyncio.run(go())


def _flow_run(state: dict[str, Any]) -> str:
    # on the session's Prefect server; prefect_post rides out its 503s (SQLite busy)
    flow = prefect_post("/flows/", {"name": "resumer-test"})
    run = prefect_post("/flow_runs/", {"flow_id": flow["id"],
                                       "state": {"type": "RUNNING", "name": "Running"}})
    if state["type"] != "RUNNING":
        _set_state(run["id"], state)
    return str(run["id"])


def _set_state(run_id: str, state: dict[str, Any]) -> None:
    answer = prefect_post(f"/flow_runs/{run_id}/set_state", {"state": state, "force": True})
    assert answer["status"] == "ACCEPT", answer


def _paused(key: str = "signoff-1", timeout: timedelta = timedelta(hours=1)) -> dict[str, Any]:
    keyset = {part: f"paused-{key}-{part}" for part in ("schema", "response", "description")}
    return {"type": "PAUSED", "name": "Paused", "state_details": {
        "pause_key": key, "pause_timeout": (datetime.now(timezone.utc) + timeout).isoformat(),
        "pause_reschedule": False, "run_input_keyset": keyset}}


def _store_schema(api: str, run_id: str, key: str, schema: dict[str, Any]) -> None:
    import json

    answer = httpx.post(f"{api}/flow_runs/{run_id}/input", timeout=10,
                        json={"key": f"paused-{key}-schema", "value": json.dumps(schema)})
    answer.raise_for_status()


FORM = {"type": "object", "additionalProperties": True,
        "properties": {"value": {"type": "integer", "minimum": 1, "maximum": 10},
                       "comment": {"anyOf": [{"type": "string"}, {"type": "null"}]}}}


def test_resumes_a_paused_run_with_the_decision(prefect_api: str) -> None:
    run_id = _flow_run(_paused())
    _store_schema(prefect_api, run_id, "signoff-1", FORM)
    event = _event(run_id, value=7, outcome=Outcome.answered, kind=IntInput())
    _deliver(prefect_api, event)
    stored = prefect_input(run_id, "paused-signoff-1-response")
    assert stored["value"] == 7
    assert stored["signoff"]["event_id"] == event.id
    assert stored["signoff"]["outcome"] == "answered"
    state = httpx.get(f"{prefect_api}/flow_runs/{run_id}").json()["state"]
    assert state["type"] == "RUNNING"
    # delivering again (an answer lost on the way) finds its own answer: delivered
    _deliver(prefect_api, event)


def test_cancel_resumes_without_a_value(prefect_api: str) -> None:
    run_id = _flow_run(_paused())
    _store_schema(prefect_api, run_id, "signoff-1", FORM)
    event = _event(run_id, value=None, outcome=Outcome.cancelled, kind=IntInput())
    _deliver(prefect_api, event)
    stored = prefect_input(run_id, "paused-signoff-1-response")
    assert "value" not in stored and stored["signoff"]["outcome"] == "cancelled"


def test_schema_not_stored_yet_is_retried(prefect_api: str) -> None:
    run_id = _flow_run(_paused())
    with pytest.raises(RetryDelivery, match="pausing: Run input schema not found"):
        _deliver(prefect_api, _event(run_id))


def test_value_prefect_refuses_fails(prefect_api: str) -> None:
    run_id = _flow_run(_paused())
    _store_schema(prefect_api, run_id, "signoff-1", FORM)
    with pytest.raises(DeliveryFailed, match="Prefect refused the decision.*maximum of 10"):
        _deliver(prefect_api, _event(run_id, value=11, outcome=Outcome.answered))


def test_timed_out_pause_fails(prefect_api: str) -> None:
    run_id = _flow_run(_paused(timeout=timedelta(seconds=-5)))
    _store_schema(prefect_api, run_id, "signoff-1", FORM)
    with pytest.raises(DeliveryFailed, match="can no longer be resumed"):
        _deliver(prefect_api, _event(run_id, value=3, outcome=Outcome.answered))


def test_run_not_yet_paused_is_retried(prefect_api: str) -> None:
    run_id = _flow_run({"type": "RUNNING"})
    with pytest.raises(RetryDelivery, match="is RUNNING, not yet waiting at pause 'signoff-1'"):
        _deliver(prefect_api, _event(run_id))


def test_run_paused_elsewhere_is_retried(prefect_api: str) -> None:
    run_id = _flow_run(_paused("signoff-2"))
    with pytest.raises(RetryDelivery, match="at pause 'signoff-2', not yet waiting at pause "
                                            "'signoff-1'"):
        _deliver(prefect_api, _event(run_id))


def test_finished_run_fails(prefect_api: str) -> None:
    run_id = _flow_run({"type": "COMPLETED", "name": "Completed"})
    with pytest.raises(DeliveryFailed, match="is COMPLETED: it no longer waits"):
        _deliver(prefect_api, _event(run_id))


def test_taken_marker_means_delivered(prefect_api: str) -> None:
    run_id = _flow_run({"type": "COMPLETED", "name": "Completed"})
    httpx.post(f"{prefect_api}/flow_runs/{run_id}/input", timeout=10,
               json={"key": "signoff-signoff-1-taken", "value": "{}"}).raise_for_status()
    _deliver(prefect_api, _event(run_id))


def test_unknown_flow_run_fails(prefect_api: str) -> None:
    with pytest.raises(DeliveryFailed, match="answered 404"):
        _deliver(prefect_api, _event(str(uuid.uuid4())))


@pytest.mark.parametrize("params, field", [
    ({"pause_key": "signoff-1"}, "source.params.flow_run_id"),
    ({"flow_run_id": "not-a-uuid", "pause_key": "k"}, "source.params.flow_run_id"),
    ({"flow_run_id": str(uuid.uuid4())}, "source.params.pause_key"),
    ({"flow_run_id": str(uuid.uuid4()), "pause_key": "k", "mode": "sleep"},
     "source.params.mode"),
])
def test_bad_source_params_fail_naming_the_field(params: dict[str, Any], field: str,
                                                 prefect_api: str) -> None:
    with pytest.raises(DeliveryFailed, match=field.replace(".", r"\.")):
        _deliver(prefect_api, _event(str(uuid.uuid4()), params=params))


def test_unreachable_prefect_is_retried() -> None:
    with pytest.raises(RetryDelivery, match="ConnectError"):
        _deliver(f"http://127.0.0.1:{free_port()}/api", _event(str(uuid.uuid4())))


def test_missing_api_url_is_retried_until_configured() -> None:
    with pytest.raises(RetryDelivery, match=r"api_url.*SIGNOFF_RESUMERS__PREFECT__API_URL"):
        _deliver(None, _event(str(uuid.uuid4())))


@pytest.mark.parametrize("channel", ["prefect", "prefect-ui"])  # prefect-ui: before relays
def test_answer_from_prefect_needs_no_delivery(channel: str) -> None:
    # no API at all: returning without a call is the point
    _deliver(f"http://127.0.0.1:{free_port()}/api", _event(str(uuid.uuid4()), channel=channel))


def test_auth_settings_are_sent(prefect_api: str) -> None:
    """``api_key`` becomes a bearer token, ``auth_string`` HTTP basic auth."""
    seen: list[httpx.Request] = []

    async def go() -> None:
        for settings in ({"api_key": "pnu_x"}, {"auth_string": "admin:pass"}):
            resumer = PrefectResumer({"api_url": prefect_api, **settings})
            resumer._client.event_hooks["request"] = [_record(seen)]
            with pytest.raises(DeliveryFailed):
                await resumer.deliver(_event(str(uuid.uuid4())))
            await resumer.aclose()

    asyncio.run(go())
    assert seen[0].headers["Authorization"] == "Bearer pnu_x"
    assert seen[1].headers["Authorization"] == "Basic YWRtaW46cGFzcw=="


def _record(seen: list[httpx.Request]) -> Any:
    async def hook(request: httpx.Request) -> None:
        seen.append(request)

    return hook


def test_a_stored_resume_of_another_event_is_no_answer(prefect_api: str) -> None:
    """A run resumed with another event's decision (which the flow ignores) does not make
    this delivery compare answers: taken means delivered; a finished run without it fails."""
    foreign = {"value": 5, "signoff": {"event_id": "ev_someone_else"}}
    for taken in (True, False):
        run_id = _flow_run({"type": "COMPLETED", "name": "Completed"})
        httpx.post(f"{prefect_api}/flow_runs/{run_id}/input", timeout=10,
                   json={"key": "paused-signoff-1-response", "value": json.dumps(foreign)}
                   ).raise_for_status()
        if taken:
            httpx.post(f"{prefect_api}/flow_runs/{run_id}/input", timeout=10,
                       json={"key": "signoff-signoff-1-taken", "value": "{}"}
                       ).raise_for_status()
            _deliver(prefect_api, _event(run_id, value=True))
        else:
            with pytest.raises(DeliveryFailed, match="is COMPLETED: it no longer waits"):
                _deliver(prefect_api, _event(run_id, value=True))


def test_target_is_the_flow_run_in_canonical_form() -> None:
    run_id = str(uuid.uuid4())
    resumer = PrefectResumer({})
    shouted = _event(run_id, params={"flow_run_id": run_id.upper().replace("-", ""),
                                     "pause_key": "other", "mode": "suspend"})
    assert resumer.target(_event(run_id)) == resumer.target(shouted) == run_id
    assert resumer.target(_event(run_id, params={"flow_run_id": "nope", "pause_key": "k"})) \
        is None
    asyncio.run(resumer.aclose())


@pytest.mark.parametrize("grace", ["soon", -1, 11])
def test_a_bad_self_resume_grace_is_refused_naming_it(grace: Any) -> None:
    with pytest.raises(ValueError, match=r"\[resumers.prefect\] self_resume_grace: expected"):
        PrefectResumer({"self_resume_grace": grace})
