"""Automated deciders: the "AI fallback" a policy's last escalation tier may hand an event to.

A decider is configured in the hub, never in the workflow: ``[deciders.NAME]`` in the settings
with a ``url`` makes a webhook decider (the hub POSTs the event as JSON and reads back
``{"value": ..., "comment": "..."}``); any other name is looked up in the ``signoff.deciders``
entry-point group, whose factory takes the decider's settings and returns an object with an
async ``decide(event) -> Verdict``. The hub records the decision with ``by`` = the decider's
name and channel ``fallback``; its value is checked against the event's input like any answer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, JsonValue

from ._errors import SignoffError
from ._model import Event

__all__ = ["Decider", "DeciderFailed", "Verdict", "WebhookDecider", "load_decider"]


class Verdict(BaseModel):
    """What a decider answers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    value: JsonValue
    comment: str | None = None


class DeciderFailed(SignoffError):
    """The decider could not decide (unreachable, refused, or answered nonsense)."""


@runtime_checkable
class Decider(Protocol):
    """Decides one event in place of a person."""

    async def decide(self, event: Event) -> Verdict:
        """Return the verdict for ``event``."""


DeciderFactory = Callable[[Mapping[str, Any]], Decider]


class WebhookDecider:
    """POST the event to ``url``; the answer's JSON body is the verdict."""

    def __init__(self, settings: Mapping[str, Any]) -> None:
        self.url = str(settings["url"])
        self.timeout = float(settings.get("timeout", 30))
        self.headers = {"Authorization": f"Bearer {settings['token']}"} \
            if settings.get("token") else {}
        # made once (the hub builds deciders in a worker thread): a client costs 50-200 ms of
        # CPU (the CA bundle), which on the event loop at each call stalled the hub
        self._client = httpx.AsyncClient(timeout=self.timeout)

    async def decide(self, event: Event) -> Verdict:
        """Ask the webhook."""
        try:
            answer = await self._client.post(self.url, headers=self.headers,
                                             content=event.model_dump_json(by_alias=True))
            answer.raise_for_status()
            return Verdict.model_validate(answer.json())
        except (httpx.HTTPError, ValueError) as exc:
            raise DeciderFailed(f"decider {self.url}: {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def load_decider(name: str, settings: Mapping[str, Any]) -> Decider:
    """The decider called ``name``: a webhook when its settings have a ``url``, else an entry
    point in ``signoff.deciders``.

    Raises:
        DeciderFailed: no decider of that name is configured or installed.
    """
    if "url" in settings:
        return WebhookDecider(settings)
    for entry in entry_points(group="signoff.deciders"):
        if entry.name == name:
            factory: DeciderFactory = entry.load()
            return factory(settings)
    raise DeciderFailed(f"no decider {name!r}: configure [deciders.{name}] url = ... or install "
                        f"a package with a signoff.deciders entry point named {name!r}")
