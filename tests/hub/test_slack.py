"""Slack interactive approvals (issue 21) against a real `signoff serve`.

Requests to the hub are signed exactly as Slack documents it (``v0:{timestamp}:{body}``,
HMAC-SHA256 with the signing secret, ``X-Slack-Signature: v0=<hex>``). The hub's calls to Slack
go to ``FakeSlack``, a loopback server (a fake, named so) that answers the Web API methods the hub
uses and checks their shape as Slack's API reference gives it: bearer token, JSON body, required
arguments, Block Kit blocks with the buttons the hub promises.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from signoff import Client
from signoff.testing import HubProcess, until

from ..conftest import hub_process
from .loopback import JsonServer

SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
BOT = "xoxb-test-token"
_REQUIRED = {"chat.postMessage": ("channel", "blocks", "text"),
             "chat.update": ("channel", "ts", "blocks", "text"),
             "chat.postEphemeral": ("channel", "user", "text"), "users.info": ("user",)}


class FakeSlack(JsonServer):
    """Slack's Web API on loopback, strict about what the hub sends (a fake)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.problems: list[str] = []
        self.emails = {"U0CAROL": "carol@example.com"}
        super().__init__(self.respond)

    def respond(self, path: str, headers: dict[str, str],
                body: dict[str, Any]) -> tuple[int, Any]:
        method = path.removeprefix("/api/")
        self.check(method, headers, body)
        self.calls.append((method, body))
        answer: dict[str, Any] = {"ok": True}
        if method == "chat.postMessage":
            answer.update(channel=body["channel"], ts="1700000000.000100")
        elif method == "users.info":
            answer["user"] = {"id": body["user"], "profile": {
                "email": self.emails.get(body["user"], "")}}
        return 200, answer

    def check(self, method: str, headers: dict[str, str], body: dict[str, Any]) -> None:
        if method not in _REQUIRED:
            self.problems.append(f"unknown method {method}")
            return
        if headers.get("Authorization") != f"Bearer {BOT}":
            self.problems.append(f"{method}: no bearer token")
        if not headers.get("Content-Type", "").startswith("application/json"):
            self.problems.append(f"{method}: not JSON")
        missing = [k for k in _REQUIRED[method] if k not in body]
        if missing:
            self.problems.append(f"{method}: missing {missing}")
        for block in body.get("blocks", []):
            if block.get("type") not in ("section", "context", "actions"):
                self.problems.append(f"{method}: block type {block.get('type')}")
            for element in block.get("elements", []) if block["type"] == "actions" else []:
                if element["type"] != "button" or element["text"]["type"] != "plain_text":
                    self.problems.append(f"{method}: not a button {element}")

    def of(self, method: str) -> list[dict[str, Any]]:
        return [body for m, body in self.calls if m == method]


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    fake = FakeSlack()
    yield fake
    fake.stop()
    assert fake.problems == []


@pytest.fixture
def slack_hub(request: pytest.FixtureRequest, tmp_path: Path,
              slack: FakeSlack) -> Iterator[HubProcess]:
    env = {"SIGNOFF_SLACK": json.dumps({
        "bot_token": BOT, "signing_secret": SECRET, "channel": "C0APPROVE",
        "api_url": f"http://127.0.0.1:{slack.port}/api", "users": {"U0ALICE": "alice"},
        "email_lookup": True}),
        "SIGNOFF_EGRESS_ALLOW": json.dumps([f"http://127.0.0.1:{slack.port}"]),
        "SIGNOFF_EGRESS_ALLOW_PRIVATE": json.dumps(["127.0.0.1/32"])}
    with hub_process(request, tmp_path, env) as process:
        yield process


def _click(event_id: str, user: str, action: str = "approve") -> bytes:
    payload = {"type": "block_actions", "user": {"id": user, "username": user.lower()},
               "channel": {"id": "C0APPROVE"}, "container": {
                   "type": "message", "message_ts": "1700000000.000100",
                   "channel_id": "C0APPROVE"},
               "actions": [{"type": "button", "action_id": action, "value": event_id,
                            "block_id": f"signoff:{event_id}"}]}
    return urlencode({"payload": json.dumps(payload)}).encode()


def _signed(body: bytes, at: int | None = None, secret: str = SECRET) -> dict[str, str]:
    """The headers Slack sends (https://api.slack.com/authentication/verifying-requests-from-slack)."""
    stamp = str(int(time.time()) if at is None else at)
    base = b"v0:" + stamp.encode() + b":" + body
    digest = hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {"X-Slack-Request-Timestamp": stamp, "X-Slack-Signature": f"v0={digest}",
            "Content-Type": "application/x-www-form-urlencoded"}


def _post(hub: HubProcess, body: bytes, headers: dict[str, str]) -> httpx.Response:
    return httpx.post(f"{hub.url}/slack/interactions", content=body, headers=headers)


def test_signature_timestamp_and_replay_are_checked(slack_hub: HubProcess,
                                                    slack: FakeSlack) -> None:
    flow = Client(slack_hub.url, slack_hub.token("flow", role="workflow"))
    slack_hub.token("alice")
    event = flow.create(name="deploy", prompt="Deploy v3?", policy={"quorum": 2})
    body = _click(event.id, "U0ALICE")
    assert _post(slack_hub, body, {}).status_code == 401
    assert _post(slack_hub, body, _signed(body, secret="not-the-secret")).status_code == 401
    tampered = _signed(body)
    assert _post(slack_hub, body.replace(b"approve", b"reject"), tampered).status_code == 401
    assert _post(slack_hub, body, _signed(body, at=int(time.time()) - 400)).status_code == 401
    assert flow.get(event.id).responses == []
    fresh = _signed(body)
    assert _post(slack_hub, body, fresh).status_code == 200
    replayed = _post(slack_hub, body, fresh)
    assert replayed.status_code == 401 and "replayed" in replayed.text
    assert [r.by for r in flow.get(event.id).responses] == ["alice"]


def test_a_full_slack_approval_round_trip(slack_hub: HubProcess, slack: FakeSlack) -> None:
    flow = Client(slack_hub.url, slack_hub.token("flow", role="workflow"))
    slack_hub.token("alice")
    event = flow.create(name="deploy", prompt="Deploy <churn> v3?", impact="low")
    [posted] = until(lambda: slack.of("chat.postMessage"), what="the posted approval")
    assert posted["channel"] == "C0APPROVE"
    [actions] = [b for b in posted["blocks"] if b["type"] == "actions"]
    assert [(e["action_id"], e["value"], e["style"]) for e in actions["elements"]] == [
        ("approve", event.id, "primary"), ("reject", event.id, "danger")]
    assert "Deploy &lt;churn&gt; v3?" in posted["blocks"][0]["text"]["text"]

    body = _click(event.id, "U0ALICE")
    assert _post(slack_hub, body, _signed(body)).status_code == 200
    decided = flow.get(event.id)
    assert decided.decision is not None
    assert (decided.decision.by, decided.decision.channel, decided.decision.outcome.value) == (
        "alice", "slack", "approved")
    [update] = until(lambda: slack.of("chat.update"), what="the message updated")
    assert (update["channel"], update["ts"]) == ("C0APPROVE", "1700000000.000100")
    assert not any(b["type"] == "actions" for b in update["blocks"])
    assert "approved* by alice via slack" in json.dumps(update["blocks"])

    late = _click(event.id, "U0ALICE", "reject")
    assert _post(slack_hub, late, _signed(late)).status_code == 200
    [told] = until(lambda: slack.of("chat.postEphemeral"), what="the late click answered")
    assert told["user"] == "U0ALICE" and "already decided" in told["text"]


def test_who_a_slack_user_answers_as(slack_hub: HubProcess, slack: FakeSlack) -> None:
    flow = Client(slack_hub.url, slack_hub.token("flow", role="workflow"))
    slack_hub.token("carol@example.com", groups=("ops",))
    event = flow.create(name="deploy", prompt="Deploy v4?", assignees=["group:ops"])
    stranger = _click(event.id, "U0NOBODY")
    assert _post(slack_hub, stranger, _signed(stranger)).status_code == 200
    [told] = until(lambda: slack.of("chat.postEphemeral"), what="the stranger told")
    assert "does not know you" in told["text"] and flow.get(event.id).status == "pending"
    # not in the mapping: Slack's e-mail for the user names the signoff user (with its groups)
    carol = _click(event.id, "U0CAROL", "reject")
    assert _post(slack_hub, carol, _signed(carol)).status_code == 200
    assert [c["user"] for c in slack.of("users.info")] == ["U0NOBODY", "U0CAROL"]
    decision = flow.get(event.id).decision
    assert decision is not None and (decision.by, decision.outcome.value) == (
        "carol@example.com", "rejected")
    refused = httpx.post(f"{slack_hub.url}/api/v1/events/{event.id}/responses",
                         headers={**slack_hub.headers(), "X-Signoff-Channel": "slack"},
                         json={"value": True})
    assert refused.status_code == 403  # nobody claims the slack channel over the API
