"""Automated deciders: the "AI fallback" a policy's last escalation tier may hand an event to.

A decider is configured in the hub, never in the workflow: ``[deciders.NAME]`` in the settings
with ``kind = "openai"`` is the built-in AI decider (:mod:`signoff._openai_decider`), one
with a ``url`` makes a webhook decider (the hub POSTs the event as JSON and reads back
``{"value": ..., "comment": "..."}``); any other name is looked up in the ``signoff.deciders``
entry-point group, whose factory takes the decider's settings and returns an object with an
async ``decide(event) -> Verdict``. The hub records the decision with ``by`` = the decider's
name and channel ``fallback``; its value is checked against the event's input like any answer.

A webhook decider's ``url`` must be allowed by the hub's ``egress_allow`` (and, for a
non-public address, ``egress_allow_private``), checked again on the resolved address of each
connection; redirects are not followed. A failure says why in a few words (the status code,
the exception's class, ``refused: ...``), never with what the webhook answered.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from importlib.metadata import entry_points
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, JsonValue, ValidationError

from ._egress import EgressGuard, EgressRefused, origin_of
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


_MAX_VERDICT_BYTES = 65_536


class WebhookDecider:
    """POST the event to ``url``; the answer's JSON body is the verdict.

    One HTTP client for the decider's lifetime (:meth:`aclose` releases it), guarded by
    ``egress`` (without one, nothing may be called).
    """

    def __init__(self, settings: Mapping[str, Any], egress: EgressGuard | None = None) -> None:
        self.url = str(settings["url"])
        self.egress = egress or EgressGuard()
        headers = {"Authorization": f"Bearer {settings['token']}"} \
            if settings.get("token") else {}
        # made once (the hub builds deciders in a worker thread): a client costs 50-200 ms of
        # CPU (the CA bundle), which on the event loop at each call stalled the hub
        self._client = self.egress.client(timeout=float(settings.get("timeout", 30)),
                                          headers=headers)

    async def decide(self, event: Event) -> Verdict:
        """Ask the webhook."""
        where = f"decider {origin_of(self.url)}"
        try:
            self.egress.check_url(self.url)
            async with self._client.stream("POST", self.url,
                                           content=event.model_dump_json(by_alias=True)) as answer:
                if answer.status_code != 200:
                    raise DeciderFailed(f"{where} answered {answer.status_code}")
                body = b""
                async for chunk in answer.aiter_bytes():
                    body += chunk
                    if len(body) > _MAX_VERDICT_BYTES:
                        raise DeciderFailed(f"{where}: the answer is over "
                                            f"{_MAX_VERDICT_BYTES} bytes")
            return Verdict.model_validate_json(body)
        except EgressRefused as exc:
            raise DeciderFailed(f"{where}: {exc}") from exc
        except ValidationError as exc:  # not the message: it quotes the answer
            raise DeciderFailed(f"{where}: the answer is not a verdict "
                                '({"value": ..., "comment": "..."})') from exc
        except httpx.HTTPError as exc:
            raise DeciderFailed(f"{where}: {type(exc).__name__}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client."""
        await self._client.aclose()


def load_decider(name: str, settings: Mapping[str, Any],
                 egress: EgressGuard | None = None) -> Decider:
    """The decider called ``name``: a webhook when its settings have a ``url`` (calling only
    where ``egress`` allows), else an entry point in ``signoff.deciders``.

    Raises:
        DeciderFailed: no decider of that name is configured or installed.
    """
    if settings.get("kind") == "openai":  # issue 21: any OpenAI-compatible endpoint
        from ._openai_decider import OpenAIDecider

        return OpenAIDecider(settings, egress)
    if "url" in settings:
        return WebhookDecider(settings, egress)
    for entry in entry_points(group="signoff.deciders"):
        if entry.name == name:
            factory: DeciderFactory = entry.load()
            return factory(settings)
    raise DeciderFailed(f"no decider {name!r}: configure [deciders.{name}] url = ... or install "
                        f"a package with a signoff.deciders entry point named {name!r}")
