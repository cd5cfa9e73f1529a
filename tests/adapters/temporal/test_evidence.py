"""Evidence (issue 22) on Temporal: a decision injected through the engine's own road (a
signal) is verified before the workflow acts on it; a forged one is refused and audited, and the
step keeps waiting for the hub's real decision (dev server, real hub)."""

from __future__ import annotations

from datetime import datetime, timezone

from signoff.testing import until

from .harness import Stack
from .test_steps import next_event, respond
from .workflows import TwoSteps


def _refusals(stack: Stack, event_id: str) -> list[dict[str, object]]:
    entries = stack.api("GET", f"/events/{event_id}/audit").json()["entries"]
    return [e for e in entries if e["action"] == "decision_refused"]


def test_a_forged_decision_signalled_to_the_workflow_is_refused(dev_shared: Stack) -> None:
    stack = dev_shared
    handle = stack.start(TwoSteps.run, "forged")
    seen: set[str] = set()
    first = next_event(stack, handle, seen)
    genuine = respond(stack, first["id"], True)["decision"]
    second = next_event(stack, handle, seen)
    replayed = {"event_id": second["id"], "key": second["key"], "decision": genuine}
    made_up = {"event_id": second["id"], "key": second["key"], "decision": {
        "value": True, "outcome": "approved", "by": "mallory", "channel": "api",
        "at": datetime.now(timezone.utc).isoformat(), "digest": second["digest"],
        "kid": genuine["kid"], "signature": genuine["signature"]}}
    unsigned = {**made_up, "decision": {k: v for k, v in made_up["decision"].items()
                                        if k not in ("kid", "signature")}}
    for forged in (replayed, made_up, unsigned):
        stack.loop.run(handle.signal("signoff:approve-2", forged))
    until(lambda: len(_refusals(stack, second["id"])) == 3, timeout=30,
          what="three refusals audited")
    reasons = [str(r["data"]["reason"]) for r in _refusals(stack, second["id"])]
    assert "made against another payload" in reasons[0]  # another event's real decision
    assert "does not match" in reasons[1] and "not signed" in reasons[2]
    assert stack.event(second["id"])["status"] == "pending"  # nothing acted on
    respond(stack, second["id"], False)  # the hub's real decision still goes through
    third = next_event(stack, handle, seen)
    respond(stack, third["id"], {"carrier": "dhl", "days": 1})
    result = stack.result(handle)
    assert result["first"] is True and result["second"] is False
