"""Per-token limits against a real `signoff serve`: rates, the pending quota, parked long-polls.

Each hub here runs with small limits (set through the environment, as an operator would) so a
test reaches them in a few requests; one test lifts them with 0.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from signoff import AsyncClient, Client, RateLimited
from signoff.hub import load_settings
from signoff.hub.limits import Limits
from signoff.testing import HubProcess

from .test_web import sign_in

EVENTS = "/api/v1/events"


def _hub(tmp_path: Path, **limits: str) -> HubProcess:
    env = {f"SIGNOFF_{k.upper()}": v for k, v in limits.items()}
    return HubProcess(tmp_path / "hub.db", env=env)


@pytest.fixture
def small(tmp_path: Path) -> Iterator[HubProcess]:
    """Creations: a burst of 3, then one every 20 s; answers: a burst of 1, then one every
    20 s. The pending quota is lifted here."""
    with _hub(tmp_path, create_rate="0.05", create_burst="3", answer_rate="0.05",
              answer_burst="1", pending_per_token="0") as hub:
        yield hub


def _create(hub: HubProcess, token: str, **body: Any) -> httpx.Response:
    body = {"name": "limits", "prompt": "Go?", **body}
    return httpx.post(f"{hub.url}{EVENTS}", json=body, headers=hub.headers(token), timeout=30)


def _limit_error(answer: httpx.Response) -> dict[str, Any]:
    assert answer.status_code == 429, answer.text
    error: dict[str, Any] = answer.json()["error"]
    assert error["code"] == "rate_limited"
    assert int(answer.headers["retry-after"]) == error["retry_after"] >= 1
    return error


def _wait_until(check: Callable[[], Any], timeout: float = 20.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = check()
        if found:
            return found
        time.sleep(0.02)
    raise AssertionError(f"not true within {timeout} s")


def _pending_of(hub: HubProcess, token: str) -> int:
    answer = httpx.get(f"{hub.url}{EVENTS}", params={"status": "pending", "limit": 500},
                       headers=hub.headers(token), timeout=30)
    return len(answer.json()["events"])


# creations -----------------------------------------------------------------------------------
def test_creations_over_the_rate_get_429_with_retry_after(small: HubProcess) -> None:
    flow = small.token("flow", role="workflow")
    assert [_create(small, flow).status_code for _ in range(3)] == [201, 201, 201]
    refused = _create(small, flow, prompt="one too many")
    error = _limit_error(refused)
    assert (error["limit"], error["value"]) == ("create_rate", 0.05)
    assert 1 <= error["retry_after"] <= 20  # a token comes back every 20 s
    assert _pending_of(small, flow) == 3  # nothing written on refusal
    # another token has its own bucket
    other = small.token("other-flow", role="workflow")
    assert _create(small, other).status_code == 201


def test_the_pending_quota_counts_the_tokens_pending_events(tmp_path: Path) -> None:
    with _hub(tmp_path, pending_per_token="3", create_rate="0") as hub:
        flow = hub.token("flow", role="workflow")
        admin = hub.headers()
        ids = [_create(hub, flow).json()["id"] for _ in range(3)]
        error = _limit_error(_create(hub, flow))
        assert (error["limit"], error["value"]) == ("pending_per_token", 3)
        assert _pending_of(hub, flow) == 3
        assert _create(hub, hub.token("other-flow", role="workflow")).status_code == 201
        # a decided event frees its place; the hub counts again within a second
        answered = httpx.post(f"{hub.url}{EVENTS}/{ids[0]}/responses", json={"value": True},
                              headers=admin, timeout=30)
        assert answered.status_code == 200
        _wait_until(lambda: _create(hub, flow).status_code == 201)
        assert _pending_of(hub, flow) == 3
        _limit_error(_create(hub, flow))


# answers -------------------------------------------------------------------------------------
def test_answers_over_the_rate_get_429_and_change_nothing(small: HubProcess) -> None:
    flow = small.token("flow", role="workflow")
    rita = small.token("rita", role="reviewer")
    first, second = (_create(small, flow).json()["id"] for _ in range(2))
    answer = httpx.post(f"{small.url}{EVENTS}/{first}/responses", json={"value": True},
                        headers=small.headers(rita), timeout=30)
    assert answer.status_code == 200
    refused = httpx.post(f"{small.url}{EVENTS}/{second}/responses", json={"value": True},
                         headers=small.headers(rita), timeout=30)
    error = _limit_error(refused)
    assert (error["limit"], error["value"]) == ("answer_rate", 0.05)
    event = httpx.get(f"{small.url}{EVENTS}/{second}", headers=small.headers(), timeout=30)
    assert event.json()["status"] == "pending" and event.json()["responses"] == []
    # the admin answers on its own bucket
    answer = httpx.post(f"{small.url}{EVENTS}/{second}/responses", json={"value": True},
                        headers=small.headers(), timeout=30)
    assert answer.status_code == 200


def test_an_answer_from_the_web_form_over_the_rate_gets_a_429_page(tmp_path: Path) -> None:
    with _hub(tmp_path, answer_rate="0.05", answer_burst="1") as hub:
        flow = hub.token("flow", role="workflow")
        first, second = (_create(hub, flow).json()["id"] for _ in range(2))
        assert hub.admin_token is not None
        browser = sign_in(hub, hub.admin_token, "admin").client  # the admin's session
        try:
            page = browser.get(f"/events/{first}").text
            found = re.search(r'name="csrf" value="([0-9a-f]+)"', page)
            assert found is not None
            form = {"csrf": found.group(1), "choice": "approve"}
            assert browser.post(f"/events/{first}/respond", data=form).status_code == 303
            refused = browser.post(f"/events/{second}/respond", data=form)
        finally:
            browser.close()
        assert refused.status_code == 429 and "answer_rate" in refused.text
        assert 1 <= int(refused.headers["retry-after"]) <= 20
        assert refused.headers["content-type"].startswith("text/html")
        event = httpx.get(f"{hub.url}{EVENTS}/{second}", headers=hub.headers(), timeout=30)
        assert event.json()["status"] == "pending"


# long-polls ----------------------------------------------------------------------------------
def test_parked_long_polls_per_token_are_capped(tmp_path: Path) -> None:
    with _hub(tmp_path, long_polls_per_token="2") as hub:
        _long_polls(hub)


def _long_polls(small: HubProcess) -> None:
    flow = small.token("flow", role="workflow")
    other = small.token("other-flow", role="workflow")
    ids = [_create(small, flow).json()["id"] for _ in range(3)]
    theirs = _create(small, other).json()["id"]

    async def scenario() -> None:
        async with httpx.AsyncClient(base_url=small.url, timeout=60) as http:
            def poll(event_id: str, token: str, wait: float = 30) -> Any:
                return http.get(f"{EVENTS}/{event_id}/decision", params={"wait": wait},
                                headers=small.headers(token))

            async def parked() -> int:
                return int((await http.get("/healthz")).json()["waiting"])

            polls = [asyncio.create_task(poll(i, flow)) for i in ids[:2]]
            deadline = time.monotonic() + 20
            while await parked() < 2:
                assert time.monotonic() < deadline, "the two long-polls never parked"
                await asyncio.sleep(0.02)
            error = _limit_error(await poll(ids[2], flow))
            assert (error["limit"], error["value"]) == ("long_polls_per_token", 2)
            assert (await poll(ids[2], flow, wait=0)).status_code == 204  # no wait: no limit
            mine = asyncio.create_task(poll(theirs, other))  # another token parks freely
            while await parked() < 3:
                assert time.monotonic() < deadline, "the other token's long-poll never parked"
                await asyncio.sleep(0.02)
            for event_id in [*ids[:2], theirs]:
                answer = await http.post(f"{EVENTS}/{event_id}/responses", json={"value": True},
                                         headers=small.headers())
                assert answer.status_code == 200, answer.text
            assert [a.status_code for a in await asyncio.gather(*polls, mine)] == [200] * 3
            # the places are free again
            third = asyncio.create_task(poll(ids[2], flow))
            while await parked() < 1:
                assert time.monotonic() < deadline, "a freed place was not reused"
                await asyncio.sleep(0.02)
            third.cancel()

    asyncio.run(scenario())


# lifting -------------------------------------------------------------------------------------
def test_zero_lifts_each_limit(tmp_path: Path) -> None:
    # a burst of 1 would refuse the second creation and answer; rate 0 lifts the rate itself
    with _hub(tmp_path, create_rate="0", create_burst="1", answer_rate="0", answer_burst="1",
              pending_per_token="0", long_polls_per_token="0") as hub:
        flow = hub.token("flow", role="workflow")
        ids = [_create(hub, flow) for _ in range(5)]
        assert [a.status_code for a in ids] == [201] * 5
        for answer in ids[:3]:
            answered = httpx.post(f"{hub.url}{EVENTS}/{answer.json()['id']}/responses",
                                  json={"value": False}, headers=hub.headers(), timeout=30)
            assert answered.status_code == 200


def test_the_defaults_are_the_documented_ones() -> None:
    settings = load_settings()
    assert (settings.create_rate, settings.create_burst) == (50.0, 200)
    assert (settings.answer_rate, settings.answer_burst) == (50.0, 200)
    assert settings.pending_per_token == 10_000
    assert settings.long_polls_per_token == 100
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    for name, value in (("create_rate", "50"), ("create_burst", "200"),
                        ("pending_per_token", "10,000"), ("long_polls_per_token", "100")):
        assert f"`{name}`" in readme and value in readme


# the client ----------------------------------------------------------------------------------
def test_the_client_waits_retry_after_within_its_budget(tmp_path: Path) -> None:
    with _hub(tmp_path, create_rate="1", create_burst="1", pending_per_token="0") as hub:
        token = hub.token("flow", role="workflow")
        patient = Client(hub.url, token, retry_for=10)
        patient.create(name="a", prompt="first")
        began = time.monotonic()
        patient.create(name="a", prompt="second")  # 429, Retry-After 1, then 201
        assert time.monotonic() - began >= 0.9
        hasty = Client(hub.url, token, retry_for=0.2)
        with pytest.raises(RateLimited) as caught:
            hasty.create(name="a", prompt="third")
        assert (caught.value.limit, caught.value.value, caught.value.status) == (
            "create_rate", 1.0, 429)
        assert caught.value.retry_after == 1

        async def in_async() -> None:
            async with AsyncClient(hub.url, token, retry_for=10) as client:
                await client.create(name="a", prompt="async, after the wait")
            async with AsyncClient(hub.url, token, retry_for=0.2) as client:
                with pytest.raises(RateLimited):
                    await client.create(name="a", prompt="async, no budget")

        asyncio.run(in_async())
        assert _pending_of(hub, token) == 3


def test_the_client_rides_out_a_503_then_raises_hub_unavailable() -> None:
    from signoff import HubUnavailable

    answers = iter([httpx.Response(503, headers={"Retry-After": "0"}),
                    httpx.Response(200, json={"user": "x"})])
    client = Client("http://hub.invalid", "t", retry_for=5,
                    transport=httpx.MockTransport(lambda request: next(answers)))
    assert client._request("GET", "/api/v1/me").json() == {"user": "x"}
    down = Client("http://hub.invalid", "t", retry_for=0,
                  transport=httpx.MockTransport(lambda request: httpx.Response(503)))
    with pytest.raises(HubUnavailable):
        down.get("ev_1")


# the counting itself -------------------------------------------------------------------------
def test_the_pending_quota_asks_the_store_rarely() -> None:
    """Admitting 1,000 creations under a quota of 10,000 counts in the store once, not 1,000
    times; at the quota it counts again, at most once a second."""
    counts: list[int] = []
    pending = {"n": 0}
    now = {"t": 0.0}

    async def count(user: str, limit: int) -> int:
        counts.append(limit)
        return min(pending["n"], limit)

    settings = load_settings(pending_per_token=1_000, create_rate=0)
    limits = Limits(settings, count, clock=lambda: now["t"])

    async def admit(n: int) -> int:
        refused = 0
        for _ in range(n):
            try:
                async with limits.creating("flow"):
                    pending["n"] += 1
            except RateLimited:
                refused += 1
        return refused

    assert asyncio.run(admit(1_000)) == 0
    assert counts == [1_001]
    assert asyncio.run(admit(5)) == 5  # counted a moment ago: refused without a count
    assert len(counts) == 1
    now["t"] += 1.5
    assert asyncio.run(admit(5)) == 5  # a second later: one count, then refusals without one
    assert len(counts) == 2
    pending["n"] = 990  # ten decided
    now["t"] += 1.5
    assert asyncio.run(admit(12)) == 2
    assert len(counts) == 3
