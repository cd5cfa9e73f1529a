"""Signed one-click answer links: ``{base_url}/answer/{code}``, one per recipient and answer.

A notification to a reviewer named in an approval event's assignees (``notify`` keyed by
that user) carries two links, *approve* and *reject*. The code is the link's facts (event,
recipient, answer, expiry, a nonce) and an HMAC-SHA256 over them under the hub's link key, so
nothing is stored when a link is made and no one can forge one or change its answer.

The link key is kept out of the database, like the audit key: ``link_key`` in the settings, or
else derived from the audit key (HMAC with a fixed label, so the two keys never sign the same
thing). Every replica of a hub holds the same audit key, so a link made by one opens on all.

A GET of a link shows a confirm page and records nothing (mail scanners and link previews
fetch links); only the POST from that page answers, in the recipient's name, through channel
``link``, under every rule an answer from the inbox meets. The use is stored
(``answer_links_used``): a link answers once, and never after its expiry or the decision.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Literal

from .._errors import InvalidInput
from .._model import Event

__all__ = ["ANSWER_PATH", "AnswerLink", "LinkSigner", "link_key"]

ANSWER_PATH = "/answer/"
"""Where an answer link points: ``{base_url}/answer/{code}``."""

MAX_CODE = 1000
"""The longest code a link may carry (a real one is about 250 characters)."""

Answer = Literal["approve", "reject"]
_LABEL = b"signoff answer links v1"


def link_key(configured: bytes | None, audit_key: bytes) -> bytes:
    """The key links are signed with: the configured one, else one derived from the audit key."""
    if configured is not None:
        return configured
    return hmac.new(audit_key, _LABEL, hashlib.sha256).digest()


@dataclass(frozen=True)
class AnswerLink:
    """What a verified link says."""

    event_id: str
    recipient: str
    answer: Answer
    expires_at: datetime
    id: str
    """A hash of the signature: the key its use is stored under."""

    @property
    def value(self) -> bool:
        """The answer the link gives, as an approval event's value."""
        return self.answer == "approve"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class LinkSigner:
    """Makes and checks answer links under one key."""

    def __init__(self, key: bytes, base_url: str, lifetime: float) -> None:
        self._key = key
        self.base_url = base_url
        self.lifetime = lifetime

    def _mac(self, payload: str) -> bytes:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).digest()

    def code(self, event: Event, recipient: str, answer: Answer, now: datetime) -> str:
        """A fresh signed code (expiring ``lifetime`` seconds from ``now``)."""
        expires = int((now + timedelta(seconds=self.lifetime)).timestamp())
        facts = {"e": event.id, "r": recipient, "a": answer, "x": expires,
                 "n": secrets.token_hex(8)}
        payload = _b64(json.dumps(facts, separators=(",", ":")).encode())
        return f"{payload}.{_b64(self._mac(payload))}"

    def url(self, event: Event, recipient: str, answer: Answer, now: datetime) -> str:
        """The link a notification carries."""
        return f"{self.base_url}{ANSWER_PATH}{self.code(event, recipient, answer, now)}"

    def read(self, code: str) -> AnswerLink:
        """The facts of a code whose signature is ours (expiry is the caller's to check).

        Raises:
            InvalidInput: naming ``link``: not a code this hub signed (or one altered).
        """
        refused = InvalidInput("link", "a one-click link this hub signed, unaltered",
                               "an altered or unknown link")
        payload, dot, signature = code.partition(".")
        if not dot or len(code) > MAX_CODE:
            raise refused
        try:
            sent = _unb64(signature)
        except ValueError:
            raise refused from None
        if not hmac.compare_digest(sent, self._mac(payload)):
            raise refused
        try:
            facts = json.loads(_unb64(payload))
            answer = facts["a"]
            if answer not in ("approve", "reject"):
                raise ValueError(answer)
            return AnswerLink(event_id=str(facts["e"]), recipient=str(facts["r"]), answer=answer,
                              expires_at=datetime.fromtimestamp(int(facts["x"]), timezone.utc),
                              id=hashlib.sha256(sent).hexdigest())
        except (ValueError, KeyError, TypeError):  # signed by us, so never in practice
            raise refused from None
