"""Slack interactive approvals (issue 21): a message with Approve and Reject, answered in Slack.

With ``[slack]`` set, each new pending approval (with ``slack.labels``, if given) is posted to
``slack.channel`` (``chat.postMessage``, Block Kit built with slack-sdk's models). A click comes
back to ``POST /slack/interactions``, which:

1. verifies Slack's signature over the raw body and its timestamp (slack-sdk's
   ``SignatureVerifier``; older than ``max_age`` is refused) and refuses a replay (the
   signature is recorded in the store, so on every replica): 401 for each;
2. maps the Slack user to a signoff user (``slack.users``, else with ``email_lookup`` the e-mail
   address ``users.info`` gives), who must hold an active reviewer or admin token;
3. records the answer in that user's name through channel ``slack`` under every rule (rights,
   self-approval, quorum); a refusal is told to the clicker alone (``chat.postEphemeral``);
4. once the event is decided, replaces the message's buttons with the outcome (``chat.update``).

Slack wants its answer within three seconds: the request is answered once the answer is recorded,
and the calls back to Slack run as tasks of their own, bounded and timed out, through the hub's
egress guard (``https://slack.com`` must be in ``egress_allow``).
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from .._errors import AlreadyAnswered, AlreadyDecided, Forbidden, InvalidInput, NotFound
from .._model import Event
from .settings import SlackSettings

if TYPE_CHECKING:
    import httpx

    from .service import Hub

__all__ = ["Slack", "router"]

log = logging.getLogger("signoff.hub.slack")
router = APIRouter(include_in_schema=False)
_CONCURRENCY = 4
_TIMEOUT = 10.0


def _blocks(event: Event) -> list[dict[str, Any]]:
    from slack_sdk.models.blocks import (
        ActionsBlock,
        ButtonElement,
        ContextBlock,
        MarkdownTextObject,
        SectionBlock,
    )

    facts = f"*{event.name}* · priority {event.priority.value}" + (
        f" · {event.impact} impact" if event.impact else "")
    blocks = [SectionBlock(block_id="prompt", text=MarkdownTextObject(text=_plain(event.prompt))),
              ContextBlock(block_id="facts", elements=[MarkdownTextObject(text=facts)])]
    if event.status == "pending":
        blocks.append(ActionsBlock(block_id=f"signoff:{event.id}", elements=[
            ButtonElement(text="Approve", action_id="approve", value=event.id, style="primary"),
            ButtonElement(text="Reject", action_id="reject", value=event.id, style="danger")]))
    elif event.decision is not None:
        d = event.decision
        blocks.append(ContextBlock(block_id="outcome", elements=[MarkdownTextObject(
            text=f"*{d.outcome.value}* by {_plain(d.by)} via {d.channel}")]))
    return [b.to_dict() for b in blocks]


def _plain(text: str) -> str:
    """Text for Slack's mrkdwn with its three control characters escaped (Slack's rule)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")[:2900]


class Slack:
    """The hub's Slack app: posts approvals, answers clicks, updates messages."""

    def __init__(self, hub: Hub, settings: SlackSettings) -> None:
        from slack_sdk.signature import SignatureVerifier

        self.hub = hub
        self.settings = settings
        self.verifier = SignatureVerifier(settings.signing_secret.get_secret_value())
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        """One egress-guarded client for the life of the hub."""
        if self._client is None:
            token = self.settings.bot_token.get_secret_value()
            self._client = self.hub.egress.client(
                timeout=_TIMEOUT, headers={"Authorization": f"Bearer {token}"})
        return self._client

    async def aclose(self) -> None:
        """Close the client."""
        if self._client is not None:
            await self._client.aclose()

    async def call(self, method: str, body: dict[str, Any]) -> dict[str, Any]:
        """One Web API call (JSON in, JSON out); a refusal by Slack is logged, not raised."""
        url = f"{self.settings.api_url.rstrip('/')}/{method}"
        answer = await self.client().post(url, json=body)
        data: dict[str, Any] = answer.json() if answer.content else {}
        if answer.status_code != 200 or not data.get("ok", False):
            log.warning("slack %s failed: %s %s", method, answer.status_code, data.get("error"))
        return data

    def _later(self, key: tuple[Any, ...], method: str, body: dict[str, Any]) -> None:
        """Make a Web API call in a task of its own, bounded and timed out; never raises."""
        async def run() -> None:
            async with self.hub.work.slot("slack", _CONCURRENCY):
                try:
                    await self.call(method, body)
                except Exception as exc:  # Slack being down never breaks the hub
                    log.warning("slack %s failed: %s", method, type(exc).__name__)

        self.hub.work.start(key, run)

    def created(self, event: Event) -> None:
        """Post a new pending approval, when it carries the configured labels."""
        if event.status != "pending" or event.input.kind != "approval":
            return
        if any(event.labels.get(k) != v for k, v in self.settings.labels.items()):
            return
        self._later(("slack", event.id, "post"), "chat.postMessage", {
            "channel": self.settings.channel, "text": _plain(event.prompt)[:300],
            "blocks": _blocks(event)})

    def verify(self, body: bytes, timestamp: str | None, signature: str | None) -> bool:
        """Slack's signature and timestamp, as Slack documents them."""
        if not timestamp or not signature or not timestamp.isdigit() or len(timestamp) > 12:
            return False
        now = self.hub.clock().timestamp()
        if abs(now - int(timestamp)) > self.settings.max_age:
            return False
        return bool(self.verifier.is_valid(body, timestamp, signature))

    async def who(self, slack_user: str) -> str | None:
        """The signoff user a Slack user answers as, if any."""
        mapped = self.settings.users.get(slack_user)
        if mapped is not None or not self.settings.email_lookup:
            return mapped
        info = await self.call("users.info", {"user": slack_user})
        email = ((info.get("user") or {}).get("profile") or {}).get("email")
        return email if isinstance(email, str) and email else None

    async def clicked(self, payload: dict[str, Any]) -> None:
        """Record a click on Approve or Reject and tell Slack what came of it."""
        action = (payload.get("actions") or [{}])[0]
        slack_user = str((payload.get("user") or {}).get("id", ""))
        channel = str((payload.get("channel") or {}).get("id", self.settings.channel))
        ts = (payload.get("container") or {}).get("message_ts") or \
            (payload.get("message") or {}).get("ts")
        event_id = str(action.get("value", ""))
        if action.get("action_id") not in ("approve", "reject") or not event_id:
            raise InvalidInput("actions.0", "an Approve or Reject click of a signoff message",
                               action.get("action_id"))

        def tell(text: str) -> None:
            self._later(("slack", event_id, "tell", slack_user, ts), "chat.postEphemeral",
                        {"channel": channel, "user": slack_user, "text": text})

        user = await self.who(slack_user)
        identity = None if user is None else await self.hub._run(
            self.hub.store.active_identity, user)
        if identity is None:
            tell("signoff does not know you (ask an admin to map your Slack user); nothing "
                 "was recorded.")
            return
        try:
            event = await self.hub.respond(identity, event_id, action["action_id"] == "approve",
                                           None, channel="slack")
        except (Forbidden, NotFound, AlreadyDecided, AlreadyAnswered, InvalidInput) as exc:
            tell(f"Not recorded: {exc.message}.")
            return
        if event.status != "pending" and ts:
            self._later(("slack", event_id, "update"), "chat.update", {
                "channel": channel, "ts": ts, "text": _plain(event.prompt)[:300],
                "blocks": _blocks(event)})
        elif event.status == "pending":
            tell("Your answer is recorded; the event waits for more answers.")


@router.post("/slack/interactions")
async def slack_interactions(request: Request) -> Response:
    """Slack's interaction callbacks: signed, fresh and new, or 401."""
    hub: Hub = request.app.state.hub
    slack = hub.slack
    if slack is None:
        return JSONResponse({"error": {"code": "not_found", "message": "Slack is not set up "
                                       "on this hub"}}, status_code=404)
    body = await request.body()
    signature = request.headers.get("x-slack-signature")
    if not slack.verify(body, request.headers.get("x-slack-request-timestamp"), signature):
        return JSONResponse({"error": {"code": "unauthenticated", "message": "bad or stale "
                                       "Slack signature"}}, status_code=401)
    assert signature is not None
    seen = hashlib.sha256(signature.encode()).hexdigest()
    if not await hub._write(hub.store.first_sight, seen, at=hub.clock(),
                            keep=2.0 * slack.settings.max_age):
        return JSONResponse({"error": {"code": "unauthenticated", "message": "a replayed Slack "
                                       "request"}}, status_code=401)
    try:
        payload = json.loads(parse_qs(body.decode())["payload"][0])
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return Response(status_code=200)  # other interactions: acknowledged, ignored
        await slack.clicked(payload)
    except InvalidInput as exc:
        return JSONResponse(exc.to_dict(), status_code=exc.status)
    except (KeyError, ValueError, UnicodeDecodeError):
        refused = InvalidInput("payload", "a Slack block_actions payload (form field payload)",
                               "something else")
        return JSONResponse(refused.to_dict(), status_code=refused.status)
    return Response(status_code=200)
