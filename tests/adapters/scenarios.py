"""One table of scenarios, played against every adapter (the apprise ``rest.py`` idea).

An adapter's test module supplies a *driver*: something that starts its workflow step with the
scenario's event arguments, in the background, and later tells what the step continued with.
:func:`play` then does the reviewer's part through the hub's real API and checks the result:

```python
@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.name)
def test_scenario(scenario, hub, driver):
    play(scenario, driver, hub)
```
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, Protocol

import httpx

from signoff.testing import HubProcess

__all__ = ["SCENARIOS", "Driver", "Outcome", "Run", "Scenario", "find_event", "play"]


@dataclass(frozen=True)
class Outcome:
    """What the workflow step did: continued with ``value``, or failed with ``error`` (a kind:
    ``rejected``, ``expired``, ``cancelled``)."""

    value: Any = None
    error: str | None = None


@dataclass(frozen=True)
class Scenario:
    """One case: the event's arguments, what the reviewer does, and what the step must do."""

    name: str
    input: dict[str, Any]
    answers: tuple[Any, ...] = ()          # given in order; only the first valid one decides
    bad: tuple[Any, ...] = ()              # given first; each must be refused with 422
    timeout: float | None = None
    on_timeout: str = "reject"
    cancel: bool = False
    expect: Outcome = field(default_factory=Outcome)

    @property
    def kwargs(self) -> dict[str, Any]:
        """The event arguments an adapter's step passes on (besides its prompt and key)."""
        args: dict[str, Any] = {"input": self.input, "on_timeout": self.on_timeout}
        if self.timeout is not None:
            args["timeout"] = self.timeout
        return args


SCENARIOS: list[Scenario] = [
    Scenario("approve", {"kind": "approval"}, answers=(True,), expect=Outcome(value=True)),
    Scenario("reject", {"kind": "approval"}, answers=(False,), expect=Outcome(value=False)),
    Scenario("typed_int", {"kind": "int", "min": 1, "max": 10}, answers=(7,),
             expect=Outcome(value=7)),
    Scenario("typed_text", {"kind": "text", "max_length": 40}, answers=("Q3 report",),
             expect=Outcome(value="Q3 report")),
    Scenario("choice", {"kind": "choice", "options": ["blue", "green"]}, answers=("green",),
             expect=Outcome(value="green")),
    Scenario("bad_answer_refused", {"kind": "int", "min": 1, "max": 10}, bad=(99, "seven"),
             answers=(4,), expect=Outcome(value=4)),
    Scenario("duplicate_response", {"kind": "approval"}, answers=(True, False),
             expect=Outcome(value=True)),
    Scenario("timeout_default", {"kind": "int", "default": 3}, timeout=1.0,
             on_timeout="default", expect=Outcome(value=3)),
    Scenario("timeout_reject", {"kind": "approval"}, timeout=1.0, on_timeout="reject",
             expect=Outcome(value=False)),
    Scenario("timeout_fail", {"kind": "approval"}, timeout=1.0, on_timeout="fail",
             expect=Outcome(error="expired")),
    Scenario("cancel", {"kind": "approval"}, cancel=True, expect=Outcome(error="cancelled")),
]


class Run(Protocol):
    """A workflow step started by a driver."""

    key_prefix: str
    """The start of the idempotency key the adapter gives the event (to find it in the hub)."""

    def result(self, timeout: float) -> Outcome:
        """Wait for the step to continue or fail, and say which."""


class Driver(Protocol):
    """Starts one adapter's workflow step for a scenario."""

    def start(self, scenario: Scenario, hub: HubProcess) -> Run:
        """Start the step in the background (a thread or a process) and return at once."""


def find_event(hub: HubProcess, key_prefix: str, timeout: float = 60.0) -> dict[str, Any]:
    """The newest event whose key starts with ``key_prefix``, once the adapter created it."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        page = httpx.get(f"{hub.url}/api/v1/events", params={"limit": 500},
                         headers=hub.headers()).json()
        found = [e for e in page["events"] if (e["key"] or "").startswith(key_prefix)]
        if found:
            return max(found, key=lambda e: e["created_at"])
        time.sleep(0.1)
    raise AssertionError(f"no event with key {key_prefix!r}* appeared in {timeout} s")


def play(scenario: Scenario, driver: Driver, hub: HubProcess, timeout: float = 120.0) -> Outcome:
    """Run one scenario end to end and check the step did what it must."""
    run = driver.start(scenario, hub)
    event = find_event(hub, run.key_prefix)
    url = f"{hub.url}/api/v1/events/{event['id']}"
    for value in scenario.bad:
        refused = httpx.post(f"{url}/responses", json={"value": value}, headers=hub.headers())
        assert refused.status_code == 422, refused.text
        assert refused.json()["error"]["field"] == "value"
        assert httpx.get(url, headers=hub.headers()).json()["status"] == "pending"
    for index, value in enumerate(scenario.answers):
        answered = httpx.post(f"{url}/responses", json={"value": value, "comment": scenario.name},
                              headers=hub.headers())
        assert answered.status_code == (200 if index == 0 else 409), answered.text
    if scenario.cancel:
        cancelled = httpx.post(f"{url}/cancel", json={"comment": "not needed"},
                               headers=hub.headers())
        assert cancelled.status_code == 200, cancelled.text
    outcome = run.result(timeout)
    assert outcome == scenario.expect, f"{scenario.name}: {outcome} != {scenario.expect}"
    return outcome
