"""The built-in AI decider (issue 21) against a loopback fake of the chat-completions API: the
happy path, and each failure leaving the event to the humans (low confidence, refusal, invalid
JSON, a value of the wrong shape, an error status, a cut-off answer, a timeout).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from signoff import Client, Policy, Tier

from .inprocess import FakeClock, InProcessHub
from .loopback import JsonServer

KEY = "sk-test-key"


def _completion(content: str | None, *, refusal: str | None = None,
                finish: str = "stop") -> dict[str, Any]:
    """A chat-completions response body, as the API reference shapes it."""
    return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
            "model": "gpt-test", "choices": [{
                "index": 0, "finish_reason": finish,
                "message": {"role": "assistant", "content": content, "refusal": refusal}}],
            "usage": {"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}}


class FakeChat(JsonServer):
    """``POST /v1/chat/completions`` on loopback (a fake), strict about the request's shape;
    answers by the event's prompt from ``answers`` (a body, an HTTP status, or ``"hang"``).
    """

    def __init__(self, answers: dict[str, Any]) -> None:
        self.answers = answers
        self.requests: list[dict[str, Any]] = []
        self.problems: list[str] = []
        super().__init__(self.respond)

    def respond(self, path: str, headers: dict[str, str],
                body: dict[str, Any]) -> tuple[int, Any]:
        self.check(path, headers, body)
        self.requests.append(body)
        answer = self.answers[json.loads(body["messages"][-1]["content"])["prompt"]]
        if answer == "hang":
            time.sleep(3)
            answer = _completion("{}")
        if isinstance(answer, int):
            return answer, {"error": {"message": "overloaded"}}
        return 200, answer

    def check(self, path: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        if path != "/v1/chat/completions":
            self.problems.append(f"path {path}")
        if headers.get("Authorization") != f"Bearer {KEY}":
            self.problems.append("no bearer key")
        if body.get("model") != "gpt-test":
            self.problems.append(f"model {body.get('model')}")
        roles = [m.get("role") for m in body.get("messages", [])]
        if roles != ["system", "user"] or not all(
                isinstance(m.get("content"), str) for m in body["messages"]):
            self.problems.append(f"messages {roles}")
        form = body.get("response_format", {})
        schema = form.get("json_schema", {})
        if form.get("type") != "json_schema" or not schema.get("strict") or \
                set(schema.get("schema", {}).get("required", [])) != {
                    "value", "confidence", "reason"}:
            self.problems.append(f"response_format {form}")


def _answer(value: Any, confidence: float, reason: str = "looks routine") -> dict[str, Any]:
    return _completion(json.dumps({"value": value, "confidence": confidence, "reason": reason}))


ANSWERS: dict[str, Any] = {
    "Approve routine refund?": _answer(True, 0.97, "amount under the usual limit"),
    "Unsure?": _answer(True, 0.42),
    "Refused?": _completion(None, refusal="I can't help with that."),
    "Not JSON?": _completion("sure, approve it"),
    "Wrong shape?": _answer("yes", 0.99),
    "Cut off?": _completion('{"value": tr', finish="length"),
    "Overloaded?": 503,
    "Hangs?": "hang",
}


@pytest.fixture
def chat() -> Iterator[FakeChat]:
    fake = FakeChat(ANSWERS)
    yield fake
    fake.stop()
    assert fake.problems == []


def test_the_ai_decider_decides_only_when_confident_and_well_formed(
        tmp_path: Path, chat: FakeChat) -> None:
    clock = FakeClock()
    hub = InProcessHub(
        tmp_path / "ai.db", clock, decider_timeout=1.0,
        deciders={"ai": {"kind": "openai", "base_url": f"http://127.0.0.1:{chat.port}/v1",
                         "model": "gpt-test", "api_key": KEY, "min_confidence": 0.8}},
        egress_allow=[f"http://127.0.0.1:{chat.port}"],
        egress_allow_private=["127.0.0.1/32"]).start()
    try:
        flow = Client(hub.url, hub.token("flow", role="workflow"))
        policy = Policy(escalate=[Tier(after=60, fallback="ai")])
        made = {prompt: flow.create(name="refund", prompt=prompt, policy=policy,
                                    context={"amount": 40, "currency": "EUR",
                                             "iban": "DE89370400440532013000"},
                                    sensitive=["iban"])
                for prompt in ANSWERS}
        clock.advance(seconds=61)
        hub.settle(lambda: all(any(e["action"] in ("escalated", "approved")
                                   for e in flow.audit(ev.id)) for ev in made.values()))

        happy = flow.get(made["Approve routine refund?"].id)
        assert happy.decision is not None
        assert (happy.decision.by, happy.decision.channel, happy.decision.outcome.value) == (
            "ai", "fallback", "approved")
        assert happy.decision.comment == ("gpt-test, confidence 0.97: amount under the usual "
                                          "limit")
        sent = next(r for r in chat.requests
                    if "Approve routine refund?" in r["messages"][1]["content"])
        facts = json.loads(sent["messages"][1]["content"])
        # the model is a reader like any other: the sensitive field never leaves masked
        assert facts["context"] == {"amount": 40, "currency": "EUR", "iban": "[masked]"}
        assert "DE89370400440532013000" not in json.dumps(sent)
        assert facts["input"]["kind"] == "approval"
        assert sent["response_format"]["json_schema"]["schema"]["properties"]["value"] == {
            "type": "boolean"}

        why = {"Unsure?": "confidence 0.42 is under 0.80", "Refused?": "refused to answer",
               "Not JSON?": "not the JSON asked for", "Wrong shape?": "does not fit the input",
               "Cut off?": "cut off (length)", "Overloaded?": "answered 503",
               "Hangs?": "did not answer within 1 s"}
        for prompt, reason in why.items():
            event = flow.get(made[prompt].id)
            assert event.status == "pending" and event.responses == [], prompt
            [tier] = [e["data"] for e in flow.audit(event.id) if e["action"] == "escalated"]
            assert reason in tier["error"], (prompt, tier)
            assert tier["fallback"] == "ai"
    finally:
        hub.stop()
